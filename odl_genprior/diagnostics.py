"""Contract checks for anyone's operators: adjoint, derivative, elements.

The checks the package's own contract tests run (``tests/test_contracts.py``
over every operator it defines or wraps), as library code, so that a user
can run them on an operator of their own, as ODL's ``OperatorTest`` and
deepinv's ``adjointness_test`` do. Every check draws random (never zero)
inputs from a seed, uses the spaces' weighted inner products, and raises
`OperatorCheckError` with the numbers when the contract fails.

Examples
--------
>>> import odl
>>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8))
>>> G = odl.Gradient(space)
>>> adjoint_error(G) < 1e-10
True
>>> check_derivative(odl.PointwiseNorm(G.range) * G)  # nonlinear
"""
import numpy as np
import odl
import torch

from odl_genprior.bridge import space_device

__all__ = ('OperatorCheckError', 'random_element', 'inner', 'norm',
           'adjoint_error', 'check_adjoint', 'derivative_errors',
           'check_derivative', 'check_element_of')


class OperatorCheckError(AssertionError):
    """An operator breaks its contract (the message gives the numbers)."""


def random_element(space, rng, scale=1.0):
    """A standard normal element of ``space`` times ``scale`` (a float for
    a field), drawn from the NumPy generator ``rng``."""
    if isinstance(space, odl.Field):
        return scale * float(rng.standard_normal())
    if isinstance(space, odl.ProductSpace):
        return space.element([random_element(s, rng, scale) for s in space])
    values = scale * rng.standard_normal(space.shape)
    if np.dtype(space.dtype_identifier).kind == 'c':
        values = values + 1j * scale * rng.standard_normal(space.shape)
    return space.element(values.astype(space.dtype_identifier))


def inner(space, a, b):
    """``<a, b>`` of ``space`` (weighted), a float; products for a field."""
    if isinstance(space, odl.Field):
        return float(a) * float(b)
    return float(np.real(complex(a.inner(b))))


def norm(space, a):
    """``||a||`` of ``space`` (weighted), a float."""
    return abs(float(a)) if isinstance(space, odl.Field) else float(a.norm())


def adjoint_error(A, h=None, w=None, seed=0):
    """``|<A h, w> - <h, A^* w>| / max(|<A h, w>|, |<h, A^* w>|)`` for a
    linear operator ``A`` (random ``h``, ``w`` from ``seed`` unless given).

    Raises `OperatorCheckError` when ``<A h, w> = 0`` (a vacuous check).
    """
    rng = np.random.default_rng(seed)
    h = random_element(A.domain, rng) if h is None else h
    w = random_element(A.range, rng) if w is None else w
    lhs = inner(A.range, A(h), w)
    rhs = inner(A.domain, h, A.adjoint(w))
    if lhs == 0:
        raise OperatorCheckError(f'<A h, w> = 0 for {A!r}: the adjoint check '
                                 'is vacuous; give other h, w')
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


def check_adjoint(A, rtol=1e-5, h=None, w=None, seed=0, what=None):
    """Raise `OperatorCheckError` unless ``<A h, w> = <h, A^* w>`` to
    ``rtol`` (weighted inner products; `adjoint_error`)."""
    err = adjoint_error(A, h, w, seed)
    if not err <= rtol:
        raise OperatorCheckError(
            f'{what or repr(A)}: <A h, w> and <h, A^* w> differ by {err:.3g} '
            f'(relative), more than rtol={rtol:g}')


def derivative_errors(op, x=None, h=None, eps=(1e-3, 1e-4), seed=0):
    """Relative errors ``||(op(x + e h) - op(x - e h)) / 2e - op'(x) h||
    / ||op'(x) h||`` of the central differences for each ``e`` in ``eps``
    (random ``x``, ``h`` from ``seed`` unless given)."""
    rng = np.random.default_rng(seed)
    x = random_element(op.domain, rng) if x is None else x
    h = random_element(op.domain, rng) if h is None else h
    dh = op.derivative(x)(h)
    scale = norm(op.range, dh)
    if scale == 0:
        raise OperatorCheckError(f"op'(x) h = 0 for {op!r}: the derivative "
                                 'check is vacuous; give other x, h')
    return [norm(op.range, (op(x + e * h) - op(x - e * h)) / (2 * e) - dh)
            / scale for e in eps]


def check_derivative(op, x=None, h=None, rtol=1e-4, eps=(1e-3, 1e-4),
                     seed=0, what=None):
    """Raise `OperatorCheckError` unless the derivative matches central
    differences to ``rtol`` at the smallest ``eps`` (`derivative_errors`),
    and, for a nonlinear operator, unless the adjoint of the derivative
    passes `check_adjoint`."""
    errors = derivative_errors(op, x, h, eps, seed)
    if not errors[-1] < rtol:
        raise OperatorCheckError(
            f'{what or repr(op)}: the derivative is {errors[-1]:.3g} '
            f'(relative) from central differences (eps {eps}: errors '
            f'{[float(f"{e:.3g}") for e in errors]}), more than rtol={rtol:g}')
    if not op.is_linear:
        rng = np.random.default_rng(seed)
        x = random_element(op.domain, rng) if x is None else x
        check_adjoint(op.derivative(x), rtol=max(rtol, 1e-5), seed=seed + 1,
                      what=f'{what or repr(op)}: derivative')


def _base_spaces(space):
    if isinstance(space, odl.ProductSpace):
        return [b for s in space for b in _base_spaces(s)]
    return [space]


def check_element_of(y, space, what='the result'):
    """Raise `OperatorCheckError` unless ``y`` is an element of ``space``
    with its dtype (and, on pytorch spaces, a tensor on its device)."""
    if isinstance(space, odl.Field):
        if not (isinstance(y, (float, int, np.floating)) and y in space):
            raise OperatorCheckError(f'{what} is {y!r}, not a number of '
                                     f'{space!r}')
        return
    if y not in space:
        raise OperatorCheckError(f'{what} is an element of '
                                 f'{getattr(y, "space", type(y).__name__)!r},'
                                 f' not of {space!r}')
    parts = list(y) if isinstance(space, odl.ProductSpace) else [y]
    for part, base in zip(parts, _base_spaces(space)):
        if part.dtype != base.dtype:
            raise OperatorCheckError(f'{what} has dtype {part.dtype}, its '
                                     f'space {base.dtype}')
        if getattr(base, 'impl', None) == 'pytorch':
            data = part.data
            if not isinstance(data, torch.Tensor) or \
                    data.device != space_device(base) or \
                    data.dtype != getattr(torch, base.dtype_identifier):
                raise OperatorCheckError(
                    f'{what} holds {type(data).__name__} '
                    f'{getattr(data, "dtype", "")} on '
                    f'{getattr(data, "device", "cpu")}, its space a '
                    f'{base.dtype_identifier} tensor on {space_device(base)}')
