"""Version-guarded fix for ODL 1.0's slow array-backend lookup on torch tensors.

ODL 1.0's ``get_array_and_backend`` tests every registered backend in turn
with ``x in backend.available_dtypes.values()``. For a ``torch.Tensor`` and
the NumPy backend that comparison formats the tensor (``Tensor.__repr__``),
3-7 ms a call, so ``odl.Gradient`` on a 128x128 ``impl='pytorch'`` space took
~45 ms instead of ~0.2 ms. We answer NumPy arrays and torch tensors by type
first and hand everything else to ODL's own function unchanged.

The patch is applied once, on ``import odl_genprior``, only to ODL versions
listed in ``PATCHED_ODL_VERSIONS`` and only while ODL's function is still
the original one (a later ODL that fixes it is left alone). Set the
environment variable ``ODL_GENPRIOR_NO_COMPAT=1`` to switch it off.
"""
import os
import sys

import numpy as np
import odl
import torch
from odl.core.array_API_support import utils as _odl_array_utils
from odl.core.space.base_tensors import Tensor as _OdlTensor

__all__ = ('PATCHED_ODL_VERSIONS', 'apply', 'revert', 'is_applied',
           'LineSearchStall')

PATCHED_ODL_VERSIONS = ('1.0.0',)

_original = _odl_array_utils.get_array_and_backend
_applied = False


def _fast_get_array_and_backend(x, must_be_contiguous=False):
    """Same result as ODL's ``get_array_and_backend``, typed dispatch first."""
    if isinstance(x, _OdlTensor):
        return (x.asarray(must_be_contiguous=must_be_contiguous),
                x.space.array_backend)
    if isinstance(x, torch.Tensor):
        backend = odl.lookup_array_backend('pytorch')
    elif isinstance(x, np.ndarray):
        backend = odl.lookup_array_backend('numpy')
    else:
        return _original(x, must_be_contiguous=must_be_contiguous)
    if must_be_contiguous:
        x = backend.make_contiguous(x)
    return x, backend


def apply():
    """Install the fast lookup in every loaded ODL module; return the count.

    Modules import the function by name, so each module's reference is
    replaced; ``import odl`` has loaded all of them by the time we run.
    """
    global _applied
    if os.environ.get('ODL_GENPRIOR_NO_COMPAT', '') not in ('', '0'):
        return 0
    if odl.__version__ not in PATCHED_ODL_VERSIONS:
        return 0
    count = 0
    for name, module in list(sys.modules.items()):
        if not (name == 'odl' or name.startswith('odl.')) or module is None:
            continue
        if getattr(module, 'get_array_and_backend', None) is _original:
            module.get_array_and_backend = _fast_get_array_and_backend
            count += 1
    _applied = _applied or count > 0
    return count


def revert():
    """Put ODL's own function back everywhere (for comparisons)."""
    global _applied
    for name, module in list(sys.modules.items()):
        if not (name == 'odl' or name.startswith('odl.')) or module is None:
            continue
        if (getattr(module, 'get_array_and_backend', None)
                is _fast_get_array_and_backend):
            module.get_array_and_backend = _original
    _applied = False


def is_applied():
    """Return True if the fast lookup is installed."""
    return _applied


# ODL 1.0's BacktrackingLineSearch reports "no decrease left to find" (i.e.
# convergence to float precision) by raising: these ValueErrors, or a bare
# ``assert fval < fx`` when the decrease underflows.
_STALL_MESSAGES = ('number of iterations exceeded', 'dir_derivative == 0')


class LineSearchStall:
    """Context manager that ends an ODL solver run at a line-search stall.

    The solvers update their iterate in place, so after a stall it holds
    the last accepted point; ``stalled`` says whether that happened. Other
    errors pass through.

    Examples
    --------
    >>> with LineSearchStall() as run:
    ...     raise ValueError('dir_derivative == 0, no descent can be found')
    >>> run.stalled
    True
    """

    def __enter__(self):
        self.stalled = False
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        # ODL's line search asserts ``fval < fx`` after accepting a zero
        # decrease: a stall only when the assertion is that one, raised in
        # odl/solvers/util/steplen.py; any other assertion is a bug.
        if (issubclass(exc_type, AssertionError) and _raised_in(tb, _STEPLEN)
                or issubclass(exc_type, ValueError)
                and str(exc).startswith(_STALL_MESSAGES)):
            self.stalled = True
            return True
        return False


_STEPLEN = os.path.join('odl', 'solvers', 'util', 'steplen.py')


def _raised_in(tb, path_end):
    """Whether the innermost frame of ``tb`` is in a file ending so."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename.endswith(
        path_end)
