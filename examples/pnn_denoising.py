"""Unrolled proximal neural network (PNN) denoiser: backprop vs lifted Bregman.

MNIST Gaussian denoising (noise standard deviation ``--sigma`` on images in
[0, 1]). The same convolutional PNN (``--layers`` dual forward-backward
layers, ``--features`` learned 3x3 filters per layer, ``g = alpha ||.||_1``,
steps ``tau_k ||L_k||^2 < 2`` by parametrisation), the same initial weights
and the same data are trained

* by backpropagation (Adam on the mean squared error through the unrolled
  network), and
* by lifted Bregman training (closed-form proximal sweeps in the auxiliary
  dual variables, then Adam on the lifted objective; no backprop through
  the network),

both with `odl_genprior.training.train` (seeded, checkpointed, resumable in
``--out``). References: the noisy input and classical TV denoising
(`odl_genprior.recon.TV`, ODL's pdhg, on ``problems.denoising``-style
problems with the weight chosen on the first 10 test images).
Prints test PSNR and training wall time.

Run (about 8 minutes on 2 shared CPU cores with the defaults)::

    python examples/pnn_denoising.py [--train 1000] [--epochs 2]

MNIST is read from ``--mnist`` (default ``$ODL_GENPRIOR_MNIST``); without
the files the script uses 28x28 random-ellipse images instead.
"""
import argparse
import tempfile
import time

import numpy as np
import odl
import torch

from odl_genprior import data as _data
from odl_genprior.bregman.pnn import ProximalNeuralNetwork, train_pnn
from odl_genprior.problems import ForwardProblem
from odl_genprior.recon import TV


def load_images(args):
    try:
        train, _ = _data.load_mnist('train', args.mnist, limit=args.train)
        test, _ = _data.load_mnist('test', args.mnist, limit=args.test)
        return 'MNIST', torch.from_numpy(train), torch.from_numpy(test)
    except (FileNotFoundError, ValueError, KeyError, OSError):
        space = odl.uniform_discr([-1, -1], [1, 1], (28, 28),
                                  dtype='float32')
        imgs = _data.ellipse_batch(space, args.train + args.test, args.seed)
        imgs = torch.as_tensor(np.asarray(imgs)).reshape(-1, 28, 28)
        return 'ellipses', imgs[:args.train], imgs[args.train:]


def psnr_batch(x, ref):
    mse = ((x - ref) ** 2).reshape(len(x), -1).mean(1)
    return float((10 * torch.log10(1.0 / mse)).mean())


def tv_denoise(noisy, clean, alpha, niter):
    space = odl.uniform_discr([-1, -1], [1, 1], noisy.shape[-2:],
                              dtype='float32')
    out = []
    for z, x in zip(noisy, clean):
        p = ForwardProblem(odl.IdentityOperator(space),
                           space.element(z[0].numpy()),
                           space.element(x[0].numpy()), float('nan'),
                           'denoising', {})
        out.append(TV(alpha=alpha, niter=niter, nonneg=True)(
            p, progress=False).asarray())
    return torch.from_numpy(np.stack(out))[:, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--train', type=int, default=1000)
    parser.add_argument('--test', type=int, default=50)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=20)
    parser.add_argument('--lr', type=float, default=1e-2)
    parser.add_argument('--layers', type=int, default=10)
    parser.add_argument('--features', type=int, default=16)
    parser.add_argument('--alpha', type=float, default=0.1)
    parser.add_argument('--sigma', type=float, default=0.2)
    parser.add_argument('--dual-sweeps', type=int, default=3)
    parser.add_argument('--tv-iter', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--mnist', default=None)
    parser.add_argument('--out', default=None,
                        help='checkpoint folder (default: a temporary one)')
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    name, train, test = load_images(args)
    gen = torch.Generator().manual_seed(args.seed)
    clean = train[:, None]
    noisy = clean + args.sigma * torch.randn(clean.shape, generator=gen)
    test_clean = test[:, None]
    test_noisy = test_clean + args.sigma * torch.randn(test_clean.shape,
                                                       generator=gen)
    print(f'{name} denoising, sigma = {args.sigma}: {len(train)} training, '
          f'{len(test)} test images; PNN with {args.layers} layers, '
          f'{args.features} 3x3 filters, alpha = {args.alpha}; '
          f'{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}')

    rows = [('noisy input', psnr_batch(test_noisy, test_clean), None)]
    # TV reference: the weight is chosen on the first 10 test images.
    t0 = time.perf_counter()
    best = max((psnr_batch(tv_denoise(test_noisy[:10], test_clean[:10], a,
                                      args.tv_iter), test_clean[:10]), a)
               for a in (0.003, 0.006, 0.012, 0.025))
    tv_all = tv_denoise(test_noisy, test_clean, best[1], args.tv_iter)
    rows.append((f'TV (ODL pdhg), alpha={best[1]}',
                 psnr_batch(tv_all, test_clean), time.perf_counter() - t0))

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        for mode in ('backprop', 'lifted'):
            torch.manual_seed(args.seed)  # same initial weights for both
            net = ProximalNeuralNetwork.conv(
                num_layers=args.layers, features=args.features,
                kernel_size=3, dim=2, alpha=args.alpha)
            t0 = time.perf_counter()
            r = train_pnn(net, (noisy, clean), mode=mode,
                          out_dir=f'{out}/{mode}', epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed, dual_sweeps=args.dual_sweeps,
                          progress=False)
            dt = time.perf_counter() - t0
            net.eval()
            with torch.no_grad():
                den = net(test_noisy)
            rows.append((f'PNN, {mode} ({r.step} steps)',
                         psnr_batch(den, test_clean), dt))

    print(f'| {"method":<32} | test PSNR (dB) | wall time (s) |')
    print(f'|{"-" * 34}|----------------|---------------|')
    for label, value, dt in rows:
        time_s = '' if dt is None else f'{dt:.1f}'
        print(f'| {label:<32} | {value:14.2f} | {time_s:>13} |')


if __name__ == '__main__':
    main()
