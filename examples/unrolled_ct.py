"""Unrolled networks against FBP and TV on the ellipse CT benchmark.

Trains learned gradient descent, learned primal-dual and learned
forward-backward (ordinary and C4-equivariant blocks) on random-ellipse CT
(`odl_genprior.problems.ellipse_ct.EllipseCT`: parallel beam, relative Gaussian
noise, fixed seeded splits), then prints PSNR / SSIM / seconds per
reconstruction on the test split next to FBP and TV. Every training run is a
resumable run folder under ``--runs`` (run the command again to continue).

The defaults are a CPU-sized version (32x32, 16 angles, 200 training
pairs, 3 epochs: ~10 min on 2 cores). The benchmark table of issue 6 (the
same methods with tuned FBP/TV settings, DIVal's reference numbers beside
them, cached runs) is ``benchmarks/ellipse_ct.py``; see docs/benchmarks.md.
"""
import argparse
from pathlib import Path

import torch

from odl_genprior.problems.ellipse_ct import EllipseCT, evaluate
from odl_genprior.recon import FBP, TV
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.models.unrolled import train_unrolled

MODELS = {'lgd': ('lgd', None), 'lpd': ('lpd', None), 'lfb': ('lfb', None),
          'lfb-c4': ('lfb', 'C4')}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--angles', type=int, default=16)
    parser.add_argument('--noise', type=float, default=0.05)
    parser.add_argument('--n-train', type=int, default=200)
    parser.add_argument('--n-test', type=int, default=20)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--width', type=int, default=32)
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument('--tv-alpha', type=float, default=1e-3)
    parser.add_argument('--runs', default='runs/unrolled_ct')
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    bench = EllipseCT(size=args.size, num_angles=args.angles,
                      noise_level=args.noise)
    print(f'ellipse CT: {args.size}x{args.size}, {args.angles} angles, '
          f'{args.noise:.0%} noise; {args.n_train} training pairs, '
          f'{args.epochs} epochs; {args.n_test} test images')
    test = [bench.problem(i, 'test') for i in range(args.n_test)]
    rows = [('FBP', evaluate(FBP(), test)),
            ('TV', evaluate(TV(alpha=args.tv_alpha, niter=200), test))]
    for key in args.models:
        scheme, group = MODELS[key]
        config = {'scheme': scheme, 'group': group,
                  'hidden_channels': args.width,
                  'benchmark': bench.config()}
        run = Path(args.runs) / key
        model = train_unrolled(config, run, n_train=args.n_train, n_val=10,
                               epochs=args.epochs, batch_size=args.batch_size,
                               lr=args.lr, progress=True)
        rows.append((key, evaluate(LearnedReconstructor(model), test)))
    print(f'\n{"method":<10}{"PSNR [dB]":>11}{"SSIM":>8}{"s / recon":>11}')
    for name, r in rows:
        print(f'{name:<10}{r["psnr"]:>11.2f}{r["ssim"]:>8.3f}'
              f'{r["seconds"]:>11.3f}')


if __name__ == '__main__':
    main()
