"""Sparse denoising autoencoder on MNIST: Adam backpropagation vs lifted Bregman.

The seed's example (Wang and Benning, JMLR 2023; ``shared/seeds/lifted-
bregman-training-and-network-inversion.md``): a 784-784-784-784-784
network, ReLU in layers 1, 2 and 4, soft-thresholding (threshold ``alpha``,
``Psi_3 = alpha ||x_3||_1``) in layer 3, identity in layer 5, mapping a noisy
MNIST digit to the clean one. Noise: additive Gaussian, std ``--noise``
(default 0.2), on images in [0, 1], drawn once per image from ``--seed``
(not clipped). Both methods start from the same seeded initialisation and
see the same batches:

* **backprop**: Adam (``--lr``) on ``1/2 ||N(noisy) - clean||^2`` (mean over
  the batch) through `odl_genprior.training.train`;
* **lifted**: implicit SGD on the lifted Bregman energy with
  proximal-gradient inner iterations (`odl_genprior.bregman.lifted_training`,
  ``--tau``, ``--inner-iters``, ``--w-step``), the output layer tied to the
  clean image.

Each is trained on the first ``--train-sizes`` training images (default
1,000 and 10,000) and evaluated on the first ``--n-test`` test images: mean
PSNR (data range 1) of the network output, and the wall time of training.

Command and runtime (2 shared CPU cores, torch 1 thread)::

    python examples/lifted_bregman_autoencoder.py --mnist ../shared/data/mnist \
        --out runs/lifted_ae

ran in about 15 minutes (table in ``docs/lifted_training.md``); adding
``--train-sizes 10000 --methods lifted --epochs-lifted 5`` continued the
lifted 10,000-image run from its checkpoint (10 more minutes).
``--train-sizes 200 --n-test 100 --epochs-backprop 1 --epochs-lifted 1`` is
a half-minute smoke run. Runs are resumable: the same
command continues a killed run from its checkpoints in ``--out``.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from odl_genprior.bregman.activations import SoftThreshold
from odl_genprior.data import load_mnist
from odl_genprior.bregman.lifted_training import LiftedNetwork, train_lifted
from odl_genprior.metrics import psnr
from odl_genprior.training import read_metrics, seed_all, train


def autoencoder(alpha):
    """The seed's 784-784-784-784-784 sparse autoencoder."""
    return LiftedNetwork([784] * 6, ['relu', 'relu', SoftThreshold(alpha),
                                     'relu', 'identity'])


def mean_psnr(net, noisy, clean):
    with torch.no_grad():
        out = net(noisy).numpy()
    ref = clean.numpy()
    return float(np.mean([psnr(o, r, data_range=1.0)
                          for o, r in zip(out, ref)]))


def noisy_pairs(split, n, noise, seed, directory):
    clean, _ = load_mnist(split, directory, limit=n)
    clean = torch.from_numpy(clean.reshape(len(clean), -1))
    gen = torch.Generator().manual_seed(seed)
    noisy = clean + noise * torch.randn(clean.shape, generator=gen)
    return noisy, clean


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mnist', default=None,
                   help='MNIST folder (default: $ODL_GENPRIOR_MNIST)')
    p.add_argument('--out', default='runs/lifted_ae',
                   help='run directory (checkpoints; resumable)')
    p.add_argument('--train-sizes', type=int, nargs='+',
                   default=[1000, 10000])
    p.add_argument('--n-test', type=int, default=1000)
    p.add_argument('--noise', type=float, default=0.2)
    p.add_argument('--alpha', type=float, default=0.01,
                   help='soft-thresholding threshold of layer 3')
    p.add_argument('--batch-size', type=int, default=100)
    p.add_argument('--epochs-backprop', type=int, default=None,
                   help='default: 50 for 1,000 images, 10 for 10,000')
    p.add_argument('--epochs-lifted', type=int, default=None,
                   help='default: 6 for 1,000 images, 2 for 10,000')
    p.add_argument('--lr', type=float, default=1e-3, help='Adam step')
    p.add_argument('--tau', type=float, default=10.0,
                   help='implicit SGD step size')
    p.add_argument('--inner-iters', type=int, default=5)
    p.add_argument('--w-step', default='metric',
                   choices=('metric', 'lipschitz'))
    p.add_argument('--methods', nargs='+', default=['backprop', 'lifted'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    test_noisy, test_clean = noisy_pairs('test', args.n_test, args.noise,
                                         args.seed + 1, args.mnist)
    rows = [('noisy input', '-', '-', '-', mean_psnr(
        torch.nn.Identity(), test_noisy, test_clean), None)]
    for n in args.train_sizes:
        data = noisy_pairs('train', n, args.noise, args.seed, args.mnist)
        for method in args.methods:
            seed_all(args.seed)
            net = autoencoder(args.alpha)
            run = out / f'{method}_{n}'
            t0 = time.perf_counter()
            if method == 'backprop':
                epochs = args.epochs_backprop or (50 if n <= 1000 else 10)

                def loss(model, batch):
                    xb, yb = batch
                    return 0.5 * (model(xb) - yb).pow(2).sum(1).mean()

                r = train(net, loss, data, out_dir=run, epochs=epochs,
                          batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed, log_every=10,
                          progress=not args.no_progress,
                          config={'noise': args.noise, 'alpha': args.alpha})
            elif method == 'lifted':
                epochs = args.epochs_lifted or (6 if n <= 1000 else 2)
                r = train_lifted(net, data, out_dir=run, epochs=epochs,
                                 batch_size=args.batch_size, tau=args.tau,
                                 inner_iters=args.inner_iters,
                                 w_step=args.w_step, seed=args.seed,
                                 log_every=10, progress=not args.no_progress,
                                 config={'noise': args.noise,
                                         'alpha': args.alpha})
            else:
                raise SystemExit(f'unknown method {method!r}')
            wall = time.perf_counter() - t0
            # wall time of the whole run, also across resumes
            wall_total = read_metrics(run)[-1]['time']
            score = mean_psnr(net, test_noisy, test_clean)
            rows.append((method, n, epochs, r.step, score, float(wall_total)))
            print(f'{method:>9} n={n:>6} epochs={epochs:>3} '
                  f'test PSNR {score:6.2f} dB  time {wall_total:7.1f} s '
                  f'(this call {wall:.1f} s, {r.step} steps)', flush=True)

    print(f'\nMNIST denoising, noise std {args.noise}, {args.n_test} test '
          f'images, batch {args.batch_size}')
    print('| method | train images | epochs | steps | test PSNR (dB) '
          '| wall time (s) |')
    print('|---|---|---|---|---|---|')
    for m, n, e, k, s, t in rows:
        t = '-' if t is None else f'{t:.1f}'
        print(f'| {m} | {n} | {e} | {k} | {s:.2f} | {t} |')


if __name__ == '__main__':
    main()
