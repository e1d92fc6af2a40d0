"""Latent-space reconstruction (hard, sparse deviation, soft), the contract.

The generators are small random (untrained) MLPs and every ground truth is
built from one of their outputs, ``x_true = G(z_true)`` (plus a sparse or a
dense deviation where a method is made for that), on compressed sensing
(16x16) and on CT (32x32, ASTRA).
"""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator, metrics, problems
from odl_genprior.generators import recipes
from odl_genprior.problems import ForwardProblem, MatrixMultiply
from odl_genprior.recon import (FBP, LatentHard, LatentSoft,
                                LatentSparseDeviation, Reconstructor)
from odl_genprior.recon.latent import LatentResult, generator_operator

K = 4  # latent dimension of the test generators


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def make_generator(side, seed=0):
    """A random MLP ``R^K -> (1, side, side)`` with outputs in (0, 1)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(K, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, side * side),
                              torch.nn.Sigmoid())
    return net.eval()


def in_range(gen, side, seed=1):
    z = torch.randn(1, K, generator=torch.Generator().manual_seed(seed))
    return gen(z).detach().reshape(side, side).numpy()


def data_fit(x, p):
    return float((p.operator(x) - p.data).norm() ** 2)


def psnr(x, p):
    return metrics.psnr(x, p.ground_truth)


def trivial_psnr(p):
    """Best of the zero image and the back-projection ``A^* y``."""
    zero = metrics.psnr(np.zeros(p.space.shape), p.ground_truth)
    return max(zero, psnr(p.operator.adjoint(p.data), p))


GEN16 = make_generator(16)
GEN32 = make_generator(32)
X16 = in_range(GEN16, 16)
X32 = in_range(GEN32, 32)


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
def test_hard_recovers_range_element_cs(impl):
    p = problems.compressed_sensing(100, phantom=X16, noise=None, seed=1,
                                    impl=impl)
    method = LatentHard(GEN16, K, lam=0.0, niter=150, restarts=2)
    x = method.reconstruct(p, progress=False)
    assert x in p.space
    assert metrics.relative_error(x, p.ground_truth) < 1e-2
    assert psnr(x, p) > trivial_psnr(p) + 20
    r = method.result
    assert isinstance(r, LatentResult)
    assert r.z in odl.rn(K, dtype='float32', impl=impl)
    assert r.data_fit == pytest.approx(data_fit(x, p), rel=1e-3, abs=1e-9)
    assert r.data_fit == min(r.data_fits) and len(r.data_fits) == 2


def test_hard_bfgs_solver():
    p = problems.compressed_sensing(100, phantom=X16, noise=None, seed=1)
    x = LatentHard(GEN16, K, lam=0.0, niter=30, restarts=2,
                   solver='bfgs')(p, progress=False)
    assert metrics.relative_error(x, p.ground_truth) < 1e-3


def test_sparse_deviation_beats_hard():
    rng = np.random.default_rng(0)
    u = np.zeros(256)
    u[rng.choice(256, 6, replace=False)] = 0.7
    p = problems.compressed_sensing(120, phantom=X16 + u.reshape(16, 16),
                                    noise=None, seed=2)
    hard = LatentHard(GEN16, K, lam=0.0, niter=150, restarts=2)
    sparse = LatentSparseDeviation(GEN16, K, lam=0.0, mu=0.01, niter=100,
                                   restarts=2)
    x_hard, x_sparse = hard(p, progress=False), sparse(p, progress=False)
    assert x_sparse in p.space
    assert psnr(x_sparse, p) > psnr(x_hard, p) + 15
    assert psnr(x_sparse, p) > trivial_psnr(p) + 20
    r = sparse.result
    G = sparse.generator_operator(p.space)
    assert float((G(r.z) + r.u - x_sparse).norm()) < 1e-5
    # the deviation found sits on the true support
    found = np.argsort(np.abs(r.u.asarray()).ravel())[-6:]
    assert set(found) == set(np.flatnonzero(u))


def test_soft_beats_hard_slightly_outside_range():
    rng = np.random.default_rng(0)
    x_true = X16 + 0.05 * rng.standard_normal((16, 16))
    p = problems.compressed_sensing(200, phantom=x_true, noise=None, seed=3)
    hard = LatentHard(GEN16, K, lam=0.0, niter=150, restarts=2)
    soft = LatentSoft(GEN16, K, lam=0.1, mu=0.0, niter=150, restarts=2)
    x_hard, x_soft = hard(p, progress=False), soft(p, progress=False)
    assert x_soft in p.space
    assert psnr(x_soft, p) > psnr(x_hard, p) + 3
    assert psnr(x_soft, p) > trivial_psnr(p) + 20


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
@pytest.mark.parametrize('cls, opts', [
    (LatentHard, {'lam': 0.0, 'niter': 100}),
    (LatentSparseDeviation, {'lam': 0.0, 'mu': 1e-4, 'niter': 60}),
    (LatentSoft, {'lam': 1.0, 'mu': 0.0, 'niter': 60}),
])
def test_methods_on_small_ct(cls, opts, impl):
    p = problems.ct(size=32, num_angles=20, phantom=X32, noise_level=0.01,
                    seed=1, impl=impl)
    x = cls(GEN32, K, restarts=1, **opts)(p, progress=False)
    assert x in p.space
    assert psnr(x, p) > max(trivial_psnr(p), psnr(FBP()(p), p)) + 5


@pytest.mark.parametrize('cls, opts', [
    (LatentHard, {'lam': 0.1, 'niter': 40}),
    (LatentSparseDeviation, {'lam': 0.1, 'mu': 0.1, 'niter': 25}),
    (LatentSoft, {'lam': 1.0, 'mu': 0.1, 'niter': 25}),
])
def test_more_restarts_never_worse(cls, opts):
    p = problems.compressed_sensing(30, phantom=X16, noise_std=0.1, seed=4)
    fits = []
    for restarts in (1, 2, 4):
        method = cls(GEN16, K, restarts=restarts, seed=7, **opts)
        x = method(p, progress=False)
        fits.append(method.result.data_fits)
        assert method.result.data_fit == pytest.approx(data_fit(x, p),
                                                       rel=1e-3)
    # restart k starts from the same point whatever the number of restarts
    assert fits[1][:1] == pytest.approx(fits[0], rel=1e-5)
    assert fits[2][:2] == pytest.approx(fits[1], rel=1e-5)
    best = [min(f) for f in fits]
    assert best[1] <= best[0] * (1 + 1e-5) and best[2] <= best[1] * (1 + 1e-5)


def test_select_objective():
    p = problems.compressed_sensing(30, phantom=X16, noise_std=0.1, seed=4)
    method = LatentHard(GEN16, K, niter=20, restarts=3, select='objective')
    method(p, progress=False)
    r = method.result
    assert r.objective == min(r.objectives)


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
def test_generator_as_operator_equals_module(impl):
    p = problems.compressed_sensing(60, phantom=X16, noise=None, seed=1,
                                    impl=impl)
    latent = odl.rn(K, dtype='float32', impl=impl)
    G = TorchOperator(GEN16, latent, p.space, in_shape=(1, K))
    x_op = LatentHard(G, niter=30, restarts=1)(p, progress=False)
    x_mod = LatentHard(GEN16, K, niter=30, restarts=1)(p, progress=False)
    assert np.allclose(x_op.asarray(), x_mod.asarray(), atol=1e-6)


def test_pretrained_style_vae_decoder_on_28x28():
    # The recipe's MNIST VAE (untrained, narrow): decoder (B, 20) ->
    # (B, 1, 28, 28) onto the (28, 28) tensor space; latent_dim inferred.
    vae = recipes.build_model({'kind': 'vae', 'dataset': 'mnist',
                               'latent_dim': 20, 'hidden': [16]}).eval()
    dec = recipes.generator_of(vae)
    x_true = dec(torch.randn(1, 20)).detach().reshape(28, 28).numpy()
    p = problems.compressed_sensing(100, phantom=x_true, noise_std=0.1)
    method = LatentHard(dec, niter=40, restarts=1)
    x = method(p, progress=False)
    assert x in p.space and x.shape == (28, 28)
    assert method.result.z.shape == (20,)
    assert psnr(x, p) > trivial_psnr(p)


def test_nonlinear_forward_operator():
    # Hard only needs a derivative of A; soft/sparse need a linear A.
    rng = np.random.default_rng(0)
    space = odl.tensor_space((16, 16), dtype='float32')
    mm = MatrixMultiply(torch.from_numpy(
        rng.standard_normal((80, 256)).astype('float32') / 80 ** 0.5))
    A = TorchOperator(torch.nn.Sequential(mm, torch.nn.Tanh()), space,
                      odl.rn(80, dtype='float32'))
    x_true = space.element(X16)
    p = ForwardProblem(A, A(x_true), x_true)
    x = LatentHard(GEN16, K, lam=0.0, niter=150, restarts=2)(p,
                                                               progress=False)
    assert metrics.relative_error(x, x_true) < 1e-2
    for cls in (LatentSoft, LatentSparseDeviation):
        with pytest.raises(ValueError, match='linear forward operator'):
            cls(GEN16, K, niter=1, restarts=1)(p, progress=False)


def test_progress_bar_and_contract(capsys):
    p = problems.compressed_sensing(40, phantom=X16, noise_std=0.1, seed=1)
    method = LatentSoft(GEN16, K, niter=5, restarts=2)
    assert isinstance(method, Reconstructor) and method.result is None
    x = method(p)  # progress bar on
    assert x in p.space
    assert 'latent-soft' in capsys.readouterr().err
    assert 'LatentSoft(' in repr(method)


def test_errors_name_the_problem():
    p = problems.compressed_sensing(40, phantom=X16, noise_std=0.1, seed=1)
    other = odl.uniform_discr([-1, -1], [1, 1], (16, 16), dtype='float32')
    G = TorchOperator(GEN16, odl.rn(K, dtype='float32'), other,
                      in_shape=(1, K))
    with pytest.raises(ValueError, match='generator range .* is not the '
                                         'problem space'):
        LatentHard(G, niter=1, restarts=1)(p, progress=False)
    with pytest.raises(ValueError, match='latent_dim'):
        LatentHard(GEN16, niter=1)(p, progress=False)  # Sequential: no dim
    with pytest.raises(TypeError, match='generator must be'):
        LatentHard('decoder')
    with pytest.raises(ValueError, match='solver'):
        LatentHard(GEN16, K, solver='sgd')
    with pytest.raises(ValueError, match='restarts'):
        LatentHard(GEN16, K, restarts=0)
    with pytest.raises(ValueError, match='lam must be > 0'):
        LatentSoft(GEN16, K, lam=0.0)
    with pytest.raises(TypeError, match='dtype'):  # float64 module
        generator_operator(make_generator(16).double(), p.space, K)


class NaNForNegativeStarts(torch.nn.Module):
    """GEN16, but NaN wherever the code's first entry is negative."""

    def __init__(self, always=False):
        super().__init__()
        self.gen, self.always = GEN16, always

    def forward(self, z):
        out = self.gen(z)
        bad = torch.ones_like(z[:, :1]).bool() if self.always else (
            z[:, :1] < 0)
        return torch.where(bad.reshape(-1, 1), torch.nan, out)


def test_restarts_skip_non_finite_candidates():
    from odl_genprior.recon.base import NonFiniteResultError

    p = problems.compressed_sensing(100, phantom=X16, noise=None, seed=1)
    method = LatentHard(NaNForNegativeStarts(), K, lam=0.0, niter=5,
                        restarts=4, seed=3)
    x = method(p, progress=False)
    fits = np.array(method.result.data_fits)
    # Some restarts diverged, the kept one is the best finite one.
    assert np.isnan(fits).any() and np.isfinite(fits).any()
    assert method.result.data_fit == np.nanmin(fits)
    assert np.all(np.isfinite(x.asarray()))
    always = LatentHard(NaNForNegativeStarts(always=True), K, lam=0.0,
                        niter=5, restarts=3)
    with pytest.raises(NonFiniteResultError,
                       match=r'latent-hard: every one of the 3 restarts.*'
                             r'learning_rate'):
        always(p, progress=False)


def test_non_finite_result_names_the_method_and_option():
    from odl_genprior.recon.base import NonFiniteResultError

    class Diverges(Reconstructor):
        name = 'diverging'
        divergence_hint = 'step'

        def _reconstruct(self, problem, progress):
            return problem.space.element(np.full(problem.space.shape,
                                                 np.nan))

    p = problems.denoising(size=8, seed=0)
    with pytest.raises(NonFiniteResultError, match='diverging: .*NaN.*step'):
        Diverges()(p)
    with pytest.raises(ValueError):  # the CLI's one-line errors
        Diverges()(p)
