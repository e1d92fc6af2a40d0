"""Benchmark protocols: one base class, one registry.

A protocol fixes a forward operator, seeded splits (``'train'``,
``'validation'``, ``'test'``) of problems and training pairs, and what a
run folder records of it (``config()``). Members register themselves by
name with `register`; `make_protocol` builds one from a recorded config.
The members: ``'ellipse'`` (`~odl_genprior.problems.ellipse_ct.EllipseCT`),
``'dival'`` (`~odl_genprior.problems.ellipse_ct.DivalEllipses`) and
``'htc2022'`` (`~odl_genprior.problems.htc2022_protocol.HTC2022LimitedAngle`),
all registered when `odl_genprior.problems` is imported. A new protocol is
one class with these methods and a ``@register``; the conformance test
(``tests/test_protocols.py``) runs over the registry.
"""
import abc
import dataclasses

import numpy as np

__all__ = ('Protocol', 'PROTOCOLS', 'SPLITS', 'register', 'make_protocol',
           'parallel_pairs')

#: The splits of every protocol, and their index in seeds.
SPLITS = {'train': 0, 'validation': 1, 'test': 2}
#: name -> protocol class, filled by `register`.
PROTOCOLS = {}


class Protocol(abc.ABC):
    """A benchmark: operator, seeded splits, pairs, a recordable config.

    Subclasses set ``name`` (the registry key) and ``summary`` (one line
    of help) and implement the abstract members; problems and pairs of one ``(split, index)`` are the same on
    every call.
    """

    #: registry key, and the ``'protocol'`` entry of configs
    name = None
    #: one line for the command line's help (``--protocol``)
    summary = None
    #: whether sample ``i`` of ``pairs`` is the same whatever ``n`` and
    #: ``start`` (then `parallel_pairs` may split the work)
    sample_wise = True
    #: the model family (`odl_genprior.models`) whose networks train on it
    family = 'unrolled'

    @property
    @abc.abstractmethod
    def operator(self):
        """The forward operator of every problem (and of the networks)."""

    @abc.abstractmethod
    def config(self):
        """The protocol as a plain dict; `make_protocol` rebuilds it."""

    @abc.abstractmethod
    def problem(self, index, split='test'):
        """Sample ``index`` of ``split`` as a `ForwardProblem` with its
        ground truth."""

    @abc.abstractmethod
    def pairs(self, n, split='train', start=0, progress=False):
        """Training tensors of samples ``start..start+n-1``: a tuple whose
        first entry is the data ``(n, *operator.range.shape)`` and last the
        images ``(n, *operator.domain.shape)`` (others between, e.g. a row
        mask)."""

    @classmethod
    def small(cls):
        """A small instance (seconds to use): for tests and examples."""
        return cls()

    def _check_protocol_field(self):
        """A dataclass field ``protocol`` (recorded in configs) must be the
        class's own name."""
        if getattr(self, 'protocol', self.name) != self.name:
            raise ValueError(f'{type(self).__name__} is the "{self.name}" '
                             f'protocol, got protocol={self.protocol!r}')

    def problems(self, n, split='test', start=0):
        """Samples ``start..start+n-1`` of ``split`` as problems."""
        return [self.problem(i, split) for i in range(start, start + n)]


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f'split must be one of {sorted(SPLITS)}, got '
                         f'{split!r}')


def register(cls):
    """Class decorator: add a `Protocol` subclass to `PROTOCOLS` by name."""
    if not (isinstance(cls, type) and issubclass(cls, Protocol)) or not \
            isinstance(cls.name, str):
        raise TypeError(f'register takes a Protocol subclass with a name, '
                        f'got {cls!r}')
    if not isinstance(cls.summary, str) or not cls.summary:
        raise TypeError(f'protocol {cls.__name__} needs a one-line summary '
                        '(its help on the command line)')
    if PROTOCOLS.get(cls.name, cls) is not cls:
        raise ValueError(f'protocol {cls.name!r} is registered already '
                         f'({PROTOCOLS[cls.name].__name__})')
    PROTOCOLS[cls.name] = cls
    return cls


def make_protocol(config=None):
    """The protocol of a config dict: its ``protocol`` entry picks the class
    (none: ``'ellipse'``, the package's first protocol); the other entries
    are its fields, unknown ones refused by name.

    Examples
    --------
    >>> type(make_protocol({'protocol': 'dival'})).__name__
    'DivalEllipses'
    >>> make_protocol({'size': 16}).size
    16
    >>> make_protocol({'protocol': 'nope'})
    Traceback (most recent call last):
    ...
    ValueError: protocol must be one of ['dival', 'ellipse', 'htc2022'], got 'nope'
    """
    config = dict(config or {})
    name = config.pop('protocol', 'ellipse')
    if name not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {sorted(PROTOCOLS)}, got '
                         f'{name!r}')
    cls = PROTOCOLS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    if 'protocol' in fields:
        config['protocol'] = name
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f'unknown {name!r} benchmark option(s) '
                         f'{unknown}; known: {sorted(fields)}')
    return cls(**config)


def _pairs_chunk(config, n, split, start):
    """One worker's share of `parallel_pairs` (arrays: they pickle)."""
    import torch
    torch.set_num_threads(1)
    return [t.numpy() for t in make_protocol(config).pairs(n, split, start)]


def parallel_pairs(protocol, n, split='train', start=0, workers=1,
                   progress=False):
    """``protocol.pairs(n, split, start)`` simulated by ``workers``
    processes, each on one contiguous share of the samples.

    The same tensors as the single-process call, bit for bit: where a
    protocol's samples are ``sample_wise`` (sample ``i`` the same whatever
    ``n`` and ``start``), the shares concatenate to the whole; other
    protocols are simulated by one process. DIVal's 32,000 training pairs
    take about 11 minutes on one core; ``workers`` cores divide that.

    Examples
    --------
    >>> from odl_genprior.problems.ellipse_ct import DivalEllipses
    >>> bench = DivalEllipses.small()
    >>> y, x = parallel_pairs(bench, 4, workers=2)
    >>> y1, x1 = bench.pairs(4)
    >>> bool((y == y1).all() and (x == x1).all())
    True
    """
    import torch

    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f'workers must be an integer >= 1, got {workers!r}')
    _check_split(split)
    workers = min(workers, max(n, 1))
    if workers == 1 or not protocol.sample_wise:
        return protocol.pairs(n, split, start, progress=progress)
    import concurrent.futures
    import multiprocessing
    config = {'protocol': protocol.name, **protocol.config()}
    bounds = [start + n * k // workers for k in range(workers + 1)]
    # spawn, not fork: the parent may hold threads (torch, ASTRA) that a
    # forked child would inherit half-locked.
    ctx = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        futures = [ex.submit(_pairs_chunk, config, b - a, split, a)
                   for a, b in zip(bounds[:-1], bounds[1:])]
        if progress:
            from tqdm import tqdm
            for _ in tqdm(concurrent.futures.as_completed(futures),
                          total=workers,
                          desc=f'{protocol.name} {split} ({workers} workers)'):
                pass
        parts = [f.result() for f in futures]
    return tuple(torch.from_numpy(np.concatenate(arrays))
                 for arrays in zip(*parts))
