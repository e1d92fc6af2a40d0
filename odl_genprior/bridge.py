"""The torch <-> ODL bridge, both directions; the only place that converts.

* `TorchOperator` makes a ``torch.nn.Module`` an ODL `Operator`: its
  derivative is the Jacobian-vector product and the derivative's adjoint the
  vector-Jacobian product, both from torch autograd.
* `OperatorLayer` makes an ODL `Operator` (e.g. a ``RayTransform``) a torch
  module with autograd, on batches ``(B, *op.domain.shape)``.

Inner products. ODL spaces may be weighted (``uniform_discr`` carries the
cell volume), so the ODL adjoint of a module's Jacobian ``J`` is
``D* w = W_dom^{-1} J^T (W_ran w)`` and, the other way, the torch gradient
(plain Euclidean ``J^T g``) of an ODL operator is
``W_dom A*(W_ran^{-1} g)``. Both conversions live here.
"""
import hashlib
import json
import numbers
import os
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
import odl
import scipy.sparse
import torch
import torch.autograd.forward_ad as fwad
from odl.core.space.base_tensors import TensorSpace
from odl.core.space.pspace import ProductSpaceElement

from odl_genprior.files import atomic_write

__all__ = ('TorchOperator', 'OperatorLayer', 'check_tensor_operator',
           'BATCHING_MODES',
           'operator_matrix', 'MatrixAssemblyTooSlow', 'MatrixTooLarge',
           'cache_dir',
           'as_tensor', 'as_element',
           'module_state', 'to_numpy', 'space_device', 'space_dtype',
           'space_weight', 'module_device')


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


# --- module -> ODL operator ------------------------------------------------

def module_state(module):
    """A key that changes whenever ``module`` may compute something else.

    The identity and version counter of every parameter and buffer (an
    in-place change, an optimizer step and ``load_state_dict`` all bump
    the version; assigning a new tensor changes the identity) and every
    submodule's ``training`` flag (dropout, batch norm).

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1)
    >>> key = module_state(lin)
    >>> with torch.no_grad():
    ...     _ = lin.bias.fill_(7.)
    >>> module_state(lin) == key
    False
    """
    tensors = tuple((id(t), t._version) for t in (
        *module.parameters(), *module.buffers()))
    return tensors, tuple(m.training for m in module.modules())


class _Linearization:
    """A point, the module's output there, and the autograd graph between."""

    __slots__ = ('x', 'y', 'state')

    def __init__(self, x, y, state):
        self.x = x  # private leaf copy (requires_grad), also the cache key
        self.y = y  # output with graph (None if recorded without graph)
        self.state = state  # module_state when y was computed

    def matches(self, t, state):
        return (self.state == state and self.x.shape == t.shape
                and torch.equal(self.x.detach(), t))


class TorchOperator(odl.Operator):
    """A ``torch.nn.Module`` as an ODL operator ``domain -> range``.

    ``op(x)`` runs ``module`` on ``x`` reshaped to ``in_shape`` (default
    ``(1, *domain.shape)``: a batch of one) and reshapes the output to
    ``range.shape``. On ``impl='pytorch'`` spaces the module sees the
    element's tensor on its own device; NumPy spaces are converted at the
    boundary.

    ``op.derivative(x)`` is the Jacobian at ``x`` as a linear ODL operator
    (a Jacobian-vector product by forward-mode AD); its ``adjoint`` is the
    vector-Jacobian product, scaled for the spaces' inner products. The last
    evaluation point is cached with its autograd graph, so a solver asking
    for the value and the gradient at one point runs the module forward
    once. The module's parameters are never changed and never get ``.grad``;
    train/eval mode is left as the caller set it.

    Parameters
    ----------
    module : torch.nn.Module
        The map; must accept a tensor of shape ``in_shape``.
    domain, range : TensorSpace or DiscretizedSpace
        Real spaces. Their dtype must match the module's floating-point
        parameters; on pytorch spaces the device must match too.
    in_shape : tuple of int, optional
        Shape the module expects for one input. Default
        ``(1,) + domain.shape``.
    linear : bool, optional
        Declare the module linear (e.g. a convolution without bias). Then
        the operator is its own derivative and ``adjoint`` is the
        vector-Jacobian product, independent of the point.
    cache_graph : bool, optional
        Record the autograd graph on every evaluation (default) so that
        value and gradient at one point share a forward pass. Set False to
        evaluate under ``torch.no_grad()``.
    batch_safe : bool, optional
        For a linear module with ``in_shape[0] == 1``: whether it maps a
        batch along that first axis sample by sample (a convolution with
        ``in_shape=(1, C, H, W)``), so that `OperatorLayer` may run it on a
        whole batch (``batching='module'``). ``None`` (default): unknown,
        `OperatorLayer` checks it once on two random samples against the
        per-sample loop; ``True``: declared, not checked; ``False``: never.

    Examples
    --------
    >>> space = odl.rn(3, dtype='float64')
    >>> lin = torch.nn.Linear(3, 3, bias=False).double()
    >>> op = TorchOperator(lin, space, space)
    >>> x = space.element([1.0, 2.0, 3.0])
    >>> bool(np.allclose(op(x).asarray(), lin.weight.detach().numpy() @ x.asarray()))
    True
    >>> d = op.derivative(x)
    >>> bool(np.allclose(d.adjoint(x).asarray(),
    ...                  lin.weight.detach().numpy().T @ x.asarray()))
    True
    """

    def __init__(self, module, domain, range, in_shape=None, linear=False,
                 cache_graph=True, batch_safe=None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f'`module` must be a torch.nn.Module, got '
                            f'{type(module).__name__}')
        if batch_safe not in (None, True, False):
            raise TypeError(f'`batch_safe` must be None, True or False, got '
                            f'{batch_safe!r}')
        self.batch_safe = batch_safe
        _check_space(domain, 'domain')
        _check_space(range, 'range')
        self.module = module
        self.in_shape = (tuple(in_shape) if in_shape is not None
                         else (1,) + tuple(domain.shape))
        if int(np.prod(self.in_shape)) != domain.size:
            raise ValueError(f'`in_shape` {self.in_shape} does not hold the '
                             f'{domain.size} entries of domain {domain!r}')
        self.device = module_device(module, default=space_device(domain))
        self.dtype = space_dtype(domain)
        for name, p in list(module.named_parameters()) + list(
                module.named_buffers()):
            if p.is_floating_point() and p.dtype != self.dtype:
                raise TypeError(
                    f'module tensor {name!r} has dtype {p.dtype} but domain '
                    f'{domain!r} has dtype {self.dtype}; convert the module '
                    f'(e.g. module.to({self.dtype})) or choose a matching space')
        for space, role in ((domain, 'domain'), (range, 'range')):
            if _is_pytorch(space) and space_device(space) != self.device:
                raise ValueError(
                    f'{role} {space!r} is on device {space_device(space)} but '
                    f'the module is on {self.device}')
        if space_dtype(range) != self.dtype:
            raise TypeError(f'range {range!r} has dtype {space_dtype(range)}'
                            f' but domain {domain!r} has dtype {self.dtype}')
        self.cache_graph = bool(cache_graph)
        self._cache = None
        super().__init__(domain, range, linear=linear)

    # -- checks and conversions --
    def __call__(self, x, out=None, **kwargs):
        """Apply the module; refuse elements of other spaces by name."""
        _check_input(x, self.domain, 'TorchOperator')
        return super().__call__(x, out=out, **kwargs)

    def _to_module(self, x):
        return as_tensor(x, device=self.device, dtype=self.dtype)

    def _run(self, t):
        try:
            y = self.module(t.reshape(self.in_shape))
        except RuntimeError as err:  # torch's words name no ODL space
            first = str(err).strip().splitlines()[0][:300]
            if isinstance(err, torch.OutOfMemoryError) or 'memory' in first:
                raise
            raise ValueError(
                f'the module {type(self.module).__name__} cannot take an '
                f'input of shape {tuple(self.in_shape)} (in_shape; domain '
                f'{self.domain!r}): {first}') from None
        if y.numel() != self.range.size:
            raise ValueError(
                f'module output has shape {tuple(y.shape)} '
                f'({y.numel()} entries) but range {self.range!r} has shape '
                f'{self.range.shape}')
        if y.dtype != self.dtype:
            raise TypeError(f'module output has dtype {y.dtype}, range '
                            f'{self.range!r} expects {self.dtype}')
        return y.reshape(self.range.shape)

    def linearization(self, x):
        """Return the cached (point, output-with-graph) pair at ``x``.

        The module runs forward only when ``x`` differs from the last point.
        """
        t = self._to_module(x)
        state = module_state(self.module)
        cache = self._cache
        if cache is not None and cache.y is not None and cache.matches(
                t, state):
            return cache
        leaf = t.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = self._run(leaf)
        self._cache = _Linearization(leaf, y, state)
        return self._cache

    def _call(self, x):
        if self.cache_graph:
            y = self.linearization(x).y
        else:
            t = self._to_module(x)
            cache = self._cache
            if cache is not None and cache.matches(t,
                                                   module_state(self.module)):
                y = cache.y
            else:
                with torch.no_grad():
                    y = self._run(t)
        # A copy, so that ODL's in-place updates cannot touch the graph.
        return as_element(y.detach().clone(), self.range)

    # -- derivative and adjoint --
    def derivative(self, x):
        """The Jacobian of the module at ``x`` as a linear ODL operator."""
        _check_input(x, self.domain, 'TorchOperator.derivative')
        if self.is_linear:
            return self
        return TorchJacobian(self, self.linearization(x))

    @property
    def adjoint(self):
        """Adjoint of a linear module: the vector-Jacobian product."""
        if not self.is_linear:
            raise odl.OpNotImplementedError(
                f'{self!r} is not linear: use derivative(x).adjoint')
        zero = torch.zeros(self.domain.shape, dtype=self.dtype,
                           device=self.device)
        return TorchJacobian(self, None, point=zero).adjoint

    def __repr__(self):
        return (f'TorchOperator({type(self.module).__name__}, '
                f'{self.domain!r}, {self.range!r})')

    __str__ = __repr__


class TorchJacobian(odl.Operator):
    """Jacobian of a `TorchOperator` at a point (forward-mode JVP)."""

    def __init__(self, op, lin, point=None):
        self.op = op
        self._lin = lin
        self._point = point if lin is None else lin.x.detach()
        super().__init__(op.domain, op.range, linear=True)

    def __call__(self, x, out=None, **kwargs):
        _check_input(x, self.domain, 'TorchJacobian')
        return super().__call__(x, out=out, **kwargs)

    def _call(self, h):
        h = as_tensor(h, device=self.op.device, dtype=self.op.dtype)
        if self.op.is_linear:  # its own Jacobian (and no dual tensors,
            # which torch switches off inside an autograd.Function)
            with torch.no_grad():
                return as_element(self.op._run(h), self.range)
        # torch.autograd.forward_ad rather than torch.func.jvp: a module
        # may contain an OperatorLayer (ODL, NumPy inside), whose jvp
        # torch.func cannot run on its wrapped tensors.
        with torch.no_grad(), fwad.dual_level():
            out = self.op._run(fwad.make_dual(self._point, h))
            jvp = fwad.unpack_dual(out).tangent
        if jvp is None:  # the output does not depend on the input
            jvp = torch.zeros_like(out)
        return as_element(jvp, self.range)

    def _linearization(self):
        if self._lin is None:  # linear module: any point, graph made once
            self._lin = self.op.linearization(self._point)
        return self._lin

    @property
    def adjoint(self):
        """The vector-Jacobian product, adjoint in the spaces' weights."""
        return _TorchJacobianAdjoint(self)


class _TorchJacobianAdjoint(odl.Operator):

    def __init__(self, jac):
        self.jac = jac
        op = jac.op
        self._w_dom = space_weight(op.domain, op.device, op.dtype)
        self._w_ran = space_weight(op.range, op.device, op.dtype)
        super().__init__(op.range, op.domain, linear=True)

    def __call__(self, x, out=None, **kwargs):
        _check_input(x, self.domain, 'Jacobian adjoint')
        return super().__call__(x, out=out, **kwargs)

    def _call(self, w):
        op = self.jac.op
        lin = self.jac._linearization()
        w = as_tensor(w, device=op.device, dtype=op.dtype)
        if isinstance(self._w_ran, numbers.Number) and isinstance(
                self._w_dom, numbers.Number):
            scale = self._w_ran / self._w_dom
        else:
            w = w * self._w_ran
            scale = None
        # inputs=[x] only: parameters never receive .grad.
        (g,) = torch.autograd.grad(lin.y, [lin.x], grad_outputs=w,
                                   retain_graph=True)
        if scale is None:
            g = g / self._w_dom
        elif scale != 1.0:
            g = g * scale
        return as_element(g, self.range)

    @property
    def adjoint(self):
        return self.jac


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


# --- ODL operator -> torch layer --------------------------------------------

def _apply_per_sample(op, x):
    """Apply ``op`` to each of the ``(B, *domain.shape)`` samples of ``x``."""
    dom, ran = op.domain, op.range
    dev, dt = space_device(ran), space_dtype(ran)
    out = torch.empty((x.shape[0],) + tuple(ran.shape), dtype=dt, device=dev)
    xs = x.detach()
    if not _is_pytorch(dom):
        xs = xs.cpu().numpy()
    for i in range(x.shape[0]):
        y = op(dom.element(xs[i]))
        out[i] = as_tensor(y, device=dev)
    return out


class _OperatorFunction(torch.autograd.Function):
    """Autograd function of an ODL operator on a batch (internal)."""

    # forward + setup_context (not forward(ctx, ...)) so that torch.func
    # transforms accept it: TorchOperator's derivative is torch.func.jvp,
    # and a module may contain an OperatorLayer (unrolled networks).
    @staticmethod
    def forward(x, layer):
        return layer._apply_batch(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, layer = inputs
        ctx.layer = layer
        if not layer.operator.is_linear:
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)

    @staticmethod
    def jvp(ctx, x_t, layer_t):
        """Forward mode: ``A x_t``, or ``A'(x) x_t`` per sample."""
        op = ctx.layer.operator
        if op.is_linear:
            return ctx.layer._apply_batch(x_t)
        (x,) = ctx.saved_tensors
        dom, ran = op.domain, op.range
        xs = x.detach() if _is_pytorch(dom) else x.detach().cpu().numpy()
        ts = x_t.detach() if _is_pytorch(dom) else x_t.detach().cpu().numpy()
        out = torch.empty((x.shape[0],) + tuple(ran.shape),
                          dtype=space_dtype(ran), device=x_t.device)
        for i in range(x.shape[0]):
            d = op.derivative(dom.element(xs[i]))
            out[i] = as_tensor(d(dom.element(ts[i])), device=x_t.device)
        return out

    @staticmethod
    def backward(ctx, g):
        layer = ctx.layer
        op = layer.operator
        w_dom, w_ran = layer.weights(g.device, g.dtype)
        if op.is_linear:
            # Through the adjoint layer: itself differentiable (double
            # backward works for linear operators).
            g = g if _is_one(w_ran) else g / w_ran
            grad = layer.adjoint_layer()(g)
        else:
            (x,) = ctx.saved_tensors
            g = g if _is_one(w_ran) else g / w_ran
            dom, ran = op.domain, op.range
            xs = x.detach() if _is_pytorch(dom) else x.detach().cpu().numpy()
            gs = g.detach() if _is_pytorch(ran) else g.detach().cpu().numpy()
            grad = torch.empty_like(x)
            for i in range(x.shape[0]):
                d = op.derivative(dom.element(xs[i]))
                grad[i] = as_tensor(d.adjoint(ran.element(gs[i])),
                                    device=x.device)
        if not _is_one(w_dom):
            grad = grad * w_dom
        return grad, None


BATCHING_MODES = ('auto', 'matrix', 'loop', 'module', 'astra3d')

# 'auto' assembles the sparse matrix only for linear CPU operators whose
# domain and range have at most this many entries each (256x256 images; a
# 128x128, 30-angle ray transform has 1.4M nonzeros, 17 MB).
AUTO_MATRIX_MAX_SIZE = 256 * 256
#: `operator_matrix` refuses a matrix of more nonzeros than this (about
#: 0.5 GB as float32 CSR, twice that while it is assembled).
MATRIX_MAX_NNZ = 2 ** 26
#: ... or one whose assembly is estimated to take longer than this
#: (seconds).
MATRIX_MAX_SECONDS = 1800.0
#: One dense block of unit vectors and their images stays under this many
#: bytes (the chunk shrinks for large operators, down to one vector).
MATRIX_BLOCK_BYTES = 64 * 2 ** 20
#: A progress bar is shown for an assembly expected to take longer (s).
MATRIX_PROGRESS_SECONDS = 5.0


class MatrixAssemblyTooSlow(RuntimeError):
    """`operator_matrix` estimates the assembly to take longer than
    `MATRIX_MAX_SECONDS`: apply the operator with ``batching='loop'``."""


class MatrixTooLarge(MemoryError):
    """`operator_matrix` estimates (or finds) more nonzeros than
    `MATRIX_MAX_NNZ`: apply the operator with ``batching='loop'``."""


def cache_dir():
    """Folder of the package's on-disk caches (assembled operator matrices,
    simulated data sets).

    ``$ODL_GENPRIOR_CACHE`` if set, else ``~/.cache/odl_genprior``.

    Examples
    --------
    >>> cache_dir().name in ('odl_genprior',) or 'ODL_GENPRIOR_CACHE' in os.environ
    True
    """
    env = os.environ.get('ODL_GENPRIOR_CACHE')
    return Path(env) if env else Path.home() / '.cache' / 'odl_genprior'


# --- verified cache files ---------------------------------------------------
# Every cache file carries the key that made it and the SHA-256 of its
# arrays; a file that cannot be read, or was made for another key, or whose
# arrays do not match their checksum, is reported, removed and made again.
# Files are written whole or not at all (temporary file, fsync, os.replace).

def _arrays_digest(key, arrays):
    """SHA-256 (hex) of ``key`` and the ``(name, array)`` pairs ``arrays``:
    names, dtypes, shapes and bytes.

    The arrays' own memory is hashed (no copy of a contiguous array): a
    2.8 GB data set costs about 1.6 s (measured), once per load.

    Examples
    --------
    >>> a = np.arange(3.0)
    >>> _arrays_digest('k', [('a', a)]) == _arrays_digest('k', [('a', a)])
    True
    >>> _arrays_digest('k', [('a', a)]) == _arrays_digest('j', [('a', a)])
    False
    """
    h = hashlib.sha256(f'{len(key)}:{key}|'.encode())
    for name, a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f'{name}|{a.dtype.str}|{a.shape}|'.encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _discard_cache_file(path, why, seen=None):
    """Warn that the cache file ``path`` is not used (``why``) and remove it.

    ``seen``: its ``os.stat`` when it was read; a file another process has
    since put in its place is left alone.
    """
    warnings.warn(f'cache file {path} is not used: {why}; it is removed '
                  'and made again', stacklevel=3)
    try:
        now = os.stat(path)
        if seen is None or (now.st_ino, now.st_size, now.st_mtime_ns) == (
                seen.st_ino, seen.st_size, seen.st_mtime_ns):
            os.unlink(path)
    except OSError:
        pass  # gone, or a read-only cache: it is overwritten when made


def _read_cache_file(path, key, names, check=None):
    """The arrays ``names`` of the ``.npz`` cache file ``path``, verified.

    Returns None when there is no file. A file that cannot be read, carries
    no key and checksum (an older format), carries another key than
    ``key``, fails its checksum, or fails ``check(arrays)`` (a reason, or
    None when fine) is reported (a warning naming it and why), removed and
    None returned: it is never used.
    """
    path = Path(path)
    try:
        seen = os.stat(path)
    except OSError:
        return None
    why = None
    try:
        with np.load(path, allow_pickle=False) as f:
            if '__key__' not in f.files or '__sha256__' not in f.files:
                why = 'it carries no key and checksum (an older format)'
            else:
                stored = str(f['__key__'][()])
                if stored != key:  # a foreign file: the arrays are not read
                    why = (f'it was made for another key '
                           f'({stored[:200]!r}, not {key[:200]!r})')
                else:
                    digest = str(f['__sha256__'][()])
                    arrays = tuple(f[name] for name in names)
    except MemoryError:
        raise  # a big file on a full machine is no bad file
    except Exception as e:  # noqa: BLE001  (any failure: not used)
        why = f'it cannot be read ({type(e).__name__}: {e})'
    if why is None and _arrays_digest(key, zip(names, arrays)) != digest:
        why = 'its arrays do not match their SHA-256 checksum'
    if why is None and check is not None:
        why = check(arrays)
    if why is not None:
        _discard_cache_file(path, why, seen)
        return None
    return arrays


def _write_cache_file(path, key, arrays):
    """Keep the named ``arrays`` (a dict) in the ``.npz`` file ``path`` with
    ``key`` and their checksum. Returns whether it was written: a cache
    that cannot be written (read-only, full disk) is reported, not raised.
    """
    for name in arrays:
        if name.startswith('__'):
            raise ValueError(f'array name {name!r}: names starting with '
                             '"__" are the cache file\'s own')
    digest = _arrays_digest(key, arrays.items())
    try:
        atomic_write(path, lambda f: np.savez(
            f, __key__=np.array(key), __sha256__=np.array(digest),
            **arrays))
    except OSError as e:
        warnings.warn(f'cache file {path} could not be written ({e}); the '
                      'result is not kept', stacklevel=3)
        return False
    return True


# --- assembled operator matrices --------------------------------------------

def _floats(v):
    return np.asarray(v, dtype=np.float64).ravel().tolist()


def _operator_key(op):
    """The key (a JSON string) that names a ray transform's matrix, or None.

    Only ray transforms (which carry a ``geometry``) are keyed: for them the
    spaces, the geometry's angles, detector and radii and the backend fix
    the matrix. Other operators are cached in memory only. The whole key
    is stored in the cache file and compared on reading; the file name is
    its hash.
    """
    geom = getattr(op, 'geometry', None)
    if geom is None or not hasattr(geom, 'angles'):
        return None
    key = {'format': 'odl_genprior operator matrix v2',
           'operator': type(op).__name__, 'domain': repr(op.domain),
           'range': repr(op.range), 'impl': str(getattr(op, 'impl', '')),
           'geometry': type(geom).__name__,
           'det_partition': repr(geom.det_partition),
           'det_boundaries': [_floats(v) for v in
                              geom.det_partition.cell_boundary_vecs],
           'angles': _floats(geom.angles), 'odl': odl.__version__}
    for name in ('src_radius', 'det_radius', 'det_curvature_radius'):
        key[name] = repr(getattr(geom, name, None))
    for name in ('translation', 'det_axis_init', 'det_pos_init'):
        v = getattr(geom, name, None)
        key[name] = None if v is None else _floats(v)
    return json.dumps(key, sort_keys=True)


def _matrix_path(key):
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir() / 'operators' / f'{digest}.npz'


_CSR_PARTS = ('data', 'indices', 'indptr', 'shape')


class _MatrixCache:
    """Assembled matrices by operator identity (memory) and key (disk)."""

    def __init__(self):
        self.by_id = weakref.WeakKeyDictionary()

    def get(self, op, disk):
        m = self.by_id.get(op)
        if m is not None:
            return m
        key = _operator_key(op) if disk else None
        if key is None:
            return None
        shape = (op.range.size, op.domain.size)

        def check(arrays):
            data, indices, indptr, stored = arrays
            if tuple(stored.tolist()) != shape:
                return (f'it holds a {tuple(stored.tolist())} matrix, '
                        f'not {shape}')
            if len(indptr) != shape[0] + 1 or len(indices) != len(data) or (
                    indptr[-1] != len(data)):
                return 'its CSR arrays do not fit together'
            return None

        arrays = _read_cache_file(_matrix_path(key), key, _CSR_PARTS, check)
        if arrays is None:
            return None
        data, indices, indptr, _ = arrays
        m = scipy.sparse.csr_matrix((data, indices, indptr), shape=shape)
        self.by_id[op] = m
        return m

    def put(self, op, m, disk):
        self.by_id[op] = m
        key = _operator_key(op) if disk else None
        if key is not None:  # a cache that cannot be written: memory only
            _write_cache_file(_matrix_path(key), key, {
                'data': m.data, 'indices': m.indices, 'indptr': m.indptr,
                'shape': np.array(m.shape, dtype=np.int64)})


_MATRICES = _MatrixCache()


def operator_matrix(operator, cache=True, chunk=256):
    """The Euclidean matrix of a linear ODL operator, as SciPy CSR.

    ``M[i, j] = (A e_j)_i`` on the flattened arrays (float32 or float64 as
    the domain). Assembled with one batched application per chunk of unit
    vectors, through rows (``A^T e_i``) or columns (``A e_j``), whichever
    are fewer; the dense matrix is never formed. A scaling (or identity)
    operator is written down, not assembled. Cached in memory per operator
    and, for ray transforms (keyed by spaces and geometry), on disk under
    `cache_dir`, so the next process does not assemble again.

    Limits (module attributes, so a caller may change them): one dense
    block of unit vectors and their images stays under
    `MATRIX_BLOCK_BYTES` (64 MB: the chunk shrinks, down to one vector).
    The first chunk (vectors spread over the whole index range) gives
    estimates of the nonzeros and the time; an assembly estimated at more
    than `MATRIX_MAX_NNZ` nonzeros (a MemoryError) or more than
    `MATRIX_MAX_SECONDS` (a `MatrixAssemblyTooSlow`) is refused at once,
    naming the shapes, the estimate and the limit; a longer one than
    `MATRIX_PROGRESS_SECONDS` shows a progress bar. The count is checked
    again while assembling (an estimate can be low).

    Parameters
    ----------
    operator : odl.Operator
        Linear, real.
    cache : bool, optional
        Read and write the on-disk cache.
    chunk : int, optional
        Most unit vectors per batched application.

    Raises
    ------
    MemoryError
        The matrix would have more than `MATRIX_MAX_NNZ` nonzeros: apply
        the operator with ``batching='loop'``.
    MatrixAssemblyTooSlow
        The assembly would take more than `MATRIX_MAX_SECONDS`.

    Examples
    --------
    >>> A = odl.MatrixOperator(np.array([[1.0, 2.0], [0.0, 3.0]]))
    >>> operator_matrix(A).toarray()
    array([[ 1.,  2.],
           [ 0.,  3.]])
    """
    if not getattr(operator, 'is_linear', False):
        raise ValueError(f'only a linear operator has a matrix, got '
                         f'{operator!r}')
    m = _MATRICES.get(operator, cache)
    if m is not None:
        return m
    m = _scaling_matrix(operator)
    if m is None:
        m = _assemble(operator, chunk)
    _MATRICES.put(operator, m, cache)
    return m


def _scaling_matrix(op):
    """``s I`` for an ``odl.ScalingOperator`` (identity included): known,
    so a 2048x2048 identity costs no assembly."""
    if not isinstance(op, odl.ScalingOperator) or op.domain != op.range:
        return None
    n = op.domain.size
    dtype = np.dtype(_base(op.domain).dtype_identifier)
    return scipy.sparse.identity(n, dtype=dtype, format='csr') * dtype.type(
        op.scalar)


def _describe(op):
    """One line naming an operator by its class and shapes (the repr of a
    ray transform spans several lines)."""
    return (f'{type(op).__name__} (domain shape {tuple(op.domain.shape)}, '
            f'range shape {tuple(op.range.shape)})')


def _check_estimate(op, nnz, seconds, itemsize):
    """Refuse an assembly whose estimate is over the limits, in one line."""
    if nnz > MATRIX_MAX_NNZ:
        gb = nnz * (itemsize + 4) / 1e9
        raise MatrixTooLarge(
            f'the matrix of {_describe(op)} would have about {nnz:.3g} '
            f'nonzeros (~{gb:.2g} GB as CSR, twice that to assemble), over '
            f'the limit MATRIX_MAX_NNZ = {MATRIX_MAX_NNZ}: use '
            f"batching='loop' (or raise odl_genprior.bridge.MATRIX_MAX_NNZ)")
    if seconds > MATRIX_MAX_SECONDS:
        raise MatrixAssemblyTooSlow(
            f'the matrix of {_describe(op)} would take about '
            f'{seconds / 60:.3g} min to assemble (estimated from the first '
            f'chunk), over the limit MATRIX_MAX_SECONDS = '
            f"{MATRIX_MAX_SECONDS:g}: use batching='loop' (or raise "
            'odl_genprior.bridge.MATRIX_MAX_SECONDS)')


def _assemble(operator, chunk):
    """Assemble the matrix from unit vectors, in bounded memory and time."""
    from tqdm.auto import tqdm
    loop = OperatorLayer(operator, batching='loop')
    n_in, n_out = operator.domain.size, operator.range.size
    dtype = space_dtype(operator.domain)
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows = n_out <= n_in  # rows of A are A^T e_i
    n, m, shape, apply = ((n_out, n_in, operator.range.shape, loop.transpose)
                          if rows else
                          (n_in, n_out, operator.domain.shape, loop))
    if n == 0:
        return scipy.sparse.csr_matrix(
            (n_out, n_in), dtype=_base(operator.domain).dtype_identifier)
    # Bounded memory: one block of unit vectors (chunk, n) and of their
    # images (chunk, m) under MATRIX_BLOCK_BYTES.
    chunk = max(1, min(int(chunk), MATRIX_BLOCK_BYTES // ((n + m) * itemsize)))
    n_chunks = -(-n // chunk)
    # Chunk k holds vectors k, k + n_chunks, ...: spread over the whole
    # index range, the first chunk is a fair sample for the estimates (the
    # first rows of a sinogram are edge rays that miss the image).
    parts, order, nnz, bar = [], [], 0, None
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for k in range(n_chunks):
                idx = np.arange(k, n, n_chunks)
                e = torch.zeros((len(idx), n), dtype=dtype)
                e[torch.arange(len(idx)), torch.from_numpy(idx)] = 1
                block = apply(e.reshape((-1,) + tuple(shape)))
                del e
                part = scipy.sparse.csr_matrix(
                    block.reshape(len(idx), -1).cpu().numpy())
                del block
                nnz += part.nnz
                parts.append(part)
                order.append(idx)
                if k == 0 and n_chunks > 1:
                    seconds = (time.perf_counter() - start) * n_chunks
                    _check_estimate(operator, part.nnz / len(idx) * n,
                                    seconds, itemsize)
                    bar = tqdm(total=n, initial=len(idx),
                               unit=' rows' if rows else ' columns',
                               desc=f'matrix of {type(operator).__name__}',
                               disable=seconds <= MATRIX_PROGRESS_SECONDS)
                elif bar is not None:
                    bar.update(len(idx))
                if nnz > MATRIX_MAX_NNZ:
                    raise MatrixTooLarge(
                        f'the matrix of {_describe(operator)} has more than '
                        f'{nnz} nonzeros after {k + 1} of {n_chunks} chunks, '
                        f'over the limit MATRIX_MAX_NNZ = {MATRIX_MAX_NNZ}: '
                        f"use batching='loop'")
    finally:
        if bar is not None:
            bar.close()
    mat = scipy.sparse.vstack(parts, format='csr')
    del parts
    if n_chunks > 1:  # back to index order
        mat = mat[np.argsort(np.concatenate(order))]
    if not rows:
        mat = mat.T.tocsr()
    mat.sort_indices()
    return mat


def _torch_csr(m, device, dtype):
    with warnings.catch_warnings():  # 'sparse CSR tensor support is in beta'
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data), size=m.shape).to(device=device,
                                                       dtype=dtype)


def _is_batchable_module(op):
    """A linear `TorchOperator` with a leading axis of 1 that may be a
    batch axis (whether it is one: `_module_batch_problem`)."""
    return (isinstance(op, TorchOperator) and op.is_linear
            and op.in_shape[0] == 1 and op.batch_safe is not False)


def _module_batch_problem(op, batch=2):
    """Why running ``op.module`` on a batch is not the per-sample loop, or
    None when it is.

    ``batch_safe=True`` is taken at its word. Else the module runs once on
    ``batch`` random samples stacked along ``in_shape[0]`` and once per
    sample; they must agree to rounding (square root of the dtype's
    epsilon, relative to the largest entry). A module that reads that axis
    as channels (``in_shape=(1, H, W)`` for a ``Conv2d``) or that mixes
    the samples (``x - x.mean(0)``) fails.
    """
    if op.batch_safe:
        return None
    gen = torch.Generator().manual_seed(0)  # the global RNG is not drawn
    x = torch.randn((batch,) + tuple(op.in_shape[1:]), generator=gen,
                    dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    try:
        with torch.no_grad():
            together = op.module(x)
            alone = torch.stack([op.module(x[i:i + 1]).reshape(-1)
                                 for i in range(batch)])
    except Exception as e:  # noqa: BLE001  (any failure: not batchable)
        return (f'the module fails on a batch of {batch} along in_shape[0] '
                f'({type(e).__name__}: {str(e).splitlines()[0][:200]})')
    if together.numel() != alone.numel():
        return (f'the module maps a batch of {batch} to shape '
                f'{tuple(together.shape)}, not {batch} outputs of '
                f'{alone.shape[1]} entries')
    together = together.reshape(alone.shape)
    tol = float(torch.finfo(op.dtype).eps) ** 0.5
    scale = float(alone.abs().max())
    err = float((together - alone).abs().max())
    if not err <= tol * max(scale, 1e-30):
        return (f'on a batch of {batch} random samples it differs from the '
                f'per-sample loop by {err:.3g} (largest entry {scale:.3g}): '
                'it mixes the samples')
    return None


def _auto_mode(op):
    """The mode ``batching='auto'`` chooses for ``op`` (`OperatorLayer`)."""
    if not op.is_linear:
        return 'loop'
    if _is_batchable_module(op) and _module_batch_problem(op) is None:
        return 'module'
    if _astra3d_ok(op):
        return 'astra3d'
    if (space_device(op.domain).type == 'cpu'
            and op.domain.size <= AUTO_MATRIX_MAX_SIZE
            and op.range.size <= AUTO_MATRIX_MAX_SIZE):
        return 'auto-matrix'
    return 'loop'


def _astra3d_ok(op):
    """A 2D parallel-beam ray transform on a CUDA pytorch space (astra_cuda)."""
    geom = getattr(op, 'geometry', None)
    return (geom is not None and getattr(geom, 'ndim', 0) == 2
            and type(geom).__name__.startswith('Parallel')
            and str(getattr(op, 'impl', '')) == 'astra_cuda'
            and _is_pytorch(op.domain)
            and space_device(op.domain).type == 'cuda')


def check_tensor_operator(operator):
    """Refuse anything but an ODL operator between tensor spaces (a
    ``TypeError`` naming the space): what `OperatorLayer` applies."""
    if not isinstance(operator, odl.Operator):
        raise TypeError(f'`operator` must be an odl.Operator, got '
                        f'{type(operator).__name__}')
    for space, role in ((operator.domain, 'domain'),
                        (operator.range, 'range')):
        if not hasattr(space, 'shape') or not hasattr(space, 'weighting'):
            raise TypeError(f'operator {role} {space!r} is not a tensor '
                            'space')


class OperatorLayer(torch.nn.Module):
    """An ODL operator as a torch layer, with autograd, on whole batches.

    The input has shape ``(*batch, *operator.domain.shape)`` (any number of
    leading batch axes, or none) and the output
    ``(*batch, *operator.range.shape)``. Backward applies the operator's
    adjoint (linear operators, itself a layer, so double backward works) or
    ``derivative(x).adjoint`` per sample (nonlinear operators), converted
    from ODL's weighted inner products to the plain Euclidean gradient
    torch expects. On ``impl='pytorch'`` spaces samples are handed to ODL
    without a host copy.

    How a batch is applied (``batching``):

    * ``'loop'``: one ODL call per sample (what ``odl.contrib.torch``'s
      ``OperatorModule`` does);
    * ``'matrix'``: the exact sparse matrix of a linear operator
      (`operator_matrix`, assembled once, cached in memory and, for ray
      transforms, on disk), one sparse product for the whole batch; an
      operator whose matrix is over `operator_matrix`'s limits
      (`MATRIX_MAX_NNZ`, `MATRIX_MAX_SECONDS`) is refused at the first
      batch;
    * ``'module'``: for a linear `TorchOperator` whose module takes a batch
      axis, the module on the whole batch. Only where that is exact: the
      operator is declared ``batch_safe=True``, or (``batch_safe=None``)
      the module gave the per-sample loop's result on two random samples
      when the layer was made (a module that reads the first axis as
      channels, or mixes the samples, fails that check: ``'auto'`` then
      chooses as for any linear operator, ``'module'`` raises);
    * ``'astra3d'``: for a 2D parallel-beam ray transform on a CUDA pytorch
      space with ``astra_cuda``, one ASTRA call for the whole batch (the
      slices stacked as one 3D parallel geometry; tensors passed to ASTRA
      through DLPack, no host copy);
    * ``'auto'`` (default): ``'module'`` or ``'astra3d'`` where they apply;
      else ``'matrix'`` for a linear CPU operator with at most
      ``AUTO_MATRIX_MAX_SIZE`` entries in domain and range, once the layer
      (with its adjoint) has applied the operator to as many samples as the
      assembly costs, so a layer used once never pays for it (``'loop'``
      where the matrix is refused); else ``'loop'``. The switch depends on
      that count alone, never on what the caches hold, so a command gives
      the same numbers with a cold cache and a warm one (a cached matrix
      only makes the switch free). `plan` fixes the mode up front for a
      known amount of work (a training run).

    All modes agree to rounding. An empty batch (``B = 0``) gives an empty
    result, forward and backward, in every mode.

    Parameters
    ----------
    operator : odl.Operator
        Real domain and range.
    batching : str, optional
        One of ``BATCHING_MODES``.
    cache : bool, optional
        Use the on-disk matrix cache (`cache_dir`).

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (4, 4), impl='pytorch')
    >>> layer = OperatorLayer(odl.Gradient(space))
    >>> x = torch.rand(2, 4, 4, dtype=torch.float64, requires_grad=True)
    >>> layer(x).shape
    torch.Size([2, 2, 4, 4])
    >>> layer(x).sum().backward()
    >>> x.grad.shape
    torch.Size([2, 4, 4])
    >>> mat = OperatorLayer(odl.Gradient(space), batching='matrix')
    >>> bool(torch.allclose(mat(x), layer(x)))
    True
    """

    def __init__(self, operator, batching='auto', cache=True):
        super().__init__()
        check_tensor_operator(operator)
        if batching not in BATCHING_MODES:
            raise ValueError(f'batching must be one of {BATCHING_MODES}, got '
                             f'{batching!r}')
        linear = operator.is_linear
        if batching in ('matrix', 'module', 'astra3d') and not linear:
            raise ValueError(f'batching={batching!r} needs a linear operator, '
                             f'got {operator!r}')
        if batching == 'module':
            if not _is_batchable_module(operator):
                raise ValueError(
                    f'batching="module" needs a linear TorchOperator whose '
                    f'in_shape starts with a batch axis of 1 and that is not '
                    f'declared batch_safe=False, got {operator!r}')
            why = _module_batch_problem(operator)
            if why is not None:
                raise ValueError(
                    f'batching="module" is not exact for {operator!r}: {why}; '
                    f"use batching='loop' (or a module that takes a batch "
                    f'along in_shape[0])')
        if batching == 'astra3d' and not _astra3d_ok(operator):
            raise ValueError(f'batching="astra3d" needs a 2D parallel-beam '
                             f'RayTransform with impl="astra_cuda" on a CUDA '
                             f'pytorch space, got {operator!r}')
        self.operator = operator
        self.requested_batching = batching
        self.cache = bool(cache)
        if batching == 'auto':
            batching = _auto_mode(operator)
        self._mode = batching
        self._adjoint_layer = None
        self._weights = {}
        self._matrix = None          # SciPy CSR once known
        self._torch_matrix = {}      # per (device, dtype)
        self._samples = [0]          # shared with the adjoint layer
        self._astra = None

    @property
    def batching(self):
        """The mode in use now (``'auto-matrix'``: matrix once it pays)."""
        if self._mode == 'auto-matrix' and self._matrix is not None:
            return 'matrix'
        return self._mode

    def plan(self, samples):
        """Fix the batching now for ``samples`` applications to come.

        In ``'auto'`` mode on a matrix-able operator: the matrix, assembled
        now, when ``samples`` pay for it (at least as many as the assembly
        costs) and its limits allow it, else the per-sample loop, for this
        layer and its adjoint, from the first batch on. A training run calls
        this at its start, so that its numbers do not depend on when a
        switch happens or on the caches (bit-identical cold or warm). Other
        modes are kept. Returns the mode.

        Examples
        --------
        >>> A = odl.MatrixOperator(np.arange(6.0).reshape(2, 3))
        >>> OperatorLayer(A).plan(1)
        'loop'
        >>> OperatorLayer(A).plan(10)
        'matrix'
        """
        if self._mode != 'auto-matrix' or self._matrix is not None:
            return self.batching
        cost = min(self.operator.domain.size, self.operator.range.size)
        mode = 'loop'
        if samples >= cost:
            try:
                self.matrix()
                mode = 'matrix'
            except (MemoryError, MatrixAssemblyTooSlow):
                pass
        for layer in (self, self._adjoint_layer):
            if layer is not None:
                layer._mode = mode
        return mode

    def weights(self, device, dtype):
        """Inner-product weights (domain, range) of the operator's spaces."""
        key = (device, dtype)
        if key not in self._weights:
            op = self.operator
            self._weights[key] = (space_weight(op.domain, device, dtype),
                                  space_weight(op.range, device, dtype))
        return self._weights[key]

    def adjoint_layer(self):
        """`OperatorLayer` of the adjoint, for linear operators.

        It batches the same way; in matrix mode its matrix is this one's
        transpose rescaled by the spaces' weights (no second assembly).
        """
        if self._adjoint_layer is None:
            mode = self.requested_batching
            if mode == 'module':
                mode = 'auto'  # the adjoint is no TorchOperator
            adjoint = OperatorLayer(self.operator.adjoint, batching=mode,
                                    cache=self.cache)
            # Plain attributes, not submodules: the two layers refer to each
            # other, and a cycle of submodules makes .eval() or .to() recurse
            # forever.
            object.__setattr__(self, '_adjoint_layer', adjoint)
            object.__setattr__(adjoint, '_adjoint_layer', self)
            object.__setattr__(adjoint, '_samples', self._samples)
            if self._matrix is not None:  # no second assembly
                adjoint._matrix = _adjoint_matrix(self.operator, self._matrix)
        return self._adjoint_layer

    def transpose(self, y):
        """The Euclidean transpose ``A^T y`` of a linear operator on a batch.

        ``W_dom A*(W_ran^{-1} y)``: what torch autograd calls the gradient,
        with the ODL adjoint ``A*`` and the spaces' weights ``W``.

        Examples
        --------
        >>> A = odl.MatrixOperator(np.array([[1.0, 2.0], [0.0, 1.0]]))
        >>> OperatorLayer(A).transpose(torch.tensor([[1.0, 1.0]],
        ...                             dtype=torch.float64)).tolist()
        [[1.0, 3.0]]
        """
        if not self.operator.is_linear:
            raise ValueError(f'{self.operator!r} is not linear: it has no '
                             'transpose')
        w_dom, w_ran = self.weights(y.device, y.dtype)
        g = y if _is_one(w_ran) else y / w_ran
        g = self.adjoint_layer()(g)
        return g if _is_one(w_dom) else g * w_dom

    # -- the batched application, by mode --
    def _apply_batch(self, x):
        """``A`` on a flat batch ``(B, *domain.shape)`` (no autograd)."""
        if x.shape[0] == 0:  # nothing to apply (and no assembly counted)
            return torch.zeros((0,) + tuple(self.operator.range.shape),
                               dtype=space_dtype(self.operator.range),
                               device=x.device)
        mode = self._mode
        if mode == 'auto-matrix' and self._matrix is None:
            self._maybe_assemble(x.shape[0])
        if mode == 'module':
            op = self.operator
            b = x.shape[0]
            with torch.no_grad():
                y = op.module(x.reshape((b,) + tuple(op.in_shape[1:])))
            return y.reshape((b,) + tuple(op.range.shape))
        if mode == 'matrix' or (mode == 'auto-matrix'
                                and self._matrix is not None):
            return self._matmul(x)
        if mode == 'astra3d':
            return self._astra3d(x)
        return _apply_per_sample(self.operator, x).to(x.device)

    def _maybe_assemble(self, batch):
        """Ski rental: assemble once the loop has cost what assembly costs."""
        self._samples[0] += batch
        cost = min(self.operator.domain.size, self.operator.range.size)
        adj = self._adjoint_layer
        # Not "or the matrix is cached": the results would then depend on
        # the cache (the loop and the matrix agree to rounding only).
        if (self._samples[0] >= cost
                or (adj is not None and adj._matrix is not None)):
            try:
                self.matrix()
            except (MemoryError, MatrixAssemblyTooSlow):
                self._mode = 'loop'

    def matrix(self):
        """The SciPy CSR matrix this layer applies (assembled if needed)."""
        if self._matrix is None:
            adj = self._adjoint_layer
            if adj is not None and adj._matrix is not None:
                self._matrix = _adjoint_matrix(adj.operator, adj._matrix)
            else:
                self._matrix = operator_matrix(self.operator, self.cache)
            if adj is not None and adj._matrix is None:
                adj._matrix = _adjoint_matrix(self.operator, self._matrix)
        return self._matrix

    def _matmul_matrix(self, device, dtype):
        """The matrix as a torch CSR tensor (one conversion per device and
        dtype, not one per call)."""
        key = (torch.device(device), dtype)
        m = self._torch_matrix.get(key)
        if m is None:
            m = _torch_csr(self.matrix(), device, dtype)
            self._torch_matrix[key] = m
        return m

    def _matmul(self, x):
        m = self._matmul_matrix(x.device, x.dtype)
        b = x.shape[0]
        y = (m @ x.reshape(b, self.operator.domain.size).T).T
        return y.reshape((b,) + tuple(self.operator.range.shape))

    def _astra3d(self, x):
        if self._astra is None:
            self._astra = _Astra3DStack(self.operator)
        return self._astra(x)

    def forward(self, x):
        dom = self.operator.domain
        nd = len(dom.shape)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'OperatorLayer expects a torch.Tensor, got '
                            f'{type(x).__name__}')
        if tuple(x.shape[x.ndim - nd:]) != tuple(dom.shape) or x.ndim < nd:
            raise ValueError(
                f'input of shape {tuple(x.shape)} does not end with the shape '
                f'{dom.shape} of the operator domain {dom!r}')
        dtype = space_dtype(dom)
        # Under torch.autocast a lower-precision input is cast up: the
        # operator runs in its own dtype (ASTRA and the sparse products
        # have no bfloat16).
        autocast = torch.is_autocast_enabled(x.device.type)
        if x.dtype != dtype and not (autocast and x.is_floating_point()):
            raise TypeError(f'input has dtype {x.dtype} but the operator '
                            f'domain {dom!r} has dtype {dtype}')
        x = x.to(dtype)
        if _is_pytorch(dom) and x.device != space_device(dom):
            raise ValueError(f'input is on {x.device} but the operator domain '
                             f'{dom!r} is on {space_device(dom)}')
        batch = x.shape[:x.ndim - nd]
        flat = x.reshape((-1,) + tuple(dom.shape))
        with torch.autocast(x.device.type, enabled=False):
            y = _OperatorFunction.apply(flat, self)
        return y.reshape(tuple(batch) + tuple(self.operator.range.shape))

    def extra_repr(self):
        return f'{self.operator!r}, batching={self.batching!r}'


def _adjoint_matrix(op, m):
    """The Euclidean matrix of ``op.adjoint`` from that of ``op``.

    ``A* = W_dom^{-1} M^T W_ran`` as an array map.
    """
    w_dom = space_weight(op.domain, 'cpu', torch.float64)
    w_ran = space_weight(op.range, 'cpu', torch.float64)
    mt = m.T.tocsr()
    if isinstance(w_dom, numbers.Number) and isinstance(w_ran,
                                                          numbers.Number):
        mt = mt * (w_ran / w_dom)
    else:
        d = np.broadcast_to(np.asarray(w_dom, dtype=np.float64).ravel()
                            if not isinstance(w_dom, numbers.Number)
                            else w_dom, (op.domain.size,))
        r = np.broadcast_to(np.asarray(w_ran, dtype=np.float64).ravel()
                            if not isinstance(w_ran, numbers.Number)
                            else w_ran, (op.range.size,))
        mt = scipy.sparse.diags(1 / d) @ mt @ scipy.sparse.diags(r)
    mt = scipy.sparse.csr_matrix(mt, dtype=m.dtype)
    mt.sort_indices()
    return mt


class _Astra3DStack:
    """A 2D parallel-beam ray transform (or its adjoint) on a stack of
    slices in one ASTRA CUDA call.

    The B images of a batch are the B slices of one volume; the detector
    gets B rows of the slice thickness, and the rays of ODL's
    ``parallel3d_vec`` geometry lie in the slices' planes, so slice k
    projects onto row k exactly. Tensors go to ASTRA by DLPack, on the GPU.
    """

    def __init__(self, operator):
        import astra
        self.astra = astra
        self.adjoint = not hasattr(operator, 'geometry')
        ray = operator.adjoint if self.adjoint else operator
        impl = ray.get_impl(True) if hasattr(ray, 'get_impl') else None
        if impl is None or not hasattr(impl, 'vol_geom'):
            raise ValueError(f'{ray!r} has no ASTRA CUDA backend to batch')
        self.ray, self.impl = ray, impl
        self._ids = {}

    def _projector(self, b):
        pid = self._ids.get(b)
        if pid is None:
            vol = dict(self.impl.vol_geom)
            opt = dict(vol['option'])
            dz = opt['WindowMaxZ'] - opt['WindowMinZ']  # one slice
            opt['WindowMinZ'], opt['WindowMaxZ'] = -b * dz / 2, b * dz / 2
            vol['option'], vol['GridSliceCount'] = opt, b
            proj = dict(self.impl.proj_geom)
            proj['DetectorRowCount'] = b
            pid = self.astra.create_projector('cuda3d', proj, vol)
            self._ids[b] = pid
        return pid

    def __call__(self, x):
        b = x.shape[0]
        pid = self._projector(b)
        img_shape = tuple(self.ray.domain.shape)
        n_ang, n_det = self.ray.range.shape
        # ASTRA's 3D layouts are (rows, angles, det) and (slices, y, x): a
        # batch (B, angles, det) / (B, H, W) is already one.
        if self.adjoint:
            proj = x.detach().contiguous()
            vol = torch.zeros((b,) + img_shape, dtype=x.dtype, device=x.device)
            self.astra.experimental.direct_BP3D(pid, vol, proj)
            return vol * self.impl.bp_scaling_factor
        vol = x.detach().contiguous()
        proj = torch.zeros((b, n_ang, n_det), dtype=x.dtype, device=x.device)
        self.astra.experimental.direct_FP3D(pid, vol, proj)
        return proj * self.impl.fp_scaling_factor
