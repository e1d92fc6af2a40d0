"""odenets: RK nets, Hamiltonian inverse, simplex steps, adjoint, bounds."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior.bridge import as_tensor
from odl_genprior.nn.odenets import (
    TABLEAUS, ButcherTableau, FeedForwardNet, HamiltonianNet, RKNet,
    as_operator, attach_simplex_projection, lipschitz_bound,
    lipschitz_estimate, rk_adjoint, rk_step)
from odl_genprior.data.toy import TOY_DATASETS, make_toy

F64 = torch.float64
METHODS = ('euler', 'heun', 'kutta3', 'rk4')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


# --- tableaus and steps ---

@pytest.mark.parametrize('method,order', [('euler', 1), ('heun', 2),
                                          ('kutta3', 3), ('rk4', 4)])
def test_rk_step_order(method, order):
    # z' = A z (linear): the local error of one step is O(h^(order+1))
    A = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=F64)
    z = torch.tensor([0.7, -0.4], dtype=F64)
    errs = []
    for h in (0.1, 0.05):
        exact = torch.matrix_exp(h * A) @ z
        errs.append(float((rk_step(lambda u: u @ A.T, z, h, method)
                           - exact).norm()))
    rate = np.log2(errs[0] / errs[1])
    assert abs(rate - (order + 1)) < 0.3, (method, rate)


def test_tableau_validation():
    with pytest.raises(ValueError, match='not explicit'):
        ButcherTableau('bad', ((0.5,),), (1.0,))
    with pytest.raises(ValueError, match='unknown Runge-Kutta'):
        RKNet(2, 3, method='rk7')
    with pytest.raises(ValueError, match='steps'):
        RKNet(2, 3, steps='learned')
    with pytest.raises(ValueError, match=r'expected \(\.\.\., 2\)'):
        RKNet(2, 3)(torch.randn(4, 3))
    for tab in TABLEAUS.values():
        assert abs(sum(tab.b) - 1) < 1e-14


def test_euler_dense_is_resnet():
    net = RKNet(3, 4, dtype=F64)
    x = torch.randn(5, 3, dtype=F64)
    z = x
    for f in net.fields:
        z = z + 0.25 * torch.tanh(z @ f.K.T + f.b)
    assert torch.allclose(net(x), z, atol=1e-14)


# --- ODL operator ---

def _nets():
    torch.manual_seed(3)
    return [RKNet(3, 4, method='rk4', steps='free', dtype=F64),
            RKNet(3, 4, field='antisymmetric', method='heun', dtype=F64),
            RKNet(3, 4, field='gradient', hidden=5, dtype=F64),
            HamiltonianNet(2, 4, dtype=F64),
            FeedForwardNet(3, 3, dtype=F64)]


@pytest.mark.parametrize('which', range(5))
def test_operator_is_the_module(which):
    """Derivative and adjoint: tests/test_contracts.py (odenet_*)."""
    net = _nets()[which]
    op = as_operator(net)
    x = op.domain.element(
        np.random.default_rng(which).standard_normal(op.domain.shape))
    with torch.no_grad():
        y = net(as_tensor(x).reshape(1, -1)).reshape(-1)
    assert np.allclose(op(x).asarray(), y.numpy(), atol=1e-14)


def test_operator_space_check():
    with pytest.raises(ValueError, match='R\\^3'):
        as_operator(RKNet(3, 2, dtype=F64), odl.rn(2, dtype='float64'))


# --- Hamiltonian / Verlet ---

@pytest.mark.parametrize('seed', range(3))
def test_verlet_inverse_exact(seed):
    torch.manual_seed(seed)
    net = HamiltonianNet(3, 20, T=2.0, init_scale=2.0, dtype=F64)
    x = 3 * torch.randn(50, 6, dtype=F64)
    y = net(x)
    assert (net.inverse(y) - x).abs().max() < 1e-10
    assert (net(net.inverse(x)) - x).abs().max() < 1e-10
    assert (y - x).abs().max() > 0.1  # not the identity


def test_verlet_is_volume_preserving():
    # symplectic => det J = 1
    net = HamiltonianNet(2, 10, dtype=F64)
    x = torch.randn(4, dtype=F64)
    J = torch.autograd.functional.jacobian(lambda u: net(u[None])[0], x)
    assert abs(float(torch.linalg.det(J)) - 1) < 1e-12


# --- simplex steps ---

def test_simplex_steps_stay_on_simplex_during_training():
    torch.manual_seed(0)
    T = 2.0
    net = RKNet(2, 8, method='kutta3', T=T, steps='simplex', dtype=F64)
    head = torch.nn.Linear(2, 1).double()
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()),
                           lr=0.2)  # large: steps hit the boundary
    attach_simplex_projection(opt, net)
    x, y = make_toy('donut2d', 64, seed=0, dtype=F64)
    hit_zero = False
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(net(x))[:, 0], y)
        loss.backward()
        opt.step()
        h = net.step_sizes.detach()
        assert float(h.min()) >= 0
        assert abs(float(h.sum()) - T) < 1e-12
        hit_zero |= bool((h == 0).any())
    assert hit_zero  # the projection was active, not a no-op


def test_simplex_projection_inside_training_loop():
    from odl_genprior.training import train
    torch.manual_seed(1)
    net = RKNet(2, 5, steps='simplex')
    seen = []

    def opt(params):
        o = torch.optim.Adam(params, lr=0.1)
        attach_simplex_projection(o, net)
        return o

    def loss(model, batch):
        return model(batch).pow(2).sum(-1).mean()

    def check(info):
        h = info['model'].step_sizes.detach()
        seen.append((float(h.min()), float(h.sum())))

    train(net, loss, torch.randn(40, 2), out_dir=None, epochs=2,
          batch_size=10, optimizer=opt, callback=check, progress=False)
    assert len(seen) == 8
    assert all(m >= 0 and abs(s - 1) < 1e-6 for m, s in seen)


def test_projection_matches_definition():
    net = RKNet(2, 4, T=1.5, steps='simplex', dtype=F64)
    with torch.no_grad():
        net.step_sizes.copy_(torch.tensor([0.9, -0.4, 1.2, 0.1]))
    net.project_steps()
    h = net.step_sizes.detach()
    # projection onto {h >= 0, sum h = 1.5} is max(v - tau, 0)
    v = torch.tensor([0.9, -0.4, 1.2, 0.1], dtype=F64)
    tau = (v - h)[h > 0]
    assert torch.allclose(tau, tau[0].expand_as(tau), atol=1e-14)
    assert abs(float(h.sum()) - 1.5) < 1e-14


# --- discrete adjoint ---

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('field', ['dense', 'antisymmetric'])
def test_rk_adjoint_equals_autograd(method, field):
    torch.manual_seed(7)
    net = RKNet(3, 5, field=field, method=method, steps='free', T=1.3,
                init_scale=1.5, dtype=F64)
    with torch.no_grad():  # unequal steps
        net.step_sizes.mul_(torch.rand(5, dtype=F64) + 0.5)
    x = torch.randn(6, 3, dtype=F64)
    w = torch.randn(6, 3, dtype=F64)
    gx, grads = rk_adjoint(net, x, w)
    xa = x.clone().requires_grad_(True)
    net.zero_grad()
    (net(xa) * w).sum().backward()
    assert (gx - xa.grad).abs().max() < 1e-8
    for name, p in net.named_parameters():
        assert (grads[name] - p.grad).abs().max() < 1e-8, name
    assert set(grads) == {n for n, _ in net.named_parameters()}
    assert float(grads['step_sizes'].abs().sum()) > 0


def test_rk_adjoint_errors():
    with pytest.raises(ValueError, match='gradient'):
        rk_adjoint(RKNet(2, 2, field='gradient'), torch.randn(1, 2),
                   torch.randn(1, 2))
    with pytest.raises(TypeError, match='RKNet'):
        rk_adjoint(FeedForwardNet(2, 2), torch.randn(1, 2),
                   torch.randn(1, 2))


# --- Lipschitz bound and estimate ---

KINDS = [dict(field='dense', method='euler'),
         dict(field='dense', method='rk4', steps='free'),
         dict(field='antisymmetric', method='kutta3'),
         dict(field='dense', method='heun', activation='relu'),
         dict(field='gradient', method='heun', hidden=4)]


def _check_estimate_below_bound(kind, seed, iters, search_steps):
    torch.manual_seed(100 * kind + seed)
    net = RKNet(2, 6, T=2.0, init_scale=2.0, dtype=F64, **KINDS[kind])
    x0 = 2 * torch.randn(16, 2, dtype=F64)
    est = lipschitz_estimate(net, x0, iters=iters, search_steps=search_steps,
                             seed=seed)
    bound = lipschitz_bound(net)
    assert 0 < est <= bound * (1 + 1e-10), (est, bound)


@pytest.mark.parametrize('kind', range(len(KINDS)))
def test_estimate_below_bound(kind):
    for seed in range(2):
        _check_estimate_below_bound(kind, seed, iters=10, search_steps=15)


@pytest.mark.slow
@pytest.mark.parametrize('kind', range(len(KINDS)))
def test_estimate_below_bound_many_seeds(kind):
    for seed in range(2, 12):
        _check_estimate_below_bound(kind, seed, iters=50, search_steps=100)


@pytest.mark.parametrize('seed', range(2))
def test_estimate_below_bound_other_nets(seed):
    torch.manual_seed(seed)
    x0 = torch.randn(16, 4, dtype=F64)
    for net in (HamiltonianNet(2, 5, init_scale=2.0, dtype=F64),
                FeedForwardNet(4, 3, init_scale=2.0, dtype=F64)):
        est = lipschitz_estimate(net, x0, iters=10, search_steps=15)
        assert 0 < est <= lipschitz_bound(net) * (1 + 1e-10)


@pytest.mark.parametrize('seed', range(3))
def test_gradient_flow_net_is_nonexpansive(seed):
    torch.manual_seed(seed)
    # large A and large requested steps: the cap is what keeps it at 1
    net = RKNet(2, 8, field='gradient', hidden=6, T=20.0, steps='free',
                init_scale=3.0, activation=('tanh', 'relu')[seed % 2],
                dtype=F64)
    assert lipschitz_bound(net) == 1.0
    caps = torch.stack([f.max_step() for f in net.fields]).detach()
    assert torch.all(net.effective_steps().detach() <= caps)
    x0 = torch.randn(32, 2, dtype=F64)
    est = lipschitz_estimate(net, x0, iters=15, search_steps=20, lr=0.05,
                             seed=seed)
    assert est <= 1 + 1e-6, est
    assert est > 0


def test_bound_formulas():
    net = RKNet(2, 3, method='euler', T=0.9, dtype=F64)
    L = [f.lipschitz() for f in net.fields]
    assert np.isclose(lipschitz_bound(net), np.prod([1 + 0.3 * l for l in L]))
    net4 = RKNet(2, 3, method='rk4', T=0.9, dtype=F64)
    L = [0.3 * f.lipschitz() for f in net4.fields]
    expected = np.prod([1 + x + x ** 2 / 2 + x ** 3 / 6 + x ** 4 / 24
                        for x in L])
    assert np.isclose(lipschitz_bound(net4), expected)
    assert lipschitz_bound(net4) <= np.exp(sum(L))
    with pytest.raises(TypeError, match='Lipschitz'):
        lipschitz_bound(torch.nn.Linear(2, 2))


def test_toy_data():
    for name in TOY_DATASETS:
        x, y = make_toy(name, 400, seed=2)
        assert x.shape == (400, 2) and y.shape == (400,)
        assert 0.3 < float(y.mean()) < 0.7, name
        assert float(x.abs().max()) < 1.1
    x, y = make_toy('donut2d', 300, seed=0)
    r = x.norm(dim=1)
    assert torch.equal(y, (r < 0.5).float())
    with pytest.raises(ValueError, match='unknown toy'):
        make_toy('moons', 10)


def test_reproduction_script_runs(tmp_path, capsys):
    import importlib.util
    import pathlib
    path = (pathlib.Path(__file__).parents[1] / 'examples'
            / 'reproduce_odenet_toy.py')
    spec = importlib.util.spec_from_file_location('_odenet_toy', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(['--datasets', 'donut2d', '--n-train', '40', '--n-val',
                    '40', '--layers', '4', '--steps', '3', '--plot',
                    str(tmp_path)])
    out = capsys.readouterr().out
    assert '| donut2d |' in out
    assert len(res) == 4
    h = res['donut2d', 'odenet_simplex']['steps']
    assert h.min() >= 0 and abs(h.sum() - 5.0) < 1e-5
    assert (tmp_path / 'steps_donut2d.png').exists()
    assert (tmp_path / 'decision_regions.png').exists()
