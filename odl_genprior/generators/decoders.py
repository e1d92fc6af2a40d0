"""Convolutional decoder (DCGAN-like) and encoder for square images.

The decoder maps ``(B, latent_dim)`` to ``(B, 1, size, size)``: a linear
layer to ``channels[0]`` maps of side ``size / 2^k``, then ``k`` transposed
convolutions (stride 2) that double the side and reduce the channels. The
encoder mirrors it with strided convolutions. ``size`` must be
``s0 * 2^k`` with ``s0`` in 3..7 (28 = 7 * 2^2, 64 = 4 * 2^4, ...).
"""
import torch
from torch import nn

from odl_genprior.activations import activation

__all__ = ('ConvDecoder', 'ConvEncoder', 'MLPDecoder', 'MLPEncoder',
           'base_size')


def base_size(size):
    """Split ``size`` as ``s0 * 2^k`` with ``3 <= s0 <= 7``; return (s0, k).

    Examples
    --------
    >>> base_size(28), base_size(64), base_size(128)
    ((7, 2), (4, 4), (4, 5))
    """
    s0, k = int(size), 0
    while s0 > 7 and s0 % 2 == 0:
        s0, k = s0 // 2, k + 1
    if not 3 <= s0 <= 7 or k == 0:
        raise ValueError(f'image size {size} is not s0 * 2^k with 3 <= s0 <= 7'
                         ' and k >= 1')
    return s0, k


def _channels(k, width):
    return [max(width >> i, 8) for i in range(k)] + [1]


class ConvDecoder(nn.Module):
    """DCGAN-like decoder ``R^latent_dim -> (1, size, size)``.

    Parameters
    ----------
    latent_dim : int
    size : int
        Output side, ``s0 * 2^k`` (see `base_size`).
    width : int
        Channels after the linear layer; halved at each up-sampling
        (at least 8).
    out_activation : {'sigmoid', 'tanh', 'relu', 'none'}
        Sigmoid suits images in [0, 1].

    Examples
    --------
    >>> dec = ConvDecoder(latent_dim=20, size=28)
    >>> dec(torch.randn(3, 20)).shape
    torch.Size([3, 1, 28, 28])
    """

    def __init__(self, latent_dim=64, size=64, width=128,
                 out_activation='sigmoid'):
        super().__init__()
        s0, k = base_size(size)
        ch = _channels(k, width)
        self.latent_dim, self.size = int(latent_dim), int(size)
        self.s0, self.ch0 = s0, ch[0]
        self.fc = nn.Linear(latent_dim, ch[0] * s0 * s0)
        layers = []
        for i, (a, b) in enumerate(zip(ch[:-1], ch[1:])):
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < k - 1:
                layers += [nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        layers.append(activation(out_activation))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        h = nn.functional.leaky_relu(self.fc(z), 0.2)
        return self.net(h.reshape(-1, self.ch0, self.s0, self.s0))


class ConvEncoder(nn.Module):
    """Strided-convolution encoder ``(1, size, size) -> R^out_dim``.

    For a VAE, ``out_dim = 2 * latent_dim`` (mean and log-variance).

    Examples
    --------
    >>> enc = ConvEncoder(out_dim=40, size=28)
    >>> enc(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 40])
    """

    def __init__(self, out_dim=128, size=64, width=128, norm=True):
        super().__init__()
        s0, k = base_size(size)
        ch = _channels(k, width)[::-1]
        layers = []
        for i, (a, b) in enumerate(zip(ch[:-1], ch[1:])):
            layers.append(nn.Conv2d(a, b, 4, stride=2, padding=1))
            if norm and i > 0:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(ch[-1] * s0 * s0, out_dim)

    def forward(self, x):
        return self.fc(self.net(x).flatten(1))


class MLPDecoder(nn.Module):
    """Fully connected decoder ``R^latent_dim -> (1, *shape)``.

    The architecture of Bora et al.'s MNIST VAE (20 -> 500 -> 500 -> 784).

    Examples
    --------
    >>> MLPDecoder(20, (28, 28))(torch.randn(2, 20)).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(self, latent_dim=20, shape=(28, 28), hidden=(500, 500),
                 out_activation='sigmoid'):
        super().__init__()
        self.latent_dim, self.shape = int(latent_dim), tuple(shape)
        dims = [latent_dim, *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Softplus()]
        n = 1
        for s in self.shape:
            n *= s
        layers += [nn.Linear(dims[-1], n), activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z).reshape(-1, 1, *self.shape)


class MLPEncoder(nn.Module):
    """Fully connected encoder ``(1, *shape) -> R^out_dim``.

    Examples
    --------
    >>> MLPEncoder(40, (28, 28))(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 40])
    """

    def __init__(self, out_dim=40, shape=(28, 28), hidden=(500, 500)):
        super().__init__()
        n = 1
        for s in shape:
            n *= s
        dims = [n, *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Softplus()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))
