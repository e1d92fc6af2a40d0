"""Compressed sensing of MNIST digits under a VAE prior (Bora et al. 2017).

``y = A x + e`` with a Gaussian ``A`` (entries N(0, 1/m)), ``m = 100`` and
``m = 200`` measurements of a 784-pixel digit and noise of standard
deviation 0.1 per measurement (Bora et al.'s setting). Compared: LatentHard
(min over the range of the VAE decoder), LatentSoft (free image near the
range), LatentSparseDeviation (range plus a sparse deviation) and Lasso
(L1 in the pixel basis). Prints the per-pixel MSE, mean and standard
deviation over the digits.

Needs the MNIST test files (``$ODL_GENPRIOR_MNIST``, else
``../shared/data/mnist`` next to the repository) and the pretrained VAE
``mnist-vae-20`` (MLP 784-400-400-20); ``--run DIR`` uses a VAE trained with
``odl-genprior train vae ...`` instead. About 2-3 minutes on one CPU core
with the defaults (5 digits, 3 restarts, 50 BFGS iterations each).

    python examples/latent_cs_mnist.py [--digits 5] [--restarts 3]
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
from odl_genprior.recon import (Lasso, LatentHard, LatentSoft,
                                LatentSparseDeviation)

TRAIN_COMMAND = (
    'odl-genprior train vae --dataset mnist --data-dir DIR --arch mlp '
    '--hidden 400 400 --latent-dim 20 --n-train 60000 --n-val 1000 '
    '--epochs 20 --batch-size 100 --lr 1e-3 --seed 0 --out runs/mnist-vae-20')


def load_decoder(run_dir):
    if run_dir is not None:
        return recipes.generator_of(recipes.load_run(run_dir))
    if 'mnist-vae-20' not in models.list_pretrained('generator'):
        sys.exit('no pretrained model mnist-vae-20 in this installation; '
                 'train one (about 15 minutes on a CPU) with\n    '
                 + TRAIN_COMMAND + '\nand pass --run runs/mnist-vae-20')
    return recipes.generator_of(models.pretrained('mnist-vae-20'))


def methods(decoder, restarts):
    # BFGS reached the same objective as 300 adam steps in a third of the
    # time here. lam / mu: Bora et al.'s 0.1 on ||z||^2; the soft coupling
    # and the L1 weight keep x from fitting the noise (A has m < n rows, so
    # a deviation that fits noise of energy E costs only ~ (m/n) E).
    common = dict(restarts=restarts, seed=0, solver='bfgs', niter=50)
    return [LatentHard(decoder, lam=0.1, **common),
            LatentSoft(decoder, lam=10.0, mu=0.1, **common),
            LatentSparseDeviation(decoder, lam=0.1, mu=0.5, **common),
            Lasso(alpha=0.1, niter=500)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--digits', type=int, default=5,
                        help='number of MNIST test digits (from the first)')
    parser.add_argument('--restarts', type=int, default=3)
    parser.add_argument('--measurements', type=int, nargs='+',
                        default=[100, 200])
    parser.add_argument('--run', default=None,
                        help='run folder of a trained VAE (default: the '
                             'pretrained mnist-vae-20)')
    args = parser.parse_args()
    # Batch-of-one MLPs: torch's thread pool costs more than it gives.
    torch.set_num_threads(1)
    decoder = load_decoder(args.run)
    images, labels = data.load_mnist('test', mnist_dir(), limit=args.digits)
    print(f'{len(images)} MNIST test digits {labels.tolist()}, noise 0.1 per '
          f'measurement, {args.restarts} restarts')
    mse, seconds = {}, {}
    start = time.time()
    for m in args.measurements:
        for i, image in enumerate(images):
            p = problems.compressed_sensing(m, phantom=image, noise_std=0.1,
                                            seed=i)
            for method in methods(decoder, args.restarts):
                t = time.time()
                x = method.reconstruct(p, progress=False)
                seconds.setdefault(method.name, []).append(time.time() - t)
                mse.setdefault((method.name, m), []).append(
                    metrics.mse(x, p.ground_truth))
        print(f'm = {m} done ({time.time() - start:.0f} s)')
    names = [meth.name for meth in methods(decoder, 1)]
    head = ''.join(f'{"m = " + str(m):>18}' for m in args.measurements)
    print(f'\nper-pixel MSE (mean +- std over {len(images)} digits)')
    print(f'{"method":<26}{head}{"s / recon":>11}')
    for name in names:
        cells = ''.join(f'{np.mean(mse[name, m]):>10.4f} +- '
                        f'{np.std(mse[name, m]):.3f}'
                        for m in args.measurements)
        print(f'{name:<26}{cells}{np.mean(seconds[name]):>11.1f}')


if __name__ == '__main__':
    main()
