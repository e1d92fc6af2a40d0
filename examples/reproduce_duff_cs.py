"""Reproduce Duff, Campbell, Ehrhardt 2022: hard, soft and sparse-deviation priors.

Duff, Campbell, Ehrhardt, "Regularising inverse problems with generative
machine learning models" (2022), on MNIST compressed sensing: a generator
used as a *hard* constraint (``x = G(z)``, `LatentHard`), as a *soft* one
(a free image near the range, `LatentSoft`) and with a *sparse deviation*
(``x = G(z) + u``, `LatentSparseDeviation`), against TV (ODL's PDHG) and
Tikhonov (ODL's CG), PSNR in dB (data range 1). The paper's point: the hard
constraint is best on digits like the training data, but it cannot leave
the range of the generator, so on out-of-distribution images the soft and
sparse-deviation forms should beat it.

Setting: ``y = A x + e``, ``A`` Gaussian ``m x 784`` with entries ``N(0,
1/m)``, ``m = 150`` (``--measurements``), noise standard deviation 0.1 per
measurement (``problems.compressed_sensing``), generator: the decoder of
the pretrained VAE ``mnist-vae-20`` (MLP 784-400-400-20). Two test sets of
``--digits`` images each, from the first digits of the MNIST test split:

* ``in-distribution``: the digits as they are;
* ``shifted``: the same digits moved ``--shift`` pixels right and down
  (zeros enter at the top and left); the VAE was trained on centred digits.

Hyperparameters are tuned separately for each test set on ``--val-digits``
MNIST *training* digits, transformed as the test set is (so shifted
validation digits for the shifted set); the grid value with the best mean
PSNR is used on the test digits. The generative methods are tuned with
``--tune-restarts`` restarts and tested with ``--restarts``. Grids (what is
tuned; the rest fixed):

* hard: ``lam`` (weight of ``||z||^2``) in ``LAM_HARD``;
* soft: the coupling ``lam`` in ``LAM_SOFT``, ``mu = 0.1`` on ``||z||^2``;
* sparse deviation: ``mu`` (weight of ``||u||_1``) in ``MU_SPARSE``,
  ``lam = 0.1``;
* TV: ``alpha`` in ``ALPHA_TV`` (300 PDHG iterations, ``x >= 0``);
* Tikhonov: ``alpha`` in ``ALPHA_TIKHONOV`` (100 CG iterations).

Needs the MNIST files (``$ODL_GENPRIOR_MNIST``, else ``../shared/data/mnist``
next to the repository) and the pretrained VAE. The run in
docs/reproductions_latent.md (2 restarts, 2 validation digits per set, to
fit a shared, heavily loaded 2-core machine; the time is in the doc)::

    python examples/reproduce_duff_cs.py --digits 20 --restarts 2 \\
        --val-digits 2

Tiny run (seconds)::

    python examples/reproduce_duff_cs.py --digits 1 --val-digits 1 \\
        --restarts 1 --latent-iter 3 --tv-iter 10 --cg-iter 10 \\
        --grid-size 1
"""
import argparse
import sys
import time

import numpy as np
import torch

from _shared_data import mnist_dir  # examples/_shared_data.py
from odl_genprior import data, metrics, problems
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.recon import (LatentHard, LatentSoft, LatentSparseDeviation,
                                Tikhonov, TV)

NOISE_STD = 0.1
VAL_SEED = 100_000
LAM_HARD = (0.01, 0.1, 1.0)
LAM_SOFT = (1.0, 3.0, 10.0)
MU_SPARSE = (0.1, 0.3, 1.0)
ALPHA_TV = (0.03, 0.1, 0.3)
ALPHA_TIKHONOV = (0.1, 1.0, 10.0)
METHODS = ('hard', 'soft', 'sparse deviation', 'TV', 'Tikhonov')


def load_decoder():
    """The decoder of the pretrained ``mnist-vae-20`` (eval mode)."""
    if 'mnist-vae-20' not in models.list_pretrained('generator'):
        sys.exit('no pretrained model mnist-vae-20 in this installation')
    return recipes.generator_of(models.pretrained('mnist-vae-20'))


def shifted(images, shift):
    """``images`` (N, 28, 28) moved ``shift`` pixels right and down."""
    out = np.zeros_like(images)
    out[:, shift:, shift:] = images[:, :images.shape[1] - shift,
                                    :images.shape[2] - shift]
    return out


def make_method(name, value, decoder, restarts, latent_iter, tv_iter,
                cg_iter=100):
    """Method ``name`` with its tuned hyperparameter set to ``value``."""
    common = dict(restarts=restarts, seed=0, solver='bfgs', niter=latent_iter)
    if name == 'hard':
        return LatentHard(decoder, lam=value, **common)
    if name == 'soft':
        return LatentSoft(decoder, lam=value, mu=0.1, **common)
    if name == 'sparse deviation':
        return LatentSparseDeviation(decoder, lam=0.1, mu=value, **common)
    if name == 'TV':
        return TV(alpha=value, niter=tv_iter, nonneg=True)
    if name == 'Tikhonov':
        return Tikhonov(alpha=value, niter=cg_iter)
    raise ValueError(f'unknown method {name!r}')


def cs_problem(image, m, seed):
    """``A_ij ~ N(0, 1/m)``, noise std 0.1 per measurement."""
    return problems.compressed_sensing(m, phantom=image, noise_std=NOISE_STD,
                                       seed=seed)


def psnr(x, problem):
    """PSNR in dB with data range 1 (MNIST pixels lie in [0, 1])."""
    return metrics.psnr(x, problem.ground_truth, data_range=1.0)


def stderr(values):
    """Standard error of the mean (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def tune(name, grid, val_problems, args, decoder):
    """The grid value with the best mean PSNR on ``val_problems``."""
    scores = []
    for value in grid:
        method = make_method(name, value, decoder, args.tune_restarts,
                             args.latent_iter, args.tv_iter, args.cg_iter)
        scores.append(np.mean([psnr(method.reconstruct(p, progress=False), p)
                               for p in val_problems]))
    return grid[int(np.argmax(scores))], scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--digits', type=int, default=20,
                        help='test digits per set (first of the test split)')
    parser.add_argument('--val-digits', type=int, default=3,
                        help='training digits for tuning, per set')
    parser.add_argument('--measurements', type=int, default=150)
    parser.add_argument('--shift', type=int, default=3,
                        help='pixels of the out-of-distribution shift')
    parser.add_argument('--restarts', type=int, default=3)
    parser.add_argument('--tune-restarts', type=int, default=1)
    parser.add_argument('--latent-iter', type=int, default=50,
                        help='BFGS iterations in z per restart')
    parser.add_argument('--tv-iter', type=int, default=300)
    parser.add_argument('--cg-iter', type=int, default=100,
                        help='Tikhonov CG iterations')
    parser.add_argument('--grid-size', type=int, default=None,
                        help='use only the first values of each grid '
                             '(for quick tests)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    decoder = load_decoder()
    directory = mnist_dir()
    test, labels = data.load_mnist('test', directory, limit=args.digits)
    val, _ = data.load_mnist('train', directory, limit=args.val_digits)
    sets = {'in-distribution': (test, val),
            f'shifted {args.shift} px': (shifted(test, args.shift),
                                         shifted(val, args.shift))}
    grids = {'hard': LAM_HARD, 'soft': LAM_SOFT,
             'sparse deviation': MU_SPARSE, 'TV': ALPHA_TV,
             'Tikhonov': ALPHA_TIKHONOV}
    if args.grid_size is not None:
        grids = {k: v[:args.grid_size] for k, v in grids.items()}
    m = args.measurements
    print(f'Duff et al. CS on MNIST: m = {m}, A_ij ~ N(0, 1/m), noise std '
          f'{NOISE_STD}, {len(test)} test digits per set, {args.restarts} '
          f'restarts (tuning {args.tune_restarts}) x {args.latent_iter} BFGS '
          f'its, VAE mnist-vae-20')
    start = time.time()
    results, chosen, seconds = {}, {}, {}
    for set_name, (images, val_images) in sets.items():
        val_problems = [cs_problem(img, m, VAL_SEED + i)
                        for i, img in enumerate(val_images)]
        test_problems = [cs_problem(img, m, i) for i, img in enumerate(images)]
        for name in METHODS:
            value, scores = tune(name, grids[name], val_problems, args,
                                 decoder)
            chosen[set_name, name] = value
            method = make_method(name, value, decoder, args.restarts,
                                 args.latent_iter, args.tv_iter, args.cg_iter)
            vals = []
            for p in test_problems:
                t = time.time()
                x = method.reconstruct(p, progress=False)
                seconds.setdefault(name, []).append(time.time() - t)
                vals.append(psnr(x, p))
            results[set_name, name] = vals
            grid = ' '.join(f'{g:g}:{s:.2f}' for g, s in zip(grids[name],
                                                             scores))
            print(f'{set_name:>18} {name:<17} value {value:<5g} test PSNR '
                  f'{np.mean(vals):6.2f} (validation {grid}; '
                  f'{time.time() - start:.0f} s)', flush=True)

    set_names = list(sets)
    print(f'\nPSNR in dB, mean +- standard error over {len(test)} digits '
          f'(m = {m}); tuned value in brackets')
    print(f'{"method":<18}' + ''.join(f'{s:>30}' for s in set_names)
          + f'{"s / recon":>11}')
    for name in METHODS:
        cells = ''.join(
            f'{np.mean(results[s, name]):>14.2f} +- '
            f'{stderr(results[s, name]):.2f} [{chosen[s, name]:<5g}]'
            for s in set_names)
        print(f'{name:<18}{cells}{np.mean(seconds[name]):>11.1f}')
    print(f'total {time.time() - start:.0f} s')

    def mean(s, name):
        return float(np.mean(results[s, name]))

    print('\ngoals:')
    ind, ood = set_names
    best_gen = max(('hard', 'soft', 'sparse deviation'),
                   key=lambda n: mean(ind, n))
    ok = mean(ind, best_gen) > max(mean(ind, 'TV'), mean(ind, 'Tikhonov'))
    print(f'  [{"met" if ok else "NOT met"}] in-distribution: a generative '
          f'method ({best_gen}, {mean(ind, best_gen):.2f} dB) beats TV '
          f'({mean(ind, "TV"):.2f}) and Tikhonov '
          f'({mean(ind, "Tikhonov"):.2f})')
    for s in set_names:
        best = max(('soft', 'sparse deviation'), key=lambda n: mean(s, n))
        wins = int(np.sum(np.array(results[s, best])
                          > np.array(results[s, 'hard'])))
        ok = mean(s, best) > mean(s, 'hard')
        tag = 'goal' if s == ood else 'for comparison'
        print(f'  [{"met" if ok else "NOT met"}] {s} ({tag}): {best} '
              f'({mean(s, best):.2f} dB) beats hard ({mean(s, "hard"):.2f} '
              f'dB) on average, on {wins} of {len(test)} digits')


if __name__ == '__main__':
    main()
