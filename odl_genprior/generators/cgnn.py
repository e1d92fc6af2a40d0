r"""Continuous Generative Neural Networks (Alberti, Santacesaria, Sciutto).

A CGNN maps a latent code to a *function* on :math:`(0,1)` or
:math:`(0,1)^2` (arXiv 2205.14627):

.. math::
    G: \mathbb R^n \xrightarrow{F\cdot + b} (V_{j_1})^{c_1}
    \xrightarrow{\sigma} (V_{j_1})^{c_1}
    \xrightarrow{\Psi_2} (V_{j_2})^{c_2} \xrightarrow{\sigma} \cdots
    \xrightarrow{\Psi_L} V_{j_L} \xrightarrow{\sigma} V_{j_L},

:math:`j_1 < \dots < j_L`, channels usually :math:`c_1 > \dots > c_L = 1`.
Every space is represented by its scaling coefficients in a Daubechies
multiresolution analysis (`odl_genprior.generators.mra`), which are
orthonormal, so the Euclidean norm of the coefficients is the :math:`L^2`
norm of the function.

**Continuous convolution** (`ContinuousConv`). Channel :math:`o` of
:math:`\Psi` is :math:`P_{V_{j+d}}\big(\sum_i f_i * g_{i,o}\big) + b_o`:
input functions :math:`f_i \in V_j`, filters :math:`g_{i,o} =
\sum_m t_{i,o,m}\varphi_{j+d,m} \in V_{j+d}` (the learned parameters are
the filters' coefficients), continuous convolution into :math:`L^2`,
orthogonal projection onto :math:`V_{j+d}`. On coefficients (derivation in
`DaubechiesMRA.conv_filter`):

.. math::
    c_{o} = 2^{-j\,\mathrm{dim}/2}\;\beta_d * \Big(\sum_i t_{i,o} *
    (a_i \uparrow 2^d)\Big),
    \qquad \beta_d(k) = \iint \varphi(u)\varphi(v - 2^d u)\varphi(v - k)
    \,du\,dv,

a stride-:math:`2^d` transposed convolution with the filter coefficients
followed by the fixed filter :math:`\beta_d` derived from :math:`\varphi`
(applied along each axis in 2D, where the MRA is the tensor product). The
filters live at the finer scale :math:`j + d` on purpose: with a filter in
:math:`V_j` the layer factors through :math:`(\mathbb R^{2^j})^{c_{out}}`
and cannot be injective when :math:`c_{out} < c_{in}`.

**Boundary.** ``'zero'`` (default): functions of :math:`L^2(\mathbb R)`
spanned by the :math:`2^j` translates centred in :math:`(0, 1)`; the
convolution is on :math:`\mathbb R` and the projection onto that span
truncates. ``'periodic'``: the periodised MRA of the circle
:math:`\mathbb R / \mathbb Z`. On the circle, convolution maps the
:math:`c_{in}` constant functions into the :math:`c_{out}` constants, so a
layer with :math:`c_{out} < c_{in}` is never injective there (the
certificate says so); use ``'periodic'`` with non-decreasing channels.

**Nonlinearity.** :math:`\sigma` acts on the scaling coefficients (the
paper's implementation, "only the approximation coefficients"). For Haar
and a positively homogeneous :math:`\sigma` (leaky ReLU) this is exactly
:math:`P_{V_j}\circ\sigma` applied pointwise to the function.

**Rendering.** The output :math:`\sum_k c_k \varphi_{j_L,k}` is rendered
onto any ``uniform_discr`` space of :math:`[0,1]^{\mathrm{dim}}`, at any
resolution, by exact cell averages (`CellAverage`, `CGNN.render_operator`).
"""
import copy
import dataclasses
import math
import numbers

import numpy as np
import odl
import torch
import torch.nn.functional as nnf

from odl_genprior.bridge import (OperatorLayer, TorchOperator, as_element,
                                 space_dtype, space_weight)
from odl_genprior.generators.mra import BOUNDARIES, DaubechiesMRA
from odl_genprior.metrics import max_pair_ratio

__all__ = ('CGNN', 'ContinuousConv', 'CellAverage', 'render',
           'injectivity_certificate', 'InjectivityCertificate',
           'nonlinearity_injectivity',
           'ConvLayerReport', 'stability_constant', 'StabilityEstimate')


# --- helpers -----------------------------------------------------------------

def _full_conv_last(x, kernel):
    """Full (linear) convolution with a 1D ``kernel`` on the last axis."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    k = kernel.flip(0).reshape(1, 1, -1)  # conv1d correlates: flip
    out = nnf.conv1d(flat, k, padding=kernel.numel() - 1)
    return out.reshape(shape[:-1] + (out.shape[-1],))


def _window_last(v, off, n, periodic):
    """``w[i] = v[i + off]`` (zero outside) or its periodic fold mod ``n``."""
    length = v.shape[-1]
    if periodic:
        front = (-off) % n  # bins (r - off) mod n
        total = front + length
        back = (-total) % n
        v = nnf.pad(v, (front, back))
        return v.reshape(v.shape[:-1] + (-1, n)).sum(-2)
    front = max(0, -off)
    back = max(0, off + n - length)
    v = nnf.pad(v, (front, back))
    start = off + front
    return v[..., start:start + n]


def _activation(nonlinearity, negative_slope):
    if isinstance(nonlinearity, torch.nn.Module):
        return nonlinearity
    table = {
        'leaky_relu': lambda: torch.nn.LeakyReLU(negative_slope),
        'relu': torch.nn.ReLU, 'tanh': torch.nn.Tanh, 'elu': torch.nn.ELU,
        'softplus': torch.nn.Softplus, 'sigmoid': torch.nn.Sigmoid,
        'identity': torch.nn.Identity}
    if nonlinearity not in table:
        raise ValueError(f'unknown nonlinearity {nonlinearity!r}; use one of '
                         f'{sorted(table)} or a torch.nn.Module')
    return table[nonlinearity]()


def nonlinearity_injectivity(module):
    """Whether an elementwise activation is injective, with the reason.

    Known monotone activations are decided by their definition; any other
    module is tested for strict monotonicity on a grid of ``[-20, 20]``
    (a numerical verdict, said so in the reason).

    Parameters
    ----------
    module : torch.nn.Module
        Elementwise activation.

    Returns
    -------
    name : str
    injective : bool
    reason : str

    Examples
    --------
    >>> nonlinearity_injectivity(torch.nn.LeakyReLU(0.2))[1]
    True
    >>> nonlinearity_injectivity(torch.nn.ReLU())[1:]
    (False, 'ReLU is constant (0) on (-inf, 0]: not injective')
    """
    name = type(module).__name__
    if isinstance(module, torch.nn.LeakyReLU):
        slope = float(module.negative_slope)
        name = f'LeakyReLU({slope:g})'
        if slope > 0:
            return name, True, 'strictly increasing (negative slope > 0)'
        return name, False, (f'negative slope {slope:g} <= 0: not injective')
    if isinstance(module, torch.nn.ReLU):
        return name, False, 'ReLU is constant (0) on (-inf, 0]: not injective'
    if isinstance(module, torch.nn.ELU):
        ok = float(module.alpha) > 0
        return name, ok, ('strictly increasing' if ok else
                          'alpha <= 0: not injective')
    if isinstance(module, (torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.Softplus,
                           torch.nn.Identity)):
        return name, True, 'strictly increasing'
    x = torch.linspace(-20, 20, 20001, dtype=torch.float64)
    with torch.no_grad():
        try:
            y = copy.deepcopy(module).double()(x)
        except Exception as err:  # an activation that refuses 1D input
            return name, False, f'could not be evaluated elementwise ({err})'
    dy = torch.diff(y)
    ok = bool((dy > 0).all() or (dy < 0).all())
    return name, ok, ('numerically strictly monotone on [-20, 20]' if ok else
                      'not strictly monotone on [-20, 20]: not injective')


# --- layers ------------------------------------------------------------------

class ContinuousConv(torch.nn.Module):
    r"""Continuous convolution :math:`(V_j)^{c_{in}} \to (V_{j+d})^{c_{out}}`.

    Output channel :math:`o` is :math:`P_{V_{j+d}}(\sum_i f_i * g_{i,o}) +
    b_o` with filters :math:`g_{i,o} \in V_{j+d}`; on coefficients
    :math:`c_o = 2^{-j\,\mathrm{dim}/2}\,\beta_d * \sum_i t_{i,o} * (a_i
    \uparrow 2^d) + 2^{-(j+d)\mathrm{dim}/2} b_o` (the projection of the
    constant :math:`b_o`), :math:`\beta_d` from
    `DaubechiesMRA.conv_filter`. The filter coefficients ``weight[i, o]``
    hold translations :math:`m_0, \dots, m_0 + K - 1` with :math:`m_0 =
    -\operatorname{round}(\mu + (K-1)/2)`, which centres each filter on the
    origin so that features do not drift from layer to layer.

    Parameters
    ----------
    in_channels, out_channels : int
    level : int
        :math:`j`: input coefficients per axis :math:`2^j`.
    d : int
        Scale jump (stride :math:`2^d`); output level :math:`j + d`.
    mra : DaubechiesMRA or str
    dim : {1, 2}
    kernel_size : int, optional
        :math:`K` coefficients per axis; default :math:`2^{d+1}`.
    boundary : {'zero', 'periodic'}
    bias : bool
    filter_method : {'refinement', 'quadrature'}
        How :math:`\beta_d` is computed (exact, or from ``wavefun``).
    dtype, device : optional
        Of the parameters.

    Examples
    --------
    >>> conv = ContinuousConv(4, 2, level=3, mra='db2')
    >>> conv(torch.randn(5, 4, 8)).shape
    torch.Size([5, 2, 16])
    """

    def __init__(self, in_channels, out_channels, level, d=1, mra='db2',
                 dim=1, kernel_size=None, boundary='zero', bias=True,
                 filter_method='refinement', dtype=torch.float32,
                 device=None):
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f'`dim` must be 1 or 2, got {dim!r}')
        if boundary not in BOUNDARIES:
            raise ValueError(f'`boundary` must be one of {BOUNDARIES}, got '
                             f'{boundary!r}')
        self.mra = mra if isinstance(mra, DaubechiesMRA) else DaubechiesMRA(
            mra)
        self.in_channels, self.out_channels = int(in_channels), int(
            out_channels)
        self.level, self.d, self.dim = int(level), int(d), int(dim)
        if self.level < 0 or self.d < 1:
            raise ValueError(f'need level >= 0 and d >= 1, got level={level},'
                             f' d={d}')
        self.kernel_size = int(kernel_size or 2 ** (self.d + 1))
        self.boundary = boundary
        self.filter_method = filter_method
        first, beta = self.mra.conv_filter(self.d, method=filter_method)
        self._beta_first = first
        self._beta64 = np.array(beta)
        self.filter_first = -int(round(self.mra.centroid
                                       + (self.kernel_size - 1) / 2))
        shape = (self.in_channels, self.out_channels) + (
            self.kernel_size,) * self.dim
        self.weight = torch.nn.Parameter(
            torch.empty(shape, dtype=dtype, device=device))
        self.bias = (torch.nn.Parameter(torch.zeros(
            self.out_channels, dtype=dtype, device=device)) if bias else None)
        self.register_buffer('beta', torch.empty(0, dtype=dtype,
                                                 device=device),
                             persistent=False)
        self._refresh_buffers()
        self.reset_parameters()

    def _refresh_buffers(self):
        # Fixed filters are rebuilt from float64 so .double() loses nothing.
        self.beta = torch.as_tensor(self._beta64, dtype=self.weight.dtype,
                                    device=self.weight.device)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._refresh_buffers()
        return out

    def reset_parameters(self, generator=None):
        """Variance-preserving random filters (leaky-ReLU gain), zero bias.

        The standard deviation undoes the exact factor
        :math:`2^{-j\,\mathrm{dim}/2}`, the fan-in and the norm of
        :math:`\beta_d`, so coefficient magnitudes stay of order one.

        Parameters
        ----------
        generator : torch.Generator, optional

        Examples
        --------
        >>> conv = ContinuousConv(2, 1, level=2)
        >>> conv.reset_parameters(torch.Generator().manual_seed(0))
        >>> bool(conv.bias.abs().max() == 0), conv.weight.shape
        (True, torch.Size([2, 1, 4]))
        """
        taps = self.in_channels * (self.kernel_size / 2 ** self.d) ** self.dim
        beta_norm = float(np.linalg.norm(self._beta64)) ** self.dim
        std = (math.sqrt(2 / (1 + 0.2 ** 2)) * 2 ** (self.level * self.dim / 2)
               / (math.sqrt(taps) * beta_norm))
        with torch.no_grad():
            self.weight.normal_(0.0, std, generator=generator)
            if self.bias is not None:
                self.bias.zero_()

    @property
    def in_size(self):
        """Coefficients per axis of the input, :math:`2^j`.

        Examples
        --------
        >>> ContinuousConv(2, 1, level=3).in_size
        8
        """
        return 2 ** self.level

    @property
    def out_size(self):
        """Coefficients per axis of the output, :math:`2^{j+d}`.

        Examples
        --------
        >>> ContinuousConv(2, 1, level=3, d=2).out_size
        32
        """
        return 2 ** (self.level + self.d)

    def linear(self, a):
        """The layer without its bias: the linear map on coefficients.

        Parameters
        ----------
        a : torch.Tensor
            Shape ``(B, in_channels) + (2**level,) * dim``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, out_channels) + (2**(level + d),) * dim``.

        Examples
        --------
        >>> conv = ContinuousConv(2, 1, level=2, dim=2)
        >>> a = torch.randn(3, 2, 4, 4)
        >>> bool(torch.allclose(conv.linear(2 * a), 2 * conv.linear(a)))
        True
        """
        expect = (self.in_channels,) + (self.in_size,) * self.dim
        if a.ndim != self.dim + 2 or tuple(a.shape[1:]) != expect:
            raise ValueError(f'input of shape {tuple(a.shape)}; expected '
                             f'(B,) + {expect}')
        stride = 2 ** self.d
        if self.dim == 1:
            u = nnf.conv_transpose1d(a, self.weight, stride=stride)
        else:
            u = nnf.conv_transpose2d(a, self.weight, stride=stride)
        # u[q] is translation q + m0 - 2^d s; after beta, index n + s of the
        # output is entry n + s + off of the full convolution.
        s = self.mra.shift
        off = (stride - 1) * s - self._beta_first - self.filter_first
        periodic = self.boundary == 'periodic'
        for axis in range(self.dim):
            u = u.movedim(-1 - axis, -1)
            u = _window_last(_full_conv_last(u, self.beta), off,
                             self.out_size, periodic)
            u = u.movedim(-1, -1 - axis)
        return u * 2.0 ** (-self.level * self.dim / 2)

    def forward(self, a):
        """Apply the layer (see the class docstring)."""
        c = self.linear(a)
        if self.bias is not None:
            scale = 2.0 ** (-(self.level + self.d) * self.dim / 2)
            c = c + (scale * self.bias).reshape((1, -1) + (1,) * self.dim)
        return c

    def filter_matrix(self):
        """Rows: the filter bank ``weight[i]`` of each input channel.

        Linear independence of these rows is the seed's "linearly
        independent filters"; it is necessary for injectivity (a
        dependence :math:`\\sum_i u_i t_{i,\\cdot} = 0` puts every
        :math:`u \\otimes a` in the kernel).

        Returns
        -------
        torch.Tensor
            Shape ``(in_channels, out_channels * kernel_size**dim)``.

        Examples
        --------
        >>> ContinuousConv(4, 2, level=3).filter_matrix().shape
        torch.Size([4, 8])
        """
        return self.weight.detach().reshape(self.in_channels, -1)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, level={self.level},'
                f' d={self.d}, dim={self.dim}, kernel_size={self.kernel_size},'
                f' wavelet={self.mra.name!r}, boundary={self.boundary!r}')


class CellAverage(torch.nn.Module):
    r"""Render level-:math:`J` coefficients as cell averages on a grid.

    Maps ``(B, 1) + (2**J,) * dim`` coefficients of :math:`f =
    \sum_k c_k\varphi_{J,k}` to ``(B,) + shape``: the averages of :math:`f`
    over the cells of a uniform grid of :math:`[0,1]^{\mathrm{dim}}` (exact
    up to rounding, any resolution; tensor product in 2D). Consistent by
    construction: averaging a fine rendering over blocks gives the coarse
    rendering.

    Parameters
    ----------
    mra : DaubechiesMRA or str
    level : int
        :math:`J`.
    shape : int or tuple of int
        Cells per axis.
    boundary : {'zero', 'periodic'}
    dtype, device : optional

    Examples
    --------
    >>> ren = CellAverage('db2', 3, (16,), boundary='periodic',
    ...                   dtype=torch.float64)
    >>> c = torch.full((1, 1, 8), 2 ** -1.5, dtype=torch.float64)  # constant 1
    >>> ren(c).allclose(torch.ones(1, 16, dtype=torch.float64))
    True
    """

    def __init__(self, mra, level, shape, boundary='zero',
                 dtype=torch.float32, device=None):
        super().__init__()
        self.mra = mra if isinstance(mra, DaubechiesMRA) else DaubechiesMRA(
            mra)
        self.level = int(level)
        self.shape = (int(shape),) if isinstance(shape, numbers.Integral) \
            else tuple(int(m) for m in shape)
        if len(self.shape) not in (1, 2):
            raise ValueError(f'`shape` must have 1 or 2 axes, got {shape!r}')
        self.boundary = boundary
        self._mats64 = [self.mra.cell_average_matrix(self.level, m, boundary)
                        for m in self.shape]
        self._dtype, self._device = dtype, device
        for i in range(len(self.shape)):
            self.register_buffer(f'matrix{i}', torch.empty(0, dtype=dtype,
                                                           device=device),
                                 persistent=False)
        self._refresh_buffers()

    def _refresh_buffers(self):
        for i, m in enumerate(self._mats64):
            old = getattr(self, f'matrix{i}')
            setattr(self, f'matrix{i}', torch.as_tensor(
                m, dtype=old.dtype, device=old.device))

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._refresh_buffers()
        return out

    def forward(self, c):
        """Cell averages of the function with coefficients ``c``."""
        dim, n = len(self.shape), 2 ** self.level
        if c.ndim != dim + 2 or c.shape[1] != 1 or tuple(c.shape[2:]) != (
                n,) * dim:
            raise ValueError(f'coefficients of shape {tuple(c.shape)}; '
                             f'expected (B, 1) + {(n,) * dim}')
        c = c[:, 0]
        if dim == 1:
            return c @ self.matrix0.T
        return self.matrix0 @ c @ self.matrix1.T

    def extra_repr(self):
        return (f'{self.mra.name!r}, level={self.level}, shape={self.shape}, '
                f'boundary={self.boundary!r}')


# --- the generator -----------------------------------------------------------

class CGNN(torch.nn.Module):
    r"""A Continuous Generative Neural Network, latent :math:`\to V_{j_L}`.

    ``forward(z)`` maps ``(B, latent_dim)`` to the scaling coefficients
    ``(B, c_L) + (2**j_L,) * dim`` of the output function: a fully
    connected layer into :math:`(V_{j_1})^{c_1}`, then `ContinuousConv`
    layers :math:`(V_{j_{l-1}})^{c_{l-1}} \to (V_{j_l})^{c_l}`, with the
    nonlinearity after every layer (after the last one too unless
    ``final_nonlinearity=False``). See the module docstring for the
    mathematics.

    Parameters
    ----------
    latent_dim : int
        :math:`n`.
    channels : sequence of int, optional
        :math:`c_1, \dots, c_L`. Default: :math:`2^{\mathrm{dim}(j_L -
        j_l)}` (every layer keeps the dimension, :math:`c_L = 1`).
    levels : sequence of int, optional
        :math:`j_1 < \dots < j_L`. Default: ``2, 3, ..., 7`` in 1D and
        ``2, ..., 5`` in 2D (or consecutive levels ending there, one per
        channel count given).
    wavelet : str
        PyWavelets name (``'db1'``/``'haar'``, ``'db2'``, ..., ``'db10'``,
        ``'symN'``, ``'coifN'``).
    dim : {1, 2}
    nonlinearity : str or torch.nn.Module
        ``'leaky_relu'`` (default, injective), ``'relu'``, ``'tanh'``,
        ``'elu'``, ``'softplus'``, ``'sigmoid'``, ``'identity'`` or a module.
    negative_slope : float
        Of the leaky ReLU.
    kernel_size : int, optional
        Filter coefficients per axis; default :math:`2^{d+1}` for a jump
        :math:`d`.
    boundary : {'zero', 'periodic'}
    final_nonlinearity : bool
    filter_method : {'refinement', 'quadrature'}
    dtype : torch.dtype
    device : str or torch.device, optional

    Examples
    --------
    >>> g = CGNN(latent_dim=3, channels=(4, 2, 1), levels=(2, 3, 4))
    >>> g(torch.randn(5, 3)).shape
    torch.Size([5, 1, 16])
    >>> space = odl.uniform_discr(0, 1, 64, dtype='float32')
    >>> G = g.render_operator(space)
    >>> G(G.domain.one()).shape
    (64,)
    """

    def __init__(self, latent_dim=15, channels=None, levels=None,
                 wavelet='db2', dim=1, nonlinearity='leaky_relu',
                 negative_slope=0.2, kernel_size=None, boundary='zero',
                 final_nonlinearity=True, filter_method='refinement',
                 dtype=torch.float32, device=None):
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f'`dim` must be 1 or 2, got {dim!r}')
        if boundary not in BOUNDARIES:
            raise ValueError(f'`boundary` must be one of {BOUNDARIES}, got '
                             f'{boundary!r}')
        top = 7 if dim == 1 else 5
        if levels is None:
            count = 6 if dim == 1 else 4
            count = len(channels) if channels is not None else count
            levels = tuple(range(top - count + 1, top + 1))
        levels = tuple(int(j) for j in levels)
        if channels is None:
            channels = tuple(2 ** (dim * (levels[-1] - j)) for j in levels)
        channels = tuple(int(c) for c in channels)
        if len(levels) != len(channels) or not levels:
            raise ValueError(f'`levels` {levels} and `channels` {channels} '
                             'must be non-empty and of equal length')
        if levels[0] < 0 or any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f'`levels` must be increasing and >= 0, got '
                             f'{levels}')
        if min(channels) < 1 or int(latent_dim) < 1:
            raise ValueError(f'`channels` {channels} and `latent_dim` '
                             f'{latent_dim} must be positive')
        self.latent_dim, self.dim = int(latent_dim), int(dim)
        self.levels, self.channels = levels, channels
        self.mra = DaubechiesMRA(wavelet)
        self.boundary = boundary
        self.final_nonlinearity = bool(final_nonlinearity)
        self.fc = torch.nn.Linear(self.latent_dim,
                                  channels[0] * 2 ** (levels[0] * dim),
                                  dtype=dtype, device=device)
        self.convs = torch.nn.ModuleList(
            ContinuousConv(c_in, c_out, j_in, j_out - j_in, self.mra, dim,
                           kernel_size, boundary, True, filter_method,
                           dtype, device)
            for c_in, c_out, j_in, j_out in zip(channels, channels[1:],
                                                levels, levels[1:]))
        self.act = _activation(nonlinearity, negative_slope).to(
            device=device)

    @property
    def wavelet(self):
        """PyWavelets name of the MRA.

        Examples
        --------
        >>> CGNN(wavelet='haar').wavelet
        'haar'
        """
        return self.mra.name

    @property
    def out_shape(self):
        """Shape of one output: ``(c_L,) + (2**j_L,) * dim``.

        Examples
        --------
        >>> CGNN(dim=2, latent_dim=4).out_shape
        (1, 32, 32)
        """
        return (self.channels[-1],) + (2 ** self.levels[-1],) * self.dim

    def _dtype_device(self):
        p = self.fc.weight
        return p.dtype, p.device

    def forward(self, z):
        """Scaling coefficients of ``G(z)``; ``z`` of shape ``(B, n)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f'latent input of shape {tuple(z.shape)}; '
                             f'expected (B, {self.latent_dim})')
        n1 = 2 ** self.levels[0]
        x = self.fc(z).reshape((z.shape[0], self.channels[0]) + (n1,)
                               * self.dim)
        if self.convs or self.final_nonlinearity:
            x = self.act(x)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1 or self.final_nonlinearity:
                x = self.act(x)
        return x

    # -- rendering --
    def renderer(self, shape):
        """`CellAverage` of this CGNN's output level, boundary and dtype.

        Parameters
        ----------
        shape : int or tuple of int
            Cells per axis of the target grid on :math:`[0,1]^{dim}`.

        Returns
        -------
        CellAverage

        Examples
        --------
        >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
        >>> g.renderer(10)(g(torch.randn(3, 2))).shape
        torch.Size([3, 10])
        """
        shape = (shape,) * self.dim if isinstance(shape, numbers.Integral) \
            else tuple(shape)
        if len(shape) != self.dim:
            raise ValueError(f'grid shape {shape} has {len(shape)} axes but '
                             f'the CGNN has dim={self.dim}')
        if self.channels[-1] != 1:
            raise ValueError(f'rendering needs one output channel (c_L = 1),'
                             f' this CGNN has {self.channels[-1]}')
        dtype, device = self._dtype_device()
        return CellAverage(self.mra, self.levels[-1], shape, self.boundary,
                           dtype, device)

    def render_module(self, shape):
        """``torch.nn.Sequential(self, renderer)``: latent -> cell averages.

        Parameters
        ----------
        shape : int or tuple of int

        Returns
        -------
        torch.nn.Sequential
            Maps ``(B, n)`` to ``(B,) + shape``.

        Examples
        --------
        >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
        >>> g.render_module(5)(torch.randn(4, 2)).shape
        torch.Size([4, 5])
        """
        return torch.nn.Sequential(self, self.renderer(shape))

    def render_operator(self, space, latent_space=None):
        """The generator rendered on ``space`` as an ODL operator.

        Parameters
        ----------
        space : odl.DiscretizedSpace
            ``uniform_discr`` of :math:`[0,1]^{dim}`, any shape; its dtype
            (and device, for ``impl='pytorch'``) must match the CGNN's.
        latent_space : odl.TensorSpace, optional
            Default ``odl.rn(latent_dim)`` with the impl, dtype and device
            of ``space``.

        Returns
        -------
        odl_genprior.TorchOperator
            Its derivative and adjoint come from torch autograd.

        Examples
        --------
        >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
        >>> G = g.render_operator(odl.uniform_discr(0, 1, 100))
        Traceback (most recent call last):
        ...
        TypeError: module tensor '0.fc.weight' has dtype torch.float32 ...
        >>> G = g.render_operator(odl.uniform_discr(0, 1, 100,
        ...                                         dtype='float32'))
        >>> G.domain, G.range.shape
        (rn(2, 'float32'), (100,))
        """
        _check_unit_space(space, self.dim)
        if latent_space is None:
            kwargs = {}
            if getattr(space, 'impl', 'numpy') == 'pytorch':
                kwargs['device'] = space.device
            latent_space = odl.rn(self.latent_dim, dtype=space.dtype,
                                  impl=space.impl, **kwargs)
        return TorchOperator(self.render_module(space.shape), latent_space,
                             space, in_shape=(1, self.latent_dim))

    def latent_sample(self, n_samples, generator=None):
        """Standard normal latent codes ``(n_samples, latent_dim)``.

        Parameters
        ----------
        n_samples : int
        generator : torch.Generator, optional

        Returns
        -------
        torch.Tensor

        Examples
        --------
        >>> CGNN(latent_dim=3, channels=(2, 1), levels=(1, 2)).latent_sample(
        ...     4).shape
        torch.Size([4, 3])
        """
        dtype, device = self._dtype_device()
        return torch.randn(int(n_samples), self.latent_dim, dtype=dtype,
                           generator=generator).to(device)


def _check_unit_space(space, dim):
    if not isinstance(space, odl.DiscretizedSpace):
        raise TypeError(f'`space` must be a uniform_discr space, got '
                        f'{space!r}')
    if space.ndim != dim:
        raise ValueError(f'space {space!r} has {space.ndim} axes but the '
                         f'CGNN has dim={dim}')
    if not (np.allclose(space.min_pt, 0) and np.allclose(space.max_pt, 1)):
        raise ValueError(f'space {space!r} is not on the unit '
                         f'{"interval" if dim == 1 else "square"}: the CGNN '
                         'output is a function on [0, 1]^dim')
    if not space.is_uniform:
        raise ValueError(f'space {space!r} is not uniformly discretised')


def render(coeffs, space, wavelet='db2', boundary='zero'):
    """Render one function of :math:`V_J` onto a ``uniform_discr`` space.

    Parameters
    ----------
    coeffs : array-like or torch.Tensor
        Scaling coefficients, shape ``(2**J,)`` or ``(2**J, 2**J)`` (leading
        axes of length one are dropped).
    space : odl.DiscretizedSpace
        ``uniform_discr`` of :math:`[0,1]^{dim}`, any resolution.
    wavelet : str
    boundary : {'zero', 'periodic'}

    Returns
    -------
    odl element of ``space``
        The cell averages of :math:`\\sum_k c_k \\varphi_{J,k}`.

    Examples
    --------
    >>> space = odl.uniform_discr(0, 1, 6)
    >>> render(np.full(4, 0.5), space, 'haar', 'periodic')  # constant 1
    uniform_discr(0.0, 1.0, 6).element([ 1.,  1.,  1.,  1.,  1.,  1.])
    """
    t = torch.as_tensor(np.asarray(coeffs) if not isinstance(
        coeffs, torch.Tensor) else coeffs.detach(), dtype=torch.float64)
    t = t.cpu()
    while t.ndim > space.ndim and t.shape[0] == 1:
        t = t[0]
    dim = space.ndim
    _check_unit_space(space, dim)
    n = t.shape[0]
    if t.ndim != dim or n & (n - 1) or any(m != n for m in t.shape):
        raise ValueError(f'coefficients of shape {tuple(t.shape)} are not '
                         f'(2**J,) * {dim}')
    ren = CellAverage(wavelet, int(round(math.log2(n))), space.shape,
                      boundary, dtype=torch.float64)
    out = ren(t.reshape((1, 1) + t.shape))[0]
    return as_element(out, space)


# --- injectivity certificate -------------------------------------------------

@dataclasses.dataclass
class ConvLayerReport:
    """Injectivity numbers of one `ContinuousConv` layer.

    Attributes
    ----------
    index : int
        Layer number (0 is the first convolution).
    in_channels, out_channels, level_in, level_out : int
    in_dim, out_dim : int
        Coefficients in and out (the layer can be injective only if
        ``in_dim <= out_dim``).
    filter_min_sv : float
        Smallest (``in_channels``-th) singular value of `filter_matrix`.
    filters_independent : bool
    operator_min_sv, operator_max_sv : float
        Extreme singular values of the layer's linear map on coefficients.
    injective : bool
        ``operator_min_sv > rtol * operator_max_sv`` and independent
        filters.
    note : str

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
    >>> r = injectivity_certificate(g, n_points=1).layers[0]
    >>> r.in_dim, r.out_dim, r.injective
    (8, 8, True)
    """
    index: int
    in_channels: int
    out_channels: int
    level_in: int
    level_out: int
    in_dim: int
    out_dim: int
    filter_min_sv: float
    filters_independent: bool
    operator_min_sv: float
    operator_max_sv: float
    injective: bool
    note: str = ''


@dataclasses.dataclass
class InjectivityCertificate:
    """The injectivity theorem's conditions for a CGNN, with their numbers.

    ``verdict`` is ``'certified'`` when the fully connected layer is
    injective (rank ``latent_dim``), the nonlinearity is injective, every
    convolution is injective with linearly independent filters, and the
    Jacobian has full rank at every sampled latent point; otherwise
    ``'not certified'`` with the failing conditions in ``reasons``.

    Attributes
    ----------
    verdict : str
    certified : bool
    reasons : list of str
    latent_dim : int
    fc_rank : int
    fc_min_sv, fc_max_sv : float
    fc_injective : bool
    nonlinearity : str
    nonlinearity_injective : bool
    nonlinearity_reason : str
    layers : list of ConvLayerReport
    jacobian_ranks : list of int
    jacobian_min_svs : list of float
    rtol : float

    Examples
    --------
    >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3),
    ...          nonlinearity='relu')
    >>> cert = injectivity_certificate(g, n_points=1)
    >>> print(cert)  # doctest: +ELLIPSIS
    CGNN injectivity: not certified
      fully connected: rank 2/2, ...
      nonlinearity ReLU: NOT injective (ReLU is constant (0) on (-inf, 0]: ...
    """
    verdict: str
    certified: bool
    reasons: list
    latent_dim: int
    fc_rank: int
    fc_min_sv: float
    fc_max_sv: float
    fc_injective: bool
    nonlinearity: str
    nonlinearity_injective: bool
    nonlinearity_reason: str
    layers: list
    jacobian_ranks: list
    jacobian_min_svs: list
    rtol: float

    def __str__(self):
        lines = [f'CGNN injectivity: {self.verdict}',
                 f'  fully connected: rank {self.fc_rank}/{self.latent_dim},'
                 f' sigma_min {self.fc_min_sv:.3e} (sigma_max '
                 f'{self.fc_max_sv:.3e})',
                 f'  nonlinearity {self.nonlinearity}: '
                 + ('injective' if self.nonlinearity_injective else
                    'NOT injective') + f' ({self.nonlinearity_reason})']
        for r in self.layers:
            lines.append(
                f'  conv {r.index}: {r.in_channels}x2^{r.level_in} -> '
                f'{r.out_channels}x2^{r.level_out}, filters sigma_min '
                f'{r.filter_min_sv:.3e}, operator sigma_min '
                f'{r.operator_min_sv:.3e} / sigma_max {r.operator_max_sv:.3e}'
                f' -> {"injective" if r.injective else "NOT injective"}'
                + (f' ({r.note})' if r.note else ''))
        lines.append(f'  Jacobian ranks at sampled points: '
                     f'{self.jacobian_ranks} (of {self.latent_dim}); sigma_min '
                     + ', '.join(f'{s:.3e}' for s in self.jacobian_min_svs))
        lines += [f'  reason: {r}' for r in self.reasons]
        return '\n'.join(lines)


def _layer_matrix(conv):
    """The linear map of a ContinuousConv as a dense float64 matrix."""
    conv = copy.deepcopy(conv).double()
    n_in = conv.in_channels * conv.in_size ** conv.dim
    eye = torch.eye(n_in, dtype=torch.float64, device=conv.weight.device)
    cols = []
    with torch.no_grad():
        for chunk in eye.split(1024):
            x = chunk.reshape((-1, conv.in_channels) + (conv.in_size,)
                              * conv.dim)
            cols.append(conv.linear(x).reshape(x.shape[0], -1))
    return torch.cat(cols).T  # (out_dim, in_dim)


def injectivity_certificate(cgnn, n_points=3, seed=0, rtol=1e-9):
    r"""Check the injectivity theorem's conditions for a CGNN.

    The theorem (Alberti, Santacesaria, Sciutto): if the fully connected
    map :math:`F` is injective, :math:`\sigma` is injective and the
    convolutional layers are injective (linearly independent filters),
    then :math:`G` is injective. Reported, each with its numbers:

    * :math:`F`: numerical rank and extreme singular values of the weight;
    * :math:`\sigma`: by definition for known activations
      (`nonlinearity_injectivity`); ReLU is not injective;
    * each convolution: the smallest singular value of the filter matrix
      (filters of each input channel as rows) and of the layer's linear
      map on coefficients (dense, float64; its size is ``out_dim x
      in_dim``), in the chosen boundary mode;
    * the numerical rank of the Jacobian :math:`\partial G/\partial z`
      (``torch.autograd.functional.jacobian``) at ``n_points`` standard
      normal latent points.

    A singular value counts as zero when below ``rtol`` times the largest.

    Parameters
    ----------
    cgnn : CGNN
    n_points : int
    seed : int
    rtol : float

    Returns
    -------
    InjectivityCertificate

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> g = CGNN(latent_dim=3, channels=(4, 2, 1), levels=(2, 3, 4))
    >>> injectivity_certificate(g).verdict
    'certified'
    >>> g = CGNN(latent_dim=3, channels=(4, 2, 1), levels=(2, 3, 4),
    ...          nonlinearity='relu')
    >>> injectivity_certificate(g).verdict
    'not certified'
    """
    if not isinstance(cgnn, CGNN):
        raise TypeError(f'`cgnn` must be a CGNN, got {type(cgnn).__name__}')
    reasons = []
    n = cgnn.latent_dim
    # Fully connected layer.
    W = cgnn.fc.weight.detach().double()
    sv = torch.linalg.svdvals(W)
    fc_rank = int((sv > rtol * sv[0]).sum()) if sv.numel() else 0
    fc_min = float(sv[n - 1]) if sv.numel() >= n else 0.0
    fc_ok = fc_rank == n
    if not fc_ok:
        reasons.append(f'fully connected layer not injective: rank {fc_rank} '
                       f'< latent dimension {n} (output dimension '
                       f'{W.shape[0]})')
    # Nonlinearity.
    act_name, act_ok, act_reason = nonlinearity_injectivity(cgnn.act)
    if not cgnn.convs and not cgnn.final_nonlinearity:
        act_ok, act_reason = True, 'never applied (no layer after F)'
    if not act_ok:
        reasons.append(f'nonlinearity {act_name} not injective: {act_reason}')
    # Convolutions.
    layers = []
    for i, conv in enumerate(cgnn.convs):
        T = conv.filter_matrix().double()
        tsv = torch.linalg.svdvals(T)
        f_min = float(tsv[conv.in_channels - 1]) if tsv.numel() >= \
            conv.in_channels else 0.0
        f_ok = tsv.numel() >= conv.in_channels and f_min > rtol * float(
            tsv[0])
        A = _layer_matrix(conv)
        asv = torch.linalg.svdvals(A)
        in_dim, out_dim = A.shape[1], A.shape[0]
        a_min = float(asv[in_dim - 1]) if out_dim >= in_dim else 0.0
        a_ok = out_dim >= in_dim and a_min > rtol * float(asv[0])
        note = ''
        if out_dim < in_dim:
            note = f'{in_dim} coefficients in, only {out_dim} out'
        elif not f_ok:
            note = 'filters linearly dependent'
        elif not a_ok and conv.boundary == 'periodic' and \
                conv.out_channels < conv.in_channels:
            note = ('periodic convolution maps the constant functions of '
                    f'{conv.in_channels} channels into {conv.out_channels} '
                    'constants')
        layers.append(ConvLayerReport(
            i, conv.in_channels, conv.out_channels, conv.level,
            conv.level + conv.d, in_dim, out_dim, f_min, bool(f_ok), a_min,
            float(asv[0]), bool(a_ok and f_ok), note))
        if not (a_ok and f_ok):
            reasons.append(f'convolution {i} not injective'
                           + (f': {note}' if note else
                              f': sigma_min {a_min:.3e}'))
    # Jacobian rank at random latent points.
    model = copy.deepcopy(cgnn).double().requires_grad_(False)
    gen = torch.Generator().manual_seed(int(seed))
    ranks, jmins = [], []
    for _ in range(int(n_points)):
        z = torch.randn(n, dtype=torch.float64, generator=gen).to(
            model.fc.weight.device)
        # Forward mode: latent_dim passes instead of one per output entry.
        J = torch.autograd.functional.jacobian(
            lambda v: model(v[None]).reshape(-1), z, vectorize=True,
            strategy='forward-mode').detach()
        jsv = torch.linalg.svdvals(J)
        ranks.append(int((jsv > rtol * jsv[0]).sum()))
        jmins.append(float(jsv[n - 1]) if jsv.numel() >= n else 0.0)
    if any(r < n for r in ranks):
        reasons.append(f'Jacobian rank deficient at a sampled point: ranks '
                       f'{ranks} < {n}')
    ok = not reasons
    return InjectivityCertificate(
        'certified' if ok else 'not certified', ok, reasons, n, fc_rank,
        fc_min, float(sv[0]), fc_ok, act_name, act_ok, act_reason, layers,
        ranks, jmins, float(rtol))


# --- stability estimate ------------------------------------------------------

@dataclasses.dataclass
class StabilityEstimate:
    r"""Estimate of :math:`C` in :math:`\|x_1 - x_2\| \le C\|F(x_1) -
    F(x_2)\|` on the generator's range.

    A lower estimate of the true supremum: the largest ratio found by
    sampling pairs and by local ascent from the best pairs.

    Attributes
    ----------
    constant : float
        :math:`C` (``inf`` if two distinct outputs have equal data).
    sampled_max, sampled_median, sampled_min : float
        Statistics of the ratio over the sampled pairs.
    optimised_max : float
        Best ratio after local ascent.
    n_pairs, n_local, steps : int
    z1, z2 : numpy.ndarray
        The maximising latent pair.
    x_distance, y_distance : float
        :math:`\|x_1 - x_2\|` and :math:`\|F(x_1) - F(x_2)\|` for that pair.
    ratios : numpy.ndarray
        Sampled ratios.

    Examples
    --------
    >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
    >>> est = stability_constant(g, lambda x: 0.5 * x, n_pairs=4, steps=2)
    >>> print(est)  # doctest: +ELLIPSIS
    stability constant C >= 2 (sampled 4 pairs: max 2, median 2, min 2; ...
    """
    constant: float
    sampled_max: float
    sampled_median: float
    sampled_min: float
    optimised_max: float
    n_pairs: int
    n_local: int
    steps: int
    z1: np.ndarray
    z2: np.ndarray
    x_distance: float
    y_distance: float
    ratios: np.ndarray

    def __str__(self):
        return (f'stability constant C >= {self.constant:.6g} (sampled '
                f'{self.n_pairs} pairs: max {self.sampled_max:.6g}, median '
                f'{self.sampled_median:.6g}, min {self.sampled_min:.6g}; '
                f'local ascent from {self.n_local} pairs x {self.steps} steps:'
                f' {self.optimised_max:.6g}; best pair |x1-x2| = '
                f'{self.x_distance:.3e}, |F x1 - F x2| = '
                f'{self.y_distance:.3e})')


def _norms(t, weight):
    return t.reshape(t.shape[0], -1).norm(dim=1) * math.sqrt(weight)


def stability_constant(generator, forward_op=None, n_pairs=256, n_local=4,
                       steps=100, lr=0.05, latent_radius=None,
                       min_latent_dist=1e-3, latent_dim=None, data_weight=1.0,
                       seed=0, dtype=torch.float64):
    r"""Estimate the Lipschitz stability constant on the generator's range.

    For :math:`x_i = G(z_i)`, estimate :math:`C = \sup \|x_1 - x_2\|_X /
    \|F(x_1) - F(x_2)\|_Y` (the constant of the seed's stability theorem
    for the inverse problem :math:`y = F(x)` restricted to
    :math:`\operatorname{Im} G`): the ratio is evaluated on ``n_pairs``
    pairs of standard normal latent codes, then the ``n_local`` best pairs
    are improved by ``steps`` Adam steps on :math:`\log` of the ratio with
    respect to both codes, keeping :math:`\|z_i\| \le` ``latent_radius``
    and :math:`\|z_1 - z_2\| \ge` ``min_latent_dist`` (so pairs do not
    collapse into 0/0; the limit is the local ratio :math:`\|G'(z)h\| /
    \|F'G'(z)h\|`, which the constraint still lets the ascent approach).
    The result is a lower estimate of :math:`C` (a supremum).

    Parameters
    ----------
    generator : CGNN, torch.nn.Module or odl_genprior.TorchOperator
        Maps a batch ``(B, n)`` of codes to ``(B, ...)``. For a
        `TorchOperator` (e.g. `CGNN.render_operator`) the module is used
        and :math:`\|\cdot\|_X` is the norm of its range space; otherwise
        the Euclidean norm of the output (for a `CGNN`, the coefficient
        norm, which is the :math:`L^2` norm of the function).
    forward_op : odl.Operator or callable, optional
        :math:`F`. An ODL operator (domain shaped like one output of the
        generator) is applied through `odl_genprior.OperatorLayer`, with
        the norm of its range; a callable takes and returns batched torch
        tensors (Euclidean norm times ``sqrt(data_weight)``). Default: the
        identity (:math:`C = 1`).
    n_pairs, n_local, steps : int
    lr : float
        Adam learning rate.
    latent_radius : float, optional
        Default: the largest norm among the sampled codes.
    min_latent_dist : float
    latent_dim : int, optional
        Needed for a plain module without ``latent_dim`` attribute.
    data_weight : float
        Inner-product weight of the data space for a callable
        ``forward_op`` (e.g. the cell volume of a ``uniform_discr`` space).
    seed : int
    dtype : torch.dtype
        The computation runs on a copy of the generator in this dtype
        (float64 by default: ratios of small differences need it). With
        an ODL ``forward_op`` the dtype of its domain is used.

    Returns
    -------
    StabilityEstimate

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> g = CGNN(latent_dim=2, channels=(2, 1), levels=(2, 3))
    >>> est = stability_constant(g, n_pairs=16, n_local=1, steps=5)
    >>> round(est.constant, 12)  # F = identity
    1.0
    >>> blur = lambda x: 0.5 * (x + x.roll(1, -1))
    >>> est = stability_constant(g, blur, n_pairs=16, n_local=1, steps=5)
    >>> est.constant >= est.sampled_max > 1
    True
    """
    x_weight = 1.0
    if isinstance(generator, TorchOperator):
        module = generator.module
        if latent_dim is None:
            latent_dim = generator.domain.size
        x_weight = space_weight(generator.range, constant=True)
        x_shape = tuple(generator.range.shape)
    else:
        if not isinstance(generator, torch.nn.Module):
            raise TypeError('`generator` must be a torch.nn.Module or a '
                            f'TorchOperator, got {type(generator).__name__}')
        module = generator
        latent_dim = latent_dim or getattr(generator, 'latent_dim', None)
        x_shape = None
    if latent_dim is None:
        raise ValueError('pass `latent_dim` for a generator without a '
                         '`latent_dim` attribute')
    y_weight = 1.0
    if isinstance(forward_op, odl.Operator):
        dtype = space_dtype(forward_op.domain)
        layer = OperatorLayer(forward_op)
        y_weight = space_weight(forward_op.range, constant=True)
        dom_shape = tuple(forward_op.domain.shape)

        def F(x):
            return layer(x.reshape((x.shape[0],) + dom_shape))
    elif forward_op is None:
        y_weight = x_weight

        def F(x):
            return x
    elif callable(forward_op):
        y_weight = float(data_weight)
        F = forward_op
    else:
        raise TypeError(f'`forward_op` must be an odl.Operator, a callable or'
                        f' None, got {type(forward_op).__name__}')

    device = next(iter(list(module.parameters()) + list(module.buffers())),
                  torch.empty(0)).device
    model = copy.deepcopy(module).to(dtype=dtype)
    for p in model.parameters():
        p.requires_grad_(False)

    def G(z):
        x = model(z)
        return x if x_shape is None else x.reshape((z.shape[0],) + x_shape)

    def ratio(z1, z2):
        x1, x2 = G(z1), G(z2)
        dx = _norms(x1 - x2, x_weight)
        dy = _norms(F(x1) - F(x2), y_weight)
        return dx / dy, dx, dy

    gen = torch.Generator().manual_seed(int(seed))
    z1, z2 = torch.randn(2, n_pairs, latent_dim, dtype=dtype,
                         generator=gen).to(device)
    with torch.no_grad():
        r, dx, dy = ratio(z1, z2)
    r = torch.where(dx == 0, torch.zeros_like(r), r)  # equal outputs: no info
    radius = float(latent_radius) if latent_radius is not None else float(
        torch.cat([z1, z2]).norm(dim=1).max())
    best = int(torch.argmax(r))
    best_val = float(r[best])
    best_pair = (z1[best], z2[best])
    opt_max = best_val
    if math.isfinite(best_val) and n_local > 0 and steps > 0:
        top = torch.argsort(r, descending=True)[:n_local]

        def searched(w1, w2):
            rr, ddx, ddy = ratio(w1, w2)
            # F not injective on Im G: an unbounded ratio, the answer.
            rr = torch.where((ddy == 0) & (ddx > 0),
                             torch.full_like(rr, math.inf), rr)
            # G maps a pair to one point: 0/0 says nothing, and its
            # gradient is NaN, so the search ends there.
            return (torch.where(ddx == 0, torch.zeros_like(rr), rr),
                    bool((ddx == 0).any()))

        value, w1, w2, _ = max_pair_ratio(
            searched, z1[top], z2[top], steps=int(steps), lr=lr,
            project=lambda a, b: _project_pairs(a, b, radius,
                                                min_latent_dist))
        opt_max = max(opt_max, value)
        if value >= best_val:
            best_pair = (w1, w2)
    with torch.no_grad():
        _, dx1, dy1 = ratio(best_pair[0][None], best_pair[1][None])
    best_pair = (best_pair[0].clone(), best_pair[1].clone(), float(dx1[0]),
                 float(dy1[0]))
    rs = r.detach().cpu().numpy()
    return StabilityEstimate(
        max(best_val, opt_max), float(rs.max()), float(np.median(rs)),
        float(rs.min()), opt_max, int(n_pairs), int(n_local), int(steps),
        best_pair[0].cpu().numpy(), best_pair[1].cpu().numpy(), best_pair[2],
        best_pair[3], rs)


def _project_pairs(w1, w2, radius, min_dist):
    """Keep codes in the ball and pairs at least ``min_dist`` apart."""
    for w in (w1, w2):
        norm = w.norm(dim=1, keepdim=True)
        w.mul_(torch.clamp(radius / norm.clamp_min(1e-300), max=1.0))
    diff = w1 - w2
    dist = diff.norm(dim=1, keepdim=True)
    short = (dist < min_dist).squeeze(1)
    if short.any():
        mid = 0.5 * (w1 + w2)
        direction = diff / dist.clamp_min(1e-300)
        w1[short] = (mid + 0.5 * min_dist * direction)[short]
        w2[short] = (mid - 0.5 * min_dist * direction)[short]
