"""One Adam step of the unrolled networks on DIVal's 128x128 problem.

For learned PD, learned FB and learned FB with C4 blocks, batch 8: (a) the
step as shipped (the ray transform through `OperatorLayer`, 'auto' batching:
the exact sparse matrix), (b) the floor: the same step with every operator
call replaced by a free map of the same shapes (a slice and a zero pad), so
only the learned blocks cost. Alternating, medians. The last line is
``ratio: X`` = (a) / (b) for learned PD.

Beside them, what makes a CPU step cheaper, each against (a): (c) the step
under ``torch.autocast(bfloat16)`` (``train(autocast='bfloat16')``,
``--autocast bfloat16``: convolutions in bfloat16, the operator and the
weights in float32), (d) ``channels_last`` memory format for the
network (its convolutions then run on NHWC batches), (e) both.

Run: ``python benchmarks/train_step.py [--rounds 5] [--threads 2]``
"""
import argparse
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import alternate, table  # noqa: E402

from odl_genprior.problems.ellipse_ct import DivalEllipses  # noqa: E402
from odl_genprior.models.unrolled import build_unrolled  # noqa: E402


def free_maps(net):
    """A copy of ``net`` whose A and A^T are free maps of the same shapes."""
    n_img = net.image_shape[0] * net.image_shape[1]
    n_dat = net.data_shape[0] * net.data_shape[1]

    def A(self, x):
        flat = x.reshape(x.shape[:-2] + (n_img,))
        return flat[..., :n_dat].reshape(x.shape[:-2] + self.data_shape)

    def At(self, y):
        flat = y.reshape(y.shape[:-2] + (n_dat,))
        pad = torch.nn.functional.pad(flat, (0, n_img - n_dat))
        return pad.reshape(y.shape[:-2] + self.image_shape)

    net.A = types.MethodType(A, net)
    net.At = types.MethodType(At, net)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = DivalEllipses()
    y, x = bench.pairs(args.batch, 'validation')
    rows, ratio = [], None
    for scheme, group in (('lpd', None), ('lfb', None), ('lfb', 'C4')):
        cfg = {'scheme': scheme, 'group': group, 'benchmark': bench.config()}
        torch.manual_seed(0)
        shipped = build_unrolled(cfg, bench.operator)
        shipped._A.matrix()  # what 'auto' switches to after a few steps
        torch.manual_seed(0)
        floor = free_maps(build_unrolled(cfg, bench.operator))

        def step(net, autocast=False):
            opt = torch.optim.Adam(net.parameters(), 1e-4)

            def run():
                opt.zero_grad()
                with torch.autocast('cpu', dtype=torch.bfloat16,
                                    enabled=autocast):
                    out = net(y)
                loss = torch.mean((out - x) ** 2)
                loss.backward()
                opt.step()
            return run

        torch.manual_seed(0)
        last = build_unrolled(cfg, bench.operator).to(
            memory_format=torch.channels_last)
        med = alternate([('a', step(shipped)), ('b', step(floor)),
                         ('c', step(shipped, autocast=True)),
                         ('d', step(last)),
                         ('e', step(last, autocast=True))], args.rounds)
        r = med['a'] / med['b']
        name = scheme.upper() + (f'-{group}' if group else '')
        rows.append((name, f'{med["a"]:.3f}', f'{med["b"]:.3f}', f'{r:.3f}',
                     f'{med["c"] / med["a"]:.3f}',
                     f'{med["d"] / med["a"]:.3f}',
                     f'{med["e"] / med["a"]:.3f}'))
        if scheme == 'lpd':
            ratio = r
    print(f'one Adam step, 128x128, 30 angles, batch {args.batch} (torch '
          f'threads: {torch.get_num_threads()})')
    table(rows, ('network', '(a) shipped s', '(b) floor s', 'a / b',
                 '(c) bf16 / a', '(d) channels_last / a',
                 '(e) both / a'))
    print(f'ratio: {ratio:.3f}')


if __name__ == '__main__':
    main()
