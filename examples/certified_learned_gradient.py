"""Certified (nonexpansive-block) against ordinary learned gradient descent.

Ellipse CT (`odl_genprior.ct_benchmark.EllipseCT`: 64x64, 30 parallel-beam
angles, 5% relative Gaussian noise) with a small training set (20 images).
Both networks have 10 unrolled steps and 5 memory channels, about the same
number of parameters, and are trained with the same protocol and budget
(`train_certified`: MSE, Adam, cosine schedule, the same steps, batch,
learning rate and seed):

* ordinary: `odl_genprior.unrolled.LearnedGradientDescent` (Adler and Oktem,
  3-layer conv updates with 32 hidden channels; 130k parameters);
* certified: `odl_genprior.certified.CertifiedLearnedGradient`
  (``x <- R_k(x - tau_k A^*(A x - y))``, ``R_k`` three convex-potential
  layers with 64 hidden channels, each 1-Lipschitz;
  ``tau_k <= 2 / ||A^* A||``; 106k parameters).

Prints test PSNR / SSIM, the certified Lipschitz constant of the map
``y -> x`` (certified net only; none exists for the ordinary one) and two
empirical ones for both: the largest ratio ``||x(y) - x(y')|| / ||y - y'||``
over random perturbations ``y' = y + noise`` (5% level), and the adversarial
estimate of `odl_genprior.odenets.lipschitz_estimate` (Jacobian power
iteration plus a search over pairs). Norms are Euclidean norms of the
arrays (data ``30 x 93``, images ``64 x 64``).

    python examples/certified_learned_gradient.py

Cost: ~0.3 s (ordinary) and ~1 s (certified) per step at batch 2 on one
quiet core; the defaults (300 steps each) take ~10 minutes (more on a busy
machine). Runs are
resumable folders under ``--runs``.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from odl_genprior.certified import (CertifiedLearnedGradient,
                                    lipschitz_bound, train_certified)
from odl_genprior.ct_benchmark import EllipseCT, evaluate
from odl_genprior.odenets import lipschitz_estimate
from odl_genprior.recon import FBP
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.training import seed_all
from odl_genprior.unrolled import LearnedGradientDescent


def random_ratio(model, y, n_draws, level, seed):
    """Largest ``||x(y) - x(y')|| / ||y - y'||`` over noise perturbations."""
    gen = torch.Generator().manual_seed(seed)
    best = 0.0
    with torch.no_grad():
        x = model(y)
        for _ in range(n_draws):
            d = torch.randn(y.shape, generator=gen)
            scale = level * y.abs().flatten(1).mean(1) / d.flatten(1).std(1)
            d = d * scale[:, None, None]
            r = ((model(y + d) - x).flatten(1).norm(dim=1)
                 / d.flatten(1).norm(dim=1))
            best = max(best, float(r.max()))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--angles', type=int, default=30)
    parser.add_argument('--noise', type=float, default=0.05)
    parser.add_argument('--n-train', type=int, default=20)
    parser.add_argument('--n-test', type=int, default=20)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--n-iter', type=int, default=10)
    parser.add_argument('--hidden', type=int, default=32,
                        help='hidden channels of the ordinary updates')
    parser.add_argument('--cert-hidden', type=int, default=64,
                        help='hidden channels of each certified layer')
    parser.add_argument('--cert-layers', type=int, default=3,
                        help='convex-potential layers per certified block')
    parser.add_argument('--cert-iter', type=int, default=None,
                        help='unrolled steps of the certified net '
                        '(default --n-iter)')
    parser.add_argument('--cert-step-fraction', type=float, default=0.9,
                        help='initial h / h_max of the certified layers')
    parser.add_argument('--n-lip', type=int, default=4,
                        help='test data points for the Lipschitz estimates')
    parser.add_argument('--lip-iters', type=int, default=20)
    parser.add_argument('--lip-search', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-ordinary', action='store_true')
    parser.add_argument('--runs', default='runs/certified_learned_gradient')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(1)

    bench = EllipseCT(size=args.size, num_angles=args.angles,
                      noise_level=args.noise)
    train_pairs = bench.pairs(args.n_train, 'train')
    val_pairs = bench.pairs(4, 'validation')
    test = [bench.problem(i, 'test') for i in range(args.n_test)]
    y_lip, _ = bench.pairs(args.n_lip, 'test')
    epochs = max(1, round(args.steps * args.batch_size / args.n_train))
    fbp = evaluate(FBP(), test)
    print(f'ellipse CT {args.size}x{args.size}, {args.angles} angles, '
          f'{args.noise:.0%} noise; {args.n_train} training images, '
          f'{epochs * (args.n_train // args.batch_size)} steps of batch '
          f'{args.batch_size}; {args.n_test} test images', flush=True)

    cert_iter = args.cert_iter or args.n_iter
    cert_name = (f'certified-K{cert_iter}-L{args.cert_layers}-'
                 f'h{args.cert_hidden}-f{args.cert_step_fraction:g}')
    builders = {
        'ordinary': lambda: LearnedGradientDescent(
            bench.operator, n_iter=args.n_iter, memory=5,
            hidden_channels=args.hidden),
        cert_name: lambda: CertifiedLearnedGradient(
            bench.operator, n_iter=cert_iter, memory=5,
            hidden_channels=args.cert_hidden, n_layers=args.cert_layers,
            step_fraction=args.cert_step_fraction),
    }
    rows = []
    if args.skip_ordinary:
        del builders['ordinary']
    for name, build in builders.items():
        seed_all(args.seed)
        model = build()
        t = time.perf_counter()
        model = train_certified(
            model, train_pairs, Path(args.runs) / name, val_data=val_pairs,
            epochs=epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, progress=not args.quiet,
            config={'model': name, 'args': vars(args),
                    'benchmark': bench.config()})
        train_s = time.perf_counter() - t
        r = evaluate(LearnedReconstructor(model, name), test)
        bound = (lipschitz_bound(model)
                 if isinstance(model, CertifiedLearnedGradient) else None)
        rnd = random_ratio(model, y_lip, 8, args.noise, args.seed)
        t = time.perf_counter()
        adv = lipschitz_estimate(model, y_lip, iters=args.lip_iters,
                                 search_steps=args.lip_search, lr=1e-2,
                                 seed=args.seed)
        lip_s = time.perf_counter() - t
        n_par = sum(p.numel() for p in model.parameters())
        rows.append((name, n_par, r['psnr'], r['ssim'], bound, rnd, adv))
        print(f'{name}: trained in {train_s:.0f} s, PSNR {r["psnr"]:.2f} dB, '
              f'SSIM {r["ssim"]:.3f}, bound {bound}, random {rnd:.4f}, '
              f'adversarial {adv:.4f} ({lip_s:.0f} s)', flush=True)
        if bound is not None:
            tau = model.step_sizes().detach().numpy() * float(
                model.normal_norm)
            print(f'  tau_k ||A^*A|| = {np.array2string(tau, precision=3)}'
                  f' (each <= 2)', flush=True)

    print(f'\nFBP (Ram-Lak): {fbp["psnr"]:.2f} dB / {fbp["ssim"]:.3f}')
    print('| scheme | parameters | test PSNR [dB] | SSIM | Lipschitz bound '
          '| estimate, random | estimate, adversarial |')
    print('|---|---|---|---|---|---|---|')
    for name, n_par, psnr, ssim, bound, rnd, adv in rows:
        b = f'{bound:.3f}' if bound is not None else 'none'
        print(f'| {name} | {n_par} | {psnr:.2f} | {ssim:.3f} | {b} | '
              f'{rnd:.3f} | {adv:.3f} |')


if __name__ == '__main__':
    main()
