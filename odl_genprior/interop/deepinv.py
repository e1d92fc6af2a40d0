"""deepinv interoperability: ODL operators as deepinv physics, and back.

* `as_physics`: a linear ODL operator as a deepinv ``LinearPhysics`` (a
  nonlinear one as a ``Physics``). ``A`` and ``A_adjoint`` run through
  `odl_genprior.bridge.OperatorLayer` on whole batches in deepinv's layout
  ``(B, C, *operator.domain.shape)`` (each channel one image); the adjoint
  is the Euclidean transpose deepinv expects, not ODL's adjoint in the
  spaces' weighted inner products.
* `as_operator`: a deepinv physics as an ODL operator (linear, with
  ``adjoint``, for a ``LinearPhysics``; with ``derivative`` for a
  nonlinear one), so ODL's solvers and the package's functionals run on it.
* `protocol_dataset`: the ``(x, y)`` pairs of a registered benchmark
  protocol as a torch ``Dataset`` in deepinv's ``(C, H, W)`` layout, with
  the protocol operator's physics.
* `as_solver`: a reconstruction method of the package as a deepinv solver
  ``model(y, physics) -> x`` on batches.

deepinv is an optional dependency (``pip install "odl-genprior[deepinv]"``):
this module imports it only inside the functions that need it, so
``import odl_genprior`` (and this module) work without it.

Inner products. ODL's ``uniform_discr`` spaces carry weights (the cell
volume ``w``), so ODL's adjoint ``A*`` satisfies ``<A x, y>_ran =
<x, A* y>_dom`` with weighted sums, while deepinv's ``A_adjoint`` is the
plain transpose ``A^T`` of the arrays (its ``adjointness_test`` sums
``u * v``). They are related by ``A^T = W_dom A* W_ran^{-1}``; the
physics uses `OperatorLayer.transpose`, which is exactly that, and
`as_operator` goes the other way, ``A* = W_dom^{-1} A^T W_ran``.

torchvision. deepinv imports torchvision. The torchvision wheel that
matches the CPU torch of this package (0.28.0 for torch 2.13.0) is built
against CUDA torch: its C++ operators (``nms``, ``roi_align``, ...) do not
load on a CPU torch, and torchvision 0.28.0 then fails at import (it
registers a fake kernel for ``torchvision::nms`` unconditionally).
`import_deepinv` (which every adapter calls) first runs
`prepare_torchvision`, which, only in that case, declares the two
operator schemas torchvision needs to import. torchvision's detection ops
stay unavailable (they raise torchvision's own "Couldn't load custom C++
ops" error); deepinv's physics, transforms and trainer do not use them.
"""
import copy
import importlib
import importlib.machinery
import importlib.util
import math
import numbers
import os
import sys

import numpy as np
import odl
import torch

from odl_genprior.bridge import (OperatorLayer, as_element, as_tensor,
                                 check_tensor_operator, module_device,
                                 space_device, space_dtype, space_weight)

__all__ = ('as_physics', 'as_operator', 'protocol_dataset', 'as_solver',
           'import_deepinv', 'prepare_torchvision', 'PhysicsOperator',
           'ProtocolDataset', 'MethodSolver')

INSTALL_HINT = 'pip install "odl-genprior[deepinv]"'

#: The torchvision operator schemas declared by `prepare_torchvision`
#: (those torchvision 0.28 registers fake kernels for without checking).
_TORCHVISION_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)
_torchvision_fragment = None  # kept alive: the declarations live with it


# --- importing deepinv -----------------------------------------------------

def prepare_torchvision():
    """Make torchvision importable where its C++ operators do not load.

    Does nothing (returns False) when torchvision is absent, already
    imported, or its ``_C`` extension loads. Otherwise (a CUDA build of
    torchvision next to a CPU torch) it declares the operator schemas that
    torchvision's import needs (`_TORCHVISION_SCHEMAS`, no kernels) and
    returns True; calling those operators still raises torchvision's
    "Couldn't load custom C++ ops".
    """
    global _torchvision_fragment
    if _torchvision_fragment is not None:
        return True
    if 'torchvision' in sys.modules:
        return False
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = list(spec.submodule_search_locations)[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, '_C' + suffix)
        if os.path.exists(path):
            try:
                torch.ops.load_library(path)
                return False  # loads: torchvision imports as it is
            except (OSError, RuntimeError):
                break
    fragment = torch.library.Library('torchvision', 'FRAGMENT')
    for schema in _TORCHVISION_SCHEMAS:
        if not hasattr(torch.ops.torchvision, schema.split('(')[0]):
            fragment.define(schema)
    _torchvision_fragment = fragment
    return True


def import_deepinv():
    """Return the ``deepinv`` module (after `prepare_torchvision`), or raise
    an ImportError that says how to install it."""
    if 'deepinv' not in sys.modules:
        prepare_torchvision()
    try:
        return importlib.import_module('deepinv')
    except ImportError as err:
        raise ImportError(f'odl_genprior.interop.deepinv needs deepinv: '
                          f'{INSTALL_HINT} ({err})') from err


# --- checks ----------------------------------------------------------------

def _check_operator(operator):
    check_tensor_operator(operator)
    for space, role in ((operator.domain, 'domain'),
                        (operator.range, 'range')):
        if getattr(space, 'is_complex', False):
            raise ValueError(f'operator {role} {space!r} is complex; deepinv '
                             'physics of real ODL operators only')


def _check_batch(t, space, dtype, what, owner):
    """``t`` must be a real tensor ``(B, C, *space.shape)`` (or one unbatched
    sample ``(C, *space.shape)``, as deepinv's ``compute_sqnorm`` may pass)
    of ``dtype``."""
    shape = tuple(space.shape)
    layout = '(B, C, ' + ', '.join(str(n) for n in shape) + ')'
    if not isinstance(t, torch.Tensor):
        raise TypeError(f'{owner}: {what} must be a torch.Tensor {layout}, '
                        f'got {type(t).__name__}')
    if t.ndim not in (len(shape) + 1, len(shape) + 2) or \
            tuple(t.shape[t.ndim - len(shape):]) != shape:
        raise ValueError(
            f'{owner}: {what} has shape {tuple(t.shape)}; deepinv\'s layout '
            f'for {space!r} is {layout}: a batch axis, a channel axis (C '
            f'images, each mapped alone) and the space\'s shape {shape}')
    if t.dtype != dtype:
        raise TypeError(f'{owner}: {what} has dtype {t.dtype}, but {space!r} '
                        f'has dtype {dtype}; convert it with .to({dtype})')


# --- ODL operator -> deepinv physics ----------------------------------------

class _OperatorPhysicsMixin:
    """What the two physics classes share (plain Python: no deepinv)."""

    def _attach(self, operator, batching):
        layer = OperatorLayer(operator, batching=batching)
        # Plain attributes, not submodules or buffers: the operator is
        # immutable, and ODL objects are no torch state (state_dict, .to()).
        object.__setattr__(self, 'odl_operator', operator)
        object.__setattr__(self, 'odl_layer', layer)

    def A(self, x, **kwargs):
        """``A x`` on a batch ``(B, C, *domain.shape)`` (other keywords,
        deepinv's physics parameters, are ignored: the operator has none)."""
        op = self.odl_operator
        _check_batch(x, op.domain, space_dtype(op.domain), 'x',
                     type(self).__name__ + '.A')
        return self.odl_layer(x)

    def __deepcopy__(self, memo):
        # deepinv's clone() deep-copies: copy the torch state, share the
        # (immutable) ODL operator and its layer with their cached matrices.
        memo[id(self.odl_operator)] = self.odl_operator
        memo[id(self.odl_layer)] = self.odl_layer
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new

    def extra_repr(self):
        return repr(self.odl_operator)


_CLASSES = {}


def _physics_classes():
    """The physics classes (made once, when deepinv is first needed)."""
    if _CLASSES:
        return _CLASSES
    dinv = import_deepinv()

    class OperatorPhysics(_OperatorPhysicsMixin, dinv.physics.Physics):
        """A nonlinear ODL operator as a deepinv ``Physics`` (see
        `as_physics`)."""

        def __init__(self, operator, noise_model=None, batching='auto',
                     **kwargs):
            super().__init__(noise_model=noise_model, **kwargs)
            self._attach(operator, batching)
            self.img_size = (1,) + tuple(operator.domain.shape)

        def A_jvp(self, x, v):
            """``A'(x) v`` on a batch: ``operator.derivative(x_i)(v_i)`` per
            sample (not differentiable; for ``compute_norm`` and the
            Jacobian's power method)."""
            # Directly, not by forward-mode AD through the layer: neither
            # torch.func.jvp (storage-less wrapped tensors) nor nested
            # forward_ad levels (a TorchOperator's derivative opens one)
            # get through to ODL.
            op = self.odl_operator
            dom, ran = op.domain, op.range
            owner = type(self).__name__ + '.A_jvp'
            _check_batch(x, dom, space_dtype(dom), 'x', owner)
            _check_batch(v, dom, space_dtype(dom), 'v', owner)
            lead = tuple(x.shape[:x.ndim - len(dom.shape)])
            if tuple(v.shape) != tuple(x.shape):
                raise ValueError(f'{owner}: v has shape {tuple(v.shape)}, x '
                                 f'{tuple(x.shape)}')
            xs = x.detach().reshape((-1,) + tuple(dom.shape))
            vs = v.detach().reshape((-1,) + tuple(dom.shape))
            out = torch.empty((xs.shape[0],) + tuple(ran.shape),
                              dtype=space_dtype(ran), device=x.device)
            for i in range(xs.shape[0]):
                d = op.derivative(as_element(xs[i], dom))
                out[i] = as_tensor(d(as_element(vs[i], dom)),
                                   device=x.device, dtype=out.dtype)
            return out.reshape(lead + tuple(ran.shape))

        def A_dagger(self, y, x_init=None):
            """deepinv's gradient-descent inverse, from zero unless
            ``x_init`` is given (a nonlinear physics has no ``A_adjoint``
            to start from)."""
            if x_init is None:
                op = self.odl_operator
                x_init = torch.zeros(
                    (y.shape[0], y.shape[1]) + tuple(op.domain.shape),
                    dtype=space_dtype(op.domain), device=y.device)
            return super().A_dagger(y, x_init=x_init)

    class LinearOperatorPhysics(_OperatorPhysicsMixin,
                                dinv.physics.LinearPhysics):
        """A linear ODL operator as a deepinv ``LinearPhysics`` (see
        `as_physics`)."""

        def __init__(self, operator, noise_model=None, batching='auto',
                     **kwargs):
            kwargs.setdefault('device', space_device(operator.domain))
            super().__init__(noise_model=noise_model,
                             img_size=(1,) + tuple(operator.domain.shape),
                             **kwargs)
            self._attach(operator, batching)

        def A_adjoint(self, y, **kwargs):
            """The Euclidean transpose ``A^T y = W_dom A*(W_ran^{-1} y)`` on
            a batch ``(B, C, *range.shape)``."""
            op = self.odl_operator
            _check_batch(y, op.range, space_dtype(op.range), 'y',
                         type(self).__name__ + '.A_adjoint')
            return self.odl_layer.transpose(y)

    for cls in (OperatorPhysics, LinearOperatorPhysics):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls  # so pickle finds them
        _CLASSES[cls.__name__] = cls
    return _CLASSES


def __getattr__(name):
    # OperatorPhysics, LinearOperatorPhysics: made on first use (deepinv)
    if name in ('OperatorPhysics', 'LinearOperatorPhysics'):
        return _physics_classes()[name]
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def as_physics(operator, noise_model=None, batching='auto', **kwargs):
    """An ODL operator as a deepinv physics.

    A linear operator gives a ``LinearPhysics`` (class
    ``LinearOperatorPhysics``), a nonlinear one a ``Physics``
    (``OperatorPhysics``). Both apply the operator through
    `odl_genprior.bridge.OperatorLayer` on whole batches, in deepinv's
    layout: ``x`` is ``(B, C, *operator.domain.shape)`` (for a 2D image
    space ``(B, C, H, W)``; each of the C channels is one image) and
    ``A(x)`` is ``(B, C, *operator.range.shape)`` (a sinogram
    ``(B, C, angles, detectors)``, as deepinv's own ``Tomography``).

    ``A_adjoint`` (linear) is the Euclidean transpose that deepinv's
    ``adjointness_test``, solvers and gradients assume:
    ``W_dom A*(W_ran^{-1} y)`` with ODL's adjoint ``A*`` and the spaces'
    inner-product weights (`OperatorLayer.transpose`). Both ``A`` and
    ``A_adjoint`` are differentiable (torch autograd through the layer).
    The nonlinear physics has ``A_vjp`` (the layer's backward:
    ``derivative(x).adjoint``, converted to Euclidean) and ``A_jvp``
    (forward mode through ``derivative(x)``), so deepinv's
    ``compute_norm`` works at a point.

    Inputs must have the dtype of the operator's spaces (float32 for ASTRA
    ray transforms) and, on ``impl='pytorch'`` spaces, their device; NumPy
    spaces take tensors on any device (results come back on it). Errors
    name the expected layout, dtype and space.

    Parameters
    ----------
    operator : odl.Operator
        Real domain and range (tensor spaces, ``uniform_discr`` spaces or
        power spaces of them).
    noise_model : deepinv.physics.NoiseModel, optional
        deepinv's noise model of ``physics(x)`` (default: none).
    batching : str, optional
        How the layer applies a batch (`OperatorLayer`): ``'auto'``
        (default), ``'matrix'``, ``'loop'``, ...
    **kwargs
        Passed to deepinv's ``Physics`` / ``LinearPhysics`` (``max_iter``,
        ``tol``, ``solver`` of ``A_dagger`` ...).

    Returns
    -------
    physics : deepinv.physics.LinearPhysics or deepinv.physics.Physics
        With ``physics.odl_operator`` (the operator) and
        ``physics.odl_layer`` (its `OperatorLayer`).
    """
    _check_operator(operator)
    classes = _physics_classes()
    cls = classes['LinearOperatorPhysics' if operator.is_linear
                  else 'OperatorPhysics']
    return cls(operator, noise_model=noise_model, batching=batching,
               **kwargs)


# --- deepinv physics -> ODL operator ----------------------------------------

def _real_space(space, role):
    if not hasattr(space, 'shape') or not hasattr(space, 'weighting'):
        raise TypeError(f'`{role}` must be an ODL tensor space, got '
                        f'{space!r}')
    if getattr(space, 'is_complex', False):
        raise ValueError(f'`{role}` {space!r} is complex; as_operator '
                         'supports real spaces only')


class PhysicsOperator(odl.Operator):
    """A deepinv physics as an ODL operator ``domain -> range`` (see
    `as_operator`)."""

    def __init__(self, physics, domain, range, img_size=None):
        dinv = import_deepinv()
        if not isinstance(physics, dinv.physics.Physics):
            raise TypeError(f'`physics` must be a deepinv Physics, got '
                            f'{type(physics).__name__}')
        _real_space(domain, 'domain')
        _real_space(range, 'range')
        img_size = ((1,) + tuple(domain.shape) if img_size is None
                    else tuple(int(n) for n in img_size))
        if math.prod(img_size) != domain.size:
            raise ValueError(f'img_size {img_size} does not hold the '
                             f'{domain.size} entries of domain {domain!r}')
        self.physics = physics
        self.img_size = img_size
        self.device = module_device(physics, default=space_device(domain))
        self.dtype = space_dtype(domain)
        linear = isinstance(physics, dinv.physics.LinearPhysics)
        # One application to zeros gives the measurement layout (the input
        # of A_adjoint and A_vjp) and checks the sizes now.
        probe = torch.zeros((1,) + img_size, dtype=self.dtype,
                            device=self.device)
        y = self._physics_call(physics.A, probe, 'A', range)
        self.meas_size = tuple(y.shape[1:])
        super().__init__(domain, range, linear=linear)

    def _physics_call(self, fn, t, name, out_space, grad=False):
        # A and A_adjoint without a graph; A_vjp may need autograd on
        try:
            with torch.set_grad_enabled(grad):
                y = fn(t)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0][:300]
            raise ValueError(
                f'{type(self.physics).__name__}.{name} failed on a '
                f'{tuple(t.shape)} {t.dtype} tensor on {t.device}: '
                f'{first}') from err
        if not isinstance(y, torch.Tensor):
            raise TypeError(f'{type(self.physics).__name__}.{name} returned '
                            f'{type(y).__name__}, not a tensor (stacked '
                            'physics are not supported)')
        if y.is_complex():
            raise TypeError(f'{type(self.physics).__name__}.{name} returned '
                            f'complex values ({y.dtype}); as_operator '
                            'supports real physics only')
        if y.numel() != out_space.size:
            raise ValueError(
                f'{type(self.physics).__name__}.{name} returned shape '
                f'{tuple(y.shape)} ({y.numel()} entries) but {out_space!r} '
                f'has {out_space.size} entries (shape {out_space.shape})')
        return y

    def _batch(self, x, space, size):
        return as_tensor(x, device=self.device,
                         dtype=space_dtype(space)).reshape((1,) + size)

    def _call(self, x):
        y = self._physics_call(self.physics.A,
                               self._batch(x, self.domain, self.img_size),
                               'A', self.range)
        return as_element(y, self.range)

    @property
    def adjoint(self):
        """ODL's adjoint ``W_dom^{-1} A^T W_ran`` (``A^T``: the physics'
        ``A_adjoint``)."""
        if not self.is_linear:
            raise odl.OpNotImplementedError(  # ODL's word for "no adjoint"
                f'{type(self.physics).__name__} is not a LinearPhysics: it '
                'has no adjoint (use derivative(x).adjoint)')
        return _PhysicsTranspose(self, None)

    def derivative(self, x):
        """The operator itself (linear), else the Jacobian at ``x``."""
        if self.is_linear:
            return self
        return _PhysicsJacobian(self, x)

    def __repr__(self):
        return (f'{type(self).__name__}({type(self.physics).__name__}, '
                f'{self.domain!r}, {self.range!r})')


def _weighted(t, space):
    w = space_weight(space, t.device, t.dtype)
    return t if isinstance(w, numbers.Number) and w == 1.0 else t * w


def _unweighted(t, space):
    w = space_weight(space, t.device, t.dtype)
    return t if isinstance(w, numbers.Number) and w == 1.0 else t / w


class _PhysicsTranspose(odl.Operator):
    """ODL's adjoint of a `PhysicsOperator` (``point=None``) or of its
    Jacobian at ``point``: ``W_dom^{-1} J^T (W_ran v)``."""

    def __init__(self, op, point):
        self.op = op
        self.point = point
        super().__init__(op.range, op.domain, linear=True)

    def _call(self, v):
        op = self.op
        t = as_tensor(v, device=op.device, dtype=space_dtype(op.range))
        t = _weighted(t.reshape(op.range.shape), op.range)
        t = t.reshape((1,) + op.meas_size)
        if self.point is None:
            fn, name = op.physics.A_adjoint, 'A_adjoint'
        else:
            def fn(u):
                return op.physics.A_vjp(self.point, u)
            name = 'A_vjp'
        g = op._physics_call(fn, t, name, op.domain,
                             grad=self.point is not None).detach()
        g = _unweighted(g.reshape(op.domain.shape).to(space_dtype(
            op.domain)), op.domain)
        return as_element(g, op.domain)

    @property
    def adjoint(self):
        if self.point is None:
            return self.op
        return _PhysicsJacobian(self.op, self.point)


class _PhysicsJacobian(odl.Operator):
    """The Jacobian of a nonlinear `PhysicsOperator` at a point (``A_jvp``
    where the physics has one, else forward-mode autograd through ``A``)."""

    def __init__(self, op, x):
        self.op = op
        if isinstance(x, torch.Tensor) and x.shape == (1,) + op.img_size:
            self.point = x
        else:
            self.point = op._batch(op.domain.element(x), op.domain,
                                   op.img_size)
        super().__init__(op.domain, op.range, linear=True)

    def _call(self, h):
        op = self.op
        t = op._batch(h, op.domain, op.img_size)
        jvp = getattr(op.physics, 'A_jvp', None)
        if jvp is None:
            def jvp(x, v):
                return torch.func.jvp(op.physics.A, (x,), (v,))[1]
        y = op._physics_call(lambda v: jvp(self.point, v), t, 'A_jvp',
                             op.range, grad=True).detach()
        return as_element(y, op.range)

    @property
    def adjoint(self):
        return _PhysicsTranspose(self.op, self.point)


def as_operator(physics, domain, range, img_size=None):
    """A deepinv physics as an ODL operator ``domain -> range``.

    ``op(x)`` runs ``physics.A`` on ``x`` reshaped to ``(1, *img_size)``
    (default ``img_size = (1, *domain.shape)``: one image with one
    channel) and reshapes the result to ``range.shape``; ``range`` must
    have as many entries as ``physics.A`` returns. Computation happens on
    the physics' device (of its first parameter or buffer) in the dtype
    of ``domain``.

    A ``LinearPhysics`` gives a linear operator whose ``adjoint`` is ODL's
    adjoint in the spaces' inner products, ``W_dom^{-1} A^T (W_ran y)``
    with deepinv's ``A_adjoint`` as ``A^T``, so ODL's solvers
    (``conjugate_gradient_normal``, ``pdhg``, ...) and the package's
    functionals run on it. Another ``Physics`` gives a nonlinear operator
    whose ``derivative(x)`` is the Jacobian (``physics.A_jvp`` where the
    physics has one, else forward-mode autograd through ``A``) with
    ``adjoint`` from ``physics.A_vjp``.

    Parameters
    ----------
    physics : deepinv.physics.Physics
    domain, range : real ODL tensor spaces (e.g. ``uniform_discr``)
    img_size : tuple of int, optional
        deepinv's ``(C, ...)`` shape of one input.

    Returns
    -------
    operator : PhysicsOperator
    """
    return PhysicsOperator(physics, domain, range, img_size=img_size)


# --- protocol -> deepinv data set --------------------------------------------

class ProtocolDataset(torch.utils.data.Dataset):
    """``(x, y)`` pairs as deepinv takes them: ``x`` ``(1, *domain.shape)``
    (the image), ``y`` ``(1, *range.shape)`` (its data), or dicts
    ``{'x': x, 'y': y}`` with ``format='dict'`` (the format deepinv 0.5
    recommends; its tuple format still works, with a DeprecationWarning
    in ``deepinv.datasets.check_dataset``)."""

    def __init__(self, x, y, physics=None, protocol=None, split=None,
                 format='tuple'):
        if format not in ('tuple', 'dict'):
            raise ValueError(f"format must be 'tuple' or 'dict', got "
                             f'{format!r}')
        if len(x) != len(y):
            raise ValueError(f'{len(x)} images but {len(y)} data')
        self.x, self.y = x, y
        self.physics = physics
        self.protocol = protocol
        self.split = split
        self.format = format

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        if self.format == 'dict':
            return {'x': self.x[index], 'y': self.y[index]}
        return self.x[index], self.y[index]


def protocol_dataset(protocol, n, split='train', cache=False,
                     format='tuple', **physics_kwargs):
    """The first ``n`` pairs of a protocol's ``split`` for deepinv, and the
    physics of the protocol's operator.

    Parameters
    ----------
    protocol : Protocol, str or dict
        A registered benchmark protocol
        (`odl_genprior.problems.protocol.PROTOCOLS`), its name (``'dival'``:
        DIVal's ellipses at its default size) or a config dict for
        `make_protocol` (``{'protocol': 'dival', 'size': 64}``).
    n : int
        Number of pairs (samples ``0..n-1`` of ``split``, the protocol's
        seeded pairs: ``protocol.pairs(n, split)``).
    split : {'train', 'validation', 'test'}
    cache : bool, optional
        Read and write the package's on-disk data-set cache
        (`odl_genprior.problems.ellipse_ct.cached_pairs`; sets of at least
        256 pairs). Default False: simulate.
    format : {'tuple', 'dict'}
        What an item is (`ProtocolDataset`).
    **physics_kwargs
        Passed to `as_physics`.

    Returns
    -------
    dataset : ProtocolDataset
        Items ``(x, y)``: the image ``(1, *domain.shape)`` and its noisy
        data ``(1, *range.shape)`` (the protocol's noise, already in ``y``:
        train deepinv with ``online_measurements=False``).
        ``dataset.physics`` is ``physics``.
    physics : deepinv.physics.LinearPhysics
        ``as_physics(protocol.operator)``, without a noise model.
    """
    from odl_genprior.problems.ellipse_ct import cached_pairs
    from odl_genprior.problems.protocol import Protocol, make_protocol
    if isinstance(protocol, str):
        bench = make_protocol({'protocol': protocol})
    elif isinstance(protocol, dict):
        bench = make_protocol(protocol)
    elif isinstance(protocol, Protocol):
        bench = protocol
    else:
        raise TypeError(f'`protocol` must be a Protocol, a protocol name or '
                        f'a config dict, got {type(protocol).__name__}')
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f'n must be an integer >= 1, got {n!r}')
    n = int(n)
    if cache:
        pairs = cached_pairs(bench, n, split)
    else:
        pairs = bench.pairs(n, split)
    y, x = pairs[0], pairs[-1]
    physics = as_physics(bench.operator, **physics_kwargs)
    dataset = ProtocolDataset(x[:, None], y[:, None], physics=physics,
                              protocol=bench, split=split, format=format)
    return dataset, physics


# --- reconstruction method -> deepinv solver ---------------------------------

class MethodSolver(torch.nn.Module):
    """A reconstruction method as a deepinv model ``(y, physics) -> x``
    (see `as_solver`)."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, y, physics, **kwargs):
        """Reconstruct each image of the batch ``y`` ``(B, C,
        *range.shape)``; returns ``(B, C, *domain.shape)`` on ``y``'s
        device."""
        from odl_genprior.problems.forward import ForwardProblem
        name = getattr(self.method, 'name', type(self.method).__name__)
        op = getattr(physics, 'odl_operator', None)
        if not isinstance(op, odl.Operator):
            raise TypeError(
                f'as_solver({name}): the physics must come from as_physics '
                f'(the method reconstructs with its ODL operator); got '
                f'{type(physics).__name__}')
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TypeError(
                f'as_solver({name}): y must be a real floating-point tensor, '
                f'got {getattr(y, "dtype", type(y).__name__)}')
        shape = tuple(op.range.shape)
        if y.ndim != len(shape) + 2 or tuple(y.shape[2:]) != shape:
            raise ValueError(
                f'as_solver({name}): y has shape {tuple(y.shape)}; the '
                f'physics\' data layout is (B, C, '
                + ', '.join(str(k) for k in shape) + ')')
        batch = getattr(self.method, 'reconstruct_batch', None)
        if batch is not None:  # a network: the whole batch in one pass
            flat = y.reshape((-1,) + shape)
            x = batch(op, flat)
            return x.reshape(tuple(y.shape[:2]) + tuple(op.domain.shape))
        delta = _noise_norm(physics, op)
        out = torch.empty((y.shape[0], y.shape[1]) + tuple(op.domain.shape),
                          dtype=space_dtype(op.domain), device=y.device)
        for b in range(y.shape[0]):
            for c in range(y.shape[1]):
                problem = ForwardProblem(
                    op, as_element(y[b, c], op.range), noise_level=delta,
                    name=f'deepinv batch[{b}, {c}]')
                x = self.method.reconstruct(problem, progress=False)
                out[b, c] = as_tensor(x, device=y.device,
                                      dtype=out.dtype)
        return out

    def extra_repr(self):
        return repr(self.method)


def _noise_norm(physics, op):
    """``||e||`` in ``op.range`` for deepinv's Gaussian noise of one scalar
    ``sigma`` (the ``noise_level`` of the package's problems), else NaN."""
    model = getattr(physics, 'noise_model', None)
    if type(model).__name__ != 'GaussianNoise':
        return float('nan')
    sigma = getattr(model, 'sigma', None)
    try:
        sigma = float(torch.as_tensor(sigma).reshape(()))
    except (RuntimeError, TypeError, ValueError):
        return float('nan')
    w = space_weight(op.range, 'cpu', torch.float64)
    total = (float(w) * op.range.size if isinstance(w, numbers.Number)
             else float(torch.broadcast_to(w, op.range.shape).sum()))
    return sigma * math.sqrt(total)


def as_solver(method):
    """A reconstruction method of the package as a deepinv solver.

    Returns a torch module ``solver(y, physics) -> x`` (deepinv's contract
    for reconstruction models, usable in ``deepinv.test``): each image of
    the batch ``y`` ``(B, C, *range.shape)`` becomes a
    `odl_genprior.problems.ForwardProblem` of the physics' ODL operator and
    is reconstructed by ``method.reconstruct(problem, progress=False)``
    (a method with ``reconstruct_batch``, a trained network such as
    ``LearnedReconstructor.pretrained('dival-lpd-long-128')``, takes the
    whole batch in one forward pass); the result is ``(B, C,
    *domain.shape)`` on ``y``'s device. The physics
    must come from `as_physics` (other physics are refused with a
    TypeError: the method needs the ODL operator). With deepinv's
    ``GaussianNoise(sigma)`` as the physics' noise model, the problems'
    ``noise_level`` is the norm of that noise in the operator's range (for
    discrepancy-principle stopping); else NaN.

    Parameters
    ----------
    method : odl_genprior.recon.base.Reconstructor
        E.g. ``FBP()``, ``TV()``,
        ``LearnedReconstructor.pretrained('dival-lpd-128')``.
    """
    from odl_genprior.recon.base import Reconstructor
    if not isinstance(method, Reconstructor):
        raise TypeError(f'as_solver takes a reconstruction method '
                        f'(odl_genprior.recon.base.Reconstructor), got '
                        f'{type(method).__name__}')
    return MethodSolver(method)
