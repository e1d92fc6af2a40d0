"""A shipped network averaged over the symmetries of the ray transform.

DIVal's ellipses are parallel-beam CT with 30 angles over 180 degrees, a
detector centred on the axis and a square grid: the quarter turns and the
mirrors of the image are permutations of the sinogram
(`odl_genprior.problems.ray_transform_symmetries` finds the eight and checks
them). A learned primal-dual network is not equivariant to them; averaging
``g^{-1} R(T_g y)`` over the eight makes it so
(`odl_genprior.recon.SymmetryAveraged`). This script prints, on the first
``--n`` test images, the PSNR of each shipped network alone and averaged,
how far the network is from equivariant (the relative distance between
``R(T_g y)`` and ``g R(y)``, mean over g), and the cost. About a minute on
2 CPU cores for ``--n 5``:

    python examples/symmetry_averaging.py --n 5
"""
import argparse
import time

import numpy as np
import torch

from odl_genprior import metrics
from odl_genprior.models.unrolled import pretrained_for
from odl_genprior.problems import ray_transform_symmetries
from odl_genprior.problems.ellipse_ct import DivalEllipses
from odl_genprior.recon import LearnedReconstructor, SymmetryAveraged


def equivariance_error(members):
    """Mean over g of ``||R(T_g y) - g R(y)|| / ||R(y)||``, from the terms
    ``g^{-1} R(T_g y)`` of `SymmetryAveraged.members` (the identity first):
    g is a permutation, so it moves out of the norm."""
    x = members[0]
    return float(np.mean([float((m - x).norm() / x.norm())
                          for m in members[1:]]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=5, help='test images')
    parser.add_argument('--networks', nargs='+', default=None,
                        help='shipped names (default: every DIVal network)')
    args = parser.parse_args(argv)

    bench = DivalEllipses()
    A = bench.operator
    symmetries = ray_transform_symmetries(A)
    print(f'{len(symmetries)} symmetries of the ray transform: '
          + ', '.join(s.name for s in symmetries))
    y, truth = bench.pairs(args.n, 'test')
    y = torch.as_tensor(np.asarray(y))
    truth = np.asarray(truth)
    print(f'{"network":<28}{"alone":>8}{"averaged":>10}{"gain":>7}'
          f'{"equiv. err.":>13}{"s / image":>11}')
    rows = []
    for name in args.networks or pretrained_for('dival'):
        plain = LearnedReconstructor.pretrained(name)
        averaged = SymmetryAveraged(plain, symmetries)
        t0 = time.perf_counter()
        x0 = plain.reconstruct_batch(A, y).numpy()
        t1 = time.perf_counter()
        members = averaged.members(A, y)
        x1 = members.mean(0).numpy()
        t2 = time.perf_counter()
        p0 = np.mean([metrics.psnr(a, b) for a, b in zip(x0, truth)])
        p1 = np.mean([metrics.psnr(a, b) for a, b in zip(x1, truth)])
        err = equivariance_error(members)
        print(f'{name:<28}{p0:>8.2f}{p1:>10.2f}{p1 - p0:>+7.2f}{err:>13.4f}'
              f'{(t2 - t1) / args.n:>11.2f}', flush=True)
        rows.append({'network': name, 'psnr': p0, 'psnr_averaged': p1,
                     'equivariance_error': err,
                     'seconds': (t1 - t0) / args.n,
                     'seconds_averaged': (t2 - t1) / args.n})
    return rows


if __name__ == '__main__':
    main()
