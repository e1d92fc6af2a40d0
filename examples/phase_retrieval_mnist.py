"""Phase retrieval of MNIST digits under a VAE prior (Hand et al. 2018).

``b = |A x|`` with a real Gaussian ``A`` (entries N(0, 1/m)), ``m`` in
{100, 200, 400} magnitudes of a 784-pixel digit, no noise. Compared:
GenerativePhaseRetrieval (``min_z || |A G(z)| - b ||^2`` over the latent
code of the pretrained VAE decoder ``mnist-vae-20``, ODL's BFGS, random
restarts, negation check) and WirtingerFlow (spectral initialisation and
gradient steps, plain and truncated). Prints the relative error up to the
global sign, ``min(||x - x*||, ||x + x*||) / ||x*||``, mean and standard
deviation over the digits, and the seconds per reconstruction.

Needs the MNIST test files (``$ODL_GENPRIOR_MNIST``, else
``../shared/data/mnist`` next to the repository). A few minutes on one CPU
core with the defaults (5 digits, 5 restarts of 100 BFGS iterations).
The last row, ``range projection`` (``min_z ||G(z) - x*||``, LatentHard
with ``A = I`` on the true digit), is the error floor of the VAE: no method
restricted to its range does better.

    python examples/phase_retrieval_mnist.py [--digits 5] [--restarts 3]
"""
import argparse
import time

import numpy as np
import odl
import torch

from _shared_data import mnist_dir  # examples/_shared_data.py
from odl_genprior import data, problems
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.recon import (GenerativePhaseRetrieval, LatentHard,
                                WirtingerFlow, relative_error_up_to_sign)


def methods(decoder, restarts, niter):
    return [GenerativePhaseRetrieval(decoder, niter=niter, restarts=restarts,
                                     seed=0, solver='bfgs',
                                     negation_every=25),
            WirtingerFlow(niter=500),
            WirtingerFlow(niter=500, truncated=True)]


def label(method):
    if isinstance(method, WirtingerFlow) and method.truncated:
        return 'truncated-wirtinger-flow'
    return method.name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--digits', type=int, default=5,
                        help='number of MNIST test digits (from the first)')
    parser.add_argument('--restarts', type=int, default=5)
    parser.add_argument('--niter', type=int, default=100,
                        help='BFGS iterations per restart')
    parser.add_argument('--measurements', type=int, nargs='+',
                        default=[100, 200, 400])
    args = parser.parse_args()
    # Batch-of-one MLPs: torch's thread pool costs more than it gives.
    torch.set_num_threads(1)
    decoder = recipes.generator_of(models.pretrained('mnist-vae-20'))
    images, labels = data.load_mnist('test', mnist_dir(), limit=args.digits)
    print(f'{len(images)} MNIST test digits {labels.tolist()}, real Gaussian '
          f'A, no noise, {args.restarts} restarts x {args.niter} BFGS '
          'iterations')
    err, seconds = {}, {}
    start = time.time()
    oracle = LatentHard(decoder, lam=0.0, niter=100, solver='bfgs',
                        restarts=args.restarts, seed=0)
    floor = []
    for i, image in enumerate(images):
        p = problems.compressed_sensing(1, phantom=image, noise=None)
        ident = problems.ForwardProblem(odl.IdentityOperator(p.space),
                                        p.ground_truth, p.ground_truth)
        floor.append(relative_error_up_to_sign(
            oracle.reconstruct(ident, progress=False), p.ground_truth))
    for m in args.measurements:
        for i, image in enumerate(images):
            p = problems.phase_retrieval(m, phantom=image, seed=i,
                                         dtype='float32')
            for method in methods(decoder, args.restarts, args.niter):
                t = time.time()
                x = method.reconstruct(p, progress=False)
                seconds.setdefault(label(method), []).append(time.time() - t)
                err.setdefault((label(method), m), []).append(
                    relative_error_up_to_sign(x, p.ground_truth))
        print(f'm = {m} done ({time.time() - start:.0f} s)')
    names = [label(meth) for meth in methods(decoder, 1, 1)]
    head = ''.join(f'{"m = " + str(m):>17}' for m in args.measurements)
    print(f'\nrelative error up to sign (mean +- std over {len(images)} '
          'digits)')
    print(f'{"method":<28}{head}{"s / recon":>11}')
    for name in names:
        cells = ''.join(f'{np.mean(err[name, m]):>9.3f} +- '
                        f'{np.std(err[name, m]):.3f}'
                        for m in args.measurements)
        print(f'{name:<28}{cells}{np.mean(seconds[name]):>11.1f}')
    cells = ''.join(f'{np.mean(floor):>9.3f} +- {np.std(floor):.3f}'
                    for _ in args.measurements)
    print(f'{"range projection (floor)":<28}{cells}')


if __name__ == '__main__':
    main()
