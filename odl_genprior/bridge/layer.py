"""An ODL operator as a torch layer on whole batches (`OperatorLayer`):
per-sample calls, the sparse matrix, the module itself, one ASTRA call."""

import numpy as np
import odl
import torch

from odl_genprior.bridge import per_sample
from odl_genprior.bridge.convert import (_is_one, _is_pytorch, as_tensor,
                                         space_device, space_dtype,
                                         space_weight)
from odl_genprior.bridge.matrix import (MatrixAssemblyTooSlow,
                                        _adjoint_matrix, _torch_csr,
                                        operator_matrix)
from odl_genprior.bridge.torch_operator import TorchOperator


# --- ODL operator -> torch layer --------------------------------------------

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
    # Not 'astra3d': on an H200 it differed from ODL's own per-sample
    # astra_cuda calls (rows a pixel high, slices 2 thick); the geometry is
    # fixed (`_stack_geometries`) but not yet checked on a GPU.
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
      through DLPack, no host copy). Not chosen by ``'auto'``: on an H200
      it differed from the per-sample loop, and its fix (`_stack_geometries`)
      has not yet run on a GPU;
    * ``'auto'`` (default): ``'module'`` where it applies;
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
        return per_sample.apply_per_sample(self.operator, x).to(x.device)

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


def _stack_geometries(vol_geom, proj_geom, b):
    """ASTRA's volume and projection geometry of ``b`` stacked slices, from
    ODL's one-slice ``astra_cuda`` geometries of a 2D parallel beam.

    ODL gives the slice a thickness ``dz`` (the volume window in z) and
    the one detector row the height of a detector pixel. Stacked, slice k
    must project onto row k: the slices keep their thickness and the rows
    get the same height, so that row centres and slice centres coincide
    (an in-plane ray then samples slice k exactly, and the backprojection
    reads row k at voxel centres). The heights play no other part: the
    forward rays lie in the slices' planes, and ODL's ``'2d_weighting'``
    kernel weights the backprojection without the row height.

    Examples
    --------
    >>> import astra
    >>> vol = astra.create_vol_geom(4, 4, 1, -2, 2, -2, 2, -1, 1)
    >>> vec = np.array([[0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0.5]])
    >>> proj = astra.create_proj_geom('parallel3d_vec', 1, 6, vec)
    >>> v, p = _stack_geometries(vol, proj, 3)
    >>> v['GridSliceCount'], v['option']['WindowMinZ'], p['DetectorRowCount']
    (3, -3.0, 3)
    >>> p['Vectors'][0, 9:12].tolist()  # rows as high as the slices
    [0.0, 0.0, 2.0]
    """
    vol = dict(vol_geom)
    opt = dict(vol['option'])
    dz = opt['WindowMaxZ'] - opt['WindowMinZ']  # one slice
    opt['WindowMinZ'], opt['WindowMaxZ'] = -b * dz / 2, b * dz / 2
    vol['option'], vol['GridSliceCount'] = opt, b
    proj = dict(proj_geom)
    vec = np.array(proj['Vectors'], dtype=float)
    rows = vec[:, 9:12]  # ASTRA's v: from one detector row to the next
    vec[:, 9:12] = rows * (dz / np.linalg.norm(rows, axis=1, keepdims=True))
    proj['Vectors'], proj['DetectorRowCount'] = vec, b
    return vol, proj


class _Astra3DStack:
    """A 2D parallel-beam ray transform (or its adjoint) on a stack of
    slices in one ASTRA CUDA call.

    The B images of a batch are the B slices of one volume and the B rows
    of one detector (`_stack_geometries`); the projector is ODL's own
    (``cuda3d`` with the ``'2d_weighting'`` kernel) and so are the scaling
    factors. Tensors go to ASTRA by DLPack, on the GPU.
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
            vol, proj = _stack_geometries(self.impl.vol_geom,
                                          self.impl.proj_geom, b)
            # as ODL's astra_projector(..., override_2D=True) makes it
            pid = self.astra.projector3d.create({
                'type': 'cuda3d', 'VolumeGeometry': vol,
                'ProjectionGeometry': proj, 'options': {},
                'ProjectionKernel': '2d_weighting'})
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
