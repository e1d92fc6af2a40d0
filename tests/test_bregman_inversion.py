"""Tests of lifted Bregman network inversion
(`odl_genprior.recon.bregman_inversion`)."""
import numpy as np
import odl
import pytest

from odl_genprior import metrics
from odl_genprior.problems import ForwardProblem
from odl_genprior.recon.bregman_inversion import (LiftedBregmanInversion,
                                                  MultilayerBregmanInversion,
                                                  NetworkLeastSquares,
                                                  multilayer_problem,
                                                  perceptron_problem,
                                                  shallow_network_inversion)
from odl_genprior.bregman.networks import (NetworkLayer, lifted_objective,
                                           multilayer_network_operator,
                                           network_forward, network_operator,
                                           perceptron_weights)

DELTAS = (1e-1, 1e-2, 1e-3, 1e-4)


def _theorem_instance(delta, seed=0, m=24, k=16, n=32, cond=1e-2):
    """ReLU perceptron with the source condition ``u = W^T v``.

    Rows ``0..k-1`` are active (``W u + b = c > 0``), the others inactive
    (``c < 0``); ``v`` is supported on the active rows (so the Burbea-Rao
    term of the seed's theorem vanishes) with ``||v|| = 1``; the active
    block of ``W`` has singular values log-spaced in ``[cond, 1]`` (an
    ill-posed operator, where the rate is attained: for well-conditioned
    ``W`` the error decays like ``delta^2``). The noise lives on the active
    rows, ``||f^delta - f|| = delta`` and ``f^delta >= 0``, hence
    ``B_Psi(f^delta, W u + b) = delta^2 / 2 <= delta^2``.
    """
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((k, k)))
    V, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.logspace(0, np.log10(cond), k)
    M = np.vstack([U @ np.diag(s) @ V.T,
                   rng.standard_normal((m - k, n)) / np.sqrt(n)])
    v = np.zeros(m)
    v[:k] = rng.standard_normal(k)
    v /= np.linalg.norm(v)
    u_true = M.T @ v
    c = np.concatenate([rng.uniform(0.5, 1.5, k), -rng.uniform(0.5, 1.5,
                                                               m - k)])
    b = c - M @ u_true
    f = np.maximum(c, 0)
    e = np.zeros(m)
    e[:k] = rng.standard_normal(k)
    e *= delta / np.linalg.norm(e)
    W = odl.MatrixOperator(M)
    N = network_operator(W, b, 'relu')
    p = ForwardProblem(N, W.range.element(f + e), W.domain.element(u_true),
                       delta, 'theorem', {'W': W, 'b': b,
                                          'activation': 'relu'})
    return p, M, b, v, k


def test_convergence_rate_theorem():
    """Seed: alpha = sqrt(2) delta / ||v|| gives D_J <= 2 sqrt(2) ||v||
    delta, J = 1/2 ||.||^2, D_J(u, w) = 1/2 ||u - w||^2."""
    dist = []
    for delta in DELTAS:
        p, M, b, v, k = _theorem_instance(delta)
        nv = np.linalg.norm(v)
        alpha = np.sqrt(2) * delta / nv
        # The theorem's hypotheses.
        f_delta = p.data.asarray()
        assert np.all(f_delta >= 0)
        assert np.all(np.abs(v) <= f_delta / alpha)  # Burbea-Rao term = 0
        clean = p.operator(p.ground_truth).asarray()
        assert abs(np.linalg.norm(f_delta - clean) - delta) < 1e-12
        # ~ 25 / sqrt(alpha) iterations: linear rate 1 - sqrt(alpha)/||W||.
        niter = int(25 / np.sqrt(alpha))
        rec = LiftedBregmanInversion(alpha=alpha, regulariser='l2',
                                     niter=niter)
        u = rec(p, progress=False).asarray()
        # The minimiser in closed form (ReLU is the identity on the active
        # rows, zero on the others, checked a posteriori): Tikhonov.
        MS = M[:k]
        u_ref = np.linalg.solve(MS.T @ MS + alpha * np.eye(M.shape[1]),
                                MS.T @ (f_delta[:k] - b[:k]))
        z = M @ u_ref + b
        assert np.all(z[:k] > 0) and np.all(z[k:] < 0)
        assert np.linalg.norm(u - u_ref) < 1e-6 * max(1, np.linalg.norm(
            u_ref))
        u_true = p.ground_truth.asarray()
        d = 0.5 * np.sum((u_true - u) ** 2)
        bound = 2 * np.sqrt(2) * nv * delta
        assert d <= bound, (delta, d, bound)
        # The full estimate 2 delta^2 / alpha + alpha ||v||^2 (B <= delta^2).
        assert d <= 2 * delta ** 2 / alpha + alpha * nv ** 2
        dist.append(d)
    slope = np.polyfit(np.log10(DELTAS), np.log10(dist), 1)[0]
    assert 0.7 <= slope <= 1.5, (dist, slope)
    assert all(a > b for a, b in zip(dist, dist[1:]))


def test_tv_inversion_beats_least_squares():
    p = perceptron_problem(size=16, num_outputs=128, noise_level=0.01,
                           seed=0)
    # alpha = 0.015 is the seed's weight for 64x64 -> 512 (where the
    # example runs it); at this reduced size it is too weak against the
    # noise (about 16 dB), alpha = 1 gives about 20 dB.
    u_tv = LiftedBregmanInversion(alpha=1.0, niter=300)(p, progress=False)
    u_ls = NetworkLeastSquares(niter=200)(p, progress=False)
    psnr_tv = metrics.psnr(u_tv, p.ground_truth)
    psnr_ls = metrics.psnr(u_ls, p.ground_truth)
    assert psnr_tv > psnr_ls + 3.0, (psnr_tv, psnr_ls)


def test_solvers_agree_l2():
    p, *_ = _theorem_instance(1e-2)
    alpha = 0.05
    a = LiftedBregmanInversion(alpha=alpha, regulariser='l2',
                               niter=200)(p, progress=False)
    b = LiftedBregmanInversion(alpha=alpha, regulariser='l2', niter=3000,
                               solver='forward_backward_pd')(
        p, progress=False)
    assert float((a - b).norm()) < 1e-3 * float(a.norm())


def test_forward_backward_pd_tv_runs():
    p = perceptron_problem(size=8, num_outputs=32, noise_level=0.0)
    rec = LiftedBregmanInversion(alpha=1e-2, niter=30,
                                 solver='forward_backward_pd')
    u = rec(p, progress=False)
    assert u in p.space and np.all(np.isfinite(u.asarray()))


def test_problem_and_network_operator():
    p = perceptron_problem(size=8, num_outputs=16, seed=3)
    W, b = p.info['W'], p.info['b']
    assert p.info['activation'] == 'relu'
    u = p.ground_truth
    expected = np.maximum(W(u).asarray() + b.asarray(), 0)
    assert np.allclose(p.operator(u).asarray(), expected)
    assert np.all(p.data.asarray() >= 0)  # data in dom Psi
    W2, b2 = perceptron_weights(size=8, num_outputs=16, seed=3)
    assert np.allclose(b2.asarray(), b.asarray())


def test_contract_returns_element_and_errors():
    p = perceptron_problem(size=8, num_outputs=16, seed=0, noise_level=0.0)
    u = LiftedBregmanInversion(niter=5)(p, progress=False)
    assert u in p.space
    # W from another domain: the error names the spaces.
    W_other, b_other = perceptron_weights(size=6, num_outputs=16)
    with pytest.raises(odl.OpDomainError, match='domain'):
        LiftedBregmanInversion(W=W_other, niter=2)(p, progress=False)
    W_rng, _ = perceptron_weights(size=8, num_outputs=10)
    with pytest.raises(odl.OpRangeError, match='rn\\(16'):
        LiftedBregmanInversion(W=W_rng, niter=2)(p, progress=False)
    with pytest.raises(ValueError, match='shape'):
        LiftedBregmanInversion(b=np.zeros(3), niter=2)(p, progress=False)
    bad = ForwardProblem(p.operator, p.data, p.ground_truth, 0.0, 'x', {})
    with pytest.raises(ValueError, match="'W'"):
        LiftedBregmanInversion(niter=2)(bad, progress=False)
    neg = ForwardProblem(p.operator, p.data - 1.0, p.ground_truth, 0.0, 'x',
                         dict(p.info))
    with pytest.raises(ValueError, match='domain of Psi'):
        LiftedBregmanInversion(niter=2)(neg, progress=False)
    with pytest.raises(ValueError, match='regulariser'):
        LiftedBregmanInversion(regulariser='l1')
    with pytest.raises(ValueError, match='alpha'):
        LiftedBregmanInversion(alpha=0)
    with pytest.raises(ValueError, match='solver'):
        LiftedBregmanInversion(solver='admm')


def test_shallow_network_inversion():
    """Seed's coordinate descent: a monotone shallow ReLU network (w, c >
    0) is inverted from exact data; the hidden variables reach the
    activations."""
    rng = np.random.default_rng(0)
    m = 8
    w = rng.uniform(0.5, 1.5, m)
    b = rng.uniform(-1.0, 1.0, m)
    c = rng.uniform(0.2, 1.0, m)
    u0_true = 0.8
    f = float(np.sum(c * np.maximum(w * u0_true + b, 0)))
    u0, u = shallow_network_inversion(f, w, b, c, 'relu', alpha=1e-8,
                                      niter=1500)
    assert abs(u0 - u0_true) < 1e-3
    assert np.allclose(u, np.maximum(w * u0 + b, 0), atol=1e-3)
    with pytest.raises(ValueError, match='shapes'):
        shallow_network_inversion(f, w, b[:3], c, 'relu', 0.1)


# --- multilayer and residual networks ---------------------------------------

def _relative_error(u, p):
    return float((u - p.ground_truth).norm() / p.ground_truth.norm())


def test_multilayer_operator_and_lifted_objective():
    p = multilayer_problem([5, 7, 9], activations=['tanh', 'leaky_relu'],
                           seed=2)
    layers = p.info['layers']
    u = p.ground_truth
    W1, b1 = layers[0].W, layers[0].b
    W2, b2 = layers[1].W, layers[1].b
    x1 = np.tanh(W1(u).asarray() + b1.asarray())
    z2 = W2(W1.range.element(x1)).asarray() + b2.asarray()
    expected = np.where(z2 >= 0, z2, 0.01 * z2)
    assert np.allclose(p.operator(u).asarray(), expected)
    assert np.allclose(p.data.asarray(), expected)  # noise-free
    xs = network_forward(layers, u)
    assert abs(lifted_objective(layers, xs)) < 1e-12
    xs[1] = xs[1] + 0.1 * xs[1].space.one()
    assert lifted_objective(layers, xs) > 1e-4


@pytest.mark.parametrize('activation', [
    'tanh', pytest.param('leaky_relu', marks=pytest.mark.slow)])
def test_multilayer_inversion_recovers_input(activation):
    """Noise-free data of an expansive 2-layer network, alpha -> 0: the
    lifted coordinate descent recovers u (the objective vanishes only at
    the lifted ground truth)."""
    kwargs = {'slope': 0.3} if activation == 'leaky_relu' else {}
    p = multilayer_problem([4, 8, 12], activations=activation, seed=1,
                           activation_kwargs=kwargs)
    errors = []
    rec = MultilayerBregmanInversion(
        alpha=1e-8, regulariser='l2', inner=3,
        niter=120 if activation == 'tanh' else 400,
        callback=lambda x: errors.append(_relative_error(x, p)))
    u = rec(p, progress=False)
    assert _relative_error(u, p) < 2e-2, errors[-1]
    assert errors[-1] < 0.1 * errors[10]  # still converging


def test_multilayer_tv_beats_least_squares():
    """8x8 image through 64 -> 40 -> 64 (leaky ReLU, underdetermined first
    layer), 2% noise: TV lifted inversion against least squares by ODL's
    chain rule (steepest descent)."""
    n = 8
    phantom = np.zeros((n, n))
    phantom[2:6, 1:5] = 1.0
    phantom[4:7, 5:7] = 0.5
    p = multilayer_problem([n * n, 40, 64], activations='leaky_relu',
                           activation_kwargs={'slope': 0.3}, image_size=n,
                           phantom=phantom, noise_level=0.02, seed=0)
    u_tv = MultilayerBregmanInversion(alpha=0.03, niter=100, inner=1)(
        p, progress=False)
    u_ls = NetworkLeastSquares(niter=200)(p, progress=False)
    psnr_tv = metrics.psnr(u_tv, p.ground_truth)
    psnr_ls = metrics.psnr(u_ls, p.ground_truth)
    assert psnr_tv > psnr_ls + 2.0, (psnr_tv, psnr_ls)


def test_residual_inversion():
    """Residual network u_l = u_{l-1} + V_l relu(W_l u_{l-1} + b_l), V_l =
    W_l^* / L, data u_L: the penalised (rho) lifted inversion recovers u
    and beats least squares at equal iterations."""
    p = multilayer_problem([6, 10, 10], activations='tanh', residual=True,
                           seed=0)
    assert p.info['residual']
    states, acts = network_forward(p.info['layers'], p.ground_truth)
    assert np.allclose(states[-1].asarray(), p.data.asarray())
    errors = []
    rec = MultilayerBregmanInversion(
        alpha=1e-8, regulariser='l2', niter=150, inner=1, rho=1.0,
        callback=lambda x: errors.append(_relative_error(x, p)))
    u = rec(p, progress=False)
    assert _relative_error(u, p) < 1e-2, errors[-1]
    assert errors[-1] < 0.1 * errors[10]


def test_multilayer_errors():
    p = multilayer_problem([4, 6, 5], seed=0)
    layers = p.info['layers']
    with pytest.raises(ValueError, match="'layers'"):
        MultilayerBregmanInversion(niter=1)(
            ForwardProblem(p.operator, p.data, p.ground_truth, 0.0, 'x', {}),
            progress=False)
    with pytest.raises(odl.OpDomainError, match='layer 0'):
        multilayer_network_operator([layers[0], layers[0]])
    with pytest.raises(odl.OpDomainError, match='residual layer'):
        NetworkLayer(layers[0].W, None, 'relu', V=layers[0].W)
    res = multilayer_problem([4, 6], residual=True).info['layers']
    with pytest.raises(ValueError, match='mix'):
        multilayer_network_operator([res[0], layers[1]])
    with pytest.raises(TypeError, match='NetworkLayer'):
        multilayer_network_operator([layers[0], 'relu'])
    relu = multilayer_problem([4, 6, 5], activations='relu', seed=0)
    neg = ForwardProblem(relu.operator, relu.data - 1.0, relu.ground_truth,
                         0.0, 'x', dict(relu.info))
    with pytest.raises(ValueError, match='domain of Psi'):
        MultilayerBregmanInversion(niter=1)(neg, progress=False)
    with pytest.raises(ValueError, match='rho'):
        MultilayerBregmanInversion(rho=0)
    with pytest.raises(ValueError, match='image_size'):
        multilayer_problem([10, 4], image_size=3)
