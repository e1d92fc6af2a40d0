"""deepinv's learned primal-dual trained by its Trainer over two physics.

One learned primal-dual network (Adler and Oktem 2018, 10 unrolled
iterations, 5 primal and 5 dual channels, 32 features: about 252k
parameters) built from deepinv's own blocks
(``deepinv.models.PDNet_PrimalBlock`` and ``PDNet_DualBlock``; deepinv 0.5
ships the blocks, not the assembled network), as a deepinv model
``model(y, physics)``, is trained with ``deepinv.Trainer`` (supervised MSE,
Adam, ``online_measurements=False``) on DIVal's ellipses twice, from the
same initial weights, for the same number of steps on the same images:

* **odl**: the protocol's ODL/ASTRA ray transform as a deepinv physics,
  ``protocol_dataset(DivalEllipses(size=...), n, 'train')``
  (`odl_genprior.interop.deepinv.as_physics`: the sparse matrix through
  `OperatorLayer`); the data are DIVal's (simulated on a 400x400 grid,
  2.5 % relative Gaussian noise);
* **deepinv**: deepinv's pure-torch ``deepinv.physics.Tomography`` on the
  same grid and the same 30 parallel-beam angles (``circle=False``,
  ``normalize=False``: line integrals in pixel units, as the ODL operator);
  its data are ``Tomography.A`` of the same images with noise of the same
  relative size (2.5 % of each sinogram's mean absolute value; computed on
  the reconstruction grid, so this variant's data are easier: no model
  mismatch).

Both networks divide the data and the operator by the operator's norm
(deepinv's ``compute_sqnorm``) and start from zero. The script prints the
mean step time (training time / steps, the Trainer's own overhead
included) and the PSNR on test pairs after the equal steps, with the PSNR of
the zero start for reference. At the default (64x64, 40 steps of batch 4)
it takes a few minutes on a CPU; ``--size 128`` is DIVal's size.

    python examples/deepinv_lpd_trainer.py [--size 64] [--steps 40]
        [--n-train 32] [--n-test 8] [--batch 4] [--threads N]
"""
import argparse
import time

import numpy as np
import torch

from odl_genprior.interop import deepinv as interop
from odl_genprior.problems.ellipse_ct import DivalEllipses

dinv = interop.import_deepinv()


class LearnedPrimalDual(torch.nn.Module):
    """Learned primal-dual from deepinv's PDNet blocks: ``model(y,
    physics)`` for any deepinv ``LinearPhysics`` (``A``, ``A_adjoint``);
    data and operator scaled by ``1 / opnorm``; the result is the first
    primal channel ``(B, 1, *img_shape)``."""

    def __init__(self, img_shape, opnorm, n_iter=10, n_primal=5, n_dual=5,
                 nf=32):
        super().__init__()
        self.img_shape = tuple(img_shape)
        self.opnorm = float(opnorm)
        self.n_primal, self.n_dual = n_primal, n_dual
        self.primal = torch.nn.ModuleList(
            dinv.models.PDNet_PrimalBlock(n_primal + 1, n_primal, nf=nf)
            for _ in range(n_iter))
        self.dual = torch.nn.ModuleList(
            dinv.models.PDNet_DualBlock(n_dual + 2, n_dual, nf=nf)
            for _ in range(n_iter))

    def forward(self, y, physics, **kwargs):
        s = self.opnorm
        y = y / s
        f = y.new_zeros((y.shape[0], self.n_primal) + self.img_shape)
        h = y.new_zeros((y.shape[0], self.n_dual) + tuple(y.shape[2:]))
        for primal, dual in zip(self.primal, self.dual):
            h = dual(h, physics.A(f[:, 1:2]) / s, y)
            f = primal(f, physics.A_adjoint(h[:, :1]) / s)
        return f[:, :1]


def tomography(bench):
    """deepinv's ``Tomography`` on ``bench``'s grid and angles."""
    angles = np.degrees(bench.operator.geometry.angles)
    return dinv.physics.Tomography(
        angles=torch.tensor(angles, dtype=torch.float32),
        img_width=bench.size, circle=False, normalize=False)


def tomography_data(physics, x, noise_level, seed):
    """``A x`` plus Gaussian noise of ``noise_level`` times each
    sinogram's mean absolute value (DIVal's noise model)."""
    with torch.no_grad():
        clean = physics.A(x)
    std = noise_level * clean.abs().mean(dim=(1, 2, 3), keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    return clean + std * torch.randn(clean.shape, generator=gen)


def opnorm(physics, x):
    return float(physics.compute_sqnorm(x, max_iter=100, tol=1e-5,
                                        verbose=False)) ** 0.5


def train(model, physics, dataset, steps, batch, lr):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True,
        generator=torch.Generator().manual_seed(0))
    epochs = -(-steps // len(loader))
    trainer = dinv.Trainer(
        model, physics=physics,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        train_dataloader=loader, epochs=epochs, max_batch_steps=steps,
        losses=dinv.loss.SupLoss(), online_measurements=False,
        metrics=dinv.metric.PSNR(max_pixel=1.0), save_path=None,
        verbose=False, show_progress_bar=False, non_blocking_transfers=False)
    t0 = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - t0) / steps


def evaluate(model, physics, x, y):
    psnr = dinv.metric.PSNR(max_pixel=1.0)
    model.eval()
    with torch.no_grad():
        x_hat = torch.cat([model(y[i:i + 8], physics)
                           for i in range(0, len(y), 8)])
    return float(psnr(x_hat.clamp(0, 1), x).mean())


def table(rows, headers):
    """Print rows under headers, columns right-aligned."""
    cols = list(zip(*([headers] + [[str(c) for c in r] for r in rows])))
    widths = [max(len(c) for c in col) for col in cols]
    fmt = '  '.join(f'{{:<{widths[0]}}}' if i == 0 else f'{{:>{w}}}'
                    for i, w in enumerate(widths))
    print(fmt.format(*headers))
    for r in rows:
        print(fmt.format(*[str(c) for c in r]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--steps', type=int, default=40)
    parser.add_argument('--n-train', type=int, default=32)
    parser.add_argument('--n-test', type=int, default=8)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--n-iter', type=int, default=10,
                        help='unrolled iterations (default 10)')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    bench = DivalEllipses(size=args.size)
    train_odl, phys_odl = interop.protocol_dataset(bench, args.n_train,
                                                   'train', format='dict')
    test_odl, _ = interop.protocol_dataset(bench, args.n_test, 'test')
    phys_dinv = tomography(bench)
    y_dinv = tomography_data(phys_dinv, train_odl.x, bench.noise_level, 0)
    train_dinv = interop.ProtocolDataset(train_odl.x, y_dinv, format='dict')
    y_test_dinv = tomography_data(phys_dinv, test_odl.x, bench.noise_level,
                                  1)

    variants = (('odl (as_physics)', phys_odl, train_odl, test_odl.y),
                ('deepinv Tomography', phys_dinv, train_dinv, y_test_dinv))
    rows = []
    for name, physics, dataset, y_test in variants:
        norm = opnorm(physics, dataset.x[:1])
        torch.manual_seed(0)  # the same initial weights for both
        model = LearnedPrimalDual((args.size, args.size), norm,
                                  n_iter=args.n_iter)
        zero = evaluate(model, physics, test_odl.x, y_test)
        step = train(model, physics, dataset, args.steps, args.batch,
                     args.lr)
        psnr = evaluate(model, physics, test_odl.x, y_test)
        n_param = sum(p.numel() for p in model.parameters())
        rows.append((name, tuple(dataset.y.shape[2:]), f'{norm:.4g}',
                     f'{step:.3f}', f'{zero:.2f}', f'{psnr:.2f}', n_param))

    print(f'learned PD from deepinv PDNet blocks ({rows[0][6]} parameters), '
          f'deepinv Trainer, {args.size}x{args.size}, '
          f'{bench.num_angles} angles, {args.steps} steps of batch '
          f'{args.batch}, {args.n_train} training / {args.n_test} test '
          f'pairs (torch threads: {torch.get_num_threads()})')
    table([(r[0], 'x'.join(map(str, r[1])), r[2], r[3], r[4], r[5])
           for r in rows],
          ('physics', 'data', '||A||', 'step s', 'PSNR untrained',
           'PSNR trained'))
    return rows


if __name__ == '__main__':
    main()
