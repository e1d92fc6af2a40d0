"""Lifted Bregman inversion of a random ReLU perceptron (the seed's setting).

``N(u) = max(0, W u + b)``, ``W: R^{64x64} -> R^{512}`` and ``b`` with
standard normal entries, ``u`` the modified Shepp-Logan phantom,
``f = N(u) + e`` (Gaussian, 1% of the mean data magnitude, then projected
onto ``f >= 0``, the domain of ``Psi``). Compares

* least squares ``min 1/2 ||N(u) - f||^2`` (ODL steepest descent, from 0),
* lifted Bregman with ``J = 1/2 ||u||^2`` (Tikhonov),
* lifted Bregman with TV, ``alpha = 0.015`` (the seed's weight) and a
  larger weight, with ODL's ``pdhg`` and ``forward_backward_pd``,

and prints PSNR, SSIM, relative error and run time.

Run: ``python examples/bregman_inversion.py [--size 64] [--outputs 512]
[--niter 500]``.
"""
import argparse
import time

from odl_genprior import metrics
from odl_genprior.recon.bregman_inversion import (LiftedBregmanInversion,
                                                  NetworkLeastSquares,
                                                  perceptron_problem)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--outputs', type=int, default=512)
    parser.add_argument('--niter', type=int, default=500)
    parser.add_argument('--noise', type=float, default=0.01)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    p = perceptron_problem(size=args.size, num_outputs=args.outputs,
                           noise_level=args.noise, seed=args.seed)
    print(f'{p.name}: R^{args.size}x{args.size} -> R^{args.outputs}, '
          f'||f - N(u)|| = {p.noise_level:.4g}, '
          f'{args.niter} iterations')
    n = args.niter
    methods = [
        ('least squares (GD)', NetworkLeastSquares(niter=n)),
        ('Bregman l2, a=0.015', LiftedBregmanInversion(
            alpha=0.015, regulariser='l2', niter=n)),
        ('Bregman TV, a=0.015, pdhg', LiftedBregmanInversion(
            alpha=0.015, niter=n)),
        ('Bregman TV, a=0.015, fb-pd', LiftedBregmanInversion(
            alpha=0.015, niter=n, solver='forward_backward_pd')),
        ('Bregman TV, a=3, pdhg', LiftedBregmanInversion(alpha=3.0,
                                                          niter=n)),
    ]
    rows = []
    for name, method in methods:
        t0 = time.perf_counter()
        u = method(p, progress=False)
        dt = time.perf_counter() - t0
        rows.append((name, metrics.psnr(u, p.ground_truth),
                     metrics.ssim(u, p.ground_truth),
                     metrics.relative_error(u, p.ground_truth), dt))
    print(f'| {"method":<28} | PSNR (dB) | SSIM  | rel. error | seconds |')
    print(f'|{"-" * 30}|-----------|-------|------------|---------|')
    for name, psnr, ssim, rel, dt in rows:
        print(f'| {name:<28} | {psnr:9.2f} | {ssim:5.3f} | {rel:10.3f} | '
              f'{dt:7.1f} |')


if __name__ == '__main__':
    main()
