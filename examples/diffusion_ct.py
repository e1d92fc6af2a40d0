"""Sparse-view CT on 64x64 random ellipses with a score-based diffusion prior.

Test phantoms of `odl_genprior.problems.ellipse_ct.EllipseCT` (parallel beam, 23
angles, relative Gaussian noise) are reconstructed by FBP, TV, the
latent-space generative prior (the shipped ``ellipses-64`` VAE, soft
coupling, `odl_genprior.recon.LatentSoft`, Adam) and the posterior mean of two
diffusion samplers with the shipped score model ``ellipses-score-64``:
diffusion posterior sampling (`DiffusionPosteriorSampling`) and Song et
al.'s projection sampler (`ScoreProjection`). The ray transform is ODL's
(ASTRA); the samplers apply it and its adjoint to their batches of samples.

Prints a table of PSNR / SSIM (means over the test phantoms, and their
range) and the wall time per reconstruction, and writes a figure of the
first phantom (truth, FBP, TV, latent prior, posterior means, three
posterior samples and the pixelwise standard deviation) and the table as
Markdown into ``--out``, with a row of unconditional samples of the score
model. The defaults are those of the table in
``docs/diffusion.md``; their hyperparameters were chosen on validation
phantoms (``--split validation``), not on the test phantoms::

    OMP_NUM_THREADS=1 python examples/diffusion_ct.py --out docs/figures/diffusion_ct

Use ``--score`` / ``--vae`` for a run folder of ``odl-genprior train`` instead
of a shipped model, ``--methods`` to run a subset.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from odl_genprior import metrics
from odl_genprior.bridge import to_numpy
from odl_genprior.problems.ellipse_ct import EllipseCT
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.recon import FBP, TV, LatentSoft
from odl_genprior.recon.diffusion import (DiffusionPosteriorSampling,
                                          ScoreProjection)
from odl_genprior.recon.latent import generator_operator

METHODS = ('fbp', 'tv', 'latent', 'dps', 'projection')
LABELS = {'fbp': 'FBP', 'tv': 'TV', 'latent': 'latent prior (VAE)',
          'dps': 'DPS (posterior mean)',
          'projection': 'score projection (posterior mean)'}


def build_methods(args, space):
    """The methods of the table, by key."""
    out = {}
    if 'fbp' in args.methods:
        out['fbp'] = FBP()
    if 'tv' in args.methods:
        out['tv'] = TV(alpha=args.tv_alpha, niter=args.tv_iters)
    if 'latent' in args.methods:
        vae = models.load(args.vae)
        G = generator_operator(recipes.generator_of(vae), space)
        out['latent'] = LatentSoft(G, lam=args.latent_lam, mu=args.latent_mu,
                                   solver='adam', niter=args.latent_iters,
                                   restarts=1)
    if {'dps', 'projection'} & set(args.methods):
        score = models.load(args.score)
        if 'dps' in args.methods:
            out['dps'] = DiffusionPosteriorSampling(
                score, score.sde, niter=args.dps_steps, sampler='em',
                n_samples=args.samples, seed=args.seed,
                guidance_scale=args.dps_zeta, guidance_per_step=True,
                matrix=True)
        if 'projection' in args.methods:
            out['projection'] = ScoreProjection(
                score, score.sde, niter=args.proj_steps,
                sampler=args.proj_sampler, n_samples=args.samples,
                seed=args.seed, weight=args.proj_weight,
                cg_niter=args.proj_cg, matrix=True)
    return out


def run(args):
    """Reconstruct every test phantom by every method; table and images."""
    torch.set_num_threads(args.threads)
    bench = EllipseCT(size=64, num_angles=args.angles,
                      noise_level=args.noise, seed=args.data_seed)
    problems = [bench.problem(i, args.split) for i in range(args.n_test)]
    methods = build_methods(args, problems[0].space)
    rows, first = {}, {}
    for key, method in methods.items():
        psnr, ssim, secs = [], [], []
        for i, p in enumerate(problems):
            t0 = time.perf_counter()
            x = method.reconstruct(p, progress=not args.quiet)
            secs.append(time.perf_counter() - t0)
            psnr.append(metrics.psnr(x, p.ground_truth))
            ssim.append(metrics.ssim(x, p.ground_truth))
            if i == 0:
                first[key] = {'x': to_numpy(x).copy()}
                if getattr(method, 'samples', None) is not None:
                    first[key]['samples'] = method.samples[:3].copy()
                    first[key]['std'] = method.std.copy()
            print(f'  {LABELS[key]} on {p.name}: {psnr[-1]:.2f} dB, '
                  f'SSIM {ssim[-1]:.3f}, {secs[-1]:.1f} s', flush=True)
        rows[key] = {'psnr': psnr, 'ssim': ssim, 'seconds': secs}
    return problems, methods, rows, first


def table(rows):
    """The Markdown table of the results."""
    lines = ['| method | PSNR [dB] mean (min-max) | SSIM mean (min-max) | '
             'seconds / reconstruction |', '|---|---|---|---|']
    for key, r in rows.items():
        p, s = np.array(r['psnr']), np.array(r['ssim'])
        lines.append(f'| {LABELS[key]} | {p.mean():.2f} ({p.min():.2f}-'
                     f'{p.max():.2f}) | {s.mean():.3f} ({s.min():.3f}-'
                     f'{s.max():.3f}) | {np.mean(r["seconds"]):.1f} |')
    return '\n'.join(lines)


def figure(problem, first, path):
    """Truth, reconstructions, three samples and the std map of phantom 0."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    truth = to_numpy(problem.ground_truth)
    panels = [('ground truth', truth)]
    for key in ('fbp', 'tv', 'latent', 'dps', 'projection'):
        if key in first:
            x = first[key]['x']
            panels.append((f'{LABELS[key].split(" (")[0]}\n'
                           f'{metrics.psnr(x, truth):.1f} dB', x))
    post = next((k for k in ('projection', 'dps') if k in first
                 and 'samples' in first[k]), None)
    std = None
    if post is not None:
        name = LABELS[post].split(' (')[0]
        for j, s in enumerate(first[post]['samples']):
            panels.append((f'{name}\nsample {j + 1}', s))
        std = first[post]['std']
    n = len(panels) + (std is not None)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, (title, img) in zip(axes.flat, panels):
        ax.imshow(np.asarray(img).T, cmap='gray', origin='lower', vmin=0,
                  vmax=1)
        ax.set_title(title, fontsize=9)
    if std is not None:
        ax = axes.flat[len(panels)]
        im = ax.imshow(std.T, cmap='magma', origin='lower')
        ax.set_title(f'{name}\npixelwise std', fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def unconditional(args, path):
    """A row of unconditional samples of the score model (reverse SDE)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from odl_genprior.diffusion.samplers import euler_maruyama
    score = models.load(args.score)
    x = euler_maruyama(score, score.sde, (args.unconditional, 64, 64),
                       steps=args.dps_steps, generator=args.seed).numpy()
    fig, axes = plt.subplots(1, len(x), figsize=(1.6 * len(x), 1.8),
                             squeeze=False)
    for ax, img in zip(axes[0], x):
        ax.imshow(img.T, cmap='gray', origin='lower', vmin=0, vmax=1)
        ax.axis('off')
    fig.suptitle(f'unconditional samples of {args.score} (reverse SDE, '
                 f'{args.dps_steps} Euler-Maruyama steps)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser():
    """Command-line options (defaults: the table of docs/diffusion.md)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-test', type=int, default=5)
    p.add_argument('--split', default='test',
                   choices=('test', 'validation'))
    p.add_argument('--angles', type=int, default=23)
    p.add_argument('--noise', type=float, default=0.02,
                   help='relative Gaussian noise (of the mean |sinogram|)')
    p.add_argument('--data-seed', type=int, default=0)
    p.add_argument('--methods', nargs='+', default=list(METHODS),
                   choices=METHODS)
    p.add_argument('--score', default='ellipses-score-64',
                   help='shipped score model or a run folder')
    p.add_argument('--vae', default='ellipses-64',
                   help='shipped VAE or a run folder (latent prior)')
    p.add_argument('--samples', type=int, default=8,
                   help='posterior samples per reconstruction')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--dps-steps', type=int, default=200)
    p.add_argument('--dps-zeta', type=float, default=2.0,
                   help="Chung's step (guidance_per_step=True)")
    p.add_argument('--proj-steps', type=int, default=200)
    p.add_argument('--proj-weight', type=float, default=0.5)
    p.add_argument('--proj-cg', type=int, default=5)
    p.add_argument('--proj-sampler', default='em', choices=('em', 'pc'))
    p.add_argument('--tv-alpha', type=float, default=1e-4)
    p.add_argument('--tv-iters', type=int, default=500)
    p.add_argument('--latent-lam', type=float, default=0.03)
    p.add_argument('--latent-mu', type=float, default=1e-5)
    p.add_argument('--latent-iters', type=int, default=200)
    p.add_argument('--unconditional', type=int, default=8,
                   help='unconditional samples to draw into the figure '
                        'folder (0: none)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default=None,
                   help='folder for the figure, table.md and results.json')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    print(f'ellipse CT 64x64, {args.angles} angles, {args.noise:.0%} noise, '
          f'{args.n_test} {args.split} phantoms; score model {args.score}, '
          f'{args.samples} posterior samples')
    problems, methods, rows, first = run(args)
    text = table(rows)
    print()
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        figure(problems[0], first, out / 'diffusion_ct.png')
        if args.unconditional and {'dps', 'projection'} & set(args.methods):
            unconditional(args, out / 'unconditional.png')
        (out / 'table.md').write_text(text + '\n')
        (out / 'results.json').write_text(json.dumps(
            {'args': vars(args), 'methods': {k: repr(m) for k, m in
                                             methods.items()},
             'results': rows}, indent=1))
        print(f'figure, table.md and results.json written to {out}')


if __name__ == '__main__':
    main()
