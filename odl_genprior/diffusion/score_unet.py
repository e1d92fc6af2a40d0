"""A small U-Net score network ``s_theta(x, t)`` for 1-channel images.

Two resolution levels (full and half), residual blocks with GroupNorm and
SiLU, and a time embedding (Gaussian random Fourier features of ``t``,
Song et al. 2021; or sinusoidal, Ho et al. 2020) added to every block. As
in Song's reference code, the output is divided by the SDE's marginal
standard deviation ``std(t)``, so the network learns ``-z`` (the noise
direction) at a scale of one while the score grows like ``1 / std(t)``.
Sized for the CPU by default (about 0.29 M parameters with ``channels=(32,
64)``); image sides must be even (28x28 MNIST, 64x64 ellipses).
"""
import math

import torch
from torch import nn

from odl_genprior.diffusion.sde import SDE

__all__ = ('ScoreUNet', 'EMAScore', 'GaussianFourierEmbedding',
           'SinusoidalEmbedding')


class GaussianFourierEmbedding(nn.Module):
    """``t -> [sin(2 pi w t), cos(2 pi w t)]`` with fixed ``w ~ N(0, scale^2)``.

    Examples
    --------
    >>> GaussianFourierEmbedding(8)(torch.rand(3)).shape
    torch.Size([3, 8])
    """

    def __init__(self, dim, scale=16.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f'embedding dim must be even, got {dim}')
        self.register_buffer('w', torch.randn(dim // 2) * scale)

    def forward(self, t):
        proj = 2 * math.pi * t[:, None] * self.w[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of ``1000 t`` (Ho et al.).

    Examples
    --------
    >>> SinusoidalEmbedding(8)(torch.rand(3)).shape
    torch.Size([3, 8])
    """

    def __init__(self, dim, max_period=10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f'embedding dim must be even, got {dim}')
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer('freqs', freqs)

    def forward(self, t):
        arg = 1000 * t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def _groups(channels):
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, time embedding added in between."""

    def __init__(self, cin, cout, embed_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(embed_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class ScoreUNet(nn.Module):
    """A two-level U-Net score model ``s_theta(x, t)``.

    Parameters
    ----------
    sde : odl_genprior.diffusion.sde.SDE
        Its ``marginal_std(t)`` divides the output.
    channels : (int, int)
        Feature channels at full and half resolution.
    embed_dim : int
        Size of the time embedding (even).
    embedding : {'fourier', 'sinusoidal'}
    in_channels : int
        Image channels (1 for gray images).

    Notes
    -----
    ``forward(x, t)`` takes ``x`` of shape ``(B, C, H, W)`` or, for
    ``C = 1``, ``(B, H, W)`` (the shape of a batch of ODL image elements;
    the output has the input's shape) and ``t`` of shape ``(B,)`` or a
    scalar. ``H`` and ``W`` must be even.

    Examples
    --------
    >>> from odl_genprior.diffusion.sde import VPSDE
    >>> net = ScoreUNet(VPSDE(), channels=(8, 16), embed_dim=16)
    >>> net(torch.randn(2, 1, 28, 28), torch.rand(2)).shape
    torch.Size([2, 1, 28, 28])
    >>> net(torch.randn(2, 8, 8), 0.5).shape
    torch.Size([2, 8, 8])
    """

    def __init__(self, sde, channels=(32, 64), embed_dim=64,
                 embedding='fourier', in_channels=1):
        super().__init__()
        if not isinstance(sde, SDE):
            raise TypeError(f'sde must be an odl_genprior.diffusion.sde.SDE, got '
                            f'{type(sde).__name__}')
        if len(channels) != 2:
            raise ValueError(f'channels must be two ints (two resolution '
                             f'levels), got {channels!r}')
        c1, c2 = (int(c) for c in channels)
        self.sde = sde
        self.in_channels = int(in_channels)
        if embedding == 'fourier':
            emb = GaussianFourierEmbedding(embed_dim)
        elif embedding == 'sinusoidal':
            emb = SinusoidalEmbedding(embed_dim)
        else:
            raise ValueError(f"embedding must be 'fourier' or 'sinusoidal', "
                             f'got {embedding!r}')
        self.embed = nn.Sequential(emb, nn.Linear(embed_dim, embed_dim),
                                   nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.down1 = _ResBlock(c1, c1, embed_dim)
        self.downsample = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = _ResBlock(c1, c2, embed_dim)
        self.mid = _ResBlock(c2, c2, embed_dim)
        self.upsample = nn.ConvTranspose2d(c2, c2, 4, stride=2, padding=1)
        self.up1 = _ResBlock(c2 + c1, c1, embed_dim)
        self.norm_out = nn.GroupNorm(_groups(c1), c1)
        self.conv_out = nn.Conv2d(c1, in_channels, 3, padding=1)

    def forward(self, x, t):
        squeeze = x.ndim == 3 and self.in_channels == 1
        if squeeze:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'expected x of shape (B, {self.in_channels}, H,'
                             f' W), got {tuple(x.shape)}')
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f'image sides must be even, got '
                             f'{tuple(x.shape[-2:])}')
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t)
        h1 = self.down1(self.conv_in(x), emb)
        h = self.down2(self.downsample(h1), emb)
        h = self.mid(h, emb)
        h = self.up1(torch.cat([self.upsample(h), h1], dim=1), emb)
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        out = out / self.sde.marginal_std(t).reshape(-1, 1, 1, 1)
        return out[:, 0] if squeeze else out

    def extra_repr(self):
        return f'sde={self.sde!r}'


class EMAScore(nn.Module):
    """A score network with an exponential moving average of its weights.

    In training mode ``forward`` runs the trained network ``net``; in eval
    mode it runs ``ema``, a copy whose weights follow ``ema <- decay ema +
    (1 - decay) net`` at every `update` (Song et al. 2021 sample with the
    EMA weights). The copy holds no trainable parameters, so an optimizer
    over ``parameters()`` that skips ``requires_grad=False`` (as
    `odl_genprior.training.train` does) trains ``net`` alone, and one
    ``state_dict`` stores both.

    Parameters
    ----------
    net : ScoreUNet
        Any module ``net(x, t)`` with an ``sde`` attribute.
    decay : float
        In ``[0, 1)``; 0 makes ``ema`` a plain copy of ``net``.

    Examples
    --------
    >>> from odl_genprior.diffusion.sde import VPSDE
    >>> model = EMAScore(ScoreUNet(VPSDE(), channels=(8, 16), embed_dim=16),
    ...                  decay=0.5)
    >>> sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(
    ...     p.numel() for p in model.net.parameters())
    True
    >>> model.update()
    >>> int(model.num_updates)
    1
    >>> model.eval()(torch.randn(2, 8, 8), 0.5).shape
    torch.Size([2, 8, 8])
    """

    def __init__(self, net, decay=0.999):
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f'decay must lie in [0, 1), got {decay}')
        if not hasattr(net, 'sde'):
            raise TypeError(f'net must be a score network with an `sde` '
                            f'attribute (e.g. ScoreUNet), got '
                            f'{type(net).__name__}')
        import copy
        self.net = net
        self.ema = copy.deepcopy(net)
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))

    @property
    def sde(self):
        """The SDE of the network."""
        return self.net.sde

    @torch.no_grad()
    def update(self):
        """One EMA step (with Song's warm-up ``min(decay, (1+n)/(10+n))``)."""
        n = int(self.num_updates)
        d = min(self.decay, (1 + n) / (10 + n))
        for pe, p in zip(self.ema.parameters(), self.net.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1 - d)
        for be, b in zip(self.ema.buffers(), self.net.buffers()):
            be.copy_(b)
        self.num_updates += 1

    def forward(self, x, t):
        return self.net(x, t) if self.training else self.ema(x, t)

    def extra_repr(self):
        return f'decay={self.decay}'
