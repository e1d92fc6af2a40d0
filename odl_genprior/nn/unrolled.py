"""Unrolled reconstruction networks over any ODL forward operator.

Each scheme unrolls an iterative method for ``A x = y`` into a fixed number
of steps with separate learned weights; the forward operator and its adjoint
enter every step through `odl_genprior.bridge.OperatorLayer` (a batched ODL
operator with autograd), so any operator from `odl_genprior.problems` (an
ASTRA ray transform, a blur, a matrix) works unchanged.

* `LearnedGradientDescent` (Adler and Oktem 2017):
  ``[x, s] <- [x + dx, s']`` with ``(dx, s') = Gamma_k(x, A^T(A x - y), s)``.
* `LearnedPrimalDual` (Adler and Oktem 2018): learned updates in the data
  space (dual, ``h``) and the image space (primal, ``f``).
* `LearnedForwardBackward` (Celledoni et al. 2021): ``x0 = 0``, a memory of
  5 channels, 8 steps; each step concatenates ``(x, A^T(A x - y), memory)``
  and applies conv -> residual block -> conv, split into ``(dx, memory)``.

Every image-space block is either ordinary (`ConvBlock`, `ConvNet`) or
equivariant under rotations in a group ``C_N`` / ``D_N``
(`odl_genprior.nn.equivariant`), with the same channel counts. The operator is
scaled by ``1 / ||A||`` inside (``||A||`` by ODL's power method, or given),
so the same learning rate suits any operator. Every scheme starts from zeros
(the papers) or, with ``start='fbp'``, from the data's filtered
back-projection (DIVal's ``init_fbp``, which its reference figures use).
"""
import inspect
import numbers

import odl
import torch
from odl.applications import tomo

from odl_genprior.bridge import OperatorLayer
from odl_genprior.metrics import operator_norm

__all__ = ('ConvBlock', 'ConvNet', 'make_block', 'LearnedGradientDescent',
           'LearnedPrimalDual', 'LearnedForwardBackward', 'SCHEMES',
           'STARTS')

#: Starting images of the schemes: zeros (the papers) or the data's FBP.
STARTS = ('zero', 'fbp')


def _conv(cin, cout, k):
    return torch.nn.Conv2d(cin, cout, k, padding=k // 2)


class ConvBlock(torch.nn.Module):
    """conv -> ReLU -> residual block -> conv, the ordinary unrolling block.

    The residual block is ``relu(h + conv(relu(conv(h))))``; the same
    structure as `odl_genprior.nn.equivariant.EquivariantBlock`.

    Examples
    --------
    >>> ConvBlock(7, 6, hidden_channels=8)(torch.randn(2, 7, 10, 10)).shape
    torch.Size([2, 6, 10, 10])
    """

    def __init__(self, in_channels, out_channels, hidden_channels=32,
                 kernel_size=3):
        super().__init__()
        k = kernel_size
        self.head = _conv(in_channels, hidden_channels, k)
        self.res1 = _conv(hidden_channels, hidden_channels, k)
        self.res2 = _conv(hidden_channels, hidden_channels, k)
        self.tail = _conv(hidden_channels, out_channels, k)

    def forward(self, x):
        h = torch.relu(self.head(x))
        h = torch.relu(h + self.res2(torch.relu(self.res1(h))))
        return self.tail(h)


class ConvNet(torch.nn.Sequential):
    """``num_layers`` convolutions with ReLU between (Adler and Oktem's
    3-layer update network by default).

    Examples
    --------
    >>> ConvNet(3, 2, hidden_channels=8)(torch.randn(1, 3, 6, 6)).shape
    torch.Size([1, 2, 6, 6])
    """

    def __init__(self, in_channels, out_channels, hidden_channels=32,
                 num_layers=3, kernel_size=3):
        layers = [_conv(in_channels, hidden_channels, kernel_size)]
        for _ in range(num_layers - 2):
            layers += [torch.nn.ReLU(),
                       _conv(hidden_channels, hidden_channels, kernel_size)]
        layers += [torch.nn.ReLU(),
                   _conv(hidden_channels, out_channels, kernel_size)]
        super().__init__(*layers)


def make_block(in_channels, out_channels, hidden_channels=32, group=None,
               kernel_size=3, residual=True):
    """An image-space block, ordinary (``group=None``) or equivariant.

    Parameters
    ----------
    in_channels, out_channels, hidden_channels : int
        Channel counts; with a group, ``hidden_channels`` must be a multiple
        of its order (32 channels = 8 regular fields of C4).
    group : str, optional
        ``None`` (translations only), ``'C<N>'`` or ``'D<N>'``.
    residual : bool, optional
        True: `ConvBlock` / `EquivariantBlock` (Celledoni et al.); False:
        the 3-layer `ConvNet` / `EquivariantCNN` (Adler and Oktem).

    Examples
    --------
    >>> type(make_block(7, 6, 8)).__name__
    'ConvBlock'
    >>> type(make_block(7, 6, 8, group='C4')).__name__
    'EquivariantBlock'
    """
    if group is None:
        block = (ConvBlock(in_channels, out_channels, hidden_channels,
                           kernel_size) if residual else
                 ConvNet(in_channels, out_channels, hidden_channels, 3,
                         kernel_size))
    else:
        from odl_genprior.nn.equivariant import EquivariantBlock, EquivariantCNN
        block = (EquivariantBlock(in_channels, out_channels, hidden_channels,
                                  group, kernel_size) if residual else
                 EquivariantCNN(in_channels, out_channels, hidden_channels, 3,
                                group, kernel_size))
    return _quiet_start(block)


def _quiet_start(block, scale=0.1):
    """Shrink the last layer so that each update starts small.

    The schemes add the block's output to the iterate; with default
    initialisation (e2cnn's in particular) the first updates are O(10) and
    training starts from an exploding iterate.
    """
    last = [m for m in block.modules()
            if any(True for _ in m.parameters(recurse=False))][-1]
    with torch.no_grad():
        for name, p in last.named_parameters(recurse=False):
            if 'bias' in name:
                p.zero_()
            else:
                p.mul_(scale)
    return block


class _Unrolled(torch.nn.Module):
    """Shared parts: the scaled operator layers and the input checks."""

    #: the scheme's key in configs and on the command line
    scheme = None
    #: its name in tables ('learned PD', ...)
    display_name = None

    @classmethod
    def defaults(cls):
        """The scheme's architecture options and their defaults, read from
        its constructor: what a config records and may set (one place, so
        that a new option cannot be left out of configs).

        Examples
        --------
        >>> LearnedPrimalDual.defaults()['n_iter']
        10
        >>> sorted(LearnedForwardBackward.defaults())
        ['hidden_channels', 'memory', 'n_iter', 'start']
        """
        params = inspect.signature(cls.__init__).parameters
        return {k: p.default for k, p in params.items()
                if k not in ('self', 'operator', 'group', 'opnorm')
                and p.default is not p.empty}

    def __init__(self, operator, opnorm=None, start='zero'):
        super().__init__()
        if start not in STARTS:
            raise ValueError(f'start must be one of {STARTS}, got {start!r}')
        if not isinstance(operator, odl.Operator) or not operator.is_linear:
            raise TypeError(f'{type(self).__name__} needs a linear ODL '
                            f'operator, got {operator!r}')
        if len(operator.domain.shape) != 2:
            raise ValueError(f'{type(self).__name__} needs images: the '
                             f'operator domain {operator.domain!r} has shape '
                             f'{operator.domain.shape}, not (H, W)')
        if opnorm is None:
            # ODL's power method; a fixed start keeps the model reproducible.
            opnorm = operator_norm(operator, maxiter=100)
        if not isinstance(opnorm, numbers.Real) or not opnorm > 0:
            raise ValueError(f'opnorm must be a positive number, got {opnorm}')
        self.operator = operator
        self.opnorm = float(opnorm)
        # OperatorLayer has no parameters: nothing enters the state_dict.
        self._A = OperatorLayer(operator)
        self._At = self._A.adjoint_layer()
        self.image_shape = tuple(operator.domain.shape)
        self.data_shape = tuple(operator.range.shape)
        self.start = start
        if start == 'fbp':
            geometry = getattr(operator, 'geometry', None)
            if geometry is None:
                raise ValueError(f"start='fbp' needs a ray transform (an "
                                 f'operator with a geometry), got {operator!r}')
            # DIVal's init_fbp: Hann filter, frequency scaling 0.4; ODL's
            # fbp_op is A^* after its filter, so the filter is a layer of
            # its own (a sparse matrix once that pays: each row mixes one
            # angle's detector pixels) before this network's A^T layer.
            fbp_filter = tomo.fbp_filter_op(operator, filter_type='Hann',
                                            frequency_scaling=0.4)
            self._fbp_filter = OperatorLayer(fbp_filter, cache=False)
            self._fbp = torch.nn.Sequential(self._fbp_filter, self._At)

    def A(self, x):
        """``A x / ||A||`` on a batch ``(B, C, H, W)`` (channels kept).

        Inside a forward pass with a row ``mask``: ``M A x / ||A||``.
        """
        out = self._A(x) / self.opnorm
        return out if self._mask is None else out * self._mask

    def At(self, y):
        """``A^T y / ||A||`` on a batch ``(B, C, *data_shape)``.

        Inside a forward pass with a row ``mask``: ``A^T M y / ||A||``.
        """
        if self._mask is not None:
            y = y * self._mask
        return self._At(y) / self.opnorm

    _mask = None

    def _set_mask(self, mask, y):
        """Keep ``mask`` (``(B, angles)``: 1 on measured rows) for A and At
        during one forward pass.

        Limited data as rows of one fixed operator: ``M A`` is the forward
        operator of the rows kept, ``A^T M`` its adjoint.
        """
        if mask is None:
            self._mask = None
            return
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != \
                (y.shape[0], self.data_shape[0]):
            raise ValueError(
                f'{type(self).__name__}: mask must be a tensor of shape '
                f'(batch, {self.data_shape[0]}) (one flag per data row), got '
                f'{getattr(mask, "shape", type(mask).__name__)}')
        self._mask = mask.to(y.dtype)[:, None, :, None]

    def _check(self, y, mask=None):
        if not isinstance(y, torch.Tensor):
            raise TypeError(f'{type(self).__name__} expects a torch.Tensor, '
                            f'got {type(y).__name__}')
        if y.ndim != len(self.data_shape) + 1 or \
                tuple(y.shape[1:]) != self.data_shape:
            raise ValueError(
                f'{type(self).__name__}: data must have shape (batch, '
                f'{", ".join(map(str, self.data_shape))}) (the range of '
                f'{self.operator!r}), got {tuple(y.shape)}')
        self._set_mask(mask, y)
        y = y[:, None] / self.opnorm
        return y if self._mask is None else y * self._mask

    def forward(self, y, mask=None):
        """Reconstruct a batch ``y`` ``(B, *data_shape)``; ``mask``
        ``(B, angles)`` keeps the rows flagged 1 (limited data)."""
        y = self._check(y, mask)
        try:
            return self._forward(y)
        finally:
            self._mask = None  # A and At are unmasked outside a forward

    def initial(self, y, channels=1):
        """The starting image ``(B, channels, H, W)`` for scaled data ``y``.

        Zeros, or (``start='fbp'``) the FBP of the data in every channel.
        """
        shape = (y.shape[0], channels) + self.image_shape
        if self.start == 'zero':
            return y.new_zeros(shape)
        with torch.no_grad():  # FBP of the unscaled data
            x = self._fbp(y * self.opnorm)
        return x.expand(shape).contiguous()

    def plan_operator(self, samples):
        """Fix how ``A`` and ``A^T`` apply batches for ``samples`` images to
        come (`odl_genprior.bridge.OperatorLayer.plan`): the exact sparse
        matrix from the first step when the work pays for assembling it,
        else ODL's per-sample calls. Returns the mode."""
        if self.start == 'fbp':
            self._fbp_filter.plan(samples)
        return self._A.plan(samples)

    def gradient(self, x, y):
        """``A^T (A x - y)`` with the scaled operator (``y`` scaled too)."""
        return self.At(self.A(x) - y)

    def extra_repr(self):
        return (f'image_shape={self.image_shape}, '
                f'data_shape={self.data_shape}, opnorm={self.opnorm:.4g}, '
                f'start={self.start!r}')


class LearnedGradientDescent(_Unrolled):
    """Learned gradient descent (Adler and Oktem 2017) over ``operator``.

    ``x_0 = 0``, ``s_0 = 0``; for ``k < n_iter``:
    ``(dx, s_{k+1}) = Gamma_k(x_k, A^T(A x_k - y), s_k)`` and
    ``x_{k+1} = x_k + dx``, with 3-layer convolutional ``Gamma_k``.

    Parameters
    ----------
    operator : odl.Operator
        Linear forward operator on images ``(H, W)``.
    n_iter : int, optional
        Unrolled steps (separate weights).
    memory : int, optional
        Memory channels carried between steps.
    hidden_channels : int, optional
        Channels inside each update network.
    group : str, optional
        ``None`` or a rotation group for equivariant updates.
    opnorm : float, optional
        ``||A||``; default ODL's power method.
    start : {'zero', 'fbp'}, optional
        ``x_0``: zeros (the paper) or, for a ray transform, its FBP (Hann
        filter, frequency scaling 0.4: DIVal's ``init_fbp``).

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = LearnedGradientDescent(odl.IdentityOperator(space), n_iter=2,
    ...                              hidden_channels=4)
    >>> net(torch.rand(3, 8, 8)).shape
    torch.Size([3, 8, 8])
    """

    scheme = 'lgd'
    display_name = 'learned GD'

    def __init__(self, operator, n_iter=10, memory=5, hidden_channels=32,
                 group=None, opnorm=None, start='zero'):
        super().__init__(operator, opnorm, start)
        self.n_iter, self.memory, self.group = n_iter, memory, group
        self.blocks = torch.nn.ModuleList(
            make_block(2 + memory, 1 + memory, hidden_channels, group,
                       residual=False) for _ in range(n_iter))

    def _forward(self, y):
        b = y.shape[0]
        x = self.initial(y)
        s = y.new_zeros((b, self.memory) + self.image_shape)
        for block in self.blocks:
            out = block(torch.cat([x, self.gradient(x, y), s], dim=1))
            x, s = x + out[:, :1], out[:, 1:]
        return x[:, 0]


class LearnedForwardBackward(_Unrolled):
    """Learned forward-backward of Celledoni et al. (2021) over ``operator``.

    ``x_0 = 0``, memory ``s_0 = 0`` (5 channels); ``n_iter`` (8) steps with
    separate weights: ``(dx, s_{k+1}) = B_k(x_k, A^T(A x_k - y), s_k)``,
    ``x_{k+1} = x_k + dx``, each ``B_k`` conv -> residual block -> conv,
    ordinary (`ConvBlock`) or equivariant under ``group``
    (`~odl_genprior.nn.equivariant.EquivariantBlock`), with the same channels.

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = LearnedForwardBackward(odl.IdentityOperator(space), n_iter=2,
    ...                              hidden_channels=8, group='C4')
    >>> net(torch.rand(1, 8, 8)).shape
    torch.Size([1, 8, 8])
    """

    scheme = 'lfb'
    display_name = 'learned FB'

    def __init__(self, operator, n_iter=8, memory=5, hidden_channels=32,
                 group=None, opnorm=None, start='zero'):
        super().__init__(operator, opnorm, start)
        self.n_iter, self.memory, self.group = n_iter, memory, group
        self.blocks = torch.nn.ModuleList(
            make_block(2 + memory, 1 + memory, hidden_channels, group,
                       residual=True) for _ in range(n_iter))

    _forward = LearnedGradientDescent._forward


class LearnedPrimalDual(_Unrolled):
    """Learned primal-dual (Adler and Oktem 2018) over ``operator``.

    ``f_0 = 0`` (``n_primal`` channels; with ``start='fbp'`` the FBP of
    ``y`` in each, as DIVal), ``h_0 = 0`` (``n_dual`` channels in the data
    space); for ``k < n_iter``:
    ``h <- h + Gamma^d_k(h, A f^(2), y)`` and
    ``f <- f + Gamma^p_k(f, A^T h^(1))``; the result is ``f^(1)``. The dual
    networks are ordinary convolutions on the data array (rotations of the
    image are not rotations of a sinogram); with ``group`` the primal
    networks are equivariant.

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = LearnedPrimalDual(odl.IdentityOperator(space), n_iter=2,
    ...                         hidden_channels=4)
    >>> net(torch.rand(2, 8, 8)).shape
    torch.Size([2, 8, 8])
    """

    scheme = 'lpd'
    display_name = 'learned PD'

    def __init__(self, operator, n_iter=10, n_primal=5, n_dual=5,
                 hidden_channels=32, group=None, opnorm=None, start='zero'):
        super().__init__(operator, opnorm, start)
        if len(self.data_shape) != 2:
            raise ValueError(f'LearnedPrimalDual needs 2D data (e.g. angles x '
                             f'detector pixels), the operator range has shape '
                             f'{self.data_shape}')
        self.n_iter, self.n_primal, self.n_dual = n_iter, n_primal, n_dual
        self.group = group
        self.dual = torch.nn.ModuleList(
            _quiet_start(ConvNet(n_dual + 2, n_dual, hidden_channels))
            for _ in range(n_iter))
        self.primal = torch.nn.ModuleList(
            make_block(n_primal + 1, n_primal, hidden_channels, group,
                       residual=False) for _ in range(n_iter))

    def _forward(self, y):
        b = y.shape[0]
        f = self.initial(y, self.n_primal)
        h = y.new_zeros((b, self.n_dual) + self.data_shape)
        for dual, primal in zip(self.dual, self.primal):
            h = h + dual(torch.cat([h, self.A(f[:, 1:2]), y], dim=1))
            f = f + primal(torch.cat([f, self.At(h[:, :1])], dim=1))
        return f[:, 0]


SCHEMES = {'lgd': LearnedGradientDescent, 'lpd': LearnedPrimalDual,
           'lfb': LearnedForwardBackward}
