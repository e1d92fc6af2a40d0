"""Tests of the unrolled proximal neural network denoiser
(`odl_genprior.bregman.pnn`)."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior.bridge import TorchOperator
from odl_genprior.bregman.pnn import (
    MAX_STEP, ConvAnalysis, DenseAnalysis, ProximalNeuralNetwork, box_prox,
    lifted_objective, lifted_step, pnn_operator, supervised_loss, train_pnn)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _tv_prox_odl(z, alpha, D, niter=400):
    """``argmin_x 1/2 ||x - z||^2 + alpha ||D x||_1`` by ODL's pdhg on the
    primal problem (independent of the dual iteration of the PNN)."""
    space = odl.rn(z.size)
    L = odl.MatrixOperator(D)
    f = 0.5 * odl.functionals.L2NormSquared(space).translated(
        space.element(z))
    g = alpha * odl.functionals.L1Norm(L.range)
    x = space.zero()
    # ||D||^2 < 4: tau sigma ||D||^2 < 1.
    odl.solvers.pdhg(x, f, g, L, niter=niter, tau=1.0, sigma=0.24)
    return x.asarray()


def test_fixed_operator_converges_to_tv_prox():
    """All L_k = D (forward differences) and many layers: the PNN output is
    the 1D TV denoising solution computed by ODL's pdhg."""
    n, alpha = 12, 0.3
    rng = np.random.default_rng(1)
    z = np.cumsum(rng.standard_normal((2, n)), axis=1) * 0.3 \
        + rng.standard_normal((2, n))
    D = np.diff(np.eye(n), axis=0)
    objective = lambda x, zz: (0.5 * np.sum((x - zz) ** 2)
                               + alpha * np.abs(np.diff(x)).sum())
    refs = [_tv_prox_odl(z[i], alpha, D) for i in range(2)]
    errors = []
    for num_layers in (5, 300):
        L = DenseAnalysis(n, n - 1, matrix=torch.from_numpy(D),
                          trainable=False)
        net = ProximalNeuralNetwork(L, alpha=alpha, num_layers=num_layers,
                                    step=1.9, train_steps=False).double()
        with torch.no_grad():
            x = net(torch.from_numpy(z)).numpy()
        errors.append(max(np.abs(x[i] - refs[i]).max() for i in range(2)))
    assert errors[1] < 1e-6, errors
    assert errors[0] > 10 * errors[1]  # converging in the number of layers
    for i in range(2):  # and it minimises the objective
        assert objective(x[i], z[i]) <= objective(refs[i], z[i]) + 1e-9


def test_steps_are_stable_by_parametrisation():
    net = ProximalNeuralNetwork.conv(num_layers=4, features=3, dim=2)
    with torch.no_grad():
        for op in net.operators:
            op.weight.mul_(torch.randn(()).exp() * 10)
        net.theta.fill_(30.0)  # sigmoid -> 1: the largest step allowed
    taus = net.steps()
    for k in range(net.num_layers):
        op = net.operator(k)
        # ||L||^2 by power iteration on L^* L (the bound must hold)
        x = torch.randn(1, 1, 12, 12)
        for _ in range(200):
            x = op.adjoint(op(x))
            x = x / x.norm()
        with torch.no_grad():
            norm_sq = float((op(x) ** 2).sum())
        assert norm_sq <= float(op.norm_sq_bound().detach()) * (1 + 1e-5)
        assert float(taus[k].detach()) * norm_sq < 2.0
    with torch.no_grad():
        assert torch.all(taus * net.norm_bounds() <= MAX_STEP * (1 + 1e-6))


def test_conv_and_dense_adjoints():
    torch.manual_seed(1)
    for L, shape in ((ConvAnalysis(3, 5, dim=2), (2, 1, 9, 7)),
                     (ConvAnalysis(2, 3, dim=1), (2, 1, 11)),
                     (DenseAnalysis(6, 4), (2, 6))):
        x = torch.randn(shape, dtype=torch.float64)
        L = L.double()
        u = torch.randn(L(x).shape, dtype=torch.float64)
        assert torch.isclose((L(x) * u).sum(), (x * L.adjoint(u)).sum(),
                             rtol=1e-12)


def test_box_prox_is_odl_conjugate_prox():
    net = ProximalNeuralNetwork.conv(num_layers=1, features=1, dim=1,
                                     alpha=0.4)
    space = odl.rn(6)
    v = space.element(np.random.default_rng(0).standard_normal(6) * 0.6)
    for tau in (0.3, 2.0):
        ref = net.dual_prox_odl(space, tau)(v).asarray()
        assert np.allclose(box_prox(torch.from_numpy(v.asarray()), 0.4)
                           .numpy(), ref)


def test_lifted_objective_zero_bregman_at_forward_pass():
    torch.manual_seed(0)
    net = ProximalNeuralNetwork.conv(num_layers=4, features=3, dim=2,
                                     alpha=0.05).double()
    z = torch.rand(3, 1, 10, 10, dtype=torch.float64)
    xbar = torch.rand(3, 1, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        us = net.dual_variables(z)
        total, loss, breg = lifted_objective(net, z, xbar, us, per_term=True)
        assert abs(float(breg)) < 1e-12
        assert torch.isclose(total, supervised_loss(net, (z, xbar)))
        # with the network's own output as the target: exactly zero
        out = net(z)
        assert abs(float(lifted_objective(net, z, out, us))) < 1e-12
        # moving an auxiliary variable off the forward pass costs
        us2 = list(us)
        us2[2] = box_prox(us[2] + 0.03 * torch.randn_like(us[2]), net.alpha)
        _, _, breg2 = lifted_objective(net, z, xbar, us2, per_term=True)
        assert float(breg2) > 1e-8


def _tiny_data(n=16, size=8):
    g = torch.Generator().manual_seed(0)
    clean = torch.zeros(n, 1, size, size)
    for i in range(n):  # piecewise-constant squares
        a, b = torch.randint(0, size - 3, (2,), generator=g).tolist()
        clean[i, 0, a:a + 4, b:b + 3] = 1.0
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=g)
    return noisy, clean


@pytest.mark.parametrize('mode', ['backprop', 'lifted'])
def test_training_decreases_loss(mode, tmp_path):
    noisy, clean = _tiny_data()
    torch.manual_seed(0)
    net = ProximalNeuralNetwork.conv(num_layers=3, features=4, dim=2,
                                     alpha=0.1)
    with torch.no_grad():
        before = float(supervised_loss(net, (noisy, clean)))
    r = train_pnn(net, (noisy, clean), mode=mode, out_dir=tmp_path / mode,
                  epochs=6, batch_size=8, lr=2e-2, progress=False)
    with torch.no_grad():
        after = float(supervised_loss(net, (noisy, clean)))
    assert r.step == 12
    assert after < 0.8 * before, (before, after)
    # resumable: more epochs continue from the checkpoint
    r2 = train_pnn(net, (noisy, clean), mode=mode, out_dir=tmp_path / mode,
                   epochs=7, batch_size=8, lr=2e-2, progress=False)
    assert r2.resumed_from == 12 and r2.step == 14


def test_lifted_step_does_not_backprop_through_network():
    """The parameter gradient of a lifted step only involves one layer at a
    time: L_0 gets its gradient from B_0 alone."""
    noisy, clean = _tiny_data(4)
    net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    out = lifted_step(net, opt, (noisy, clean))
    assert out['bregman'] >= 0 and out['lifted'] >= out['bregman']
    assert net.operators[0].weight.grad is not None


def test_odl_operator_value():
    """Derivative and adjoint: tests/test_contracts.py (pnn)."""
    torch.manual_seed(0)
    net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=2,
                                     alpha=0.2).double()
    space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float64')
    op = pnn_operator(net, space)
    assert isinstance(op, TorchOperator)
    rng = np.random.default_rng(0)
    x = space.element(rng.standard_normal(space.shape))
    with torch.no_grad():
        ref = net(torch.from_numpy(x.asarray())[None, None])[0, 0].numpy()
    assert np.allclose(op(x).asarray(), ref)


def test_bad_inputs():
    net = ProximalNeuralNetwork.conv(num_layers=2, features=2, dim=2)
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\).*\(2, 3, 8, 8\)'):
        net(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r'\(8, 8\)'):
        net(torch.randn(8, 8))
    with pytest.raises(TypeError, match='dtype'):
        net(torch.randn(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match='torch.Tensor'):
        net(np.zeros((1, 1, 8, 8)))
    dense = ProximalNeuralNetwork.dense(2, 5, 4)
    with pytest.raises(ValueError, match=r'\(B, 5\)'):
        dense(torch.randn(3, 6))
    with pytest.raises(ValueError, match='step'):
        ProximalNeuralNetwork.conv(num_layers=2, step=2.5)
    with pytest.raises(ValueError, match='alpha'):
        ProximalNeuralNetwork.conv(num_layers=2, alpha=0.0)
    with pytest.raises(ValueError, match='odd'):
        ConvAnalysis(2, kernel_size=4)
    with pytest.raises(ValueError, match='2D'):
        pnn_operator(net, odl.rn(8))
    with pytest.raises(ValueError, match='mode'):
        train_pnn(net, (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)),
                  mode='sgd')
    with pytest.raises(ValueError, match='shape'):
        train_pnn(net, (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 7)))
    with pytest.raises(TypeError, match='pair'):
        train_pnn(net, torch.zeros(2, 1, 8, 8))
