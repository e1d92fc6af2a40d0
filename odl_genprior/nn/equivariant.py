"""Roto-translation equivariant CNNs (e2cnn) as plain torch modules.

Celledoni et al. (Inverse Problems 2021): a network that commutes with
rotations and translations of its input, used in place of the proximal
operator of a rotation-invariant regulariser inside an unrolled scheme.
The networks here are built from e2cnn's steerable convolutions for the
cyclic groups ``C_N`` (rotations by ``360/N`` degrees) and the dihedral
groups ``D_N`` (the same plus reflections): *trivial* fields (ordinary
images) at the input and output, *regular* fields (one channel per group
element) inside.

e2cnn's vocabulary (``FieldType``, ``GeometricTensor``) stays in this file:
every network takes and returns a plain ``torch.Tensor`` ``(B, C, H, W)``,
so it is an ordinary module, and through `odl_genprior.bridge.TorchOperator`
an ordinary ODL operator.

`rotation_equivariance_error` measures ``||f(R x) - R f(x)|| / ||R f(x)||``
for any module or ODL operator: exact rotations for multiples of 90
degrees, bilinear resampling on a centred disc otherwise.
"""
import math
import re
import warnings

import torch

__all__ = ('group_order', 'EquivariantCNN', 'EquivariantBlock',
           'rotate', 'rotation_equivariance_error')

_GROUP = re.compile(r'^([CD])(\d+)$')


def _parse_group(group):
    m = _GROUP.match(str(group).upper())
    if m is None or int(m.group(2)) < 2:
        raise ValueError(f"group must be 'C<N>' or 'D<N>' with N >= 2 "
                         f"(e.g. 'C4', 'C8', 'D4'), got {group!r}")
    return m.group(1), int(m.group(2))


def group_order(group):
    """Number of elements of the group ``'C<N>'`` (N) or ``'D<N>'`` (2N).

    A regular field of the group has this many channels.

    Examples
    --------
    >>> group_order('C4'), group_order('D4'), group_order('C8')
    (4, 8, 8)
    """
    kind, n = _parse_group(group)
    return n if kind == 'C' else 2 * n


def _numpy2_hash(self):
    def h(v):
        return hash(v.tobytes()) if hasattr(v, 'tobytes') else hash(v)
    return (hash(self.in_irrep) + hash(self.out_irrep) + h(self.mu)
            + h(self.gamma))


class _NumpyWithCopyFalse:
    """``numpy`` whose ``array(..., copy=False)`` means NumPy 1's "copy only
    if needed" (NumPy 2 raises instead)."""

    def __init__(self, np):
        self._np = np

    def __getattr__(self, name):
        return getattr(self._np, name)

    def array(self, obj, *args, copy=True, **kwargs):
        if copy is False:
            return self._np.asarray(obj, *args, **kwargs)
        return self._np.array(obj, *args, copy=copy, **kwargs)


def _patch_e2cnn():
    """Make e2cnn 0.2.3's reflection groups (``D_N``) build under NumPy 2.

    Its kernel bases hash with ``ndarray.tostring`` and sample with
    ``np.array(..., copy=False)``, both gone in NumPy 2; the same hash with
    ``tobytes``, and ``copy=False`` read as NumPy 1 did. Applied only where
    ``tostring`` is gone; the rotation groups (``C_N``) never reach it.
    """
    import numpy as np
    if hasattr(np.ndarray, 'tostring'):
        return
    from e2cnn.kernels import irreps_basis, utils
    if not isinstance(utils.np, _NumpyWithCopyFalse):
        utils.np = _NumpyWithCopyFalse(np)
    for name in ('R2FlipsSolution', 'R2ContinuousRotationsSolution',
                 'R2FlipsDiscreteRotationsSolution',
                 'R2FlipsContinuousRotationsSolution'):
        cls = getattr(irreps_basis, name, None)
        if cls is not None:
            cls.__hash__ = _numpy2_hash


def _gspace(group):
    from e2cnn import gspaces
    _patch_e2cnn()
    kind, n = _parse_group(group)
    return gspaces.Rot2dOnR2(n) if kind == 'C' else gspaces.FlipRot2dOnR2(n)


def _fields(gspace, group, channels, who):
    """``channels`` channels as regular fields (must fill whole fields)."""
    from e2cnn import nn as enn
    order = group_order(group)
    if channels % order:
        raise ValueError(f'{who}: {channels} channels are not a whole number '
                         f'of regular fields of {group} ({order} channels '
                         f'each); use a multiple of {order}')
    return enn.FieldType(gspace, [gspace.regular_repr] * (channels // order))


def _trivial(gspace, channels):
    from e2cnn import nn as enn
    return enn.FieldType(gspace, [gspace.trivial_repr] * channels)


def _conv(t_in, t_out, kernel_size):
    from e2cnn import nn as enn
    # e2cnn 0.2.3 indexes with uint8 masks when it builds the kernel basis.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        # recompute=True: e2cnn otherwise shares one basis module between
        # all convolutions of a kind, and .double() or .to(device) on one
        # network would convert the others.
        return enn.R2Conv(t_in, t_out, kernel_size, padding=kernel_size // 2,
                          recompute=True)


# e2cnn's convolutions keep their expanded filters as buffers in eval mode
# only, so a state_dict would depend on the mode it was saved in. They are
# derived from the weights: never saved, rebuilt after loading.
_DERIVED = ('filter', 'expanded_bias')


def _drop_derived(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix)
                and k.rsplit('.', 1)[-1] in _DERIVED]:
        del state_dict[key]
    return state_dict


def _rebuild_derived(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if k.rsplit('.', 1)[-1] not in _DERIVED]
    if not module.training:  # refresh the eval-mode filters from the weights
        module.train()
        module.eval()


class _TensorModule(torch.nn.Module):
    """Wraps an e2cnn module: plain tensors in and out."""

    def __init__(self, net, in_type, in_channels, group):
        super().__init__()
        self.net = net
        self.in_type = in_type
        self.in_channels = in_channels
        self.group = group
        self.train()  # e2cnn builds its modules with eval-mode buffers
        self._register_state_dict_hook(_drop_derived)
        self.register_load_state_dict_post_hook(_rebuild_derived)

    def forward(self, x):
        from e2cnn import nn as enn
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__}: expected a (batch, '
                f'{self.in_channels}, H, W) tensor, got shape '
                f'{tuple(x.shape)}')
        return self.net(enn.GeometricTensor(x, self.in_type)).tensor

    def export(self):
        """A plain torch copy (``nn.Conv2d`` layers) for fast inference.

        e2cnn rebuilds every filter from its basis at each training-mode
        call; the export stores the filters once. Same outputs up to
        float rounding.
        """
        self.eval()
        return _Exported(self.net.export(), self.in_channels)


class _Exported(torch.nn.Module):
    def __init__(self, net, in_channels):
        super().__init__()
        self.net = net
        self.in_channels = in_channels

    def forward(self, x):
        return self.net(x)


class _ResidualBlock(torch.nn.Module):
    """``x + conv(relu(conv(x)))`` on one field type (e2cnn tensors)."""

    def __init__(self, field_type, kernel_size):
        super().__init__()
        from e2cnn import nn as enn
        self.body = enn.SequentialModule(
            _conv(field_type, field_type, kernel_size),
            enn.ReLU(field_type),
            _conv(field_type, field_type, kernel_size))
        self.out = enn.ReLU(field_type)

    def forward(self, x):
        return self.out(x + self.body(x))

    def export(self):
        return _ExportedResidual(self.body.export(), self.out.export())


class _ExportedResidual(torch.nn.Module):
    def __init__(self, body, out):
        super().__init__()
        self.body = body
        self.out = out

    def forward(self, x):
        return self.out(x + self.body(x))


class EquivariantCNN(_TensorModule):
    """A CNN equivariant to rotations in ``group`` and to translations.

    ``in_channels`` images -> conv -> ReLU -> (``num_layers - 2``) x
    (conv -> ReLU) on regular fields -> conv -> ``out_channels`` images.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output (trivial fields: ordinary images).
    hidden_channels : int, optional
        Channels of every hidden layer; a multiple of ``group_order(group)``
        (e.g. 32 channels = 8 regular fields of C4).
    num_layers : int, optional
        Number of convolutions, at least 2.
    group : str, optional
        ``'C<N>'`` or ``'D<N>'``.
    kernel_size : int, optional
        Odd kernel size (padding keeps the image size).

    Examples
    --------
    >>> net = EquivariantCNN(1, 1, hidden_channels=8, group='C4')
    >>> x = torch.randn(2, 1, 16, 16)
    >>> net(x).shape
    torch.Size([2, 1, 16, 16])
    >>> rotation_equivariance_error(net, x, 90) < 1e-5
    True
    """

    def __init__(self, in_channels, out_channels, hidden_channels=32,
                 num_layers=3, group='C4', kernel_size=3):
        from e2cnn import nn as enn
        if num_layers < 2:
            raise ValueError(f'num_layers must be >= 2, got {num_layers}')
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        gs = _gspace(group)
        t_in = _trivial(gs, in_channels)
        hid = _fields(gs, group, hidden_channels, 'EquivariantCNN')
        layers = [_conv(t_in, hid, kernel_size), enn.ReLU(hid)]
        for _ in range(num_layers - 2):
            layers += [_conv(hid, hid, kernel_size), enn.ReLU(hid)]
        layers.append(_conv(hid, _trivial(gs, out_channels), kernel_size))
        super().__init__(enn.SequentialModule(*layers), t_in, in_channels,
                         group)
        self.out_channels = out_channels


class EquivariantBlock(_TensorModule):
    """Celledoni et al.'s unrolling block, equivariant under ``group``.

    conv (images -> regular fields) -> ReLU -> residual block
    (conv -> ReLU -> conv, plus the input, -> ReLU) -> conv (-> images).
    The ordinary counterpart with the same channel counts is
    `odl_genprior.nn.unrolled.ConvBlock`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output images.
    hidden_channels : int, optional
        A multiple of ``group_order(group)``.
    group : str, optional
        ``'C<N>'`` or ``'D<N>'``.
    kernel_size : int, optional
        Odd kernel size.

    Examples
    --------
    >>> block = EquivariantBlock(7, 6, hidden_channels=8, group='C4')
    >>> block(torch.randn(1, 7, 12, 12)).shape
    torch.Size([1, 6, 12, 12])
    """

    def __init__(self, in_channels, out_channels, hidden_channels=32,
                 group='C4', kernel_size=3):
        from e2cnn import nn as enn
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        gs = _gspace(group)
        t_in = _trivial(gs, in_channels)
        hid = _fields(gs, group, hidden_channels, 'EquivariantBlock')
        net = _ExportableSequential(
            _conv(t_in, hid, kernel_size), enn.ReLU(hid),
            _ResidualBlock(hid, kernel_size),
            _conv(hid, _trivial(gs, out_channels), kernel_size))
        super().__init__(net, t_in, in_channels, group)
        self.out_channels = out_channels


class _ExportableSequential(torch.nn.Module):
    """A sequence of e2cnn modules (and residual blocks) with ``export``."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def export(self):
        return torch.nn.Sequential(*[layer.export() for layer in self.layers])


# --- measuring equivariance -------------------------------------------------

def rotate(x, angle):
    """Rotate a batch ``(..., H, W)`` counter-clockwise by ``angle`` degrees.

    Multiples of 90 degrees are exact (``torch.rot90``); other angles use
    bilinear resampling about the image centre, zero outside.

    Examples
    --------
    >>> x = torch.arange(4.).reshape(1, 1, 2, 2)
    >>> torch.equal(rotate(rotate(x, 90), 270), x)
    True
    """
    k, rest = divmod(float(angle), 90.0)
    if rest == 0.0:
        return torch.rot90(x, int(k) % 4, dims=(-2, -1))
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])
    t = math.radians(angle)
    # affine_grid maps output to input coordinates (x right, y down), so a
    # counter-clockwise image rotation samples at the clockwise-rotated point.
    theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0],
                          [math.sin(t), math.cos(t), 0.0]],
                         dtype=x.dtype, device=x.device)
    grid = torch.nn.functional.affine_grid(
        theta.expand(flat.shape[0], 2, 3), flat.shape, align_corners=False)
    out = torch.nn.functional.grid_sample(flat, grid, mode='bilinear',
                                          padding_mode='zeros',
                                          align_corners=False)
    return out.reshape(shape)


def _disc(shape, margin, device, dtype):
    h, w = shape[-2:]
    yy = torch.arange(h, device=device, dtype=dtype) - (h - 1) / 2
    xx = torch.arange(w, device=device, dtype=dtype) - (w - 1) / 2
    r = min(h, w) / 2 - margin
    return (yy[:, None] ** 2 + xx[None, :] ** 2 <= r ** 2).to(dtype)


def _as_function(f):
    """A tensor -> tensor function from a module or an ODL operator."""
    import odl
    if isinstance(f, odl.Operator):
        from odl_genprior.bridge import OperatorLayer
        return OperatorLayer(f)
    if not callable(f):
        raise TypeError(f'expected a torch module, a callable or an ODL '
                        f'operator, got {type(f).__name__}')
    return f


def rotation_equivariance_error(f, x, angle=90, margin=None):
    """Relative error ``||f(R x) - R f(x)|| / ||R f(x)||`` of a rotation.

    Parameters
    ----------
    f : torch.nn.Module, callable or odl.Operator
        A map of image batches; an ODL operator is applied through
        `odl_genprior.bridge.OperatorLayer` (``x`` then has shape
        ``(B, *f.domain.shape)``).
    x : torch.Tensor
        Input batch ``(..., H, W)`` with ``H == W``.
    angle : float, optional
        Rotation angle in degrees.
    margin : int, optional
        For angles that are not multiples of 90 degrees both sides are
        compared on the centred disc of radius ``H/2 - margin`` (the
        corners leave the grid); default ``H // 8``.

    Returns
    -------
    error : float

    Examples
    --------
    >>> conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = torch.randn(1, 1, 16, 16)
    >>> rotation_equivariance_error(conv, x, 90) > 1e-3  # generic filter
    True
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f'rotation needs square images, got shape '
                         f'{tuple(x.shape)}')
    fn = _as_function(f)
    with torch.no_grad():
        fx_rot = rotate(fn(x), angle)
        f_rotx = fn(rotate(x, angle))
    if fx_rot.shape != f_rotx.shape or fx_rot.shape[-1] != fx_rot.shape[-2]:
        raise ValueError(f'f must map square images to square images; '
                         f'got output shapes {tuple(fx_rot.shape)}, '
                         f'{tuple(f_rotx.shape)}')
    if float(angle) % 90.0 != 0.0:
        margin = fx_rot.shape[-1] // 8 if margin is None else margin
        mask = _disc(fx_rot.shape, margin, fx_rot.device, fx_rot.dtype)
        fx_rot, f_rotx = fx_rot * mask, f_rotx * mask
    den = torch.linalg.vector_norm(fx_rot)
    if den == 0:
        raise ValueError('f(x) is zero on the compared region: use another x')
    return float(torch.linalg.vector_norm(f_rotx - fx_rot) / den)
