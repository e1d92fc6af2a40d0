"""Reproduce the toy classification study of Benning et al. (2019).

'Deep learning as optimal control problems: models and numerical methods'
(J. Comput. Dyn. 2019) compares, on 2D toy data, a plain feed-forward net,
a ResNet (Euler steps of fixed size T/K), an ODENet (learned step sizes) and
an ODENet whose steps are learned on the simplex {h >= 0, sum h = T}. Here:
width 2, 20 layers, tanh, a linear classifier + sigmoid on the output, 500
training / 500 validation points per data set (`odl_genprior.data.toy`),
trained with Adam (full batch) through `odl_genprior.training.train`; the
simplex steps are projected with ODL's `proj_simplex` after every step.

Prints a table of validation accuracies (data set x network) and, with
``--plot DIR``, saves the learned step sizes per layer (one PNG per data set)
and the decision regions.

Command and runtime (2 shared CPU cores)::

    python examples/reproduce_odenet_toy.py --plot docs/figures/odenet_toy

16 runs of 500 full-batch Adam steps: 345 s wall on a heavily shared
2-core machine (load ~13); a few minutes of CPU time.
"""
import argparse
import os
import time

import numpy as np
import torch

from odl_genprior.nn.odenets import (
    FeedForwardNet, RKNet, attach_simplex_projection, lipschitz_bound)
from odl_genprior.data.toy import TOY_DATASETS, make_toy
from odl_genprior.training import seed_all, train

NETWORKS = ('plain', 'resnet', 'odenet', 'odenet_simplex')


class Classifier(torch.nn.Module):
    """``sigmoid(w^T N(x) + mu)``; ``forward`` returns the logit."""

    def __init__(self, body, dim=2):
        super().__init__()
        self.body = body
        self.head = torch.nn.Linear(dim, 1)

    def forward(self, x):
        return self.head(self.body(x))[:, 0]


def make_body(kind, width, layers, T, method):
    if kind == 'plain':
        return FeedForwardNet(width, layers)
    steps = {'resnet': 'fixed', 'odenet': 'free',
             'odenet_simplex': 'simplex'}[kind]
    return RKNet(width, layers, method=method, T=T, steps=steps)


def accuracy(model, data):
    x, y = data
    return float(((model(x) > 0).float() == y).float().mean())


def run_one(dataset, kind, args):
    seed_all(args.seed)
    xtr, ytr = make_toy(dataset, args.n_train, seed=args.seed)
    xva, yva = make_toy(dataset, args.n_val, seed=args.seed + 1000)
    model = Classifier(make_body(kind, args.width, args.layers, args.T,
                                 args.method), args.width)

    def optimizer(params):
        opt = torch.optim.Adam(params, lr=args.lr)
        if kind == 'odenet_simplex':
            attach_simplex_projection(opt, model.body)
        return opt

    def loss(m, batch):
        x, y = batch
        return torch.nn.functional.binary_cross_entropy_with_logits(m(x), y)

    t0 = time.perf_counter()
    train(model, loss, (xtr, ytr), out_dir=None, epochs=args.steps,
          batch_size=args.n_train, optimizer=optimizer, seed=args.seed,
          progress=False)
    model.eval()
    with torch.no_grad():
        acc_tr, acc_va = accuracy(model, (xtr, ytr)), accuracy(model,
                                                               (xva, yva))
    steps = (model.body.step_sizes.detach().numpy().copy()
             if kind != 'plain' else None)
    return dict(train=acc_tr, val=acc_va, steps=steps, model=model,
                lip=lipschitz_bound(model.body),
                seconds=time.perf_counter() - t0, data=(xva, yva))


def plot(results, datasets, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(args.plot, exist_ok=True)
    for ds in datasets:
        fig, ax = plt.subplots(figsize=(5, 3))
        for kind in NETWORKS[1:]:
            h = results[ds, kind]['steps']
            ax.plot(np.arange(1, len(h) + 1), h, 'o-', label=kind, ms=3)
        ax.set_xlabel('layer k')
        ax.set_ylabel('step size h_k')
        ax.set_title(f'{ds}: learned step sizes (T={args.T})')
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(args.plot, f'steps_{ds}.png'), dpi=100)
        plt.close(fig)
    # decision regions on [-1.2, 1.2]^2
    g = torch.linspace(-1.2, 1.2, 200)
    gx, gy = torch.meshgrid(g, g, indexing='xy')
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    fig, axes = plt.subplots(len(datasets), len(NETWORKS),
                             figsize=(3 * len(NETWORKS), 3 * len(datasets)),
                             squeeze=False)
    for i, ds in enumerate(datasets):
        for j, kind in enumerate(NETWORKS):
            r = results[ds, kind]
            with torch.no_grad():
                p = torch.sigmoid(r['model'](grid)).reshape(200, 200)
            ax = axes[i, j]
            ax.contourf(gx, gy, p, levels=[0, 0.5, 1],
                        colors=['#f4c7c3', '#c6dbef'])
            x, y = r['data']
            ax.scatter(x[:, 0], x[:, 1], c=y, s=2, cmap='bwr_r')
            ax.set_title(f'{ds} / {kind}: {100 * r["val"]:.1f}%', fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(os.path.join(args.plot, 'decision_regions.png'), dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--datasets', nargs='+', default=list(TOY_DATASETS),
                   choices=TOY_DATASETS)
    p.add_argument('--networks', nargs='+', default=list(NETWORKS),
                   choices=NETWORKS)
    p.add_argument('--n-train', type=int, default=500)
    p.add_argument('--n-val', type=int, default=500)
    p.add_argument('--width', type=int, default=2)
    p.add_argument('--layers', type=int, default=20)
    p.add_argument('--T', type=float, default=5.0, help='final time')
    p.add_argument('--method', default='euler',
                   help='Runge-Kutta method of the ResNet/ODENets')
    p.add_argument('--steps', type=int, default=500,
                   help='Adam steps (full batch)')
    p.add_argument('--lr', type=float, default=0.02)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--plot', metavar='DIR', default=None,
                   help='save step-size and decision-region PNGs here')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.plot:
        args.networks = list(NETWORKS)  # the plots show all four
    results = {}
    t0 = time.perf_counter()
    for ds in args.datasets:
        for kind in args.networks:
            r = results[ds, kind] = run_one(ds, kind, args)
            print(f'{ds:10s} {kind:15s} train {100 * r["train"]:5.1f}%  '
                  f'val {100 * r["val"]:5.1f}%  Lip.bound {r["lip"]:9.3g}  '
                  f'({r["seconds"]:.0f} s)', flush=True)
    print(f'\nvalidation accuracy (%), width {args.width}, {args.layers} '
          f'layers, T={args.T}, {args.steps} Adam steps, '
          f'{time.perf_counter() - t0:.0f} s total')
    print('| data set | ' + ' | '.join(args.networks) + ' |')
    print('|---' * (len(args.networks) + 1) + '|')
    for ds in args.datasets:
        print(f'| {ds} | ' + ' | '.join(
            f'{100 * results[ds, k]["val"]:.1f}' for k in args.networks)
              + ' |')
    if args.plot:
        plot(results, args.datasets, args)
        print(f'plots written to {args.plot}/')
    return results


if __name__ == '__main__':
    main()
