"""The ODL 1.0 speed fix: same answers as ODL's own lookup, applied once."""
import os

import numpy as np
import odl
import pytest
import torch
from odl.core.array_API_support import utils as odl_utils

from odl_genprior._compat import odl_fixes as _odl_compat


def test_applied_exactly_on_the_patched_odl():
    """Installed iff this ODL is a patched version and the switch is off;
    either way ODL's modules hold the function that says so."""
    import odl.core.discr.diff_ops as diff_ops
    off = os.environ.get('ODL_GENPRIOR_NO_COMPAT', '') not in ('', '0')
    expected = (odl.__version__ in _odl_compat.PATCHED_ODL_VERSIONS
                and not off)
    assert _odl_compat.is_applied() == expected
    fast = _odl_compat._fast_get_array_and_backend
    assert (diff_ops.get_array_and_backend is fast) == expected
    assert (diff_ops.get_array_and_backend is _odl_compat._original) == (
        not expected)


def test_same_results_as_original():
    fast, orig = _odl_compat._fast_get_array_and_backend, _odl_compat._original
    space = odl.uniform_discr(0, 1, 5, impl='pytorch')
    samples = [np.arange(3.0), torch.arange(3.0), space.one(),
               odl.rn(2).one(), np.float32, torch.float64,
               torch.arange(6.0).reshape(2, 3).T]
    for x in samples:
        is_dtype = isinstance(x, (type, torch.dtype))
        # ODL's own lookup fails for dtypes with must_be_contiguous=True.
        for contiguous in ((False,) if is_dtype else (False, True)):
            a, ba = fast(x, must_be_contiguous=contiguous)
            b, bb = orig(x, must_be_contiguous=contiguous)
            assert ba is bb
            if isinstance(a, (np.ndarray, torch.Tensor)):
                assert type(a) is type(b) and (a == b).all()
                if contiguous:
                    assert (a.flags['C_CONTIGUOUS'] if isinstance(a, np.ndarray)
                            else a.is_contiguous())
            else:
                assert a == b


def test_reapply_is_idempotent():
    before = _odl_compat.is_applied()
    assert _odl_compat.apply() == 0  # nothing left holding the original
    assert _odl_compat.is_applied() == before or not before
    assert odl_utils.get_array_and_backend is (
        _odl_compat._fast_get_array_and_backend if before
        else _odl_compat._original)


def test_tensors_never_reach_the_slow_lookup(monkeypatch):
    """Tensors and arrays are answered by type; ODL's loop is not entered.

    (The speed itself is measured in benchmarks/odl_pytorch_speed.py.)
    """
    def slow(*args, **kwargs):
        raise AssertionError('slow path taken')
    monkeypatch.setattr(_odl_compat, '_original', slow)
    fast = _odl_compat._fast_get_array_and_backend
    assert fast(torch.zeros(3))[1].impl == 'pytorch'
    assert fast(np.zeros(3))[1].impl == 'numpy'


def test_line_search_stall_is_only_odls_stall():
    from odl_genprior._compat.odl_fixes import LineSearchStall

    # ODL's backtracking line search on a flat function: with a slope that
    # underflows it accepts a zero decrease and fails its own assertion;
    # with a real slope it runs out of iterations (a ValueError).
    space = odl.rn(2)
    f = odl.functionals.ConstantFunctional(space, 1.0)
    search = odl.solvers.BacktrackingLineSearch(f)
    for slope in (-5e-322, -1.0):
        with LineSearchStall() as run:
            search(space.zero(), space.one(), slope)
        assert run.stalled
    # Any other assertion is a bug, and passes through.
    with pytest.raises(AssertionError, match='a real bug'):
        with LineSearchStall():
            raise AssertionError('a real bug')
