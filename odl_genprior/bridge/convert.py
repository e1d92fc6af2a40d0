"""Conversions between ODL elements and torch tensors, spaces' devices,
dtypes and inner-product weights; checks of inputs against spaces."""
import numbers

import numpy as np
import odl
import torch
from odl.core.space.base_tensors import TensorSpace
from odl.core.space.pspace import ProductSpaceElement



# --- conversions -----------------------------------------------------------

def _base(space):
    """The tensor space under a power ``ProductSpace`` (else ``space``)."""
    while isinstance(space, odl.ProductSpace):
        if not space.is_power_space:
            raise TypeError(f'{space!r} is not a power space: its components '
                            'differ, so it has no single array shape')
        space = space[0]
    return space


def _is_pytorch(space):
    return getattr(_base(space), 'impl', None) == 'pytorch'


def space_device(space):
    """Return the ``torch.device`` of ``space`` (CPU for NumPy spaces).

    Examples
    --------
    >>> space = odl.uniform_discr(0, 1, 4, impl='pytorch')
    >>> space_device(space)
    device(type='cpu')
    """
    if _is_pytorch(space):
        return torch.device(_base(space).device)
    return torch.device('cpu')


def space_dtype(space):
    """Return the ``torch.dtype`` of ``space`` (of its components for a
    power space).

    Examples
    --------
    >>> space_dtype(odl.uniform_discr(0, 1, 4, dtype='float32'))
    torch.float32
    """
    return getattr(torch, np.dtype(_base(space).dtype_identifier).name)


def module_device(module, default='cpu'):
    """Return the device of the first parameter or buffer of ``module``."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device(default)


def as_tensor(x, device=None, dtype=None):
    """Return ``x`` (ODL element, array or tensor) as a ``torch.Tensor``.

    An element of an ``impl='pytorch'`` space gives its own tensor (no copy)
    when ``device`` and ``dtype`` already match; NumPy data is shared with
    the tensor on the CPU.

    Examples
    --------
    >>> space = odl.rn(3, impl='pytorch')
    >>> x = space.element([1.0, 2.0, 3.0])
    >>> as_tensor(x) is x.data
    True
    """
    if isinstance(x, ProductSpaceElement):
        x = x.asarray()  # stacks the components (one copy)
    elif isinstance(x, odl.core.set.space.LinearSpaceElement):
        x = x.data if _is_pytorch(x.space) else x.asarray()
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if (device is not None and x.device != torch.device(device)) or (
            dtype is not None and x.dtype != dtype):
        x = x.to(device=device, dtype=dtype)
    return x


def as_element(t, space):
    """Wrap ``t`` (tensor, array or array-like) as an element of ``space``.

    No copy where possible; the dtype and device become the space's. A
    tensor is detached first: ODL never sees an autograd graph.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> as_element(torch.tensor([1.0, 2.0], dtype=torch.float64), space)
    rn(2).element([ 1.,  2.])
    >>> as_element(np.array([[3, 4]]), space)  # any array of the right size
    rn(2).element([ 3.,  4.])
    """
    if not isinstance(t, torch.Tensor):
        t = as_tensor(t)
    t = t.detach().to(dtype=space_dtype(space))
    if _is_pytorch(space):
        t = t.to(device=space_device(space))
        return space.element(t.reshape(space.shape))
    return space.element(t.cpu().numpy().reshape(space.shape))


def to_numpy(x):
    """Return ``x`` (ODL element, tensor or array-like) as a NumPy array.

    Examples
    --------
    >>> to_numpy(torch.ones(2))
    array([ 1.,  1.], dtype=float32)
    """
    if isinstance(x, ProductSpaceElement):
        x = x.asarray()
    elif isinstance(x, odl.core.set.space.LinearSpaceElement):
        x = x.data if _is_pytorch(x.space) else x.asarray()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_space(space, role):
    if not isinstance(space, TensorSpace) and not isinstance(
            space, odl.DiscretizedSpace):
        raise TypeError(f'`{role}` must be an ODL tensor space or '
                        f'`uniform_discr` space, got {space!r}')
    if space.is_complex:
        raise ValueError(f'`{role}` {space!r} is complex; TorchOperator '
                         'supports real spaces only')


def space_weight(space, device=None, dtype=None, constant=False):
    """Return the inner-product weight of ``space``: a float, or a tensor
    for an array weighting.

    ``<x, y>_space = sum(weight * x * y)``. With ``constant=True`` an
    array weighting is refused (a TypeError naming the space), for
    callers that scale batch norms by one number.

    Examples
    --------
    >>> space_weight(odl.uniform_discr(0, 1, 4))
    0.25
    >>> space_weight(odl.rn(3))
    1.0
    """
    if isinstance(space, odl.ProductSpace):
        outer = _weight_of(space, space.weighting)
        inner = space_weight(space[0], device, dtype)
        if not isinstance(outer, numbers.Number):
            raise TypeError(f'{space!r} has a non-constant product weighting; '
                            'its adjoint cannot be formed')
        weight = outer * inner
    else:
        weight = _weight_of(space, getattr(space, 'weighting', None), device,
                            dtype)
    if constant and not isinstance(weight, numbers.Number):
        raise TypeError(f'{space!r} has an array weighting, not a constant '
                        'one: its norm cannot be formed on batches')
    return weight


def _weight_of(space, w, device=None, dtype=None):
    """A weighting's constant (float) or array (tensor)."""
    if hasattr(w, 'const'):
        return float(w.const)
    if hasattr(w, 'array'):
        return as_tensor(w.array, device=device, dtype=dtype)
    raise TypeError(f'weighting {w!r} of {space!r} is neither constant nor '
                    'an array: its adjoint cannot be formed')


def _is_one(w):
    return isinstance(w, numbers.Number) and w == 1.0


def _check_input(x, space, who):
    """Raise an error naming the expected and received space/shape/dtype."""
    if isinstance(x, odl.core.set.space.LinearSpaceElement):
        if x.space != space:
            raise odl.OpDomainError(
                f'{who} expects an element of {space!r}, got an element of '
                f'{x.space!r}')
        return
    if isinstance(x, (torch.Tensor, np.ndarray)):
        dtype = space_dtype(space)
        xdtype = (x.dtype if isinstance(x, torch.Tensor)
                  else getattr(torch, x.dtype.name, x.dtype))
        problems = []
        if tuple(x.shape) != tuple(space.shape):
            problems.append(f'shape {tuple(x.shape)} (expected {space.shape})')
        if xdtype != dtype:
            problems.append(f'dtype {xdtype} (expected {dtype})')
        if (isinstance(x, torch.Tensor) and _is_pytorch(space)
                and x.device != space_device(space)):
            problems.append(f'device {x.device} (expected '
                            f'{space_device(space)})')
        if problems:
            raise odl.OpDomainError(f'{who} expects an element of {space!r}; '
                                    f'got an array with ' + ', '.join(problems))
