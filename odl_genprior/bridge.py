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
import numbers

import numpy as np
import odl
import torch
import torch.autograd.forward_ad as fwad
from odl.core.space.base_tensors import TensorSpace
from odl.core.space.pspace import ProductSpaceElement

__all__ = ('TorchOperator', 'OperatorLayer', 'as_tensor', 'as_element',
           'to_numpy', 'space_device', 'module_device')


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


def _torch_dtype(space):
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
    """Wrap tensor ``t`` as an element of ``space`` (no copy if possible).

    The tensor is detached first: ODL never sees an autograd graph.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> as_element(torch.tensor([1.0, 2.0], dtype=torch.float64), space)
    rn(2).element([ 1.,  2.])
    """
    t = t.detach()
    if _is_pytorch(space):
        t = t.to(device=space_device(space), dtype=_torch_dtype(space))
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


def _weight(space, device, dtype):
    """The inner-product weight of ``space`` as a float or a tensor."""
    if isinstance(space, odl.ProductSpace):
        outer = _weight_of(space, space.weighting)
        inner = _weight(space[0], device, dtype)
        if not isinstance(outer, numbers.Number):
            raise TypeError(f'{space!r} has a non-constant product weighting; '
                            'its adjoint cannot be formed')
        return outer * inner
    return _weight_of(space, space.weighting, device, dtype)


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

class _Linearization:
    """A point, the module's output there, and the autograd graph between."""

    __slots__ = ('x', 'y')

    def __init__(self, x, y):
        self.x = x  # private leaf copy (requires_grad), also the cache key
        self.y = y  # output with graph (None if recorded without graph)

    def matches(self, t):
        return self.x.shape == t.shape and torch.equal(self.x.detach(), t)


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
                 cache_graph=True):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f'`module` must be a torch.nn.Module, got '
                            f'{type(module).__name__}')
        _check_space(domain, 'domain')
        _check_space(range, 'range')
        self.module = module
        self.in_shape = (tuple(in_shape) if in_shape is not None
                         else (1,) + tuple(domain.shape))
        if int(np.prod(self.in_shape)) != domain.size:
            raise ValueError(f'`in_shape` {self.in_shape} does not hold the '
                             f'{domain.size} entries of domain {domain!r}')
        self.device = module_device(module, default=space_device(domain))
        self.dtype = _torch_dtype(domain)
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
        if _torch_dtype(range) != self.dtype:
            raise TypeError(f'range {range!r} has dtype {_torch_dtype(range)}'
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
        y = self.module(t.reshape(self.in_shape))
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
        cache = self._cache
        if cache is not None and cache.y is not None and cache.matches(t):
            return cache
        leaf = t.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = self._run(leaf)
        self._cache = _Linearization(leaf, y)
        return self._cache

    def _call(self, x):
        if self.cache_graph:
            y = self.linearization(x).y
        else:
            t = self._to_module(x)
            cache = self._cache
            if cache is not None and cache.matches(t):
                y = cache.y
            else:
                with torch.no_grad():
                    y = self._run(t)
        # A copy, so that ODL's in-place updates cannot touch the graph.
        return as_element(y.detach().clone(), self.range)

    # -- derivative and adjoint --
    def derivative(self, x):
        """The Jacobian of the module at ``x`` as a linear ODL operator."""
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
        self._w_dom = _weight(op.domain, op.device, op.dtype)
        self._w_ran = _weight(op.range, op.device, op.dtype)
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
        dtype = _torch_dtype(space)
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
    dev, dt = space_device(ran), _torch_dtype(ran)
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
        return _apply_per_sample(layer.operator, x).to(x.device)

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
            return _apply_per_sample(op, x_t).to(x_t.device)
        (x,) = ctx.saved_tensors
        dom, ran = op.domain, op.range
        xs = x.detach() if _is_pytorch(dom) else x.detach().cpu().numpy()
        ts = x_t.detach() if _is_pytorch(dom) else x_t.detach().cpu().numpy()
        out = torch.empty((x.shape[0],) + tuple(ran.shape),
                          dtype=_torch_dtype(ran), device=x_t.device)
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


class OperatorLayer(torch.nn.Module):
    """An ODL operator as a torch layer, with autograd.

    The input has shape ``(*batch, *operator.domain.shape)`` (any number of
    leading batch axes, or none) and the output
    ``(*batch, *operator.range.shape)``. Backward applies the operator's
    adjoint (linear operators, itself a layer, so double backward works) or
    ``derivative(x).adjoint`` per sample (nonlinear operators), converted
    from ODL's weighted inner products to the plain Euclidean gradient
    torch expects. On ``impl='pytorch'`` spaces samples are handed to ODL
    without a host copy.

    Parameters
    ----------
    operator : odl.Operator
        Real domain and range.

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
    """

    def __init__(self, operator):
        super().__init__()
        if not isinstance(operator, odl.Operator):
            raise TypeError(f'`operator` must be an odl.Operator, got '
                            f'{type(operator).__name__}')
        for space, role in ((operator.domain, 'domain'),
                            (operator.range, 'range')):
            if not hasattr(space, 'shape') or not hasattr(space, 'weighting'):
                raise TypeError(f'operator {role} {space!r} is not a tensor '
                                'space')
        self.operator = operator
        self._adjoint_layer = None
        self._weights = {}

    def weights(self, device, dtype):
        """Inner-product weights (domain, range) of the operator's spaces."""
        key = (device, dtype)
        if key not in self._weights:
            self._weights[key] = (_weight(self.operator.domain, device, dtype),
                                  _weight(self.operator.range, device, dtype))
        return self._weights[key]

    def adjoint_layer(self):
        """`OperatorLayer` of the adjoint, for linear operators."""
        if self._adjoint_layer is None:
            adjoint = OperatorLayer(self.operator.adjoint)
            # Plain attributes, not submodules: the two layers refer to each
            # other, and a cycle of submodules makes .eval() or .to() recurse
            # forever.
            object.__setattr__(self, '_adjoint_layer', adjoint)
            object.__setattr__(adjoint, '_adjoint_layer', self)
        return self._adjoint_layer

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
        dtype = _torch_dtype(dom)
        if x.dtype != dtype:
            raise TypeError(f'input has dtype {x.dtype} but the operator '
                            f'domain {dom!r} has dtype {dtype}')
        if _is_pytorch(dom) and x.device != space_device(dom):
            raise ValueError(f'input is on {x.device} but the operator domain '
                             f'{dom!r} is on {space_device(dom)}')
        batch = x.shape[:x.ndim - nd]
        flat = x.reshape((-1,) + tuple(dom.shape))
        y = _OperatorFunction.apply(flat, self)
        return y.reshape(tuple(batch) + tuple(self.operator.range.shape))

    def extra_repr(self):
        return repr(self.operator)
