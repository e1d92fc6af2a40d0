"""Certified (nonexpansive-block) against ordinary learned gradient descent.

Ellipse CT (`odl_genprior.problems.ellipse_ct.EllipseCT`: 64x64, 30 parallel-beam
angles, 5% relative Gaussian noise) with a small training set (20 images).
All networks have 5 memory channels and are trained with the same protocol
and budget (`train_certified`: MSE, Adam, cosine schedule, the same 300
steps of batch 2, learning rate and seed):

* ordinary: `odl_genprior.nn.unrolled.LearnedGradientDescent` (Adler and Oktem,
  10 steps, 3-layer conv updates with 32 hidden channels; 130k parameters);
* certified: `odl_genprior.nn.certified.CertifiedLearnedGradient`
  (``x <- R_k(x - tau_k A^*(A x - y))``, ``R_k`` convex-potential layers,
  each 1-Lipschitz; ``tau_k <= 2 / ||A^* A||``), by default with 10 steps
  of 3 layers (64 hidden channels, 106k parameters) and with 20 steps of 1
  layer (70k parameters): ``--certified K:L:H:F``;
* Landweber: the certified scheme with identity blocks, untrained
  (``tau = 1 / ||A^* A||``, K steps): what the learned blocks add.

Prints test PSNR / SSIM, the certified Lipschitz constant of the map
``y -> x`` (certified schemes only; none exists for the ordinary one) and
two empirical ones: the largest ratio ``||x(y) - x(y')|| / ||y - y'||`` over
random perturbations ``y' = y + noise`` (5% level, 8 draws on 4 test data),
and the adversarial estimate of `odl_genprior.nn.odenets.lipschitz_estimate`
(Jacobian power iteration, 20 iterations, plus 30 Adam steps of a search
over pairs). Norms are Euclidean norms of the arrays (data ``30 x 93``,
images ``64 x 64``).

    python examples/certified_learned_gradient.py

Cost: per step at batch 2 on one quiet core ~0.3 s (ordinary) and ~0.7-1 s
(certified); the defaults take ~15 minutes (~30 on a busy machine). Runs
are resumable folders under ``--runs``: a second call only evaluates.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from odl_genprior.nn.certified import (CertifiedLearnedGradient,
                                    lipschitz_bound, train_certified)
from odl_genprior.problems.ellipse_ct import EllipseCT, evaluate
from odl_genprior.nn.odenets import lipschitz_estimate
from odl_genprior.recon import FBP
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.training import seed_all
from odl_genprior.nn.unrolled import LearnedGradientDescent


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


def landweber(operator, n_iter):
    """The certified scheme with identity blocks (every layer step 0):
    ``n_iter`` Landweber steps, ``tau = 1 / ||A^* A||``, untrained."""
    net = CertifiedLearnedGradient(operator, n_iter=n_iter, memory=0,
                                   hidden_channels=1, n_layers=1)
    with torch.no_grad():
        for block in net.blocks:
            for layer in block.layers:
                layer.step_logit.fill_(-100.0)  # h = 0: R_k = identity
    return net.eval()


def parse_spec(spec):
    """``'K:L:H:F'`` -> unrolled steps, layers per block, hidden channels,
    initial step fraction of the certified network."""
    try:
        k, n_layers, hidden, frac = spec.split(':')
        return int(k), int(n_layers), int(hidden), float(frac)
    except ValueError:
        raise SystemExit(f'--certified expects K:L:H:F (e.g. 10:3:64:0.9), '
                         f'got {spec!r}')


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
    parser.add_argument('--n-iter', type=int, default=10,
                        help='unrolled steps of the ordinary network')
    parser.add_argument('--hidden', type=int, default=32,
                        help='hidden channels of the ordinary updates')
    parser.add_argument('--certified', nargs='*',
                        default=['10:3:64:0.9', '20:1:64:0.5'],
                        help='certified networks K:L:H:F (unrolled steps, '
                        'layers per block, hidden channels, initial step '
                        'fraction)')
    parser.add_argument('--landweber', type=int, nargs='*',
                        default=[10, 20, 40],
                        help='rows for K Landweber steps (identity blocks)')
    parser.add_argument('--no-ordinary', action='store_true')
    parser.add_argument('--n-lip', type=int, default=4,
                        help='test data points for the Lipschitz estimates')
    parser.add_argument('--lip-iters', type=int, default=20)
    parser.add_argument('--lip-search', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
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

    # name -> (builder, architecture recorded in config.json, trained?)
    models = {}
    if not args.no_ordinary:
        arch = {'n_iter': args.n_iter, 'memory': 5,
                'hidden_channels': args.hidden}
        models[f'ordinary K={args.n_iter}'] = (
            lambda a=arch: LearnedGradientDescent(bench.operator, **a),
            {'scheme': 'lgd', **arch}, True)
    for spec in args.certified:
        k, n_layers, hidden, frac = parse_spec(spec)
        arch = {'n_iter': k, 'memory': 5, 'hidden_channels': hidden,
                'n_layers': n_layers, 'step_fraction': frac}
        models[f'certified K={k} L={n_layers} H={hidden} f={frac:g}'] = (
            lambda a=arch: CertifiedLearnedGradient(bench.operator, **a),
            {'scheme': 'certified', **arch}, True)
    for k in args.landweber:
        models[f'Landweber K={k}'] = (
            lambda k=k: landweber(bench.operator, k), None, False)

    rows = []
    for name, (build, arch, trained) in models.items():
        seed_all(args.seed)
        model = build()
        t = time.perf_counter()
        if trained:
            folder = name.replace(' ', '_').replace('=', '')
            model = train_certified(
                model, train_pairs, out_dir=Path(args.runs) / folder,
                val_data=val_pairs, epochs=epochs,
                batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                progress=not args.quiet,
                config={'model': arch, 'benchmark': bench.config(),
                        'n_train': args.n_train, 'lr': args.lr})
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
        n_par = sum(p.numel() for p in model.parameters()) if trained else 0
        rows.append((name, n_par, r['psnr'], r['ssim'], bound, rnd, adv))
        print(f'{name}: trained in {train_s:.0f} s, PSNR {r["psnr"]:.2f} dB, '
              f'SSIM {r["ssim"]:.3f}, bound {bound}, random {rnd:.4f}, '
              f'adversarial {adv:.4f} ({lip_s:.0f} s)', flush=True)
        if bound is not None and trained:
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
