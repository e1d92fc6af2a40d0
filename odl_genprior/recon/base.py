"""The reconstruction contract every method in odl_genprior follows.

A method is an object whose options are constructor arguments; calling
``method.reconstruct(problem)`` (or ``method(problem)``) on a
`odl_genprior.problems.ForwardProblem` returns an element of
``problem.space`` (the operator's domain). Iterative methods show a tqdm
progress bar unless ``progress=False``. The demo, the CLI and the
benchmarks treat all methods alike through this class.
"""
import abc
import contextlib
import dataclasses

import numpy as np
import torch

from odl_genprior.bridge import to_numpy

__all__ = ('Reconstructor', 'Result', 'NonFiniteResultError', 'check_option',
           'check_flag', 'check_choice', 'check_batch',
           'progress_callback', 'progress_bar', 'combine_callbacks')


@dataclasses.dataclass
class Result:
    """What a method's last call produced (``method.last_result``).

    ``x`` is the returned reconstruction; ``extras`` holds the method's own
    findings (a latent code, posterior samples, a stopping iteration, a
    line-search stall, ...), also readable as attributes.

    Examples
    --------
    >>> r = Result(x=None, method='TV', extras={'stalled': False})
    >>> r.stalled, sorted(r.extras)
    (False, ['stalled'])
    """

    x: object
    method: str
    extras: dict = dataclasses.field(default_factory=dict)

    def __getattr__(self, name):
        # only reached for names that are not fields
        extras = self.__dict__.get('extras', {})
        if name in extras:
            return extras[name]
        raise AttributeError(f'{self.method} result has no {name!r}; it has '
                             f'x, method and {sorted(extras)}')


class NonFiniteResultError(FloatingPointError, ValueError):
    """A method produced NaN or inf: a diverged solver or a bad option.

    A ``ValueError`` too, so that the command line reports it in one line.
    """


class Reconstructor(abc.ABC):
    """Base class of reconstruction methods.

    Subclasses set ``name`` and implement ``_reconstruct(problem,
    progress)``; the base class checks the problem and the result.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> class Adjoint(Reconstructor):
    ...     name = 'adjoint'
    ...     def _reconstruct(self, problem, progress):
    ...         return problem.operator.adjoint(problem.data)
    >>> p = problems.denoising(size=8, seed=0)
    >>> Adjoint()(p) in p.space
    True
    """

    name = 'method'
    #: the options that most likely make this method diverge (named when
    #: its result is not finite)
    divergence_hint = 'its step size or weights'
    #: attributes left out of ``repr`` (results rather than options)
    _repr_exclude = ('last_result',)
    #: `Result` of the last call (None before the first)
    last_result = None

    def __call__(self, problem, progress=True):
        return self.reconstruct(problem, progress=progress)

    def reconstruct(self, problem, progress=True):
        """Return the reconstruction, an element of ``problem.space``."""
        if not hasattr(problem, 'operator') or not hasattr(problem, 'data'):
            raise TypeError(f'{self.name}: expected a ForwardProblem, got '
                            f'{type(problem).__name__}')
        if problem.data not in problem.operator.range:
            raise ValueError(f'{self.name}: data is not in the operator range '
                             f'{problem.operator.range!r}')
        if not np.all(np.isfinite(to_numpy(problem.data))):
            raise ValueError(f'{self.name}: data contains NaN or inf')
        callback = getattr(self, 'callback', None)
        if callback is not None and not callable(callback):
            raise TypeError(f'{self.name}: callback must be callable, got '
                            f'{type(callback).__name__}')
        x = self._reconstruct(problem, progress)
        if x not in problem.space:
            x = problem.space.element(x)
        if not np.all(np.isfinite(to_numpy(x))):
            raise NonFiniteResultError(
                f'{self.name}: the reconstruction contains NaN or inf; '
                f'check {self.divergence_hint}')
        self.last_result = Result(x=x, method=self.name,
                                  extras=dict(self._extras()))
        return x

    def _extras(self):
        """Method-specific findings of the last call, for `last_result`."""
        return {}

    @abc.abstractmethod
    def _reconstruct(self, problem, progress):
        """Method-specific work (abstract)."""

    def __repr__(self):
        opts = ', '.join(f'{k}={_short_repr(v)}'
                         for k, v in sorted(vars(self).items())
                         if not k.startswith('_')
                         and k not in self._repr_exclude)
        return f'{type(self).__name__}({opts})'


def _short_repr(value):
    """``repr`` with networks as one line (class and parameter count)."""
    if isinstance(value, torch.nn.Module):
        n = sum(p.numel() for p in value.parameters())
        return f'{type(value).__name__}(<{n} parameters>)'
    return repr(value)


def check_option(owner, name, value, *, minimum=None, maximum=None,
                 open_minimum=False, integer=False):
    """``value`` as a float (or int), or a ValueError naming the option.

    Rejects NaN, inf, non-numbers, non-integers where ``integer`` and
    values outside ``[minimum, maximum]`` (``(minimum, maximum]`` with
    ``open_minimum``), in one line that names ``owner`` and ``name``.

    Examples
    --------
    >>> check_option('TV', 'niter', 10, minimum=1, integer=True)
    10
    >>> check_option('FBP', 'frequency_scaling', 0, minimum=0, maximum=1,
    ...              open_minimum=True)
    Traceback (most recent call last):
    ...
    ValueError: FBP: frequency_scaling must be in (0, 1], got 0
    """
    low = '(' if open_minimum else '['
    rng = (f'in {low}{minimum:g}, {maximum:g}]' if maximum is not None
           else f'> {minimum:g}' if open_minimum
           else f'>= {minimum:g}' if minimum is not None else 'finite')
    kind = 'an integer' if integer else 'a number'
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{owner}: {name} must be {kind} {rng}, got '
                         f'{value!r}') from None
    if isinstance(value, bool) or not np.isfinite(number) or (
            integer and number != int(number)) or (
            minimum is not None and (number < minimum or (
                open_minimum and number == minimum))) or (
            maximum is not None and number > maximum):
        raise ValueError(f'{owner}: {name} must be '
                         f'{kind + " " if integer else ""}{rng}, got '
                         f'{value!r}')
    return int(number) if integer else number


def check_flag(owner, name, value):
    """``value`` as a bool, or a ValueError naming the option.

    Accepts ``True``/``False`` (and 0/1); a string such as ``'no'`` would
    otherwise count as true.

    Examples
    --------
    >>> check_flag('TV', 'nonneg', 0)
    False
    >>> check_flag('TV', 'nonneg', 'no')
    Traceback (most recent call last):
    ...
    ValueError: TV: nonneg must be True or False, got 'no'
    """
    if isinstance(value, (bool, np.bool_)) or (
            isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f'{owner}: {name} must be True or False, got {value!r}')


def check_choice(owner, name, value, choices):
    """``value`` if it is one of ``choices``, else a ValueError naming the
    option and the choices.

    Examples
    --------
    >>> check_choice('DIP', 'fbp_filter', 'Hann', ('Hann', 'Ram-Lak'))
    'Hann'
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f'{owner}: {name} must be one of '
                         f'{", ".join(map(repr, choices))}, got {value!r}')
    return value


def check_batch(owner, operator, y):
    """A ValueError naming ``owner`` unless ``y`` is a tensor ``(batch,
    *operator.range.shape)``: the data of ``reconstruct_batch``.

    Examples
    --------
    >>> import odl
    >>> A = odl.IdentityOperator(odl.rn((2, 3)))
    >>> check_batch('LPD', A, torch.zeros(4, 2, 3))
    >>> check_batch('LPD', A, torch.zeros(4, 3))
    Traceback (most recent call last):
    ...
    ValueError: LPD: y must be a tensor of shape (batch, 2, 3), got (4, 3)
    """
    if not isinstance(y, torch.Tensor) or \
            tuple(y.shape[1:]) != tuple(operator.range.shape):
        raise ValueError(
            f'{owner}: y must be a tensor of shape (batch, '
            + ', '.join(map(str, operator.range.shape)) + '), got '
            + str(tuple(getattr(y, 'shape', ()))))


def combine_callbacks(*callbacks):
    """One ODL callback calling each given one in turn (None if all are
    None).

    Examples
    --------
    >>> seen = []
    >>> cb = combine_callbacks(None, seen.append, lambda x: seen.append(-x))
    >>> cb(2)
    >>> seen
    [2, -2]
    >>> combine_callbacks(None, None) is None
    True
    """
    given = [cb for cb in callbacks if cb is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]

    def combined(x):
        for cb in given:
            cb(x)
    return combined


@contextlib.contextmanager
def progress_bar(progress, niter, desc):
    """ODL's ``CallbackProgressBar`` over ``niter`` steps, closed when the
    block ends (also on an error); None without ``progress``. Methods that
    report more than the count (the best restart, a line-search stall) set
    the bar's postfix.

    Examples
    --------
    >>> with progress_bar(False, 3, 'demo') as bar:
    ...     bar is None
    True
    """
    if not progress:
        yield None
        return
    import odl

    bar = odl.solvers.CallbackProgressBar(niter=niter, desc=desc)
    try:
        yield bar
    finally:
        bar.pbar.close()


@contextlib.contextmanager
def progress_callback(progress, niter, desc, callback=None):
    """The ODL callback of an iterative method: a progress bar (if
    ``progress``, see `progress_bar`) combined with the user's
    ``callback``.

    Examples
    --------
    >>> seen = []
    >>> with progress_callback(False, 3, 'demo', seen.append) as cb:
    ...     cb(1)
    >>> seen
    [1]
    """
    with progress_bar(progress, niter, desc) as bar:
        yield combine_callbacks(bar, callback)
