import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from odl_genprior import metrics, problems


def test_psnr_against_skimage():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 32))
    x = ref + 0.05 * rng.standard_normal((32, 32))
    rng_ = ref.max() - ref.min()
    assert metrics.psnr(x, ref) == pytest.approx(
        peak_signal_noise_ratio(ref, x, data_range=rng_))
    assert metrics.psnr(x, ref, data_range=2.0) == pytest.approx(
        peak_signal_noise_ratio(ref, x, data_range=2.0))


def test_metrics_accept_elements_and_tensors():
    space = problems.image_space(16, impl='pytorch')
    rng = np.random.default_rng(1)
    ref = rng.random((16, 16)).astype('float32')
    x = ref + 0.1 * rng.standard_normal((16, 16)).astype('float32')
    a = metrics.ssim(space.element(torch.from_numpy(x)), ref)
    b = metrics.ssim(torch.from_numpy(x), ref)
    assert a == pytest.approx(b) and 0 < a < 1
    assert metrics.relative_error(x, ref) == pytest.approx(
        np.linalg.norm(x - ref) / np.linalg.norm(ref), rel=1e-6)


def test_metric_errors():
    with pytest.raises(ValueError, match=r'\(3,\).*\(4,\)'):
        metrics.psnr(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match='constant'):
        metrics.psnr(np.zeros(3), np.ones(3))
