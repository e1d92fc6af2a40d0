"""HTC2022 measured fan-beam CT: FBP and TV from full and limited angles.

Reconstructs the HTC2022 teaching phantoms (measured data of acrylic discs
with holes) from 360, 90 and 60 degrees of data with ODL's FBP (``fbp_op``,
Hann filter) and TV (PDHG, nonnegative), segments every reconstruction by
Otsu's threshold and scores it with the challenge's Matthews correlation
coefficient (MCC) against the organisers' segmentation of their full-data
FBP. Prints a table of MCC and time per (phantom, angular range, method);
``--plot`` saves a figure of the reconstructions and segmentations.

Defaults trade resolution for time on a shared CPU: a 128x128 grid (the
organisers' 512 grid binned by 4, 0.59 mm pixels), detector columns
averaged by 4 (140 pixels of 0.8 mm) and every second angle (1 degree
steps: 360, 91 and 61 angles). With 720 angles and 560 pixels one
astra_cpu projection took 4 s at 256x256 here, far too slow for TV.

``--learned`` also trains, per limited angular range (90 and 60 degrees),
a residual CNN after FBP (FBP+CNN) on 200 simulated discs with holes in the
same geometry, with ``odl_genprior.training.train``.

Command (the table in docs/htc2022.md)::

    python examples/htc2022.py --learned --out runs/htc2022 \
        --plot docs/figures/htc2022/htc2022.png

It took 473 s on the 2 shared CPU cores of the development machine, 224 s of
them training (607 s with one thread under load); without ``--learned`` about 4 minutes. Data: ``--data DIR``
or ``$ODL_GENPRIOR_HTC2022``.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from odl.applications import tomo

from odl_genprior.problems import htc2022
from odl_genprior.bridge import OperatorLayer
from odl_genprior.recon import FBP, TV
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.training import seed_all, train
from odl_genprior.nn.unrolled import ConvBlock

DEFAULT_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'


class FBPConvNet(torch.nn.Module):
    """FBP (an ODL operator through the bridge) + a residual CNN.

    ``forward(y) = post(fbp(y))`` with ``post(f) = f + scale * cnn(f /
    scale)``; ``scale`` normalises the attenuation values (mm^-1, ~0.04)
    to order one for the network.
    """

    def __init__(self, fbp, hidden_channels=32, scale=0.04):
        super().__init__()
        self.fbp = OperatorLayer(fbp)
        self.cnn = ConvBlock(1, 1, hidden_channels)
        self.scale = float(scale)

    def post(self, f):
        return f + self.scale * self.cnn(f[:, None] / self.scale)[:, 0]

    def forward(self, y):
        return self.post(self.fbp(y))


def train_learned(problem, fbp_method, args, out_dir):
    """Train `FBPConvNet` on simulated discs in ``problem``'s geometry."""
    A = problem.operator
    fbp = tomo.fbp_op(A, filter_type=fbp_method.filter_type,
                      frequency_scaling=fbp_method.frequency_scaling)
    rng = np.random.default_rng(args.seed)
    images, fbps = [], []
    for _ in range(args.n_train):
        x = htc2022.disc_phantom(A.domain, rng=rng)
        y = A(x).asarray()
        y = y + args.sim_noise * rng.standard_normal(y.shape)
        images.append(x)
        fbps.append(fbp(y.astype(np.float32)).asarray())
    images = torch.from_numpy(np.stack(images))
    fbps = torch.from_numpy(np.stack(fbps).astype(np.float32))
    seed_all(args.seed)
    model = FBPConvNet(fbp)

    def loss_fn(m, batch):
        f, x = batch
        return torch.mean((m.post(f) - x) ** 2) / m.scale ** 2

    train(model, loss_fn, (fbps, images), out_dir=out_dir,
          epochs=args.epochs, batch_size=8, lr=1e-3, seed=args.seed,
          progress=False, config={'n_train': args.n_train,
                                  'sim_noise': args.sim_noise})
    return LearnedReconstructor(model, name='FBP+CNN')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.environ.get(htc2022.HTC2022_ENV)
                        or str(DEFAULT_DATA),
                        help=f'folder of the .mat files (default: '
                             f'${htc2022.HTC2022_ENV} or {DEFAULT_DATA})')
    parser.add_argument('--phantoms', nargs='+',
                        default=['ta', 'tb', 'tc', 'td', 'solid_disc'])
    parser.add_argument('--ranges', nargs='+', type=float,
                        default=[360, 90, 60], help='angular ranges (deg)')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--angle-step', type=int, default=2,
                        help='keep every k-th 0.5-degree angle')
    parser.add_argument('--det-binning', type=int, default=4)
    parser.add_argument('--tv-alpha', type=float, default=1e-2)
    parser.add_argument('--tv-iter', type=int, default=100)
    parser.add_argument('--learned', action='store_true',
                        help='also train an FBP+CNN post-processing net per '
                             'angular range on simulated discs (slow)')
    parser.add_argument('--learned-ranges', nargs='+', type=float,
                        default=[90, 60],
                        help='angular ranges that get an FBP+CNN')
    parser.add_argument('--n-train', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--sim-noise', type=float, default=0.01,
                        help='std of Gaussian noise on simulated sinograms')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='runs/htc2022',
                        help='training runs (checkpoints) go here')
    parser.add_argument('--plot', metavar='PNG', default=None,
                        help='save a figure of reconstructions/segmentations')
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    fbp = FBP(filter_type='Hann', frequency_scaling=0.8)
    methods = [fbp, TV(alpha=args.tv_alpha, niter=args.tv_iter, nonneg=True)]
    rows, images, learned = [], {}, {}
    start = time.time()
    for name in args.phantoms:
        for rng in args.ranges:
            p = htc2022.load_htc2022(
                name, args.data, angular_range=None if rng >= 360 else rng,
                size=args.size, angle_step=args.angle_step,
                det_binning=args.det_binning)
            truth = p.info['reference_segmentation']
            todo = list(methods)
            if args.learned and rng in args.learned_ranges:
                if rng not in learned:
                    t0 = time.time()
                    learned[rng] = train_learned(
                        p, fbp, args, Path(args.out) / f'range{rng:g}')
                    print(f'trained FBP+CNN for {rng:g} deg in '
                          f'{time.time() - t0:.0f} s', flush=True)
                todo.append(learned[rng])
            for method in todo:
                t0 = time.time()
                x = method(p, progress=False).asarray()
                seconds = time.time() - t0
                score = htc2022.score(x, truth)
                rows.append((name, rng, method.name, p.data.shape[0], score,
                             seconds))
                images[name, rng, method.name] = x
                print(f'{name:>10} {rng:5.0f} deg {method.name:>4}: '
                      f'MCC {score:.3f} ({seconds:.1f} s)', flush=True)

    print(f'\nHTC2022, {args.size}x{args.size} grid, detector binning '
          f'{args.det_binning}, angle step {0.5 * args.angle_step:g} deg, '
          f'TV alpha {args.tv_alpha:g} x {args.tv_iter} iterations')
    print('| phantom | range (deg) | angles | method | MCC | time (s) |')
    print('|---|---|---|---|---|---|')
    for name, rng, method, nang, score, seconds in rows:
        print(f'| {name} | {rng:g} | {nang} | {method} | {score:.3f} | '
              f'{seconds:.1f} |')
    for method in dict.fromkeys(r[2] for r in rows):
        for rng in args.ranges:
            vals = [r[4] for r in rows if r[1] == rng and r[2] == method]
            if vals:
                print(f'mean MCC {method} {rng:g} deg: {np.mean(vals):.3f}')
    print(f'total time {time.time() - start:.0f} s')

    if args.plot:
        _plot(args, images, methods)


def _plot(args, images, methods):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [m.name for m in methods] + (['FBP+CNN'] if args.learned else [])
    cols = [(rng, m) for rng in args.ranges for m in names
            if (rng, m) in {k[1:] for k in images}]
    nrow = len(args.phantoms)
    fig, axes = plt.subplots(2 * nrow, len(cols) + 1,
                             figsize=(2 * (len(cols) + 1), 4 * nrow))
    axes = np.atleast_2d(axes)
    for i, name in enumerate(args.phantoms):
        ref, truth = htc2022.load_reference(name, args.data)
        # ODL arrays are indexed (x, y): show them with x to the right.
        axes[2 * i, 0].imshow(ref.T, cmap='gray', origin='lower')
        axes[2 * i, 0].set_title(f'{name}: organisers FBP', fontsize=7)
        axes[2 * i + 1, 0].imshow(truth.T, cmap='gray', origin='lower')
        axes[2 * i + 1, 0].set_title('their segmentation', fontsize=7)
        for j, (rng, method) in enumerate(cols, start=1):
            x = images[name, rng, method]
            score = htc2022.score(x, truth)
            axes[2 * i, j].imshow(x.T, cmap='gray', origin='lower')
            axes[2 * i, j].set_title(f'{method} {rng:g} deg', fontsize=7)
            axes[2 * i + 1, j].imshow(htc2022.segment(x).T, cmap='gray',
                                      origin='lower')
            axes[2 * i + 1, j].set_title(f'MCC {score:.3f}', fontsize=7)
    for ax in axes.ravel():
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f'saved {args.plot}')


if __name__ == '__main__':
    main()
