"""How good can a latent-space prior be on the demo's ellipse CT?

For each prior (a shipped name or a run folder of ``odl-genprior train``) and
each phantom seed of the demo problem (128x128, 30 angles, 5 % noise), one
table row side by side:

* ``FBP``: the baseline the demo prints;
* ``64->128``: the true phantom resampled to the prior's 64x64 grid and back
  (the best any 64x64 generator can do, composed with ODL's ``Resampling``);
* ``enc-dec``: the prior's own encode-decode of the true phantom (a point of
  its range close to the truth: an upper estimate of what a latent method
  can reach without a free image);
* ``soft``: the demo's `LatentSoft` reconstruction (Adam, 100 iterations,
  mu 1e-5) with lam 0.3 (the demo's) and 0.1.

Run (about 2 minutes on 2 CPU cores)::

    python benchmarks/ellipse_prior_ceiling.py
    python benchmarks/ellipse_prior_ceiling.py --priors ellipses-64 runs/my-vae
"""
import argparse
from pathlib import Path

import odl
import torch

from _common import table
from odl_genprior import metrics, problems
from odl_genprior.bridge import to_numpy
from odl_genprior.cli import _prior_operator
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.recon import FBP, LatentSoft


def encode_decode(model, image):
    """The model's reconstruction of ``image`` (B=1, C=1), latent mean."""
    x = torch.as_tensor(image, dtype=torch.float32)[None, None]
    with torch.no_grad():
        z = (model.encode(x)[0] if hasattr(model, 'encode')
             else model.encoder(x))
        return recipes.generator_of(model)(z)[0, 0].numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--priors', nargs='+', default=['ellipses-64'])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        p = problems.ct(size=128, num_angles=30, noise_level=0.05, seed=seed)
        truth = p.ground_truth
        fbp = metrics.psnr(FBP()(p, progress=False), truth)
        for prior in args.priors:
            model = models.load(prior)
            G = _prior_operator(prior, p.space)
            # The generator's own grid: G is Resampling * generator or not.
            grid = G.right.range if hasattr(G, 'right') else G.range
            down = odl.Resampling(p.space, grid, 'linear')
            up = odl.Resampling(grid, p.space, 'linear')
            small = down(truth)
            ed = up(grid.element(encode_decode(model, to_numpy(small))))
            # The demo's settings (cli._ellipse_prior_method) at two lam.
            soft = [metrics.psnr(LatentSoft(
                G, lam=lam, mu=1e-5, solver='adam', learning_rate=0.1,
                niter=100, restarts=1)(p, progress=False), truth)
                for lam in (0.3, 0.1)]
            rows.append((seed, Path(prior).name, f'{fbp:.2f}',
                         f'{metrics.psnr(up(small), truth):.2f}',
                         f'{metrics.psnr(ed, truth):.2f}',
                         f'{soft[0]:.2f}', f'{soft[1]:.2f}'))
    print('PSNR [dB] on the demo problem (128x128, 30 angles, 5 % noise)')
    table(rows, ('seed', 'prior', 'FBP', '64->128', 'enc-dec',
                 'soft 0.3', 'soft 0.1'))


if __name__ == '__main__':
    main()
