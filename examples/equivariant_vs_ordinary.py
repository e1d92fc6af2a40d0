"""Equivariant against ordinary learned forward-backward on small training sets.

The claim of Celledoni et al. (2021) at CPU scale: learned forward-backward
(x0 = 0, memory 5, 8 steps) on 64x64 random-ellipse CT, 32 parallel-beam
angles, 5% relative Gaussian noise, trained on N_train in {10, 100} images
with ordinary blocks (32 channels) or C4-equivariant blocks (8 regular
fields = the same 32 channels), each for several seeds. Every run trains for
the same number of steps (so N_train = 10 sees each image more often) and is
a resumable run folder under ``--runs``. Prints the median test PSNR / SSIM
over seeds per (N_train, blocks), the per-seed gap, and whether the
expectation (equivariant >= ordinary + 0.3 dB at N_train = 10 in every seed,
a smaller gap at 100) holds.

    python examples/equivariant_vs_ordinary.py [--steps 300] [--seeds 0 1 2]

Cost: 0.16 s per step at batch 2 on one quiet core, 0.5-0.7 s with the
2-core machine shared, so the defaults (12 runs x 300 steps) take 10-40
minutes; ``--steps 50 --n-test 5`` is a minutes-long smoke run. The table in
docs/equivariant.md came from ``--steps 500`` (about an hour under load).
"""
import argparse
from pathlib import Path

import numpy as np

from odl_genprior.problems.ellipse_ct import EllipseCT, evaluate
from odl_genprior.recon import FBP
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.models.unrolled import train_unrolled


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--angles', type=int, default=32)
    parser.add_argument('--noise', type=float, default=0.05)
    parser.add_argument('--n-train', type=int, nargs='+', default=[10, 100])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--n-test', type=int, default=20)
    parser.add_argument('--group', default='C4')
    parser.add_argument('--runs', default='runs/equivariant_vs_ordinary')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args()

    bench = EllipseCT(size=args.size, num_angles=args.angles,
                      noise_level=args.noise)
    test = [bench.problem(i, 'test') for i in range(args.n_test)]
    fbp = evaluate(FBP(), test)
    print(f'ellipse CT {args.size}x{args.size}, {args.angles} angles, '
          f'{args.noise:.0%} noise; {args.n_test} test images; FBP '
          f'{fbp["psnr"]:.2f} dB / {fbp["ssim"]:.3f}')
    result = {}
    for n in args.n_train:
        epochs = max(1, round(args.steps * args.batch_size / n))
        for seed in args.seeds:
            for group in (None, args.group):
                name = group or 'ordinary'
                config = {'scheme': 'lfb', 'group': group,
                          'hidden_channels': 32, 'benchmark': bench.config()}
                run = Path(args.runs) / f'n{n}-{name}-seed{seed}'
                model = train_unrolled(
                    config, run, n_train=n, n_val=5, epochs=epochs,
                    batch_size=min(args.batch_size, n), lr=args.lr,
                    seed=seed, progress=not args.quiet)
                r = evaluate(LearnedReconstructor(model), test)
                result[n, name, seed] = r
                print(f'N_train={n:<4} {name:<9} seed {seed}: '
                      f'{r["psnr"]:.2f} dB / {r["ssim"]:.3f}', flush=True)

    eq = args.group
    print(f'\nmedian over seeds {args.seeds} ({args.steps} steps each)')
    print(f'{"N_train":<9}{"blocks":<10}{"PSNR [dB]":>11}{"SSIM":>8}')
    for n in args.n_train:
        for name in ('ordinary', eq):
            ps = [result[n, name, s]['psnr'] for s in args.seeds]
            ss = [result[n, name, s]['ssim'] for s in args.seeds]
            print(f'{n:<9}{name:<10}{np.median(ps):>11.2f}'
                  f'{np.median(ss):>8.3f}')
    gaps = {n: [result[n, eq, s]['psnr'] - result[n, 'ordinary', s]['psnr']
                for s in args.seeds] for n in args.n_train}
    for n, g in gaps.items():
        print(f'gap {eq} - ordinary at N_train={n}: '
              + ', '.join(f'{x:+.2f}' for x in g) + ' dB')
    if len(args.n_train) >= 2:
        small, large = min(args.n_train), max(args.n_train)
        every = all(g >= 0.3 for g in gaps[small])
        smaller = np.median(gaps[large]) < np.median(gaps[small])
        print(f'expected: >= +0.3 dB at N_train={small} in every seed: '
              f'{"yes" if every else "NO"}; smaller gap at {large}: '
              f'{"yes" if smaller else "NO"}')


if __name__ == '__main__':
    main()
