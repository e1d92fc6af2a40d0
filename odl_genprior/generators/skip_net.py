"""A small encoder-decoder with skip connections (the deep image prior's net).

`SkipNet` follows the "skip" architecture of Ulyanov, Vedaldi and Lempitsky
(Deep Image Prior, 2018), scaled down so that a 64 x 64 image fits in a few
milliseconds per step on a CPU: ``len(channels)`` levels, each a strided
3 x 3 convolution (halving the side) and a 3 x 3 convolution on the way
down, a 1 x 1 convolution as the skip branch of the level, and on the way up
bilinear up-sampling, concatenation with the skip branch, a 3 x 3 and a
1 x 1 convolution. It maps ``(B, in_channels, H, W)`` to
``(B, out_channels, H, W)`` for any ``H, W`` (odd sides included: the
up-sampling goes to the skip branch's size).

Group normalisation (default) instead of the original batch normalisation
makes the output of one image independent of the batch it is in, so a
network pre-trained on batches (the educated warm start of Barbano et al.
2022) behaves the same when it is then fitted to a single image.
"""
import math

import torch
from torch import nn

from odl_genprior.activations import activation

__all__ = ('SkipNet',)

_NORMS = ('group', 'batch', 'none', None)


def _norm(kind, c):
    if kind == 'group':
        # Groups of up to 4 channels' worth: gcd keeps it a divisor of c.
        return nn.GroupNorm(math.gcd(4, c), c)
    if kind == 'batch':
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _block(kind, c_in, c_out, kernel, stride=1):
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride,
                      padding=kernel // 2),
            _norm(kind, c_out), nn.LeakyReLU(0.2)]


class SkipNet(nn.Module):
    """Encoder-decoder with skip connections, image to image.

    Parameters
    ----------
    in_channels : int
        Channels of the input (32 for a noise input, 1 for an FBP input).
    out_channels : int
        Channels of the output image.
    channels : sequence of int
        Channels per level (one down-sampling per level); the input side
        must be at least ``2 ** len(channels)``.
    skip_channels : int
        Channels of each skip branch (0: no skip connections).
    norm : {'group', 'batch', 'none'}
        Normalisation after every convolution.
    out_activation : {None, 'none', 'sigmoid', 'tanh', 'relu'}
        Applied to the output (None: linear output).
    residual : bool
        Add the input to the last convolution's output (before the
        activation): the network learns a correction of its input, e.g.
        of an FBP. Needs ``in_channels == out_channels``.

    Examples
    --------
    >>> net = SkipNet(in_channels=1, channels=(8, 16))
    >>> net(torch.randn(1, 1, 20, 21)).shape
    torch.Size([1, 1, 20, 21])
    >>> net.in_channels, net.out_channels
    (1, 1)

    A residual network starts near the identity (its correction is small):

    >>> res = SkipNet(in_channels=1, channels=(8,), residual=True)
    >>> x = torch.rand(1, 1, 16, 16)
    >>> bool((res(x) - x).abs().mean() < x.abs().mean())
    True
    """

    def __init__(self, in_channels=32, out_channels=1, channels=(16, 32, 64),
                 skip_channels=4, norm='group', out_activation=None,
                 residual=False):
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f'residual=True needs in_channels == '
                             f'out_channels, got {in_channels} and '
                             f'{out_channels}')
        self.residual = bool(residual)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f'`channels` must be a non-empty sequence of '
                             f'positive ints, got {channels!r}')
        if int(in_channels) < 1 or int(out_channels) < 1 or int(
                skip_channels) < 0:
            raise ValueError(
                f'in_channels={in_channels} and out_channels={out_channels}'
                f' must be positive, skip_channels={skip_channels} '
                'non-negative')
        if norm not in _NORMS:
            raise ValueError(f'norm must be one of {_NORMS}, got {norm!r}')
        out_act = activation(out_activation)  # refuses an unknown name
        self.in_channels, self.out_channels = int(in_channels), int(
            out_channels)
        self.channels, self.skip_channels = channels, int(skip_channels)
        self.levels = len(channels)
        down, skips, up = [], [], []
        c_prev = self.in_channels
        for i, c in enumerate(channels):
            down.append(nn.Sequential(*_block(norm, c_prev, c, 3, stride=2),
                                      *_block(norm, c, c, 3)))
            skips.append(nn.Sequential(*_block(norm, c_prev, skip_channels, 1))
                         if skip_channels else nn.Identity())
            c_deep = channels[i + 1] if i + 1 < len(channels) else c
            up.append(nn.Sequential(
                _norm(norm, c_deep + skip_channels),
                *_block(norm, c_deep + skip_channels, c, 3),
                *_block(norm, c, c, 1)))
            c_prev = c
        self.down, self.skips = nn.ModuleList(down), nn.ModuleList(skips)
        self.up = nn.ModuleList(up)
        self.head = nn.Conv2d(channels[0], self.out_channels, 1)
        self.activation = out_act

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SkipNet expects an input of shape (B, '
                             f'{self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')
        side = 2 ** self.levels
        if min(x.shape[-2:]) < side:
            raise ValueError(f'SkipNet with {self.levels} levels needs '
                             f'sides >= {side}, got input {tuple(x.shape)}')
        skipped, sizes, h = [], [], x
        for down, skip in zip(self.down, self.skips):
            skipped.append(skip(h) if self.skip_channels else None)
            sizes.append(h.shape[-2:])
            h = down(h)
        for up, s, size in zip(reversed(self.up), reversed(skipped),
                               reversed(sizes)):
            # Back to the side before this level's down-sampling (odd too).
            h = nn.functional.interpolate(h, size=size, mode='bilinear',
                                          align_corners=False)
            h = up(h if s is None else torch.cat([s, h], dim=1))
        h = self.head(h)
        return self.activation(h + x if self.residual else h)
