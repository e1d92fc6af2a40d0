"""Learned SVD (Boink and Brune) for tomographic reconstruction of MNIST.

Trains a `LearnedSVDNet` (autoencoders in image and sinogram space, a
diagonal map between their codes) on MNIST training digits measured by a
parallel-beam ray transform (28x28 image, ``--num-angles`` angles over 180
degrees, 5% relative Gaussian noise), then compares ``LearnedSVD`` with FBP
and TV (ODL's PDHG) on ``--n-test`` MNIST test digits: mean PSNR (data
range 1) and SSIM, and the time per reconstruction. The FBP filter and the TV
weight are chosen on ``--n-tune`` training digits that the network never
saw (not on the test digits).

Training is resumable: the run folder (``--run-dir``) holds the checkpoint;
run the same command again after an interruption and it continues (a
finished run is loaded, not retrained). With the defaults (10000 digits, 10
epochs) it took 20 minutes on a heavily shared 2-core machine (pairs 216 s,
training 530 s, TV ~11 s per digit); with ``--num-angles 6`` on a quieter
machine, 5 minutes (pairs 22 s, training 114 s)::

    python examples/learned_svd_mnist.py --mnist /path/to/mnist

(or set ``ODL_GENPRIOR_MNIST``). ``--num-angles 6`` is the sparse-view
setting; ``--weights 0 0 1 0`` trains the inversion term alone (ablation).
"""
import argparse
import time

import numpy as np
import torch

from odl_genprior import data, metrics, problems
from odl_genprior.recon import FBP, TV
from odl_genprior.recon.learned_svd import LearnedSVD
from odl_genprior.models.learned_svd import (mnist_tomography_pairs,
                                             train_learned_svd)

FBP_CHOICES = (('Ram-Lak', 1.0), ('Shepp-Logan', 1.0), ('Hann', 1.0),
               ('Shepp-Logan', 0.8))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--mnist', default=None,
                    help='MNIST IDX folder (default $ODL_GENPRIOR_MNIST)')
    ap.add_argument('--run-dir', default=None,
                    help='run folder (default runs/learned_svd_mnist_'
                         '<angles>a)')
    ap.add_argument('--num-angles', type=int, default=30)
    ap.add_argument('--noise-level', type=float, default=0.05)
    ap.add_argument('--n-train', type=int, default=10000)
    ap.add_argument('--n-val', type=int, default=500)
    ap.add_argument('--n-tune', type=int, default=5)
    ap.add_argument('--n-test', type=int, default=20)
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--latent-dim', type=int, default=64)
    ap.add_argument('--hidden', type=int, nargs='*', default=[512])
    ap.add_argument('--latent-map', default='diagonal',
                    choices=('diagonal', 'linear'))
    ap.add_argument('--weights', type=float, nargs=4, default=[1, 1, 1, 1],
                    metavar=('X', 'Y', 'INV', 'CODE'),
                    help='loss weights: x from x, y from y, x from y, codes')
    ap.add_argument('--tv-alphas', type=float, nargs='+',
                    default=[3e-5, 1e-4, 3e-4])
    ap.add_argument('--tv-niter', type=int, default=300)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--quiet', action='store_true')
    return ap.parse_args(argv)


def ct_problem(digit, args, seed):
    """A 28x28 CT problem with this digit as phantom (problems.ct)."""
    return problems.ct(size=28, num_angles=args.num_angles, phantom=digit,
                       noise_level=args.noise_level, seed=seed)


def mean_psnr(method, probs):
    return float(np.mean([metrics.psnr(method(p, progress=False),
                                       p.ground_truth, data_range=1.0)
                          for p in probs]))


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = args.run_dir or f'runs/learned_svd_mnist_{args.num_angles}a'
    A = problems.ray_transform(problems.image_space(28), args.num_angles)
    t0 = time.perf_counter()
    x, y = mnist_tomography_pairs(A, n=args.n_train, split='train',
                                  noise_level=args.noise_level,
                                  seed=args.seed, directory=args.mnist)
    val = mnist_tomography_pairs(A, n=args.n_val, split='train',
                                 start=args.n_train,
                                 noise_level=args.noise_level,
                                 seed=args.seed + 1, directory=args.mnist)
    print(f'{len(x)} training pairs {tuple(x.shape[1:])} -> '
          f'{tuple(y.shape[1:])} in {time.perf_counter() - t0:.0f} s')
    weights = dict(zip(('x', 'y', 'inv', 'code'), args.weights))
    t0 = time.perf_counter()
    model, result = train_learned_svd(
        A, x, y, run_dir, latent_dim=args.latent_dim, hidden=args.hidden,
        latent_map=args.latent_map, weights=weights, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        val_data=val, progress=not args.quiet,
        data_info={'source': 'MNIST train', 'n_train': args.n_train,
                   'n_val': args.n_val, 'noise_level': args.noise_level,
                   'num_angles': args.num_angles})
    print(f'training: {result.step} steps ({result.resumed_from} from the '
          f'checkpoint) in {time.perf_counter() - t0:.0f} s; last losses '
          + ', '.join(f'{k} {v:.4g}' for k, v in sorted(result.losses.items()))
          + f'; validation MSE {result.val_history[-1][1]["mse"]:.4g}')

    # Tune FBP and TV on held-out training digits (after the validation
    # ones), never on the test digits.
    start = args.n_train + args.n_val
    tune_digits = data.load_mnist('train', args.mnist,
                                  limit=start + args.n_tune)[0][start:]
    tune = [ct_problem(d, args, 10_000 + i)
            for i, d in enumerate(tune_digits)]
    fbp = max((FBP(f, s) for f, s in FBP_CHOICES),
              key=lambda m: mean_psnr(m, tune))
    tv_scores = {a: mean_psnr(TV(alpha=a, niter=args.tv_niter), tune)
                 for a in args.tv_alphas}
    alpha = max(tv_scores, key=tv_scores.get)
    print(f'tuned on {len(tune)} training digits: FBP {fbp.filter_type} '
          f'{fbp.frequency_scaling}; TV alpha {alpha:g} ('
          + ', '.join(f'{a:g}: {s:.2f} dB' for a, s in tv_scores.items())
          + ')')

    digits = data.load_mnist('test', args.mnist, limit=args.n_test)[0]
    tests = [ct_problem(d, args, i) for i, d in enumerate(digits)]
    methods = {'LearnedSVD': LearnedSVD(model), f'FBP ({fbp.filter_type})':
               fbp, f'TV (alpha {alpha:g})': TV(alpha=alpha,
                                                niter=args.tv_niter)}
    rows = []
    for name, method in methods.items():
        psnrs, ssims, times = [], [], []
        for p in tests:
            t = time.perf_counter()
            rec = method(p, progress=False)
            times.append(time.perf_counter() - t)
            psnrs.append(metrics.psnr(rec, p.ground_truth, data_range=1.0))
            ssims.append(metrics.ssim(rec, p.ground_truth, data_range=1.0))
        rows.append((name, np.mean(psnrs), np.std(psnrs), np.mean(ssims),
                     1e3 * np.median(times)))
    print(f'\n{len(tests)} MNIST test digits, {args.num_angles} angles, '
          f'{100 * args.noise_level:g}% noise\n')
    print('| method | PSNR (dB) | SSIM | time / reconstruction (ms) |')
    print('|---|---|---|---|')
    for name, ps, sd, ss, ms in rows:
        print(f'| {name} | {ps:.2f} ± {sd:.2f} | {ss:.3f} | {ms:.3g} |')
    return rows


if __name__ == '__main__':
    main()
