"""Forward problems: reproducible from a seed, right noise, right errors."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import problems, to_numpy
from odl_genprior.data import ellipse_batch, random_ellipses


def arrays_equal(a, b):
    return np.array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize('make', [
    lambda impl, seed: problems.ct(size=32, num_angles=8, seed=seed,
                                   impl=impl),
    lambda impl, seed: problems.ct(size=32, num_angles=8, seed=seed,
                                   impl=impl, geometry='fan',
                                   noise='poisson', phantom='shepp_logan'),
    lambda impl, seed: problems.compressed_sensing(30, size=8, seed=seed,
                                                   impl=impl),
    lambda impl, seed: problems.deblurring(size=16, seed=seed, impl=impl),
    lambda impl, seed: problems.inpainting(size=16, seed=seed, impl=impl),
    lambda impl, seed: problems.denoising(size=16, seed=seed, impl=impl),
])
def test_reproducible_from_seed(impl, make):
    p1, p2, p3 = make(impl, 3), make(impl, 3), make(impl, 4)
    assert arrays_equal(p1.data, p2.data)
    assert arrays_equal(p1.ground_truth, p2.ground_truth)
    assert not arrays_equal(p1.data, p3.data)
    # The recorded noise level is the realised ||y - A x||.
    clean = p1.operator(p1.ground_truth)
    assert p1.noise_level == pytest.approx((p1.data - clean).norm(), rel=1e-5)
    assert p1.noise_level > 0


def test_backends_agree():
    pn = problems.ct(size=32, num_angles=8, seed=1, impl='numpy')
    pt = problems.ct(size=32, num_angles=8, seed=1, impl='pytorch')
    assert isinstance(pt.data.data, torch.Tensor)
    np.testing.assert_allclose(to_numpy(pn.data), to_numpy(pt.data),
                               rtol=1e-5, atol=1e-5)


def test_relative_gaussian_noise_level():
    p = problems.ct(size=64, num_angles=30, noise_level=0.05, seed=0)
    clean = to_numpy(p.operator(p.ground_truth))
    noise = to_numpy(p.data) - clean
    assert np.std(noise) == pytest.approx(0.05 * np.mean(np.abs(clean)),
                                          rel=0.05)


def test_poisson_noise_scales_with_photons():
    lo = problems.ct(size=32, num_angles=16, noise='poisson', photons=1e3)
    hi = problems.ct(size=32, num_angles=16, noise='poisson', photons=1e5)
    assert hi.noise_level < lo.noise_level / 5


def test_fan_beam_geometry():
    p = problems.ct(size=32, num_angles=16, geometry='fan', noise=None)
    assert type(p.operator.geometry).__name__ == 'FanBeamGeometry'
    assert p.noise_level == 0


def test_compressed_sensing_matrix_statistics():
    p = problems.compressed_sensing(400, size=20, noise_std=0.1, seed=0)
    M = p.operator.module.matrix.numpy()
    assert M.shape == (400, 400)
    assert np.var(M) == pytest.approx(1 / 400, rel=0.02)
    noise = to_numpy(p.data) - to_numpy(p.operator(p.ground_truth))
    assert np.std(noise) == pytest.approx(0.1, rel=0.15)


def test_inpainting_keeps_fraction():
    p = problems.inpainting(size=32, fraction_observed=0.3, seed=0)
    data = to_numpy(p.data)
    assert np.all(data[p.info['mask'] == 0] == 0)
    assert p.info['mask'].mean() == pytest.approx(0.3, abs=1e-3)


def test_ellipses_any_size_same_picture():
    small = random_ellipses(problems.image_space(32), seed=5)
    big = random_ellipses(problems.image_space(128), seed=5)
    down = to_numpy(big).reshape(32, 4, 32, 4).mean(axis=(1, 3))
    assert np.abs(down - to_numpy(small)).mean() < 0.05
    batch = ellipse_batch(problems.image_space(16), 4, seed=0)
    assert batch.shape == (4, 16, 16) and batch.dtype == np.float32
    assert not np.array_equal(batch[0], batch[1])


def test_bad_input_errors():
    with pytest.raises(ValueError, match='geometry'):
        problems.ct(size=16, geometry='helix')
    with pytest.raises(ValueError, match='noise'):
        problems.ct(size=16, noise='laplace')
    with pytest.raises(ValueError, match=r'shape \(8, 8\).*\(16, 16\)'):
        problems.ct(size=16, phantom=np.zeros((8, 8)))
    with pytest.raises(ValueError, match='float32'):
        problems.ray_transform(problems.image_space(8, dtype='float64'))
    p = problems.denoising(size=8)
    bad = p.data.copy()
    arr = to_numpy(bad).copy()
    arr[0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        problems.ForwardProblem(p.operator, p.space.element(arr))
    with pytest.raises(ValueError, match='range'):
        problems.ForwardProblem(p.operator, odl.rn(3).zero())
