"""This package's ray-transform layer against deepinv's, in one process.

DIVal's geometry (``--size`` 128, 30 parallel-beam angles over 180
degrees), a batch of ``--batch`` 8 images, CPU. Alternating rounds
(`_common.alternate`), medians of ``--rounds``.

1. Forward and backward of the operator alone: ``loss = <A x, g>``,
   ``loss.backward()`` for ``x`` ``(B, 1, H, W)``:

   * this package's `odl_genprior.bridge.OperatorLayer` in its steady
     state (``.matrix()`` first: the exact sparse matrix of the ASTRA ray
     transform, what ``'auto'`` batching switches to after a few batches);
   * deepinv's pure-torch ``deepinv.physics.Tomography`` on the same grid
     and angles (``circle=False``, ``normalize=False``; its detector has
     ``ceil(sqrt(2) size)`` pixels, ODL's DIVal geometry one more);
   * ODL's ``odl.contrib.torch.OperatorModule`` (one ASTRA call per sample,
     backward by the adjoint).

2. One Adam step (forward, MSE loss, backward, update) of the same learned
   primal-dual network (this package's ``LearnedPrimalDual`` of
   ``build_unrolled({'scheme': 'lpd', 'start': 'fbp', 'benchmark':
   DivalEllipses(size).config()})``: 10 iterations, 5 + 5 channels, 32
   features, about 252k parameters at any size):

   * **ours**: as shipped, the operator and its transpose through
     `OperatorLayer` (sparse matrix), the FBP start by ODL;
   * **deepinv**: the same network, built from the same seed (identical
     weights), with ``A``, ``A^T`` and the FBP start swapped for
     deepinv's ``Tomography.A``, ``A_adjoint`` and ``A_dagger`` (deepinv's
     FBP) and its own operator norm. Only the operator (and its FBP)
     differs, so this is the like-for-like comparison; the ratio is taken
     against it;
   * for reference, **deepinv PDNet**: the same architecture assembled from
     deepinv's ``PDNet_PrimalBlock`` / ``PDNet_DualBlock`` (PReLU instead of
     ReLU, otherwise the same convolutions: 252k parameters at 10
     iterations) over ``Tomography``, started from zero: what deepinv's
     own blocks cost against the package's;
   * **ours** and **deepinv** again with ``start='zero'`` (Adler and
     Oktem's start): the difference of the two is A and A^T alone, while
     with the FBP start it also holds the FBP (ODL's, per sample, against
     deepinv's ``Tomography.A_dagger``, the larger part of deepinv's step
     at 64x64: 0.9 s of a batch of 8 there, measured under load).

The last line is ``ratio: X`` with X = the learned-PD step of **ours** /
**deepinv** (the goal is X <= 0.5 on a quiet CPU). Figures are only
meaningful on a quiet machine: the timings of a loaded one are noise.

Run: ``python benchmarks/deepinv.py [--rounds 5] [--threads 2] [--batch 8]
[--size 128]``
"""
import argparse
import importlib.util
import os
import sys

import torch

# This file is named deepinv.py: take its folder off the path (where
# ``python benchmarks/deepinv.py`` puts it) so that ``import deepinv``
# finds the package, and load _common from the file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _HERE]
if getattr(sys.modules.get('deepinv'), '__file__', None) == \
        os.path.abspath(__file__):
    del sys.modules['deepinv']
_spec = importlib.util.spec_from_file_location(
    '_bench_common', os.path.join(_HERE, '_common.py'))
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
alternate, table = _common.alternate, _common.table
# deepinv's learned PD (its PDNet blocks) and Tomography, as the example
# examples/deepinv_lpd_trainer.py builds them
_spec = importlib.util.spec_from_file_location(
    '_lpd_example', os.path.join(_HERE, os.pardir, 'examples',
                                 'deepinv_lpd_trainer.py'))
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
tomography = _example.tomography

from odl.contrib.torch import OperatorModule  # noqa: E402

from odl_genprior.bridge import OperatorLayer  # noqa: E402
from odl_genprior.interop import deepinv as interop  # noqa: E402
from odl_genprior.problems.ellipse_ct import DivalEllipses  # noqa: E402
from odl_genprior.models.unrolled import build_unrolled  # noqa: E402

dinv = interop.import_deepinv()


class _TomoA(torch.nn.Module):
    """deepinv's ``Tomography.A`` in the package's data layout
    ``(..., angles, detectors)`` (deepinv's is ``(..., detectors,
    angles)``)."""

    def __init__(self, tomo):
        super().__init__()
        self.tomo = tomo

    def forward(self, x):
        return self.tomo.A(x).transpose(-1, -2)


class _TomoAt(_TomoA):
    def forward(self, y):
        return self.tomo.A_adjoint(y.transpose(-1, -2))


class _TomoFBP(_TomoA):
    def forward(self, y):
        return self.tomo.A_dagger(y.transpose(-1, -2))


def swap_operator(net, tomo, opnorm):
    """``net`` with A, A^T and the FBP start from deepinv's ``tomo``."""
    net._A, net._At, net._fbp = _TomoA(tomo), _TomoAt(tomo), _TomoFBP(tomo)
    n_det = tomo.A(torch.zeros((1, 1) + net.image_shape)).shape[-2]
    net.data_shape = (net.data_shape[0], n_det)
    net.opnorm = float(opnorm)
    return net


class PDNetLPD(torch.nn.Module):
    """The example's deepinv learned PD bound to one physics: ``net(y)``
    for ``y`` ``(B, 1, detectors, angles)``, images ``(B, H, W)``."""

    def __init__(self, physics, img_shape, opnorm, n_iter=10):
        super().__init__()
        self.physics = physics
        self.net = _example.LearnedPrimalDual(img_shape, opnorm,
                                              n_iter=n_iter)

    def forward(self, y):
        return self.net(y, self.physics)[:, 0]


def fwd_bwd(layer, x, g):
    def run():
        xr = x.detach().requires_grad_()
        loss = (layer(xr) * g).sum()
        loss.backward()
    return run


def adam_step(net, y, x):
    opt = torch.optim.Adam(net.parameters(), 1e-4)

    def run():
        opt.zero_grad()
        loss = torch.mean((net(y) - x) ** 2)
        loss.backward()
        opt.step()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--n-iter', type=int, default=10,
                        help='unrolled iterations (default 10, as shipped)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = DivalEllipses(size=args.size)
    A = bench.operator
    y, x = bench.pairs(args.batch, 'validation')  # (B, 30, det), (B, H, W)
    tomo = tomography(bench)
    x1 = x[:, None]

    # 1. the operator alone
    ours = OperatorLayer(A)
    ours.matrix()  # steady state: the sparse matrix
    odl_module = OperatorModule(A)
    gen = torch.Generator().manual_seed(0)
    g_ours = torch.randn((args.batch, 1) + tuple(A.range.shape),
                         generator=gen)
    g_tomo = torch.randn(tuple(tomo.A(x1[:1]).shape[1:]),
                         generator=gen).expand((args.batch, -1, -1, -1))
    for run in (fwd_bwd(ours, x1, g_ours), fwd_bwd(tomo.A, x1, g_tomo)):
        run()  # warm-up
    op = alternate([('ours', fwd_bwd(ours, x1, g_ours)),
                    ('tomo', fwd_bwd(tomo.A, x1, g_tomo)),
                    ('odl', fwd_bwd(odl_module, x1, g_ours))], args.rounds)

    # 2. one Adam step of learned PD
    cfg = {'scheme': 'lpd', 'start': 'fbp', 'n_iter': args.n_iter,
           'benchmark': bench.config()}
    torch.manual_seed(0)
    net_ours = build_unrolled(cfg, A)
    net_ours._A.matrix()
    torch.manual_seed(0)
    norm_tomo = float(tomo.compute_sqnorm(x1[:1], max_iter=100, tol=1e-5,
                                          verbose=False)) ** 0.5
    net_tomo = swap_operator(build_unrolled(cfg, A), tomo, norm_tomo)
    torch.manual_seed(0)
    net_pdnet = PDNetLPD(tomo, x.shape[1:], norm_tomo, n_iter=args.n_iter)
    y_tomo = tomo.A(x1)  # (B, 1, det, angles)
    y_swap = y_tomo[:, 0].transpose(-1, -2).contiguous()  # (B, angles, det)
    zero = dict(cfg, start='zero')
    torch.manual_seed(0)
    net_ours0 = build_unrolled(zero, A)
    net_ours0._A.matrix()
    torch.manual_seed(0)
    net_tomo0 = swap_operator(build_unrolled(zero, A), tomo, norm_tomo)
    steps = [('ours', adam_step(net_ours, y, x)),
             ('deepinv', adam_step(net_tomo, y_swap, x)),
             ('ours0', adam_step(net_ours0, y, x)),
             ('deepinv0', adam_step(net_tomo0, y_swap, x)),
             ('pdnet', adam_step(net_pdnet, y_tomo, x))]
    for _, run in steps:
        run()  # warm-up
    step = alternate(steps, args.rounds)

    n_par = {k: sum(p.numel() for p in n.parameters()) for k, n in
             (('ours', net_ours), ('deepinv', net_tomo),
              ('pdnet', net_pdnet))}
    print(f'{args.size}x{args.size}, {bench.num_angles} angles, batch '
          f'{args.batch}, medians of {args.rounds} alternating rounds (torch '
          f'threads: {torch.get_num_threads()})')
    table([('OperatorLayer (sparse matrix)', f'{op["ours"] * 1e3:.1f}',
            '1.00'),
           ('deepinv Tomography', f'{op["tomo"] * 1e3:.1f}',
            f'{op["tomo"] / op["ours"]:.2f}'),
           ('odl.contrib.torch.OperatorModule', f'{op["odl"] * 1e3:.1f}',
            f'{op["odl"] / op["ours"]:.2f}')],
          ('operator fwd+bwd', 'ms', 'x OperatorLayer'))
    rows = [('ours: LPD over OperatorLayer', 'ours', 'ours'),
            ('deepinv: same LPD over Tomography', 'deepinv', 'ours'),
            ('ours, zero start', 'ours0', 'ours0'),
            ('deepinv, zero start', 'deepinv0', 'ours0'),
            ('deepinv PDNet blocks, zero start', 'pdnet', 'ours0')]
    table([(label, n_par[key[:-1] if key.endswith('0') else key],
            f'{step[key]:.3f}', f'{step[key] / step[ref]:.2f}')
           for label, key, ref in rows],
          ('one Adam step', 'parameters', 's', 'x ours (same start)'))
    ratio = step['ours'] / step['deepinv']
    print(f'ratio: {ratio:.3f}')
    return ratio


if __name__ == '__main__':
    main()
