"""Reproduce Bora et al. 2017: compressed sensing of MNIST, VAE prior vs Lasso.

Bora, Jalal, Price, Dimakis, "Compressed sensing using generative models"
(ICML 2017), figure 1a: per-pixel reconstruction error of MNIST digits from
``m`` Gaussian measurements, a VAE generator (latent 20) against Lasso in
the pixel basis.

Setting (that of Bora et al.'s code, ``csgm``): ``y = A x + e`` with ``A``
of size ``m x 784``, entries ``N(0, 1/m)``, and noise ``e`` of standard
deviation 0.1 per measurement (``problems.compressed_sensing(m,
phantom=digit, noise_std=0.1)`` builds exactly this); ``x`` in ``[0, 1]``.
Methods, both through the package's reconstruction contract:

* ``LatentHard`` with the pretrained VAE decoder ``mnist-vae-20`` (MLP
  784-400-400-20): ``min_z ||A G(z) - y||^2 + lam ||z||^2``, ODL's BFGS,
  ``--restarts`` random starts ``z0 ~ N(0, I)``, the best data fit kept.
  ``lam = --lam`` (0.1). Bora et al.'s code weighs ``0.1 ||z||^2`` against
  the *mean* squared residual, i.e. ``lam = 0.1 m`` here; with this VAE
  that prior is too strong for large ``m`` (see docs/reproductions_latent.md),
  ``--lam-per-measurement`` selects it.
* ``Lasso`` (ODL's ISTA): ``min_x ||A x - y||^2 + alpha ||x||_1``, output
  clipped to ``[0, 1]`` as in Bora et al.'s code. ``alpha`` is tuned per
  ``m`` on ``--val-digits`` MNIST *training* digits (never the test
  digits): the grid value with the smallest mean MSE is used on the test
  digits.

Prints per-pixel MSE (mean and standard error over the test digits, the
first ``--digits`` of the MNIST test split), seconds per reconstruction,
and the three goals of the reproduction: VAE MSE <= half Lasso's for every
``m <= 100``; Lasso better than the VAE at the largest ``m``; the VAE curve
flat after ``m = 200`` (criterion: the VAE's mean MSE at every ``m >= 200``
is within a factor ``--flat-factor`` (1.5) of its smallest value over those
``m``).

Needs the MNIST files (``$ODL_GENPRIOR_MNIST``, else ``../shared/data/mnist``
next to the repository) and the pretrained VAE. Bora et al. use 10
restarts (``--restarts 10``, the default); the run in
docs/reproductions_latent.md used 3 to fit a shared, heavily loaded 2-core
machine (58 min wall clock there, 8.5 min of CPU time)::

    python examples/reproduce_bora_cs.py --digits 20 --restarts 3

Tiny run (seconds)::

    python examples/reproduce_bora_cs.py --digits 1 --val-digits 1 \\
        --measurements 25 100 --restarts 1 --vae-iter 5 --lasso-iter 20 \\
        --alphas 0.1 1.0
"""
import argparse
import sys
import time

import numpy as np
import torch

from _shared_data import mnist_dir  # examples/_shared_data.py
from odl_genprior import data, metrics, problems
from odl_genprior.bridge import to_numpy
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.recon import Lasso, LatentHard

MEASUREMENTS = (10, 25, 50, 100, 200, 400, 750)
ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3)
NOISE_STD = 0.1
# Seeds of the validation problems: far from the test seeds (0, 1, ...).
VAL_SEED = 100_000


def load_decoder():
    """The decoder of the pretrained ``mnist-vae-20`` (eval mode)."""
    if 'mnist-vae-20' not in models.list_pretrained('generator'):
        sys.exit('no pretrained model mnist-vae-20 in this installation')
    return recipes.generator_of(models.pretrained('mnist-vae-20'))


def cs_problem(image, m, seed):
    """Bora et al.'s measurements: ``A_ij ~ N(0, 1/m)``, noise std 0.1."""
    return problems.compressed_sensing(m, phantom=image, noise_std=NOISE_STD,
                                       seed=seed)


def lasso_mse(problem, alpha, niter):
    """Per-pixel MSE of Lasso clipped to [0, 1] (as in Bora et al.)."""
    x = Lasso(alpha=alpha, niter=niter).reconstruct(problem, progress=False)
    return metrics.mse(np.clip(to_numpy(x), 0.0, 1.0), problem.ground_truth)


def tune_alpha(val_images, m, alphas, niter):
    """The alpha of ``alphas`` with the smallest mean MSE on ``val_images``."""
    scores = []
    for alpha in alphas:
        scores.append(np.mean([
            lasso_mse(cs_problem(img, m, VAL_SEED + i), alpha, niter)
            for i, img in enumerate(val_images)]))
    return alphas[int(np.argmin(scores))], scores


def stderr(values):
    """Standard error of the mean (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def check_goals(ms, vae, lasso, flat_factor):
    """The goals of the reproduction as (text, met) pairs.

    ``vae`` and ``lasso`` map ``m`` to the mean MSE.
    """
    goals = []
    small = [m for m in ms if m <= 100]
    if small:
        ok = all(vae[m] <= 0.5 * lasso[m] for m in small)
        ratios = ', '.join(f'{vae[m] / lasso[m]:.2f}' for m in small)
        goals.append((f'VAE MSE <= 0.5 x Lasso MSE at m <= 100 (ratios '
                      f'{ratios})', ok))
    top = max(ms)
    goals.append((f'Lasso better than VAE at m = {top} (Lasso {lasso[top]:.4f}'
                  f', VAE {vae[top]:.4f})', lasso[top] < vae[top]))
    large = [m for m in ms if m >= 200]
    if len(large) > 1:
        vals = [vae[m] for m in large]
        spread = max(vals) / min(vals)
        drop = lasso[min(large)] / lasso[max(large)]
        goals.append((f'VAE flat for m >= 200: max/min of its MSE = '
                      f'{spread:.2f} <= {flat_factor} (Lasso falls by a '
                      f'factor {drop:.1f} over the same m)',
                      spread <= flat_factor))
    return goals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--digits', type=int, default=20,
                        help='test digits (the first of the MNIST test split)')
    parser.add_argument('--val-digits', type=int, default=3,
                        help='training digits used to tune Lasso alpha')
    parser.add_argument('--measurements', type=int, nargs='+',
                        default=list(MEASUREMENTS))
    parser.add_argument('--restarts', type=int, default=10)
    parser.add_argument('--vae-iter', type=int, default=50,
                        help='BFGS iterations per restart')
    parser.add_argument('--lam', type=float, default=0.1,
                        help='weight of ||z||^2 (against the summed data fit)')
    parser.add_argument('--lam-per-measurement', action='store_true',
                        help="use lam * m (Bora et al.'s code: 0.1 against "
                             'the mean squared residual)')
    parser.add_argument('--alphas', type=float, nargs='+',
                        default=list(ALPHAS), help='Lasso alpha grid')
    parser.add_argument('--lasso-iter', type=int, default=300,
                        help='ISTA iterations')
    parser.add_argument('--flat-factor', type=float, default=1.5)
    args = parser.parse_args(argv)
    # Batch-of-one MLPs and tiny matrices: threads cost more than they give.
    torch.set_num_threads(1)
    decoder = load_decoder()
    directory = mnist_dir()
    images, labels = data.load_mnist('test', directory, limit=args.digits)
    val_images, _ = data.load_mnist('train', directory, limit=args.val_digits)
    ms = sorted(args.measurements)
    print(f'Bora et al. CS on MNIST: {len(images)} test digits, A_ij ~ '
          f'N(0, 1/m), noise std {NOISE_STD} per measurement, VAE '
          f'{args.restarts} restarts x {args.vae_iter}'
          f' BFGS its, lam = {args.lam}{" m" if args.lam_per_measurement else ""}'
          f', Lasso {args.lasso_iter} ISTA its clipped to [0, 1]')
    mse = {'VAE': {}, 'Lasso': {}}
    seconds = {'VAE': [], 'Lasso': []}
    alphas = {}
    start = time.time()
    for m in ms:
        alphas[m], scores = tune_alpha(val_images, m, args.alphas,
                                       args.lasso_iter)
        lam = args.lam * m if args.lam_per_measurement else args.lam
        vae = LatentHard(decoder, lam=lam, solver='bfgs', niter=args.vae_iter,
                         restarts=args.restarts, seed=0)
        for i, image in enumerate(images):
            p = cs_problem(image, m, seed=i)
            t = time.time()
            x = vae.reconstruct(p, progress=False)
            seconds['VAE'].append(time.time() - t)
            mse['VAE'].setdefault(m, []).append(
                metrics.mse(x, p.ground_truth))
            t = time.time()
            mse['Lasso'].setdefault(m, []).append(
                lasso_mse(p, alphas[m], args.lasso_iter))
            seconds['Lasso'].append(time.time() - t)
        grid = ' '.join(f'{a:g}:{s:.4f}' for a, s in zip(args.alphas, scores))
        print(f'm = {m:4d} done ({time.time() - start:5.0f} s); Lasso alpha '
              f'{alphas[m]:g} (validation MSE {grid})', flush=True)

    print(f'\nper-pixel MSE, mean +- standard error over {len(images)} '
          f'MNIST test digits')
    print(f'{"m":>6}{"VAE (LatentHard)":>22}{"Lasso":>22}{"alpha":>8}'
          f'{"VAE/Lasso":>11}')
    means = {k: {m: float(np.mean(v[m])) for m in ms} for k, v in mse.items()}
    for m in ms:
        print(f'{m:>6}'
              f'{means["VAE"][m]:>13.4f} +- {stderr(mse["VAE"][m]):.4f}'
              f'{means["Lasso"][m]:>13.4f} +- {stderr(mse["Lasso"][m]):.4f}'
              f'{alphas[m]:>8g}{means["VAE"][m] / means["Lasso"][m]:>11.2f}')
    print(f'seconds per reconstruction: VAE {np.mean(seconds["VAE"]):.2f} '
          f'({args.restarts} restarts), Lasso {np.mean(seconds["Lasso"]):.2f}'
          f'; total {time.time() - start:.0f} s')
    print('\ngoals:')
    for text, ok in check_goals(ms, means['VAE'], means['Lasso'],
                                args.flat_factor):
        print(f'  [{"met" if ok else "NOT met"}] {text}')


if __name__ == '__main__':
    main()
