"""Toy binary classification data of Benning et al. (2019), in 2D.

``make_toy(name, n, seed)`` draws ``n`` points in ``[-1, 1]^2`` with 0/1
labels, classes balanced in expectation:

* ``'donut1d'``: ``x ~ U[-1, 1]``, label ``|x| < 0.5``, embedded as
  ``(x, 0)`` (a 1D problem given to width-2 networks);
* ``'donut2d'``: label 1 uniform on the disk ``r < 0.5``, label 0 uniform
  on the annulus ``0.5 <= r <= 1`` (no gap);
* ``'squares2d'``: uniform on ``[-1, 1]^2``, label ``x_1 x_2 > 0`` (two
  opposite quadrants against the other two);
* ``'spiral'``: two interleaved spirals ``r = t``, angle ``3 pi t`` and
  ``3 pi t + pi`` (``t ~ U[0.05, 1]``) with Gaussian noise ``0.02``.
"""
import math

import numpy as np
import torch

__all__ = ('TOY_DATASETS', 'make_toy')

TOY_DATASETS = ('donut1d', 'donut2d', 'squares2d', 'spiral')


def _disk(rng, n, r0, r1):
    """``n`` points uniform (in area) on the annulus ``r0 <= r <= r1``."""
    r = np.sqrt(rng.uniform(r0 ** 2, r1 ** 2, n))
    phi = rng.uniform(0, 2 * math.pi, n)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], 1)


def make_toy(name, n, seed=0, dtype=torch.float32):
    """Draw a toy data set.

    Parameters
    ----------
    name : {'donut1d', 'donut2d', 'squares2d', 'spiral'}
    n : int
        Number of points.
    seed : int, optional
        Seed of a private NumPy generator.
    dtype : torch.dtype, optional

    Returns
    -------
    x : torch.Tensor
        Points, shape ``(n, 2)``.
    y : torch.Tensor
        Labels 0/1, shape ``(n,)``, dtype ``dtype``.

    Examples
    --------
    >>> x, y = make_toy('squares2d', 100, seed=1)
    >>> x.shape, y.shape
    (torch.Size([100, 2]), torch.Size([100]))
    >>> bool(((x[:, 0] * x[:, 1] > 0).float() == y).all())
    True
    """
    if name not in TOY_DATASETS:
        raise ValueError(f'unknown toy data set {name!r}; choose one of '
                         f'{TOY_DATASETS}')
    n = int(n)
    if n < 1:
        raise ValueError(f'`n` must be positive, got {n}')
    rng = np.random.default_rng(seed)
    if name == 'donut1d':
        t = rng.uniform(-1, 1, n)
        x = np.stack([t, np.zeros(n)], 1)
        y = (np.abs(t) < 0.5).astype(float)
    elif name == 'donut2d':
        y = (rng.uniform(size=n) < 0.5).astype(float)
        x = np.where(y[:, None] > 0, _disk(rng, n, 0.0, 0.5),
                     _disk(rng, n, 0.5, 1.0))
    elif name == 'squares2d':
        x = rng.uniform(-1, 1, (n, 2))
        y = (x[:, 0] * x[:, 1] > 0).astype(float)
    else:
        y = (rng.uniform(size=n) < 0.5).astype(float)
        t = rng.uniform(0.05, 1.0, n)
        phi = 3 * math.pi * t + math.pi * y
        x = np.stack([t * np.cos(phi), t * np.sin(phi)], 1)
        x = x + 0.02 * rng.standard_normal((n, 2))
    return (torch.as_tensor(x, dtype=dtype),
            torch.as_tensor(y, dtype=dtype))
