"""Image quality metrics: PSNR (with its data range), SSIM, relative error.

Inputs may be ODL elements, torch tensors or NumPy arrays; they are compared
as NumPy arrays in float64.
"""
import numpy as np
from skimage.metrics import structural_similarity

from odl_genprior.bridge import to_numpy

__all__ = ('psnr', 'ssim', 'relative_error', 'mse')


def _pair(x, reference):
    x = np.asarray(to_numpy(x), dtype=np.float64)
    ref = np.asarray(to_numpy(reference), dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f'shapes differ: reconstruction {x.shape}, '
                         f'reference {ref.shape}')
    return x, ref


def _data_range(ref, data_range):
    if data_range is None:
        data_range = float(ref.max() - ref.min())
    if not data_range > 0:
        raise ValueError(f'data range must be positive, got {data_range} '
                         '(is the reference constant?)')
    return float(data_range)


def mse(x, reference):
    """Mean squared error per entry.

    Examples
    --------
    >>> mse(np.zeros(4), np.ones(4))
    1.0
    """
    x, ref = _pair(x, reference)
    return float(np.mean((x - ref) ** 2))


def psnr(x, reference, data_range=None):
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``.

    Parameters
    ----------
    x, reference : array-like, ODL element or tensor
    data_range : float, optional
        Peak-to-peak range of the signal. Default: ``reference.max() -
        reference.min()`` (the convention of DIVal and scikit-image when the
        reference is used).

    Examples
    --------
    >>> ref = np.array([0.0, 1.0, 0.0, 1.0])
    >>> round(psnr(ref + 0.1, ref), 6)
    20.0
    """
    x, ref = _pair(x, reference)
    err = np.mean((x - ref) ** 2)
    rng = _data_range(ref, data_range)
    if err == 0:
        return float('inf')
    return float(10 * np.log10(rng ** 2 / err))


def ssim(x, reference, data_range=None):
    """Structural similarity (scikit-image, Gaussian-free 7x7 window).

    ``data_range`` defaults to ``reference.max() - reference.min()``.

    Examples
    --------
    >>> ref = np.random.default_rng(0).random((16, 16))
    >>> ssim(ref, ref)
    1.0
    """
    x, ref = _pair(x, reference)
    return float(structural_similarity(x, ref,
                                       data_range=_data_range(ref, data_range)))


def relative_error(x, reference):
    """``||x - reference|| / ||reference||`` in the Euclidean norm.

    Examples
    --------
    >>> relative_error(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    1.0
    """
    x, ref = _pair(x, reference)
    nref = np.linalg.norm(ref)
    if nref == 0:
        raise ValueError('relative error of a zero reference is undefined')
    return float(np.linalg.norm(x - ref) / nref)
