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
import odl
import torch
from odl.applications import tomo

from odl_genprior import data as _data
from odl_genprior import metrics
from odl_genprior.bridge import to_numpy
from odl_genprior.problems import forward as problems
from odl_genprior.problems.cache import cached_arrays
from odl_genprior.problems.forward import ForwardProblem
from odl_genprior.problems.protocol import (PROTOCOLS, SPLITS, Protocol,
                                            _check_split, make_protocol,
                                            parallel_pairs,
                                            register)

__all__ = ('SPLITS', 'EllipseCT', 'DivalEllipses', 'PROTOCOLS',
           'make_protocol', 'cached_pairs', 'evaluate')


@register
@dataclasses.dataclass
class EllipseCT(Protocol):
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

    name = 'ellipse'
    summary = ("the package's ellipse CT benchmark (random ellipses, "
               'parallel or fan beam)')

    @classmethod
    def small(cls):
        return cls(size=16, num_angles=8)

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
        _check_split(split)
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

    def pairs(self, n, split='train', start=0, progress=False):
        """``(data, images)`` float32 tensors of samples ``start..start+n-1``.

        Shapes ``(n, *operator.range.shape)`` and ``(n, size, size)``.
        """
        from tqdm.auto import tqdm
        ys, xs = [], []
        for i in tqdm(range(start, start + n), disable=not progress,
                      desc=f'ellipse CT {split}'):
            p = self.problem(i, split)
            ys.append(to_numpy(p.data))
            xs.append(to_numpy(p.ground_truth))
        return (torch.from_numpy(np.stack(ys).astype(np.float32)),
                torch.from_numpy(np.stack(xs).astype(np.float32)))


@register
@dataclasses.dataclass
class DivalEllipses(Protocol):
    """DIVal's standard ``ellipses`` data set, rebuilt on ODL 1.x.

    As ``dival.get_standard_dataset('ellipses')`` defines it in DIVal's
    source (``dival/datasets/standard.py`` and ``ellipses_dataset.py``):

    * ground truth on ``128 x 128`` pixels over ``[-64, 64]^2`` from ODL's
      ``ellipsoid_phantom`` with ``min(Poisson(40), 70)`` ellipses of value
      ``U(-0.4, 1)``, half-axes ``0.2 Exp(1)``, centres ``U(-0.9, 0.9)^2``
      and rotation ``U(0, 2 pi)`` (in the phantom's normalised
      coordinates); the non-zero pixels are shifted so that the minimum is 0
      and the image divided by its maximum (values in [0, 1]);
    * data ``y = A_400 (upsample(x)) + e``: the image bilinearly upsampled
      to ``400 x 400`` (scikit-image ``resize``, order 1; no inverse crime),
      a parallel-beam ray transform on that grid with 30 angles and the
      detector of the 128 grid (183 pixels), and white Gaussian noise of
      standard deviation ``0.025 mean(|A_400 upsample(x)|)``;
    * reconstruction operator: the parallel-beam ray transform of the 128
      grid with the same angles and detector (both are line integrals over
      the same physical domain, so no rescaling is needed);
    * phantom seeds train 42, validation 2, test 1 (DIVal's
      ``fixed_seeds=True``) and noise seeds 1, 2, 3, each a sequential
      ``numpy.random.RandomState`` stream as in DIVal: sample ``i`` of a
      split is the ``i``-th draw of its stream.

    PSNR and SSIM use the ground truth's ``max - min`` as data range (DIVal's
    ``PSNR`` and ``SSIM``).

    Parameters
    ----------
    size : int
        Reconstruction grid (DIVal: 128).
    num_angles : int
        Parallel-beam angles over 180 degrees (DIVal: 30).
    sim_size : int
        Grid of the simulation (DIVal: 400).
    noise_level : float
        Relative noise (DIVal: 0.025).

    Examples
    --------
    >>> bench = DivalEllipses(size=32, num_angles=8, sim_size=64)
    >>> y, x = bench.pairs(2, 'test')
    >>> tuple(y.shape), tuple(x.shape)
    ((2, 8, 47), (2, 32, 32))
    >>> float(x.min()), float(x.max())
    (0.0, 1.0)
    """

    size: int = 128
    num_angles: int = 30
    sim_size: int = 400
    noise_level: float = 0.025
    protocol: str = 'dival'

    name = 'dival'
    summary = ("DIVal's ellipses data set (128x128 over [-64, 64]^2, "
               '30 angles, 400x400 simulation, its own test pairs)')

    @classmethod
    def small(cls):
        return cls(size=16, num_angles=6, sim_size=24)

    PHANTOM_SEEDS = {'train': 42, 'validation': 2, 'test': 1}
    NOISE_SEEDS = {'train': 1, 'validation': 2, 'test': 3}
    MAX_ELLIPSES = 70

    def __post_init__(self):
        self._check_protocol_field()
        for name in ('size', 'num_angles', 'sim_size'):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2:
                raise ValueError(f'{name} must be an integer >= 2, got {v!r}')
        if not self.noise_level >= 0:
            raise ValueError(f'noise_level must be >= 0, got '
                             f'{self.noise_level!r}')
        self._operator = None
        self._sim = None

    @property
    def space(self):
        """The reconstruction space ``[-s/2, s/2]^2`` (float32)."""
        h = self.size / 2
        return odl.uniform_discr([-h, -h], [h, h], (self.size, self.size),
                                 dtype='float32')

    @property
    def operator(self):
        """The ray transform of the reconstruction grid (ASTRA, float32)."""
        if self._operator is None:
            space = self.space
            geom = tomo.parallel_beam_geometry(space,
                                               num_angles=self.num_angles)
            self._operator = tomo.RayTransform(space, geom, impl='astra_cpu')
        return self._operator

    def _simulation(self):
        if self._sim is None:
            reco = self.space
            space = odl.uniform_discr(reco.min_pt, reco.max_pt,
                                      (self.sim_size,) * 2, dtype='float32')
            geom = tomo.parallel_beam_geometry(
                space, num_angles=self.num_angles,
                det_shape=self.operator.geometry.detector.shape)
            self._sim = tomo.RayTransform(space, geom, impl='astra_cpu')
        return self._sim

    def config(self):
        """The protocol as a plain dict (for ``config.json``)."""
        return dataclasses.asdict(self)

    def _ellipses(self, rs):
        """One draw of DIVal's ellipse parameters (same order of draws)."""
        n = self.MAX_ELLIPSES
        v = rs.uniform(-0.4, 1.0, (n,))
        a1 = .2 * rs.exponential(1., (n,))
        a2 = .2 * rs.exponential(1., (n,))
        x = rs.uniform(-0.9, 0.9, (n,))
        y = rs.uniform(-0.9, 0.9, (n,))
        rot = rs.uniform(0., 2 * np.pi, (n,))
        k = min(rs.poisson(40), n)
        v[k:] = 0.
        return np.stack((v, a1, a2, x, y, rot), axis=1)[:k]

    def _phantom(self, ellipses):
        image = odl.core.phantom.ellipsoid_phantom(self.space, ellipses)
        image = np.array(image.asarray(), dtype=np.float64)
        fg = image != 0
        image[fg] -= image.min()
        peak = image.max()
        if peak > 0:
            image /= peak
        return image.astype(np.float32)

    def _observe(self, image, rs):
        from skimage.transform import resize
        sim = self._simulation()
        fine = resize(image, sim.domain.shape, order=1)
        clean = sim(sim.domain.element(fine.astype(np.float32))).asarray()
        std = problems.relative_noise_std(clean, self.noise_level)
        noise = rs.normal(loc=0, scale=std, size=clean.shape)
        return (clean + noise).astype(np.float32), std

    def samples(self, n, split='train', start=0):
        """Yield ``(index, data, image, noise_std)`` of ``start..start+n-1``.

        The random streams are advanced past the first ``start`` samples
        without building them.
        """
        _check_split(split)
        if start < 0 or n < 0:
            raise ValueError(f'start and n must be >= 0, got {start}, {n}')
        phantoms = np.random.RandomState(self.PHANTOM_SEEDS[split])
        noise = np.random.RandomState(self.NOISE_SEEDS[split])
        shape = self.operator.range.shape
        for _ in range(start):
            self._ellipses(phantoms)
            noise.normal(size=shape)
        for i in range(start, start + n):
            image = self._phantom(self._ellipses(phantoms))
            y, std = self._observe(image, noise)
            yield i, y, image, std

    def problem(self, index, split='test'):
        """Sample ``index`` of ``split`` as a `ForwardProblem`.

        Examples
        --------
        >>> p = DivalEllipses(size=32, num_angles=8, sim_size=64).problem(0)
        >>> p.data.shape, p.info['split']
        ((8, 47), 'test')
        """
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f'index must be an integer >= 0, got {index!r}')
        ((i, y, x, std),) = self.samples(1, split, start=int(index))
        return self._problem(i, y, x, std, split)

    def problems(self, n, split='test', start=0):
        """Samples ``start..start+n-1`` of ``split`` as `ForwardProblem` s
        (one pass over the random streams)."""
        return [self._problem(i, y, x, std, split)
                for i, y, x, std in self.samples(n, split, start)]

    def _problem(self, i, y, x, std, split):
        A = self.operator
        data = A.range.element(y)
        truth = A.domain.element(x)
        info = {'benchmark': 'DIVal ellipses', 'split': split, 'index': i,
                'noise': 'gaussian', 'noise_std': std,
                'relative_noise': self.noise_level, **self.config()}
        # ||y - A_400 x_400|| is not ||y - A x||; report the noise norm.
        delta = float(std * np.sqrt(A.range.size * A.range.cell_volume))
        return ForwardProblem(A, data, truth, delta,
                              f'DIVal ellipses {split}[{i}]', info)

    def pairs(self, n, split='train', start=0, progress=False):
        """``(data, images)`` float32 tensors of samples ``start..start+n-1``.

        Shapes ``(n, *operator.range.shape)`` and ``(n, size, size)``.
        """
        ys = np.empty((n,) + tuple(self.operator.range.shape), np.float32)
        xs = np.empty((n, self.size, self.size), np.float32)
        it = self.samples(n, split, start)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=n, desc=f'DIVal ellipses {split}')
        for k, (_, y, x, _) in enumerate(it):
            ys[k], xs[k] = y, x
        return torch.from_numpy(ys), torch.from_numpy(xs)


def cached_pairs(bench, n, split='train', progress=False, cache=True,
                 workers=1):
    """``bench.pairs(n, split)``, kept on disk for the next call.

    Large training sets (thousands of DIVal pairs, minutes to simulate)
    are written once under ``cache_dir() / 'datasets'``, keyed by the
    benchmark's configuration, the split and ``n``; a cut or foreign file
    is made again. Small sets (``n < 256``) are not cached. ``workers``
    processes simulate a missing set (`parallel_pairs`: the same pairs).

    Examples
    --------
    >>> y, x = cached_pairs(EllipseCT(size=16, num_angles=4), 2)
    >>> tuple(y.shape)
    (2, 4, 25)
    """
    def simulate():
        return parallel_pairs(bench, n, split, workers=workers,
                              progress=progress)

    if not cache:
        return simulate()
    y, x = cached_arrays(
        [type(bench).__name__, bench.config(), split, n, 'v1'],
        lambda: [t.numpy() for t in simulate()],
        ('y', 'x'), length=n)
    return torch.from_numpy(y), torch.from_numpy(x)


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
