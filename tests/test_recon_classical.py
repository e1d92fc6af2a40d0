"""Classical baselines (Tikhonov, Lasso, wavelet-L1, TV) under the contract."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator, metrics, problems
from odl_genprior.problems import ForwardProblem
from odl_genprior.recon import (FBP, TV, Lasso, Reconstructor, Tikhonov,
                                WaveletL1)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def psnr(x, p):
    return metrics.psnr(x, p.ground_truth)


def trivial_psnr(p):
    """Best of the zero image and the back-projection ``A^* y``."""
    zero = metrics.psnr(np.zeros(p.space.shape), p.ground_truth)
    return max(zero, psnr(p.operator.adjoint(p.data), p))


METHODS = [
    # (method, options on CT 32x32, options on compressed sensing 16x16)
    (Tikhonov, {'alpha': 1e-2, 'niter': 30}, {'alpha': 0.1, 'niter': 50}),
    (Lasso, {'alpha': 1e-3, 'niter': 200}, {'alpha': 1e-2, 'niter': 300}),
    (WaveletL1, {'alpha': 1e-4, 'niter': 150}, {'alpha': 0.1, 'niter': 200}),
]


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
@pytest.mark.parametrize('cls, ct_opts, cs_opts', METHODS)
def test_beats_trivial_baselines(cls, ct_opts, cs_opts, impl):
    p = problems.ct(size=32, num_angles=20, noise_level=0.02, seed=0,
                    impl=impl)
    method = cls(**ct_opts)
    assert isinstance(method, Reconstructor)
    x = method.reconstruct(p, progress=False)
    assert x in p.space
    assert psnr(x, p) > trivial_psnr(p) + 10
    assert psnr(x, p) > psnr(FBP()(p), p)  # 20 angles: FBP streaks
    # Compressed sensing: a plain (unweighted) tensor space.
    q = problems.compressed_sensing(150, size=16, noise_std=0.05, seed=0,
                                    impl=impl)
    x = cls(**cs_opts)(q, progress=False)
    assert x in q.space
    assert psnr(x, q) > trivial_psnr(q) + 2


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
def test_tv_on_compressed_sensing(impl):
    # compressed_sensing's space is a plain tensor space: TV applies ODL's
    # Gradient to the same array seen in a uniform_discr with unit cells.
    q = problems.compressed_sensing(150, size=16, noise_std=0.05, seed=0,
                                    impl=impl)
    assert not isinstance(q.space, odl.DiscretizedSpace)
    x = TV(alpha=0.1, niter=100)(q, progress=False)
    assert x in q.space
    assert psnr(x, q) > trivial_psnr(q) + 2
    assert psnr(x, q) > psnr(Tikhonov(alpha=0.1, niter=50)(q, progress=False),
                             q) + 1
    # The same problem posed on that uniform_discr gives the same iterates.
    disc = odl.uniform_discr([0, 0], [16, 16], (16, 16), dtype='float32',
                             impl=impl)
    A = TorchOperator(q.operator.module, disc, q.operator.range, linear=True)
    ref = TV(alpha=0.1, niter=100)(
        ForwardProblem(A, q.data, disc.element(q.ground_truth.data)),
        progress=False)
    assert np.allclose(x.asarray(), ref.asarray(), atol=1e-4)


def test_tv_needs_an_image():
    p = problems.compressed_sensing(20, size=50, phantom='sparse', seed=0)
    with pytest.raises(ValueError, match='TV needs an image space'):
        TV(niter=1)(p, progress=False)


def test_tikhonov_matches_closed_form():
    p = problems.compressed_sensing(40, size=8, noise_std=0.1, seed=2,
                                    dtype='float64')
    M = p.operator.module.matrix.numpy()
    y = p.data.asarray()
    for alpha in (0.5, 0.0):
        x = Tikhonov(alpha=alpha, niter=200)(p, progress=False)
        # alpha = 0: CGLS gives the least-squares (min-norm) solution
        ref = np.linalg.lstsq(
            np.vstack([M, np.sqrt(alpha) * np.eye(64)]),
            np.concatenate([y, np.zeros(64)]), rcond=None)[0]
        assert np.allclose(x.asarray().ravel(), ref, atol=1e-6)


@pytest.mark.parametrize('impl', ['numpy', 'pytorch'])
def test_lasso_recovers_sparse_signal(impl):
    p = problems.compressed_sensing(30, size=60, phantom='sparse', sparsity=4,
                                    noise=None, seed=0, impl=impl)
    x = Lasso(alpha=1e-2, niter=500)(p, progress=False)
    assert metrics.relative_error(x, p.ground_truth) < 0.05
    assert set(np.flatnonzero(np.abs(x.asarray()) > 0.05)) == set(
        np.flatnonzero(p.ground_truth.asarray()))


def test_wavelet_wrong_adjoint_refused():
    space = odl.uniform_discr([-1, -1], [1, 1], (28, 28), dtype='float32')
    # 28 -> 14 -> 7 -> 4: odd at level 3, ODL's adjoint (the scaled
    # inverse) is then wrong; so it is for the 'symmetric' pad mode.
    for opts in ({'pad_mode': 'pywt_periodic', 'nlevels': 3},
                 {'pad_mode': 'symmetric', 'nlevels': 1}):
        with pytest.raises(ValueError,
                           match=r'\(28, 28\) has a wrong adjoint'):
            WaveletL1(**opts).wavelet_operator(space)
    with pytest.raises(ValueError, match='refuses space'):
        WaveletL1(wavelet='no-such-wavelet').wavelet_operator(space)


def test_nonneg_wavelet_and_callbacks():
    p = problems.ct(size=32, num_angles=20, noise_level=0.02, seed=0)
    store = odl.solvers.CallbackStore()
    x = WaveletL1(alpha=1e-4, niter=20, nonneg=True, callback=store)(
        p, progress=False)
    assert len(store) == 20 and float(x.asarray().min()) >= 0
    for cls in (Tikhonov, Lasso):
        store = odl.solvers.CallbackStore()
        cls(niter=7, callback=store)(p, progress=False)
        assert len(store) == 7


def test_progress_bar(capsys):
    p = problems.compressed_sensing(40, size=8, noise_std=0.1, seed=1)
    for cls, desc in ((Tikhonov, 'Tikhonov-CG'), (Lasso, 'Lasso-ISTA'),
                      (WaveletL1, 'wavelet-L1-PDHG')):
        x = cls(niter=5)(p)  # progress bar on
        assert x in p.space
        assert desc in capsys.readouterr().err


def test_errors():
    rng = np.random.default_rng(0)
    space = odl.rn(6, dtype='float32')
    A = TorchOperator(torch.nn.Tanh(), space, space, in_shape=(6,))
    x = space.element(rng.standard_normal(6))
    p = ForwardProblem(A, A(x), x)
    for cls in (Tikhonov, Lasso, WaveletL1):
        with pytest.raises(ValueError, match='linear forward operator'):
            cls(niter=1)(p, progress=False)
        with pytest.raises(ValueError, match='alpha must be >= 0'):
            cls(alpha=-1.0)


def test_tv_default_alpha_is_scale_aware():
    """The same phantom on [-1, 1]^2 and on [-64, 64]^2: the default weight
    gives the same reconstruction up to the data's scale."""
    import odl
    from odl.applications import tomo
    from odl_genprior.problems import ForwardProblem
    from odl_genprior.recon import TV
    from odl_genprior.recon.classical import default_tv_alpha
    rng = np.random.default_rng(0)
    img = np.zeros((24, 24), dtype='float32')
    img[6:18, 8:16] = 1.0
    recs = []
    for h in (1.0, 64.0):
        space = odl.uniform_discr([-h, -h], [h, h], (24, 24), dtype='float32')
        A = tomo.RayTransform(space, tomo.parallel_beam_geometry(
            space, num_angles=12), impl='astra_cpu')
        clean = A(space.element(img)).asarray()
        noise = 0.02 * np.abs(clean).mean() * rng.standard_normal(clean.shape)
        y = A.range.element((clean + noise).astype('float32'))
        recs.append(TV(niter=200)(ForwardProblem(A, y), progress=False)
                    .asarray())
    assert default_tv_alpha(space) == pytest.approx(1e-3 * 64 ** 2)
    assert np.abs(recs[0] - recs[1]).max() < 0.05
    assert np.abs(recs[1] - img).mean() < 0.2


@pytest.mark.parametrize('make, match', [
    (lambda: TV(alpha=float('nan')), r'TV: alpha must be >= 0, got nan'),
    (lambda: TV(alpha=-1), r'TV: alpha must be >= 0, got -1'),
    (lambda: TV(niter=1.5), r'TV: niter must be an integer >= 1, got 1.5'),
    (lambda: FBP(frequency_scaling=0), r'frequency_scaling must be in \(0, 1\]'),
    (lambda: FBP(frequency_scaling=-1), r'frequency_scaling .* got -1'),
    (lambda: FBP(filter_type='Hanning'), r"filter_type must be one of"),
    (lambda: Tikhonov(niter=1.5), r'Tikhonov: niter must be an integer >= 1, got 1.5'),
    (lambda: Lasso(niter=-1), r'Lasso: niter must be an integer >= 1, got -1'),
    (lambda: Lasso(alpha=float('nan')), r'Lasso: alpha must be >= 0, got nan'),
    (lambda: WaveletL1(niter=0), r'WaveletL1: niter must be an integer >= 1, got 0'),
    (lambda: WaveletL1(nlevels=0), r'WaveletL1: nlevels must be an integer >= 1'),
])
def test_options_are_checked_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()
