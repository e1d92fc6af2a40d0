"""The ellipse CT benchmark: fixed splits, training pairs, evaluation.

The protocol follows DIVal's ``ellipses`` data set in spirit: random-ellipse
phantoms on ``[-1, 1]^2`` (values in [0, 1]), a parallel-beam ASTRA ray
transform, and white Gaussian noise whose standard deviation is
``noise_level`` times the mean absolute value of each noiseless sinogram.

Sample ``i`` of a split is drawn from ``numpy.random.default_rng((seed,
split, i))`` (``split`` = 0 train, 1 validation, 2 test): the splits never
share a phantom, and the first ``n`` training samples are the same whatever
``n`` is (10 training images are the first 10 of the 100).

Examples
--------
>>> bench = EllipseCT(size=32, num_angles=8)
>>> y, x = bench.pairs(4, 'train')
>>> tuple(y.shape), tuple(x.shape)
((4, 8, 47), (4, 32, 32))
"""
import dataclasses
import time

import numpy as np
import torch

from odl_genprior import data as _data
from odl_genprior import metrics, problems
from odl_genprior.bridge import to_numpy

__all__ = ('SPLITS', 'EllipseCT', 'evaluate')

SPLITS = {'train': 0, 'validation': 1, 'test': 2}


@dataclasses.dataclass
class EllipseCT:
    """One configuration of the benchmark (operator built once, lazily).

    Parameters
    ----------
    size : int
        Image size (``size x size`` pixels).
    num_angles : int
        Parallel-beam angles over 180 degrees.
    noise_level : float
        Relative Gaussian noise (0.05 = 5% of the mean absolute sinogram).
    geometry : {'parallel', 'fan'}
    seed : int
        Seeds every split (see the module docstring).
    """

    size: int = 128
    num_angles: int = 30
    noise_level: float = 0.05
    geometry: str = 'parallel'
    seed: int = 0

    def __post_init__(self):
        self._operator = None

    @property
    def operator(self):
        """The ray transform (ODL, ASTRA, float32)."""
        if self._operator is None:
            space = problems.image_space(self.size)
            self._operator = problems.ray_transform(
                space, self.num_angles, self.geometry)
        return self._operator

    def config(self):
        """The protocol as a plain dict (for ``config.json``)."""
        return dataclasses.asdict(self)

    def problem(self, index, split='test'):
        """Sample ``index`` of ``split`` as a `ForwardProblem`.

        Examples
        --------
        >>> p = EllipseCT(size=32, num_angles=8).problem(0)
        >>> p.data.shape, p.info['split']
        ((8, 47), 'test')
        """
        if split not in SPLITS:
            raise ValueError(f'split must be one of {sorted(SPLITS)}, got '
                             f'{split!r}')
        if index < 0:
            raise ValueError(f'index must be >= 0, got {index}')
        rng = np.random.default_rng((self.seed, SPLITS[split], index))
        A = self.operator
        x = _data.random_ellipses(A.domain, rng=rng)
        info = {'benchmark': 'ellipse CT', 'split': split, 'index': index,
                **self.config()}
        return problems._make(A, x, f'ellipse CT {split}[{index}]',
                              'gaussian', self.noise_level, None, None, rng,
                              info)

    def pairs(self, n, split='train', start=0):
        """``(data, images)`` float32 tensors of samples ``start..start+n-1``.

        Shapes ``(n, *operator.range.shape)`` and ``(n, size, size)``.
        """
        ys, xs = [], []
        for i in range(start, start + n):
            p = self.problem(i, split)
            ys.append(to_numpy(p.data))
            xs.append(to_numpy(p.ground_truth))
        return (torch.from_numpy(np.stack(ys).astype(np.float32)),
                torch.from_numpy(np.stack(xs).astype(np.float32)))


def evaluate(method, problem_list, progress=False):
    """Mean PSNR, SSIM and seconds per reconstruction of ``method``.

    Parameters
    ----------
    method : Reconstructor
        Any method under the package's reconstruction contract.
    problem_list : sequence of ForwardProblem
        With ground truths.

    Returns
    -------
    result : dict
        ``psnr``, ``ssim`` (means), ``psnr_all``, ``ssim_all`` (per
        problem) and ``seconds`` (mean wall time per reconstruction).

    Examples
    --------
    >>> from odl_genprior.recon import FBP
    >>> bench = EllipseCT(size=32, num_angles=16)
    >>> r = evaluate(FBP(), [bench.problem(i) for i in range(2)])
    >>> sorted(r)
    ['psnr', 'psnr_all', 'seconds', 'ssim', 'ssim_all']
    """
    psnrs, ssims, secs = [], [], []
    for p in problem_list:
        if p.ground_truth is None:
            raise ValueError(f'problem {p.name!r} has no ground truth')
        t = time.perf_counter()
        x = method.reconstruct(p, progress=progress)
        secs.append(time.perf_counter() - t)
        psnrs.append(metrics.psnr(x, p.ground_truth))
        ssims.append(metrics.ssim(x, p.ground_truth))
    return {'psnr': float(np.mean(psnrs)), 'ssim': float(np.mean(ssims)),
            'psnr_all': psnrs, 'ssim_all': ssims,
            'seconds': float(np.mean(secs))}
