"""A ``torch.nn.Module`` as an ODL operator (`TorchOperator`): the
Jacobian-vector product as its derivative, the vector-Jacobian product as
the derivative's adjoint, both from torch autograd."""
import numbers

import numpy as np
import odl
import torch
import torch.autograd.forward_ad as fwad

from odl_genprior.bridge.convert import (
    _check_input, _check_space, _is_pytorch, as_element, as_tensor,
    module_device, space_device, space_dtype, space_weight)


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
    # One walk over the modules' own dicts: three walks through
    # parameters(), buffers() and modules() cost 3x on every cache lookup.
    key = []
    for m in module.modules():
        key.append(m.training)
        for group in (m._parameters, m._buffers):
            for t in group.values():
                if t is not None:
                    key.append((id(t), t._version))
    return tuple(key)


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
