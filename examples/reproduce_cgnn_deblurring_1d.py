"""Reproduce the 1D deblurring experiment of the CGNN paper through ODL.

Alberti, Santacesaria and Sciutto (arXiv 2205.14627) train a VAE whose
decoder is a 1D continuous generative network (CGNN: latent 15, 6 scale
levels) on random trigonometric signals and deblur signals by gradient
descent in its latent space; the baseline is a discrete convolutional
generator. This script:

1. trains, with the package's training loop (`recipes.fit`, run folders under
   ``--out``; rerunning resumes or reuses them), a CGNN-VAE for each
   ``--cgnn-boundaries`` (``'zero'``: the MRA of [0, 1] in which the
   injectivity theorem applies; ``'periodic'``: the MRA of the circle, which
   matches the periodic signals) and a discrete ``Conv1d`` VAE of about the
   same number of decoder parameters;
2. builds 1D Gaussian deblurring as a linear ODL operator: a Gaussian of
   standard deviation ``--blur-sigma`` = 2 sampled on ``[-4, 4]``, where
   ``[-4, 4]`` is read as the length of the signal domain [0, 1] (so the
   standard deviation is 1/4 of the domain and the kernel is cut at two
   standard deviations), zero boundary, plus white Gaussian noise of
   standard deviation ``--noise`` times the rms of the blurred signal;
3. solves ``min_z ||A G(z) - y||^2 (+ lam ||z||^2)`` with ODL functionals and
   ``odl.solvers.bfgs_method``, from the encoder mean of the data;
4. prints relative MSEs ``||x - x_hat||^2 / ||x||^2`` over ``--n-test``
   signals (median and mean): the data itself, ``G(z0)`` and the result,
   and for reference least squares in the 5-dimensional linear span the
   signals come from (the best a prior that knows the class can do).

Run from the repository root::

    python examples/reproduce_cgnn_deblurring_1d.py  # 7.5 min, shared 2 cores
"""
import argparse
import os
import shlex
import sys
import time

import numpy as np
import odl
import torch

from odl_genprior.bridge import TorchOperator
from odl_genprior.data import trig_signals
from odl_genprior.generators import recipes
from odl_genprior.generators.signals1d import (blur_operator,
                                               parameter_count, signal_space)
from odl_genprior.recon.latent import latent_deblur

TEST_SEED = 2 ** 20  # test signals: far from the train/validation seeds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='runs/cgnn1d', help='folder of the runs')
    p.add_argument('--size', type=int, default=4096, help='samples/signal')
    p.add_argument('--latent-dim', type=int, default=15)
    p.add_argument('--cgnn-boundaries', nargs='+', default=['zero',
                                                            'periodic'],
                   choices=('zero', 'periodic'))
    p.add_argument('--n-train', type=int, default=4000)
    p.add_argument('--n-val', type=int, default=200)
    p.add_argument('--epochs', type=int, default=25)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--beta', type=float, default=1e-2, help='VAE KL weight')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n-test', type=int, default=20)
    p.add_argument('--noise', type=float, default=0.05,
                   help='noise std relative to the rms of the blurred signal')
    p.add_argument('--blur-sigma', type=float, default=2.0)
    p.add_argument('--blur-halfwidth', type=float, default=4.0)
    p.add_argument('--niter', type=int, default=100, help='BFGS iterations')
    p.add_argument('--lam', type=float, default=0.0,
                   help='weight of ||z||^2 (default none)')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads (1: these small convolutions run '
                        'fastest single-threaded on a shared CPU)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p.parse_args(argv)


def train_all(args):
    """Train (or resume, or reuse) each model; {label: (model, info)}."""
    # The command recorded in config.json names the training options only,
    # so rerunning with other test options reuses the runs.
    train_opts = ['--size', args.size, '--latent-dim', args.latent_dim,
                  '--n-train', args.n_train, '--n-val', args.n_val,
                  '--epochs', args.epochs, '--batch-size', args.batch_size,
                  '--lr', args.lr, '--beta', args.beta, '--seed', args.seed]
    command = 'python examples/reproduce_cgnn_deblurring_1d.py ' + ' '.join(
        shlex.quote(str(a)) for a in train_opts)
    common = {'dataset': 'signals', 'size': args.size,
              'latent_dim': args.latent_dim, 'beta': args.beta}
    runs = [(f'CGNN ({b})', f'cgnn-{b}', dict(common, kind='cgnn', boundary=b))
            for b in args.cgnn_boundaries]
    runs.append(('discrete conv', 'vae-conv1d',
                 dict(common, kind='vae', arch='conv1d')))
    models = {}
    for label, folder, recipe in runs:
        out = os.path.join(args.out, folder)
        t0 = time.perf_counter()
        model = recipes.fit(recipe, out, n_train=args.n_train,
                            n_val=args.n_val, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, progress=not args.quiet,
                            command=command)
        rows = [r for r in _read_metrics(out) if r.get('val_mse') not in
                (None, '')]
        info = {'seconds': time.perf_counter() - t0, 'folder': out,
                'decoder_params': parameter_count(model.decoder),
                'val_mse': float(rows[-1]['val_mse']) if rows else float(
                    'nan')}
        print(f'{label:<16} {folder}: decoder {info["decoder_params"]} '
              f'parameters, validation MSE {info["val_mse"]:.2e}, '
              f'{info["seconds"]:.0f} s', flush=True)
        models[label] = (model, info)
    return models


def _read_metrics(out):
    from odl_genprior.training import read_metrics
    return read_metrics(os.path.join(out, 'metrics.csv'))


def deblur_all(args, models):
    """Blur, add noise, fit each generator; return {label: (n_test, 3)}."""
    space = signal_space(args.size, dtype='float64')
    A = blur_operator(space, args.blur_sigma, args.blur_halfwidth)
    x_all = trig_signals(args.n_test, args.size, 2,
                         seed=TEST_SEED + args.seed).astype(np.float64)
    rng = np.random.default_rng(TEST_SEED + args.seed)
    data = []
    for x in x_all:
        ax = A(space.element(x)).asarray()
        std = args.noise * np.sqrt(np.mean(ax ** 2))
        data.append(ax + std * rng.standard_normal(args.size))

    def rel(est, x):
        return float(np.sum((est - x) ** 2) / np.sum(x ** 2))

    results = {'data': np.array([rel(y, x) for y, x in zip(data, x_all)])}
    # Reference: least squares in the signals' own 5-dimensional linear span
    # (1, cos, sin of modes 1 and 2; min-max scaling stays in it), a "prior"
    # that knows the signal class exactly.
    t = (np.arange(args.size) + 0.5) / args.size
    basis = np.stack([np.ones_like(t)] + [
        f(2 * np.pi * r * t) for r in (1, 2) for f in (np.cos, np.sin)])
    a_basis = np.stack([A(space.element(b)).asarray() for b in basis], 1)
    results['oracle'] = np.array([
        rel(basis.T @ np.linalg.lstsq(a_basis, y, rcond=None)[0], x)
        for x, y in zip(x_all, data)])
    for label, (model, _) in models.items():
        model = model.double().eval()  # float64: line searches need it
        G = TorchOperator(model.decoder,
                          odl.rn(args.latent_dim, dtype='float64'), space)
        rows, t0, stalled = [], time.perf_counter(), 0
        for x, y in zip(x_all, data):
            with torch.no_grad():
                z0 = model.encode(torch.from_numpy(y)[None, None])[0][0]
            z0 = G.domain.element(z0.numpy())
            fit = latent_deblur(G, A, space.element(y), z0=z0, lam=args.lam,
                                niter=args.niter, method='bfgs')
            stalled += fit.stalled
            rows.append((rel(G(z0).asarray(), x), rel(fit.x.asarray(), x),
                         fit.misfit_start, fit.misfit))
        rows = np.array(rows)
        print(f'{label:<16} deblurred {len(rows)} signals in '
              f'{time.perf_counter() - t0:.0f} s (line search stalled: '
              f'{stalled}); misfit ||A G(z) - y||^2: median '
              f'{np.median(rows[:, 2]):.2e} -> {np.median(rows[:, 3]):.2e}',
              flush=True)
        results[label] = rows[:, :2]
    return results


def print_table(args, models, results):
    print(f'\n1D Gaussian deblurring: {args.n_test} test signals, '
          f'{args.size} samples, kernel sigma={args.blur_sigma:g} on '
          f'[-{args.blur_halfwidth:g}, {args.blur_halfwidth:g}] (= std '
          f'{args.blur_sigma / (2 * args.blur_halfwidth):g} of [0, 1]), zero '
          f'boundary, noise {args.noise:.0%} of rms(Ax); latent '
          f'{args.latent_dim}, BFGS {args.niter} iterations, '
          f'lam={args.lam:g}')
    print('relative MSE ||x - x_hat||^2 / ||x||^2')
    print(f'{"estimate":<44}{"median":>10}{"mean":>10}{"data/est":>10}')
    d = results['data']
    print(f'{"data y (blurred + noise)":<44}{np.median(d):>10.4f}'
          f'{np.mean(d):>10.4f}{1:>10.1f}')
    for label in models:
        for col, what in ((0, 'G(z0), z0 = encoder mean'),
                          (1, 'G(z), BFGS result')):
            v = results[label][:, col]
            print(f'{label + ": " + what:<44}{np.median(v):>10.4f}'
                  f'{np.mean(v):>10.4f}{np.median(d) / np.median(v):>10.1f}')
    v = results['oracle']
    print(f'{"reference: LS in the true 5-dim span":<44}{np.median(v):>10.4f}'
          f'{np.mean(v):>10.4f}{np.median(d) / np.median(v):>10.1f}')
    print('(data/est: ratio of the medians)')
    for label, (_, info) in models.items():
        wins = int(np.sum(results[label][:, 1] < d))
        print(f'{label}: result below the data on {wins}/{len(d)} signals; '
              f'decoder parameters {info["decoder_params"]}, validation MSE '
              f'{info["val_mse"]:.2e}')


def main(argv=None):
    t0 = time.perf_counter()
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    models = train_all(args)
    results = deblur_all(args, models)
    print_table(args, models, results)
    print(f'\nwall time {time.perf_counter() - t0:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
