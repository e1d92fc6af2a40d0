"""Latent-space CT through the bridge, against a torch loop and the floor.

Conv generator R^40 -> 128x128 float32, parallel beam with 60 angles
(astra_cpu), 200 Adam iterations from the same start:

(a) ODL: ``odl.solvers.adam`` on
    ``L2NormSquared(A.range).translated(y) * (A * TorchOperator(G))``;
(b) torch: a hand-written loop, ``torch.optim.Adam`` on
    ``||OperatorLayer(A)(G(z)) - y||^2``;
(c) floor: per iteration one forward ray transform, one back-projection and
    one generator forward + backward, each timed alone in the same run;
(d) the gradient alone, two ways: ``f.gradient`` of the composed functional
    against the same steps written by hand in one loop (generator forward
    with graph, ``A``, residual, ``A^T``, vector-Jacobian product), with no
    bridge and no functional algebra. Their ratio is what the bridge costs;
    the parts of (c) run interleaved there, which costs more than alone
    (caches), so (d) by hand is itself above (c).

Variants alternate, each repeated; medians are reported. Then the
ODL-operator layer on a batch of 16 against ``odl.contrib.torch``'s
``OperatorModule``. The last lines are ``bridge overhead: Y`` with
Y = f.gradient / by hand, and ``ratio: X`` with X = (a) / (c).

Run: ``python benchmarks/bridge.py [--iters 200] [--rounds 5]``
"""
import argparse
import os
import sys

import numpy as np
import odl
import torch
from odl.contrib.torch import OperatorModule

sys.path.insert(0, os.path.dirname(__file__))
from _common import alternate, table, timed  # noqa: E402

import odl_genprior as og  # noqa: E402
from odl_genprior import problems  # noqa: E402


class ConvGenerator(torch.nn.Module):
    """DCGAN-like decoder R^40 -> (1, 1, 128, 128)."""

    def __init__(self, latent=40, ch=(32, 16, 8, 8, 4)):
        super().__init__()
        self.ch0 = ch[0]
        self.fc = torch.nn.Linear(latent, ch[0] * 4 * 4)
        layers = []
        for a, b in zip(ch, ch[1:] + (1,)):
            layers += [torch.nn.ConvTranspose2d(a, b, 4, 2, 1),
                       torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers[:-1], torch.nn.Sigmoid())

    def forward(self, z):
        h = torch.relu(self.fc(z)).reshape(-1, self.ch0, 4, 4)
        return self.net(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--iters', type=int, default=200)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--threads', type=int, default=None,
                    help='torch threads (default: torch decides)')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    gen = ConvGenerator().eval()
    space = problems.image_space(128, impl='pytorch')
    A = problems.ray_transform(space, num_angles=60)
    latent = odl.rn(40, dtype='float32', impl='pytorch')
    G = og.TorchOperator(gen, latent, space)
    z_true = latent.element(torch.randn(40))
    y = A(G(z_true))
    z0 = torch.randn(40) * 0.5
    lr = 0.02

    # (a) ODL's adam on the composed functional.
    f = odl.functionals.L2NormSquared(A.range).translated(y) * (A * G)

    def odl_adam():
        z = latent.element(z0.clone())
        odl.solvers.adam(f, z, learning_rate=lr, maxiter=args.iters)
        odl_adam.result = f(z)

    # (b) hand-written torch loop through the ODL-operator layer.
    layer = og.OperatorLayer(A)
    y_t = y.data.clone()

    def torch_loop():
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(args.iters):
            opt.zero_grad()
            loss = ((layer(gen(z[None]).reshape(128, 128)) - y_t) ** 2).sum()
            loss.backward()
            opt.step()
        torch_loop.result = loss.item()

    # (c) the floor: the parts alone.
    x_img = G(latent.element(z0.clone()))
    sino = A(x_img)

    def parts():
        for _ in range(args.iters):
            A(x_img)
        parts.fp = None

    def fp():
        for _ in range(args.iters):
            A(x_img)

    def bp():
        for _ in range(args.iters):
            A.adjoint(sino)

    def gen_fb():
        z = z0.clone()
        for _ in range(args.iters):
            zz = z.clone().requires_grad_(True)
            out = gen(zz[None])
            torch.autograd.grad(out, zz, torch.ones_like(out))

    # (d) the gradient through the bridge against the same steps by hand.
    grad_f = f.gradient

    def moved():  # a new point each call: no cache hit in either variant
        z_d = z0 + 1e-3 * torch.arange(40.0)
        return z_d

    z_bridge = latent.element(moved())

    def bridge_gradient():
        for _ in range(args.iters):
            z_bridge.data.add_(1e-6)
            grad_f(z_bridge)

    def hand_gradient():
        z_h = moved()
        for _ in range(args.iters):
            z_h.add_(1e-6)
            zz = z_h.clone().requires_grad_(True)
            x = gen(zz[None]).reshape(128, 128)
            r = 2 * (A(space.element(x.detach())) - y)
            torch.autograd.grad(x, zz, A.adjoint(r).data)

    odl_adam(), torch_loop()  # warm up
    med = alternate([('odl', odl_adam), ('torch', torch_loop), ('fp', fp),
                     ('bp', bp), ('gen', gen_fb), ('grad', bridge_gradient),
                     ('hand', hand_gradient)], args.rounds)
    n = args.iters
    floor = med['fp'] + med['bp'] + med['gen']
    print(f'latent-space CT: G R^40 -> 128x128, 60 angles astra_cpu, '
          f'{n} Adam iterations, median of {args.rounds} alternating rounds, '
          f'torch threads {torch.get_num_threads()}')
    rows = [
        ('(a) ODL adam on L2 * (A * TorchOperator(G))', med['odl']),
        ('(b) torch loop with OperatorLayer(A)', med['torch']),
        ('(c) floor = A + A^T + G fwd/bwd', floor),
        ('    forward ray transform A', med['fp']),
        ('    back-projection A^T', med['bp']),
        ('    generator forward + backward', med['gen']),
        ('(d) f.gradient through the bridge', med['grad']),
        ('    the same gradient by hand, no bridge', med['hand']),
    ]
    table([(r, f'{t / n * 1e3:.2f}', f'{t / floor:.3f}') for r, t in rows],
          ('variant', 'ms/iter', 'x floor'))
    print(f'final objective: ODL {odl_adam.result:.4g}, '
          f'torch {torch_loop.result / A.range.cell_volume:.4g} '
          '(same units)')

    # ODL operator as a torch layer on a batch of 16.
    small = problems.image_space(64, impl='pytorch')
    A64 = problems.ray_transform(small, num_angles=60)
    ours, theirs = og.OperatorLayer(A64), OperatorModule(A64)
    xb = torch.rand(16, 64, 64)

    def fwd_bwd(mod):
        def run():
            x = xb.clone().requires_grad_(True)
            mod(x).sum().backward()
        return run

    xb1 = xb[:, None]  # OperatorModule wants (B, C, ...) or (B, ...)
    ours_t = alternate([('ours', fwd_bwd(ours)),
                        ('theirs', lambda: (lambda x: theirs(x).sum().backward())(
                            xb1.clone().requires_grad_(True)))], args.rounds)
    ours_f = alternate([('ours', lambda: ours(xb)), ('theirs',
                                                     lambda: theirs(xb1))],
                       args.rounds)
    print('\nODL ray transform (64x64, 60 angles) as a torch layer, batch 16:')
    table([('OperatorLayer (odl_genprior)', f'{ours_f["ours"] * 1e3:.1f}',
            f'{ours_t["ours"] * 1e3:.1f}'),
           ('odl.contrib.torch.OperatorModule', f'{ours_f["theirs"] * 1e3:.1f}',
            f'{ours_t["theirs"] * 1e3:.1f}')],
          ('layer', 'forward ms', 'fwd+bwd ms'))
    print(f'bridge overhead: {med["grad"] / med["hand"]:.3f}')
    print(f'ratio: {med["odl"] / floor:.3f}')


if __name__ == '__main__':
    main()
