r"""1D signal generators, the 1D Gaussian blur and latent deblurring.

The pieces of the 1D experiment of Alberti, Santacesaria and Sciutto
(continuous generative networks, arXiv 2205.14627): signals on
:math:`[0, 1]` sampled at ``size`` cell midpoints, shape ``(B, 1, size)``.

* `ConvEncoder1d`: strided ``Conv1d`` encoder (for a VAE, ``2 n`` outputs).
* `CGNNDecoder`: a 1D `CGNN` followed by its exact cell-average rendering,
  latent :math:`\to` ``(B, 1, size)``. Only the CGNN has parameters, so the
  same weights render at any resolution (`CGNNDecoder.at_resolution`).
* `ConvDecoder1d`: the discrete counterpart, transposed ``Conv1d`` layers
  that double the length up to ``size`` (the paper's "discrete generator").
* `GaussianBlur1d`, `blur_operator`: Gaussian convolution with zero
  boundary (FFT, exact linear convolution) as a torch module and as a linear
  ODL operator.

Latent deblurring, :math:`\min_z \|A G(z) - y\|^2 + \lambda\|z\|^2`, is
`odl_genprior.recon.latent.latent_deblur` (`LatentHard` from one start).
"""
import math

import odl
import torch
from torch import nn

from odl_genprior.bridge import TorchOperator, space_dtype
from odl_genprior.generators.cgnn import CGNN
from odl_genprior.generators.decoders import base_size

__all__ = ('ConvEncoder1d', 'ConvDecoder1d', 'CGNNDecoder', 'GaussianBlur1d',
           'blur_operator', 'signal_space', 'parameter_count')


def parameter_count(module):
    """Number of trainable parameters of ``module``.

    Examples
    --------
    >>> parameter_count(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _check_signals(x, size, who):
    if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != size:
        raise ValueError(f'{who}: input of shape {tuple(x.shape)}; expected '
                         f'(B, 1, {size})')


# --- encoder -----------------------------------------------------------------

class ConvEncoder1d(nn.Module):
    """Strided-convolution encoder ``(B, 1, size) -> (B, out_dim)``.

    ``Conv1d`` layers with kernel 8 and stride 4 (each divides the length
    by 4) and leaky ReLU, until at most 16 samples are left; channels
    ``8, 16, ...`` doubling up to ``width``; then a linear layer.

    Parameters
    ----------
    out_dim : int
        ``2 * latent_dim`` for a VAE (mean and log-variance).
    size : int
        Samples per signal (at least 8).
    width : int
        Largest channel count.

    Examples
    --------
    >>> enc = ConvEncoder1d(out_dim=30, size=4096, width=32)
    >>> enc(torch.rand(2, 1, 4096)).shape
    torch.Size([2, 30])
    """

    def __init__(self, out_dim, size=4096, width=32):
        super().__init__()
        self.size, self.out_dim = int(size), int(out_dim)
        if self.size < 8:
            raise ValueError(f'`size` must be at least 8, got {size}')
        layers, c_in, length, i = [], 1, self.size, 0
        while length > 16 or i == 0:
            c_out = max(1, min(int(width), 8 * 2 ** i))
            layers += [nn.Conv1d(c_in, c_out, 8, stride=4, padding=2),
                       nn.LeakyReLU(0.2)]
            length = (length + 4 - 8) // 4 + 1
            c_in, i = c_out, i + 1
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * length, self.out_dim)

    def forward(self, x):
        _check_signals(x, self.size, 'ConvEncoder1d')
        return self.fc(self.net(x).flatten(1))


# --- decoders ----------------------------------------------------------------

class CGNNDecoder(nn.Module):
    """A 1D `CGNN` rendered at ``size`` samples: ``(B, n) -> (B, 1, size)``.

    The output is the cell averages (exact, `CGNN.renderer`) of the CGNN's
    output function on the ``size`` cells of :math:`[0, 1]`. The rendering
    has no parameters, so ``state_dict`` holds the CGNN's weights only and
    `at_resolution` gives the same generator at another resolution.

    Parameters
    ----------
    cgnn : CGNN
        ``dim=1`` and one output channel.
    size : int
        Samples per signal.

    Examples
    --------
    >>> g = CGNN(latent_dim=4, channels=(4, 2, 1), levels=(2, 3, 4))
    >>> dec = CGNNDecoder(g, 256)
    >>> z = torch.randn(3, 4)
    >>> dec(z).shape
    torch.Size([3, 1, 256])
    >>> coarse = dec.at_resolution(64)(z)
    >>> bool(torch.allclose(dec(z).reshape(3, 1, 64, 4).mean(-1), coarse,
    ...                     atol=1e-6))
    True
    """

    def __init__(self, cgnn, size):
        super().__init__()
        if not isinstance(cgnn, CGNN) or cgnn.dim != 1:
            raise TypeError('`cgnn` must be a 1D CGNN, got '
                            f'{type(cgnn).__name__}'
                            + (f' with dim={cgnn.dim}' if isinstance(
                                cgnn, CGNN) else ''))
        self.cgnn = cgnn
        self.size = int(size)
        self.render = cgnn.renderer(self.size)

    @property
    def latent_dim(self):
        """Dimension of the latent space (the CGNN's).

        Examples
        --------
        >>> CGNNDecoder(CGNN(latent_dim=3, channels=(2, 1),
        ...                  levels=(2, 3)), 8).latent_dim
        3
        """
        return self.cgnn.latent_dim

    def forward(self, z):
        return self.render(self.cgnn(z))[:, None]

    def at_resolution(self, size):
        """The same generator rendered at ``size`` samples (shared weights).

        Parameters
        ----------
        size : int

        Returns
        -------
        CGNNDecoder

        Examples
        --------
        >>> dec = CGNNDecoder(CGNN(latent_dim=2, channels=(2, 1),
        ...                        levels=(2, 3)), 16)
        >>> dec.at_resolution(100)(torch.zeros(1, 2)).shape
        torch.Size([1, 1, 100])
        """
        return CGNNDecoder(self.cgnn, size)


class ConvDecoder1d(nn.Module):
    """Discrete convolutional decoder ``(B, n) -> (B, 1, size)``.

    The discrete generator the CGNN paper compares with: a linear layer to
    ``width`` channels of length ``s0``, then transposed ``Conv1d`` layers
    (kernel 4, stride 2) that double the length up to ``size = s0 * 2^k``
    (``3 <= s0 <= 7``), channels ``width, width/2, ...`` (at least
    ``min_channels``) down to 1, leaky ReLU after every layer (after the last
    one too if ``final_nonlinearity``, as in `CGNN`). With ``width=32`` and
    ``min_channels=4`` it has about as many parameters as the default 1D CGNN
    (channels ``32, ..., 1``).

    Parameters
    ----------
    latent_dim : int
    size : int
    width : int
    min_channels : int
    negative_slope : float
    final_nonlinearity : bool

    Examples
    --------
    >>> dec = ConvDecoder1d(latent_dim=15, size=4096, width=32)
    >>> dec(torch.randn(2, 15)).shape
    torch.Size([2, 1, 4096])
    """

    def __init__(self, latent_dim=15, size=4096, width=32, min_channels=4,
                 negative_slope=0.2, final_nonlinearity=True):
        super().__init__()
        s0, k = base_size(size)
        self.latent_dim, self.size = int(latent_dim), int(size)
        ch = [max(int(width) >> i, int(min_channels)) for i in range(k)] + [1]
        self.s0, self.ch0 = s0, ch[0]
        self.negative_slope = float(negative_slope)
        self.fc = nn.Linear(self.latent_dim, ch[0] * s0)
        layers = []
        for i, (a, b) in enumerate(zip(ch[:-1], ch[1:])):
            layers.append(nn.ConvTranspose1d(a, b, 4, stride=2, padding=1))
            if i < k - 1 or final_nonlinearity:
                layers.append(nn.LeakyReLU(self.negative_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f'latent input of shape {tuple(z.shape)}; '
                             f'expected (B, {self.latent_dim})')
        h = nn.functional.leaky_relu(self.fc(z), self.negative_slope)
        return self.net(h.reshape(-1, self.ch0, self.s0))


# --- the blur ----------------------------------------------------------------

class GaussianBlur1d(nn.Module):
    r"""1D Gaussian convolution with zero boundary, as a linear module.

    Signals live on :math:`[0, 1]` with ``size`` samples (spacing
    :math:`h = 1/size`). The kernel is :math:`\exp(-u^2 / (2\sigma^2))` in a
    coordinate :math:`u` in which the interval ``[-halfwidth, halfwidth]``
    has the length of the signal domain, :math:`u = 2\,halfwidth\,(t -
    t')`: it is sampled at the offsets :math:`m h`, :math:`|u| \le`
    ``halfwidth``, and normalised to sum one. With the defaults
    (:math:`\sigma = 2` on :math:`[-4, 4]`) the standard deviation is
    :math:`1/4` of the domain and the kernel is cut at :math:`\pm 2\sigma`.
    The convolution is linear (zero outside :math:`[0, 1]`), computed by FFT;
    its vector-Jacobian product is its adjoint (the kernel is symmetric).

    Parameters
    ----------
    size : int
    sigma : float
        Standard deviation in the kernel coordinate :math:`u`.
    halfwidth : float
        The kernel is cut at :math:`|u| \le` ``halfwidth``; also sets the
        scale (see above).
    dtype : torch.dtype

    Examples
    --------
    >>> blur = GaussianBlur1d(64)
    >>> float(blur.kernel.sum())
    1.0
    >>> blur(torch.ones(2, 1, 64)).shape
    torch.Size([2, 1, 64])
    """

    def __init__(self, size, sigma=2.0, halfwidth=4.0, dtype=torch.float32):
        super().__init__()
        if sigma <= 0 or halfwidth <= 0 or int(size) < 1:
            raise ValueError(f'need size >= 1, sigma > 0, halfwidth > 0; got '
                             f'size={size}, sigma={sigma}, '
                             f'halfwidth={halfwidth}')
        self.size = int(size)
        self.sigma, self.halfwidth = float(sigma), float(halfwidth)
        du = 2.0 * self.halfwidth / self.size  # u per sample
        r = int(math.floor(self.halfwidth / du + 1e-9))
        u = torch.arange(-r, r + 1, dtype=torch.float64) * du
        k = torch.exp(-0.5 * (u / self.sigma) ** 2)
        self._kernel64 = k / k.sum()
        self.radius = r
        # Linear (not circular) convolution: pad to at least size + 2r.
        self.n_fft = 1 << (self.size + 2 * r).bit_length()
        self.register_buffer('kernel', self._kernel64.to(dtype),
                             persistent=False)
        self.register_buffer('kernel_fft', torch.empty(0), persistent=False)
        self._refresh()

    def _refresh(self):
        k = self._kernel64.to(device=self.kernel.device)
        self.kernel = k.to(self.kernel.dtype)
        # Kernel centred at index 0 (wrap the negative offsets), so output
        # sample i is sum_m k[m] x[i - m].
        padded = torch.zeros(self.n_fft, dtype=torch.float64, device=k.device)
        padded[:self.radius + 1] = k[self.radius:]
        if self.radius:
            padded[-self.radius:] = k[:self.radius]
        kf = torch.fft.rfft(padded)
        cdtype = torch.complex64 if self.kernel.dtype != torch.float64 \
            else torch.complex128
        self.kernel_fft = kf.to(cdtype)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._refresh()
        return out

    def forward(self, x):
        if x.shape[-1] != self.size:
            raise ValueError(f'GaussianBlur1d: input of shape '
                             f'{tuple(x.shape)}; the last axis must have '
                             f'{self.size} samples')
        xf = torch.fft.rfft(x, n=self.n_fft)
        y = torch.fft.irfft(xf * self.kernel_fft, n=self.n_fft)
        return y[..., :self.size]

    def extra_repr(self):
        return (f'size={self.size}, sigma={self.sigma}, '
                f'halfwidth={self.halfwidth}, taps={2 * self.radius + 1}')


def signal_space(size, dtype='float32', impl='numpy', device='cpu'):
    """``uniform_discr(0, 1, size)``: the space of sampled signals.

    Examples
    --------
    >>> signal_space(8)
    uniform_discr(0.0, 1.0, 8, dtype='float32')
    """
    kwargs = {'device': device} if impl == 'pytorch' else {}
    return odl.uniform_discr(0, 1, int(size), dtype=dtype, impl=impl,
                             **kwargs)


def blur_operator(space, sigma=2.0, halfwidth=4.0):
    """`GaussianBlur1d` on ``space`` as a linear ODL operator.

    Parameters
    ----------
    space : odl.DiscretizedSpace
        1D ``uniform_discr`` space; domain and range.
    sigma, halfwidth : float
        See `GaussianBlur1d`.

    Returns
    -------
    odl_genprior.TorchOperator
        Linear; its adjoint is the blur's vector-Jacobian product.

    Examples
    --------
    >>> A = blur_operator(signal_space(32, dtype='float64'))
    >>> A.is_linear, A.range.shape
    (True, (32,))
    """
    if not isinstance(space, odl.DiscretizedSpace) or space.ndim != 1:
        raise TypeError(f'`space` must be a 1D uniform_discr space, got '
                        f'{space!r}')
    dtype = space_dtype(space)
    blur = GaussianBlur1d(space.shape[0], sigma, halfwidth, dtype=dtype)
    if getattr(space, 'impl', 'numpy') == 'pytorch':
        blur = blur.to(space.device)
    return TorchOperator(blur, space, space, in_shape=(1, 1) + space.shape,
                         linear=True)
