"""Rotation equivariance error of C_N / D_N networks against an ordinary CNN.

Prints ``||f(R x) - R f(x)|| / ||R f(x)||`` for rotations by 90 and 45
degrees, for randomly initialised networks with the same number of channels
(4 conv layers, kernel 5) on Gaussian-smoothed random 64x64 images: the
median over ``--seeds`` initialisations. A few seconds on a CPU.

    python examples/equivariance_error.py [--seeds 5] [--channels 32]
"""
import argparse

import numpy as np
import torch

from odl_genprior.nn.equivariant import (EquivariantCNN, group_order,
                                      rotation_equivariance_error)


def smooth_images(batch, size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, size, size, generator=g)
    t = torch.arange(-6, 7.)
    k = torch.exp(-t ** 2 / 8)
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    return torch.nn.functional.conv2d(x, k[None, None], padding=6)


def ordinary(channels):
    conv = lambda i, o: torch.nn.Conv2d(i, o, 5, padding=2)  # noqa: E731
    return torch.nn.Sequential(conv(1, channels), torch.nn.ReLU(),
                               conv(channels, channels), torch.nn.ReLU(),
                               conv(channels, channels), torch.nn.ReLU(),
                               conv(channels, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--channels', type=int, default=32)
    parser.add_argument('--size', type=int, default=64)
    args = parser.parse_args()
    angles = (90, 45, 30)
    rows = {}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        x = smooth_images(2, args.size, seed)
        nets = {'ordinary': ordinary(args.channels)}
        for g in ('C4', 'C8', 'C16', 'D4', 'D8'):
            if args.channels % group_order(g) == 0:
                nets[g] = EquivariantCNN(1, 1, args.channels, 4, g, 5)
        for name, net in nets.items():
            rows.setdefault(name, []).append(
                [rotation_equivariance_error(net, x, a) for a in angles])
    print(f'relative equivariance error, median over {args.seeds} random '
          f'initialisations, {args.channels} channels, {args.size}x'
          f'{args.size} smooth images')
    print(f'{"network":<10}' + ''.join(f'{str(a) + " deg":>10}'
                                       for a in angles))
    for name, errs in rows.items():
        med = np.median(np.array(errs), axis=0)
        print(f'{name:<10}' + ''.join(f'{e:>10.2e}' for e in med))


if __name__ == '__main__':
    main()
