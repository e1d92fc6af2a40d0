"""The HTC2022 limited-angle protocol on the teaching data.

The challenge scored seven difficulty levels, 90, 80, 70, 60, 50, 40 and
30 degrees of data (`LEVELS`), each from a start angle the organisers
chose; a segmentation scores the Matthews correlation coefficient against
the organisers' segmentation, and a team's score is the sum over levels.
Here every one of the 5 teaching phantoms is cut at every level from
`start_angles` (drawn from a seed, the same for every phantom), so a level
holds ``5 x len(starts)`` problems; `level_problems` yields them.

`simulated_problem` makes the same kind of problem from the simulator of
`odl_genprior.problems.htc2022_sim` with a known segmentation: what TV's
weight is tuned on (the teaching phantoms are never used for tuning).
"""
import dataclasses

import numpy as np
import torch

from odl_genprior.problems import htc2022, htc2022_sim
from odl_genprior.problems.forward import ForwardProblem
from odl_genprior.problems.protocol import (SPLITS, Protocol, _check_split,
                                            register)

__all__ = ('LEVELS', 'START_SEED', 'TV_ALPHA', 'start_angles', 'level_problems',
           'simulated_problem', 'challenge_score', 'HTC2022LimitedAngle')

LEVELS = (90, 80, 70, 60, 50, 40, 30)
START_SEED = 2022
#: TV's weight for these problems (128x128 grid, 1-degree steps, 200 PDHG
#: iterations), tuned on simulated data by ``python benchmarks/htc2022.py
#: --tune-tv``: mean MCC 0.850 / 0.860 / 0.850 / 0.809 / 0.756 for 1e-3 /
#: 3e-3 / 1e-2 / 3e-2 / 1e-1 on 12 simulated problems (90, 60, 30 deg).
TV_ALPHA = 3e-3


def start_angles(count=3, seed=START_SEED):
    """``count`` start angles (degrees, multiples of 0.5 in [0, 360)).

    Drawn without replacement from ``numpy.random.default_rng(seed)``;
    sorted.

    Examples
    --------
    >>> start_angles()
    [88.5, 253.5, 269.5]
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(720, size=int(count), replace=False)
    return sorted(float(0.5 * p) for p in picks)


def level_problems(level, directory=None, starts=None, phantoms=None,
                   size=128, angle_step=2, det_binning=4):
    """Yield ``(phantom, start, problem)`` for one level of the protocol.

    ``problem`` is `htc2022.load_htc2022` of ``level`` degrees from
    ``start`` (every ``angle_step``-th 0.5-degree row, ``det_binning``
    pixels merged); ``problem.info['reference_segmentation']`` is the
    organisers' 512x512 segmentation.
    """
    starts = start_angles() if starts is None else starts
    for name in phantoms or htc2022.PHANTOMS:
        for start in starts:
            yield name, start, htc2022.load_htc2022(
                name, directory, angular_range=level, start_angle=start,
                size=size, angle_step=angle_step, det_binning=det_binning)


def simulated_problem(level, seed, size=128, start=None,
                      scanner=htc2022_sim.SCANNER, angle_step=1.0):
    """A simulated HTC-like problem of ``level`` degrees with its truth.

    The phantom (`htc2022_sim.htc_phantom` on a ``2 size`` grid) is
    projected at ``start, start + angle_step, ..., start + level`` degrees
    (``start`` uniform in [0, 360) from ``seed`` when None) with the 560
    pixels, given the noise and beam hardening of ``scanner`` and binned by
    4, as the measured data; ``ground_truth`` is the acrylic fraction
    times the attenuation and ``info['reference_segmentation']`` the
    fraction > 1/2.

    Examples
    --------
    >>> p = simulated_problem(30, seed=0, size=32)
    >>> p.data.shape, p.info['reference_segmentation'].shape
    ((31, 140), (32, 32))
    """
    rng = np.random.default_rng([int(seed), 16])
    if start is None:
        start = float(rng.uniform(0, 360))
    angles = start + np.arange(0, level + angle_step / 2, angle_step)
    fine = htc2022.htc2022_ray_transform(htc2022.htc2022_space(2 * size),
                                         angles)
    sino, fraction = htc2022_sim.simulate_measurement(fine, rng, scanner)
    problem = htc2022.measured_problem(sino, angles, size=size,
                                       det_binning=4)
    truth = problem.space.element(scanner.attenuation * fraction)
    return ForwardProblem(
        operator=problem.operator, data=problem.data, ground_truth=truth,
        noise_level=float('nan'), name=f'simulated HTC {level:g} deg',
        info={'reference_segmentation': fraction > 0.5, 'start_angle': start,
              'angles_deg': angles})


def challenge_score(per_level):
    """The challenge's score: the sum over levels of the mean MCC.

    Examples
    --------
    >>> challenge_score({90: [1.0, 0.8], 30: [0.5]})
    1.4
    """
    return float(sum(np.mean(v) for v in per_level.values()))


@register
@dataclasses.dataclass
class HTC2022LimitedAngle(Protocol):
    """Simulated HTC2022 limited-angle data, as a protocol of the registry.

    The operator is the scanner's fan-beam ray transform at ``0,
    angle_step, ..., max_range`` degrees on a ``size`` grid
    (`htc2022_sim.limited_angle_operator`); training pairs are triples
    ``(y, mask, x)`` of `htc2022_sim.limited_angle_pairs` (ranges uniform in
    ``[min_range, max_range]``; split seeds 0, 1, 2, what
    ``train_limited_angle`` draws with its default seed); problem ``i`` of a
    split is `simulated_problem` of level ``LEVELS[i % 7]`` (a random start
    angle). The measured teaching data are `level_problems`.

    Examples
    --------
    >>> proto = HTC2022LimitedAngle(size=16, max_range=10, min_range=6,
    ...                             angle_step=2)
    >>> y, mask, x = proto.pairs(2, 'validation')
    >>> tuple(y.shape), tuple(mask.shape), tuple(x.shape)
    ((2, 6, 140), (2, 6), (2, 16, 16))
    """

    size: int = 128
    max_range: float = 90.0
    min_range: float = 30.0
    angle_step: float = 1.0
    det_binning: int = 4
    protocol: str = 'htc2022'

    name = 'htc2022'
    summary = ('simulated HTC2022 limited-angle data (one network for '
               '30-90 degrees; lpd or lfb)')

    @classmethod
    def small(cls):
        return cls(size=16, max_range=10.0, min_range=6.0, angle_step=2.0)

    # the ranges of n pairs are drawn before the first phantom
    sample_wise = False
    family = 'limited_angle'

    def __post_init__(self):
        self._check_protocol_field()
        self._operator = None

    @property
    def operator(self):
        """The fixed limited-angle operator (rows past a range are masked)."""
        if self._operator is None:
            self._operator = htc2022_sim.limited_angle_operator(
                self.size, self.max_range, self.angle_step, self.det_binning)
        return self._operator

    def config(self):
        """The protocol as a plain dict (for ``config.json``)."""
        return dataclasses.asdict(self)

    def problem(self, index, split='test'):
        """Simulated problem ``index`` of ``split``: level
        ``LEVELS[index % 7]`` (capped to ``max_range``), a random start."""
        _check_split(split)
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f'index must be an integer >= 0, got {index!r}')
        level = min(LEVELS[index % len(LEVELS)], self.max_range)
        return simulated_problem(level, seed=1000 * SPLITS[split] + index,
                                 size=self.size, angle_step=self.angle_step)

    def pairs(self, n, split='train', start=0, progress=False):
        """``(y, mask, x)`` float32 tensors of samples ``start..start+n-1``
        (the first ``start`` are drawn and dropped: one seeded stream)."""
        _check_split(split)
        arrays = htc2022_sim.limited_angle_pairs(
            start + n, SPLITS[split], self.size, self.max_range,
            self.min_range, self.angle_step, self.det_binning,
            progress=progress)
        return tuple(torch.from_numpy(a[start:]) for a in arrays)
