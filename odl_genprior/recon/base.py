"""The reconstruction contract every method in odl_genprior follows.

A method is an object whose options are constructor arguments; calling
``method.reconstruct(problem)`` (or ``method(problem)``) on a
`odl_genprior.problems.ForwardProblem` returns an element of
``problem.space`` (the operator's domain). Iterative methods show a tqdm
progress bar unless ``progress=False``. The demo, the CLI and the
benchmarks treat all methods alike through this class.
"""
import abc

import numpy as np
import torch

from odl_genprior.bridge import to_numpy

__all__ = ('Reconstructor',)


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
    #: attributes left out of ``repr`` (results rather than options)
    _repr_exclude = ()

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
        x = self._reconstruct(problem, progress)
        if x not in problem.space:
            x = problem.space.element(x)
        return x

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
