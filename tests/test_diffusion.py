"""Score-based diffusion: SDEs, DSM loss, score U-Net, samplers, and
conditional sampling with ODL operators, checked exactly on Gaussian priors.

The Gaussian exactness checks (issue 8, item 4) compare sample means and
per-component variances with the closed form, within 5%:

* unconditional, prior ``N(m, diag(S))`` on R^8 (non-isotropic ``S``),
  20 000 samples: VP SDE with Euler-Maruyama (200 steps),
  predictor-corrector (100 steps, snr 0.1) and the probability-flow ODE
  (Heun, 50 steps); VE SDE with Euler-Maruyama (200 steps) and the ODE
  (Heun, 100 steps);
* conditional, prior ``N(m, s^2 I)`` on R^16, 8 Gaussian measurements
  through ``TorchOperator(MatrixMultiply)``, noise 0.3, 10 000 samples:
  diffusion posterior sampling with the exact covariance correction, VP
  SDE, probability-flow ODE (Heun, 50 steps) against the closed-form
  posterior.

The slow variants (``-m slow``) run every sampler on both SDEs with 20 000
samples.
"""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import training
from odl_genprior.bridge import TorchOperator
from odl_genprior.diffusion.score_unet import ScoreUNet
from odl_genprior.problems import (ForwardProblem, GaussianBlur,
                                   MatrixMultiply, ct, deblurring,
                                   image_space, ray_transform)
from odl_genprior.recon.base import Reconstructor
from odl_genprior.recon.diffusion import (
                                          batched_operator,
                                          DiffusionPosteriorSampling,
                                          ScoreProjection, batched_cg)
from odl_genprior.diffusion.samplers import (euler_maruyama, predictor_corrector,
                                   probability_flow, time_grid)
from odl_genprior.diffusion.sde import (VESDE, VPSDE, DSMLoss, dsm_loss,
                              gaussian_score, tweedie_denoiser)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


SDES = {'vp': lambda: VPSDE(0.1, 20.0), 've': lambda: VESDE(0.01, 100.0)}


# --- SDEs ---------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(SDES))
def test_marginals_solve_the_moment_odes(name):
    """alpha(t), std(t) solve the moment ODEs of dx = f dt + g dw.

    For f(x, t) = c(t) x: alpha' = c alpha and (std^2)' = 2 c std^2 + g^2;
    checked by central differences at random times.
    """
    sde = SDES[name]()
    t = 0.05 + 0.9 * torch.rand(5, dtype=torch.float64)
    h = 1e-5
    a = sde.mean_coeff
    v = lambda s: sde.marginal_std(s) ** 2  # noqa: E731
    c = sde.drift(torch.ones(5, 1, dtype=torch.float64), t)[:, 0]
    g2 = sde.diffusion(t) ** 2
    da = (a(t + h) - a(t - h)) / (2 * h)
    dv = (v(t + h) - v(t - h)) / (2 * h)
    assert torch.allclose(da, c * a(t), rtol=1e-6)
    assert torch.allclose(dv, 2 * c * v(t) + g2, rtol=1e-6)
    # std(0) = 0: the kernel starts at the data
    assert float(sde.marginal_std(torch.zeros(1))) < 1e-6


def test_sde_argument_errors():
    with pytest.raises(ValueError, match='sigma_min'):
        VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match='beta_min'):
        VPSDE(5.0, 1.0)
    with pytest.raises(ValueError, match='shape'):
        VPSDE().marginal(torch.zeros(3, 2), torch.zeros(2))


def test_perturb_matches_the_forward_sde():
    """Euler-Maruyama of the forward VP SDE reaches p_t(. | x0)."""
    sde = VPSDE()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 2.0, dtype=torch.float64)
    x, steps, t1 = x0.clone(), 400, 0.4
    dt = t1 / steps
    for i in range(steps):
        t = torch.full((1,), i * dt, dtype=torch.float64)
        x = (x + sde.drift(x, t) * dt + sde.diffusion(t) * dt ** 0.5
             * torch.randn(x.shape, generator=g, dtype=torch.float64))
    mean, std = sde.marginal(x0[:1], torch.tensor([t1], dtype=torch.float64))
    assert abs(float(x.mean() - mean[0, 0])) < 0.01
    assert abs(float(x.std() / std[0, 0]) - 1) < 0.02


# --- DSM loss -----------------------------------------------------------------

def test_dsm_loss_is_smallest_at_the_true_score():
    sde = VPSDE()
    g = torch.Generator().manual_seed(1)
    x0 = 0.5 + 0.7 * torch.randn(20000, 3, generator=g, dtype=torch.float64)
    exact = gaussian_score(sde, 0.5, 0.49)
    state = torch.Generator().get_state()
    losses = {}
    for scale in (0.8, 1.0, 1.25):
        g2 = torch.Generator()
        g2.set_state(state)  # common random numbers: a fair comparison
        losses[scale] = float(dsm_loss(
            lambda x, t: scale * exact(x, t), sde, x0, generator=g2))
    assert losses[1.0] < losses[0.8] and losses[1.0] < losses[1.25]


class _ShrinkageScore(torch.nn.Module):
    """``s(x, t) = -x e^w / (e^v + std(t)^2)``, exact for N(0, e^v) at w = 0
    (VE SDE)."""

    def __init__(self, sde):
        super().__init__()
        self.sde = sde
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.v = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        std2 = self.sde.marginal_std(t).reshape(-1, 1, 1, 1) ** 2
        return -x * self.w.exp() / (self.v.exp() + std2)


def test_dsm_loss_trains_with_the_package_loop(tmp_path):
    """DSMLoss is a loss_fn of training.train; the held-out loss goes down
    and the two-parameter model approaches the exact score of N(0, 0.09)."""
    sde = VESDE(0.01, 5.0)
    torch.manual_seed(0)
    data = 0.3 * torch.randn(256, 1, 4, 4)
    model = _ShrinkageScore(sde)

    def held_out_loss():  # fixed t and noise: comparable before and after
        with torch.no_grad():
            return float(dsm_loss(model, sde, data, generator=torch.Generator(
            ).manual_seed(5)))

    before = held_out_loss()
    result = training.train(model, DSMLoss(sde), data, out_dir=tmp_path,
                            epochs=10, batch_size=32, lr=0.05,
                            progress=False)
    after = held_out_loss()
    assert result.step == 80
    assert after < before, (before, after)
    # exact score: w = 0, e^v = 0.09 (the data variance); start e^v = 1
    w, ev = float(model.w.detach()), float(model.v.detach().exp())
    assert abs(w) < 0.05 and abs(ev - 0.09) < 0.02, (w, ev)
    assert (tmp_path / 'weights.pt').exists()


def test_dsm_loss_errors():
    with pytest.raises(ValueError, match='shape'):
        dsm_loss(lambda x, t: x[:, :1], VPSDE(), torch.randn(4, 2))
    with pytest.raises(TypeError, match='SDE'):
        DSMLoss('vp')


def test_tweedie_is_the_posterior_mean_for_gaussian_data():
    sde = VESDE(0.01, 10.0)
    m, v = 1.5, 0.3
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64)
    std2 = sde.marginal_std(t)[:, None] ** 2
    exact = (v * x + std2 * m) / (v + std2)  # E[x0 | x_t], alpha = 1
    got = tweedie_denoiser(gaussian_score(sde, m, v), sde, x, t)
    assert torch.allclose(got, exact)


# --- score U-Net --------------------------------------------------------------

@pytest.mark.parametrize('size', [28, 16])
def test_score_unet_shapes_and_scaling(size):
    sde = VPSDE()
    torch.manual_seed(0)
    net = ScoreUNet(sde, channels=(8, 16), embed_dim=16,
                    embedding='sinusoidal' if size == 16 else 'fourier')
    x = torch.randn(3, 1, size, size)
    t = torch.tensor([0.1, 0.5, 0.9])
    out = net(x, t)
    assert out.shape == x.shape
    # the output is the network divided by std(t): undo it and compare
    raw = out * sde.marginal_std(t).reshape(-1, 1, 1, 1)
    out_again = net(x, t)
    assert torch.allclose(out, out_again)
    assert torch.isfinite(raw).all()
    assert torch.allclose(net(x[:, 0], t), out[:, 0])  # (B, H, W) input
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters()
               if p.requires_grad)


def test_score_unet_errors():
    net = ScoreUNet(VPSDE(), channels=(8, 16), embed_dim=16)
    with pytest.raises(ValueError, match='even'):
        net(torch.randn(1, 1, 7, 7), 0.5)
    with pytest.raises(ValueError, match='expected x of shape'):
        net(torch.randn(1, 2, 8, 8), 0.5)
    with pytest.raises(TypeError, match='SDE'):
        ScoreUNet('vp')


# --- samplers -----------------------------------------------------------------

SAMPLERS = {'em': euler_maruyama, 'pc': predictor_corrector,
            'ode': probability_flow}


@pytest.mark.parametrize('name', sorted(SAMPLERS))
def test_samplers_are_seeded_and_call_the_hook(name):
    sde = VPSDE()
    score = gaussian_score(sde, 0.3, 2.0)
    sample = SAMPLERS[name]
    times = []

    def hook(x, t):
        times.append(t)
        return x

    a = sample(score, sde, (5, 3), steps=7, generator=4, hook=hook)
    b = sample(score, sde, (5, 3), steps=7, generator=4)
    c = sample(score, sde, (5, 3), steps=7, generator=5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert np.allclose(times, time_grid(7).tolist()[1:])
    x1 = sde.prior_sample((5, 3), generator=torch.Generator().manual_seed(9))
    d = sample(score, sde, None, steps=7, x_init=x1, generator=1)
    assert d.shape == (5, 3)


def test_sampler_errors():
    sde = VPSDE()
    score = gaussian_score(sde, 0.0, 1.0)
    with pytest.raises(ValueError, match='steps'):
        euler_maruyama(score, sde, (2, 2), steps=0)
    with pytest.raises(ValueError, match='score returned shape'):
        euler_maruyama(lambda x, t: x[:, :1], sde, (2, 2), steps=2)
    with pytest.raises(ValueError, match='method'):
        probability_flow(score, sde, (2, 2), steps=2, method='rk4')
    with pytest.raises(ValueError, match='snr'):
        predictor_corrector(score, sde, (2, 2), steps=2, snr=0)
    with pytest.raises(TypeError, match='SDE'):
        euler_maruyama(score, 'vp', (2, 2), steps=2)


def _gaussian_prior(dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    mean = 1 + 0.5 * torch.randn(dim, generator=g)
    var = 0.2 + torch.rand(dim, generator=g)  # non-isotropic
    return mean, var


def _check_moments(x, mean, var, tol=0.05):
    rel_mean = float((x.mean(0) - mean).norm() / mean.norm())
    rel_var = (x.var(0) / var - 1).abs().max().item()
    assert rel_mean < tol and rel_var < tol, (rel_mean, rel_var)


UNCONDITIONAL = [('vp', 'em', 200, {}), ('vp', 'pc', 100, {'snr': 0.1}),
                 ('vp', 'ode', 50, {}), ('ve', 'em', 200, {}),
                 ('ve', 'ode', 100, {})]


@pytest.mark.parametrize('sde_name, sampler, steps, options', UNCONDITIONAL)
def test_unconditional_samplers_are_exact_for_a_gaussian(sde_name, sampler,
                                                         steps, options):
    """20 000 samples of N(m, diag(S)) on R^8: mean and variances within 5%."""
    sde = SDES[sde_name]()
    mean, var = _gaussian_prior(8)
    x = SAMPLERS[sampler](gaussian_score(sde, mean, var), sde, (20000, 8),
                          steps=steps, generator=0, **options)
    _check_moments(x, mean, var)


@pytest.mark.slow
@pytest.mark.parametrize('sde_name', sorted(SDES))
@pytest.mark.parametrize('sampler, steps, options', [
    ('em', 500, {}), ('pc', 250, {'snr': 0.1}), ('ode', 200, {})])
def test_unconditional_samplers_are_exact_slow(sde_name, sampler, steps,
                                               options):
    """20 000 samples on R^16, every sampler on both SDEs."""
    sde = SDES[sde_name]()
    mean, var = _gaussian_prior(16)
    x = SAMPLERS[sampler](gaussian_score(sde, mean, var), sde, (20000, 16),
                          steps=steps, generator=0, **options)
    _check_moments(x, mean, var)


# --- ODL operators on batches -------------------------------------------------

def _operators():
    """(name, operator) pairs on weighted and unweighted spaces."""
    rng = np.random.default_rng(0)
    space = image_space(8)  # uniform_discr: weighted by the cell volume
    blur = TorchOperator(GaussianBlur(1.0), space, space,
                         in_shape=(1, 1, 8, 8), linear=True)
    mask = odl.MultiplyOperator(
        space.element((rng.random((8, 8)) > 0.5).astype('float32')))
    rn = odl.rn(6, dtype='float32')
    mat = rng.standard_normal((4, 6)).astype('float32')
    matrix = odl.MatrixOperator(mat, domain=rn,
                                range=odl.rn(4, dtype='float32'))
    torch_matrix = TorchOperator(MatrixMultiply(torch.from_numpy(mat)), rn,
                                 odl.rn(4, dtype='float32'), linear=True)
    ray = ray_transform(space, num_angles=5)  # domain and range weights differ
    return [('blur', blur), ('mask', mask), ('matrix', matrix),
            ('torch_matrix', torch_matrix), ('ray', ray)]


@pytest.mark.parametrize('name', [n for n, _ in _operators()])
def test_batched_operator_matches_odl_and_is_the_transpose(name):
    op = dict(_operators())[name]
    x = torch.randn((3,) + op.domain.shape)
    y = torch.randn((3,) + op.range.shape)
    for batched in (True, False):
        b = batched_operator(op, batched_module=batched)
        assert b.batching in (('module', 'auto-matrix', 'loop') if batched
                              else ('loop',))
        ax = b(x)
        for i in range(3):
            ref = op(op.domain.element(x[i].numpy())).asarray()
            assert np.allclose(ax[i].numpy(), ref, atol=1e-5)
        # Euclidean transpose: <A x, y> = <x, A^T y> (plain array sums)
        lhs = (ax * y).sum(dim=tuple(range(1, y.ndim)))
        aty = b.transpose(y)
        rhs = (x * aty).sum(dim=tuple(range(1, x.ndim)))
        assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', [n for n, _ in _operators()])
def test_assembled_matrix_matches_the_operator_path(name):
    """matrix=True: the sparse matrix gives A x and A^T y of the ODL path."""
    op = dict(_operators())[name]
    g = torch.Generator().manual_seed(1)
    x = torch.randn((3,) + op.domain.shape, generator=g)
    y = torch.randn((3,) + op.range.shape, generator=g)
    ref = batched_operator(op, batched_module=False)
    mat = batched_operator(op, matrix=True)
    assert mat.batching == 'matrix'
    assert mat.matrix().shape == (int(np.prod(op.range.shape)),
                                  int(np.prod(op.domain.shape)))
    assert torch.allclose(mat(x), ref(x), atol=1e-5)
    assert torch.allclose(mat.transpose(y), ref.transpose(y), atol=1e-5)


def test_matrix_option_gives_the_same_samples_and_is_kept():
    problem = ct(size=16, num_angles=6, seed=0)
    sde = VESDE(0.01, 5.0)
    torch.manual_seed(0)
    net = ScoreUNet(sde, channels=(4, 8), embed_dim=8)
    runs = {}
    for matrix in (False, True):
        m = ScoreProjection(net, sde, niter=3, n_samples=2, cg_niter=3,
                            matrix=matrix)
        m(problem, progress=False)
        runs[matrix] = m.samples
    assert np.allclose(runs[False], runs[True], atol=1e-4)
    op = m._op_cache[2]
    assert op.batching == 'matrix' and op._matrix is not None
    m(problem, progress=False)
    assert m._op_cache[2] is op  # same operator: not assembled again
    m2 = ScoreProjection(net, sde, niter=3, n_samples=2, matrix=True)
    m2(problem, progress=False)
    m2(ct(size=16, num_angles=7, seed=0), progress=False)
    assert m2._op_cache[0] is not problem.operator  # a new operator


def test_dps_guidance_per_step_moves_by_zeta():
    """guidance_per_step: one EM step with a zero prior score moves the
    sample by zeta J^T A^T r / ||r|| (J = I / alpha for a zero score)."""
    problem, m, _, _, mat = _gaussian_problem(noise_std=0.05)
    sde = VPSDE()
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    steps, eps, zeta = 4, 1e-3, 0.7
    method = DiffusionPosteriorSampling(zero, sde, niter=steps, eps=eps,
                                        guidance_scale=zeta,
                                        guidance_per_step=True, n_samples=3)
    op, y, _, _ = method._setup(problem)
    score = method._conditional_score(problem, op, y)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((3,) + problem.space.shape, generator=g)
    for t in (0.9, 0.2):
        tt = torch.full((3,), t)
        a = float(sde.mean_coeff(torch.tensor(t)))
        r = y - op(x / a)
        direction = op.transpose(r / r.norm(dim=1, keepdim=True)) / a
        dt = (1 - eps) / steps
        move = score(x, tt) * (sde.diffusion(tt)[:, None] ** 2 * dt)
        assert torch.allclose(move, zeta * direction, rtol=1e-4, atol=1e-6)


def test_batched_operator_errors():
    with pytest.raises(ValueError, match='linear'):
        batched_operator(odl.PowerOperator(odl.rn(3), 2))
    b = batched_operator(odl.IdentityOperator(odl.rn(3)))
    with pytest.raises(ValueError, match=r'shape \(2, 4\).*rn\(3\)'):
        b(torch.zeros(2, 4, dtype=torch.float64))
    x = torch.randn(2, 3, dtype=torch.float64)
    assert torch.equal(b.forward(x), x) and torch.equal(b.transpose(x), x)


def test_batched_cg_solves_per_sample():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(5, 5, generator=g, dtype=torch.float64)
    spd = m @ m.T + 0.5 * torch.eye(5, dtype=torch.float64)
    b = torch.randn(4, 5, generator=g, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5, 3.0],
                         dtype=torch.float64)[:, None]
    v = batched_cg(lambda u: scale * (u @ spd), b, niter=50, tol=1e-12)
    assert torch.allclose(scale * (v @ spd), b, atol=1e-9)


# --- conditional sampling -----------------------------------------------------

def _gaussian_problem(dim=16, nmeas=8, prior_std=0.8, noise_std=0.3,
                      dtype='float32'):
    """Prior N(m, s^2 I), y = M x + e: the problem and the exact posterior."""
    rng = np.random.default_rng(0)
    m = 1 + 0.5 * rng.standard_normal(dim)
    mat = rng.standard_normal((nmeas, dim)) / np.sqrt(nmeas)
    x = m + prior_std * rng.standard_normal(dim)
    y = mat @ x + noise_std * rng.standard_normal(nmeas)
    cov = np.linalg.inv(np.eye(dim) / prior_std ** 2
                        + mat.T @ mat / noise_std ** 2)
    mean = cov @ (m / prior_std ** 2 + mat.T @ y / noise_std ** 2)
    space = odl.rn(dim, dtype=dtype)
    ran = odl.rn(nmeas, dtype=dtype)
    A = TorchOperator(MatrixMultiply(torch.from_numpy(mat.astype(dtype))),
                      space, ran, linear=True)
    problem = ForwardProblem(A, ran.element(y.astype(dtype)),
                             info={'noise': 'gaussian',
                                   'noise_std': noise_std})
    return problem, torch.from_numpy(m.astype(dtype)), mean, np.diag(cov), mat


def _check_posterior(method, problem, mean, var, tol=0.05):
    x = method(problem, progress=False)
    assert isinstance(method, Reconstructor) and x in problem.space
    assert np.allclose(x.asarray(), method.mean)
    rel_mean = np.linalg.norm(method.mean - mean) / np.linalg.norm(mean)
    rel_var = np.abs(method.std ** 2 / var - 1).max()
    assert rel_mean < tol and rel_var < tol, (rel_mean, rel_var)


def test_dps_with_covariance_correction_is_exact_for_a_gaussian():
    """Posterior N(mu, C) on R^16 from 8 measurements: 10 000 samples of the
    VP probability-flow ODE (Heun, 50 steps) give mu and diag C within 5%."""
    problem, m, mean, var, _ = _gaussian_problem()
    sde = VPSDE()
    method = DiffusionPosteriorSampling(
        gaussian_score(sde, m, 0.8 ** 2), sde, niter=50, sampler='ode',
        n_samples=10000, prior_std=0.8, seed=0)
    _check_posterior(method, problem, mean, var)
    assert method.samples.shape == (10000, 16)


@pytest.mark.slow
@pytest.mark.parametrize('sde_name', sorted(SDES))
@pytest.mark.parametrize('sampler, steps', [('em', 200), ('pc', 100),
                                            ('ode', 100)])
def test_dps_exact_slow(sde_name, sampler, steps):
    """20 000 posterior samples, every sampler on both SDEs."""
    problem, m, mean, var, _ = _gaussian_problem()
    sde = SDES[sde_name]()
    method = DiffusionPosteriorSampling(
        gaussian_score(sde, m, 0.8 ** 2), sde, niter=steps, sampler=sampler,
        n_samples=20000, prior_std=0.8, seed=0,
        sampler_options={'snr': 0.1} if sampler == 'pc' else None)
    _check_posterior(method, problem, mean, var)


@pytest.mark.parametrize('prior_std', [None, 0.8])
def test_dps_operator_layer_path_matches_the_batched_module(prior_std):
    """An odl.MatrixOperator (per-sample ODL calls through OperatorLayer)
    and the same matrix as a TorchOperator give the same samples."""
    problem, m, _, _, mat = _gaussian_problem(dim=6, nmeas=3)
    A = odl.MatrixOperator(mat.astype('float32'), domain=problem.space,
                           range=problem.operator.range)
    other = ForwardProblem(A, problem.data.copy(), info=problem.info)
    sde = VESDE(0.01, 20.0)
    runs = []
    for p, batched in ((problem, True), (other, True), (problem, False)):
        method = DiffusionPosteriorSampling(
            gaussian_score(sde, m, 0.64), sde, niter=6, n_samples=3,
            prior_std=prior_std, seed=2, batched_module=batched)
        method(p, progress=False)
        runs.append(method.samples)
    assert np.allclose(runs[0], runs[1], atol=1e-4)
    assert np.allclose(runs[0], runs[2], atol=1e-4)


def test_plain_dps_moves_towards_the_data():
    """Chung et al.'s guidance (no covariance) lowers the data misfit."""
    problem, m, _, _, mat = _gaussian_problem()
    sde = VPSDE()
    score = gaussian_score(sde, m, 0.64)
    misfit = {}
    for zeta in (0.0, 5.0):
        method = DiffusionPosteriorSampling(score, sde, niter=100,
                                            n_samples=64, guidance_scale=zeta,
                                            seed=0)
        method(problem, progress=False)
        res = method.samples @ mat.T - problem.data.asarray()
        misfit[zeta] = np.linalg.norm(res, axis=1).mean()
    assert misfit[5.0] < 0.3 * misfit[0.0], misfit


def test_dps_with_a_score_unet_on_an_image_problem():
    """A (random) ScoreUNet on a deblurring problem: shapes and contract."""
    problem = deblurring(size=8, seed=0)
    sde = VESDE(0.01, 5.0)
    torch.manual_seed(0)
    net = ScoreUNet(sde, channels=(8, 16), embed_dim=16)
    method = DiffusionPosteriorSampling(net, sde, niter=3, n_samples=2,
                                        sampler='pc', guidance_scale=0.5)
    x = method(problem, progress=False)
    assert x in problem.space
    assert method.samples.shape == (2, 8, 8) and method.std.shape == (8, 8)
    assert np.all(np.isfinite(method.samples))
    assert all(p.grad is None for p in net.parameters())


def test_projection_enforces_the_data():
    """lambda = 1, delta = 0: A x = y_eps at the end; lambda = 0 is the
    unconditional sampler."""
    problem, m, _, _, mat = _gaussian_problem(noise_std=0.05)
    sde = VPSDE()
    score = gaussian_score(sde, m, 0.64)
    method = ScoreProjection(score, sde, niter=40, n_samples=16,
                             sampler='em')
    method(problem, progress=False)
    y_eps = float(sde.mean_coeff(torch.tensor(1e-3))) * problem.data.asarray()
    res = method.samples @ mat.T - y_eps
    # y_eps = alpha y + std A z with std(1e-3) ~ 0.01
    assert np.abs(res).max() < 0.05
    off = ScoreProjection(score, sde, niter=40, n_samples=16, sampler='em',
                          weight=0.0)
    off(problem, progress=False)
    plain = euler_maruyama(score, sde, (16, 16), steps=40, generator=0)
    assert np.allclose(off.samples, plain.numpy(), atol=1e-5)


def test_conditional_argument_errors():
    problem, m, _, _, _ = _gaussian_problem(dim=4, nmeas=2)
    sde = VPSDE()
    score = gaussian_score(sde, m, 1.0)
    with pytest.raises(ValueError, match='sampler'):
        DiffusionPosteriorSampling(score, sde, sampler='ddim')
    with pytest.raises(ValueError, match='n_samples'):
        DiffusionPosteriorSampling(score, sde, n_samples=0)
    with pytest.raises(TypeError, match='callable'):
        DiffusionPosteriorSampling(3.0, sde)
    with pytest.raises(ValueError, match='weight'):
        ScoreProjection(score, sde, weight=2.0)
    unknown = ForwardProblem(problem.operator, problem.data)
    with pytest.raises(ValueError, match='noise_std'):
        DiffusionPosteriorSampling(score, sde, niter=2, n_samples=1,
                                   prior_std=1.0)(unknown, progress=False)


def test_both_methods_run_through_a_ray_transform():
    """CT (ASTRA through OperatorLayer, weighted spaces): both methods run,
    and the projection lowers the data misfit of the samples."""
    problem = ct(size=16, num_angles=6, seed=0)
    sde = VESDE(0.01, 5.0)
    torch.manual_seed(0)
    net = ScoreUNet(sde, channels=(4, 8), embed_dim=8)
    A = problem.operator
    y = problem.data.asarray()

    def misfit(samples):
        return np.mean([np.linalg.norm(A(A.domain.element(s)).asarray() - y)
                        for s in samples])

    dps = DiffusionPosteriorSampling(net, sde, niter=2, n_samples=2)
    assert dps(problem, progress=False) in problem.space
    proj = ScoreProjection(net, sde, niter=2, n_samples=2, cg_niter=5)
    proj(problem, progress=False)
    off = ScoreProjection(net, sde, niter=2, n_samples=2, weight=0.0)
    off(problem, progress=False)
    assert np.all(np.isfinite(dps.samples)) and proj.std.shape == (16, 16)
    assert misfit(proj.samples) < 0.5 * misfit(off.samples)
