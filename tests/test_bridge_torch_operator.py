"""TorchOperator: value, adjoint, derivative, caching, errors, solvers."""
import re

import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator
from odl_genprior.bridge import as_tensor


def mlp(n_in, n_out, dtype=torch.float64):
    return torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, n_out)).to(dtype)


class ConvGenerator(torch.nn.Module):
    """Small DCGAN-like generator: R^n -> (1, 1, 16, 16)."""

    def __init__(self, n=6, ch=8):
        super().__init__()
        self.fc = torch.nn.Linear(n, ch * 4 * 4)
        self.net = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(ch, ch, 4, 2, 1), torch.nn.Softplus(),
            torch.nn.ConvTranspose2d(ch, 1, 4, 2, 1))
        self.ch = ch

    def forward(self, z):
        return self.net(torch.tanh(self.fc(z)).reshape(-1, self.ch, 4, 4))


def random_element(space, rng):
    return space.element(rng.standard_normal(space.shape))


def cases(impl):
    rn = odl.rn(5, dtype='float64', impl=impl)
    img8 = odl.uniform_discr([0, 0], [1, 1], (4, 4), dtype='float64',
                             impl=impl)
    lat = odl.rn(6, dtype='float64', impl=impl)
    img16 = odl.uniform_discr([-1, -1], [1, 1], (16, 16), dtype='float64',
                              impl=impl)
    return [('mlp', TorchOperator(mlp(5, 16), rn, img8)),
            ('conv', TorchOperator(ConvGenerator().double(), lat, img16))]


@pytest.mark.parametrize('which', [0, 1])
def test_value_matches_module(impl, which):
    name, op = cases(impl)[which]
    rng = np.random.default_rng(1)
    x = random_element(op.domain, rng)
    with torch.no_grad():
        expected = op.module(torch.as_tensor(np.asarray(x.asarray())
                                             if impl == 'numpy' else x.data)
                             .reshape(op.in_shape)).reshape(op.range.shape)
    assert torch.allclose(as_tensor(op(x)), expected, atol=1e-13)


@pytest.mark.parametrize('which', [0, 1])
def test_adjoint_of_derivative(impl, which):
    """<D h, w>_range = <h, D* w>_domain with ODL's weighted inner products."""
    name, op = cases(impl)[which]
    rng = np.random.default_rng(2)
    x, h = random_element(op.domain, rng), random_element(op.domain, rng)
    w = random_element(op.range, rng)
    d = op.derivative(x)
    lhs, rhs = d(h).inner(w), h.inner(d.adjoint(w))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
    # A wrong weight factor would be visible: the spaces' weights differ.
    assert op.domain.weighting.const != op.range.weighting.const


@pytest.mark.parametrize('which', [0, 1])
def test_derivative_central_finite_difference(impl, which):
    name, op = cases(impl)[which]
    rng = np.random.default_rng(3)
    x, h = random_element(op.domain, rng), random_element(op.domain, rng)
    dh = op.derivative(x)(h)
    errors = []
    for eps in (1e-2, 1e-3):
        fd = (op(x + eps * h) - op(x - eps * h)) / (2 * eps)
        errors.append((fd - dh).norm() / dh.norm())
    # Second-order accuracy: error falls like eps^2, and is small.
    assert errors[1] < 1e-5
    assert errors[1] < errors[0] / 50


def test_parameters_untouched(impl):
    name, op = cases(impl)[1]
    before = [p.detach().clone() for p in op.module.parameters()]
    rng = np.random.default_rng(4)
    x, w = random_element(op.domain, rng), random_element(op.range, rng)
    op.derivative(x).adjoint(w)
    op.derivative(x)(x)
    for p, b in zip(op.module.parameters(), before):
        assert p.grad is None
        assert torch.equal(p.detach(), b)


def test_train_mode_left_to_caller(impl):
    name, op = cases(impl)[0]
    op.module.eval()
    op(op.domain.one())
    assert not op.module.training
    op.module.train()
    op(op.domain.one())
    assert op.module.training


class CountingModule(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_value_and_gradient_share_one_forward(impl):
    """A functional's value and gradient at one point: one module forward."""
    dom = odl.rn(5, dtype='float64', impl=impl)
    ran = odl.uniform_discr([0, 0], [1, 1], (4, 4), dtype='float64',
                            impl=impl)
    module = CountingModule(mlp(5, 16))
    G = TorchOperator(module, dom, ran)
    rng = np.random.default_rng(5)
    y = random_element(ran, rng)
    f = odl.functionals.L2NormSquared(ran).translated(y) * G
    x = random_element(dom, rng)
    value = f(x)
    grad = f.gradient(x)
    assert module.calls == 1
    # The shared forward gives the right gradient (finite differences).
    h = random_element(dom, rng)
    eps = 1e-6
    fd = (f(x + eps * h) - f(x - eps * h)) / (2 * eps)
    assert abs(fd - grad.inner(h)) < 1e-6 * max(1.0, abs(fd))
    assert np.isfinite(value)
    # A new point runs the module again; in-place changes are noticed.
    x += h
    f.gradient(x)
    assert module.calls == 4


def test_in_place_update_of_output_does_not_break_graph(impl):
    name, op = cases(impl)[0]
    rng = np.random.default_rng(6)
    x, w = random_element(op.domain, rng), random_element(op.range, rng)
    y = op(x)
    d = op.derivative(x)
    ref = d.adjoint(w).copy()
    y *= 0  # user code may overwrite outputs in place
    assert (d.adjoint(w) - ref).norm() == 0
    assert (op(x) - y).norm() > 0


def test_linear_module_adjoint(impl):
    space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float64',
                              impl=impl)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    op = TorchOperator(conv, space, space, in_shape=(1, 1, 8, 8),
                       linear=True)
    rng = np.random.default_rng(7)
    x, y = random_element(space, rng), random_element(space, rng)
    assert op.derivative(x) is op
    assert abs(op(x).inner(y) - x.inner(op.adjoint(y))) < 1e-12
    assert (op.adjoint.adjoint(x) - op(x)).norm() < 1e-12


def test_odl_diagnostics_operator_test(impl, capsys):
    """ODL's own OperatorTest finds no failure on the linearisation."""
    name, op = cases(impl)[0]
    d = op.derivative(random_element(op.domain, np.random.default_rng(8)))
    odl.core.diagnostics.OperatorTest(d, operator_norm=1.0).adjoint()
    out = capsys.readouterr().out
    ratio = float(re.search(r'\(Ax, y\) = ([-0-9.e]+[0-9])', out).group(1))
    assert abs(ratio - 1.0) < 1e-10, out


# --- errors ------------------------------------------------------------------

def test_wrong_space_element_is_named(impl):
    name, op = cases(impl)[0]
    other = odl.rn(5, dtype='float32', impl=impl)
    with pytest.raises(odl.OpDomainError, match='float32') as err:
        op(other.one())
    assert 'rn(5' in str(err.value)


def test_wrong_array_shape_dtype_named(impl):
    name, op = cases(impl)[0]
    with pytest.raises(odl.OpDomainError, match=r'shape \(4,\)'):
        op(np.zeros(4))
    with pytest.raises(odl.OpDomainError, match='dtype torch.float32'):
        op(torch.zeros(5, dtype=torch.float32))


def test_module_dtype_mismatch_named():
    space = odl.rn(5, dtype='float32')
    with pytest.raises(TypeError, match='float64.*float32'):
        TorchOperator(mlp(5, 5), space, space)


def test_output_shape_mismatch_named(impl):
    dom = odl.rn(5, dtype='float64', impl=impl)
    op = TorchOperator(mlp(5, 7), dom, dom)
    with pytest.raises(ValueError, match=r'output has shape \(1, 7\).*\(5,\)'):
        op(dom.one())


def test_not_a_module():
    with pytest.raises(TypeError, match='torch.nn.Module'):
        TorchOperator(lambda x: x, odl.rn(2), odl.rn(2))


# --- composition with ODL solvers -------------------------------------------

@pytest.mark.parametrize('solver', ['adam', 'steepest_descent', 'bfgs_method'])
def test_odl_solvers_fit_generator_output(impl, solver):
    """min_z ||G(z) - y||^2 with ODL's solvers reaches a small residual."""
    lat = odl.rn(6, dtype='float64', impl=impl)
    img = odl.uniform_discr([-1, -1], [1, 1], (16, 16), dtype='float64',
                            impl=impl)
    G = TorchOperator(ConvGenerator().double(), lat, img)
    rng = np.random.default_rng(9)
    z_true = random_element(lat, rng)
    y = G(z_true)
    f = odl.functionals.L2NormSquared(img).translated(y) * G
    z = lat.zero()
    f0 = f(z)
    if solver == 'adam':
        odl.solvers.adam(f, z, learning_rate=0.05, maxiter=300)
    elif solver == 'steepest_descent':
        odl.solvers.steepest_descent(
            f, z, line_search=odl.solvers.BacktrackingLineSearch(f),
            maxiter=800)
    else:
        odl.solvers.bfgs_method(
            f, z, line_search=odl.solvers.BacktrackingLineSearch(f),
            maxiter=100)
    # Steepest descent is slow on this ill-conditioned fit; BFGS is exact.
    factor = {'adam': 1e-2, 'steepest_descent': 0.1, 'bfgs_method': 1e-8}
    assert f(z) < factor[solver] * f0


class TestNeverStale:
    """The cached output follows the module: weights, state dict, mode."""

    @staticmethod
    def linear_operator():
        lin = torch.nn.Linear(3, 3, dtype=torch.float64)
        space = odl.rn(3)
        return lin, TorchOperator(lin, space, space, linear=True), space

    def test_in_place_weight_change(self):
        lin, op, space = self.linear_operator()
        x = space.element(np.random.default_rng(0).standard_normal(3))
        op(x)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.fill_(7.)
        np.testing.assert_allclose(op(x).asarray(), [7., 7., 7.])
        # The adjoint (a vector-Jacobian product) is the new weight's.
        y = space.element(np.random.default_rng(1).standard_normal(3))
        np.testing.assert_allclose(op.adjoint(y).asarray(), np.zeros(3))
        op.derivative(x)  # no autograd error from the old graph

    def test_load_state_dict(self):
        lin, op, space = self.linear_operator()
        other = torch.nn.Linear(3, 3, dtype=torch.float64)
        x = space.element(np.random.default_rng(2).standard_normal(3))
        op(x)
        lin.load_state_dict(other.state_dict())
        with torch.no_grad():
            want = other(as_tensor(x, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(op(x).asarray(), want)

    def test_train_and_eval_mode(self):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 64),
                                  torch.nn.Dropout(0.5),
                                  torch.nn.Linear(64, 4)).double().train()
        space = odl.rn(4)
        op = TorchOperator(net, space, space)
        x = space.element(np.random.default_rng(3).standard_normal(4))
        in_train = op(x).asarray()
        net.eval()
        with torch.no_grad():
            want = net(as_tensor(x, dtype=torch.float64)[None])[0].numpy()
        np.testing.assert_allclose(op(x).asarray(), want)
        assert not np.allclose(in_train, want)


def test_space_dtype_and_weight():
    from odl_genprior.bridge import space_dtype, space_weight
    space = odl.uniform_discr([0, 0], [2, 1], (4, 5), dtype='float32')
    assert space_dtype(space) == torch.float32
    assert space_dtype(odl.rn(3, dtype='float64') ** 2) == torch.float64
    assert space_weight(space) == pytest.approx(0.5 * 0.2)
    # power space: product weighting times the component's weight
    assert space_weight(space ** 2) == pytest.approx(0.1)
    w = np.random.default_rng(0).uniform(1, 2, 3)
    weighted = odl.rn(3, weighting=w)
    assert np.allclose(space_weight(weighted).numpy(), w)
    with pytest.raises(TypeError, match='array weighting'):
        space_weight(weighted, constant=True)
