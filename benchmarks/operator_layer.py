"""OperatorLayer (batching='auto') against odl.contrib.torch.OperatorModule.

Forward + backward of a 30-angle parallel-beam ray transform (ASTRA, CPU) on
a batch of 16 images at 64x64 and 128x128, the two layers alternating, the
median of ``--rounds`` rounds. The matrix of each transform is assembled
(or read from the disk cache) before timing; its assembly time is printed.
The last line is ``ratio: X`` = OperatorLayer / OperatorModule at 128x128.

Run: ``python benchmarks/operator_layer.py [--rounds 7] [--threads 2]``
"""
import argparse
import os
import sys
import time

import torch
from odl.contrib.torch import OperatorModule

sys.path.insert(0, os.path.dirname(__file__))
from _common import alternate, table  # noqa: E402

from odl_genprior import OperatorLayer, problems  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, ratio = [], None
    for size in (64, 128):
        A = problems.ray_transform(problems.image_space(size, impl='pytorch'),
                                   num_angles=30)
        ours, theirs = OperatorLayer(A), OperatorModule(A)
        t = time.perf_counter()
        ours.matrix()  # what 'auto' switches to once it pays
        assembly = time.perf_counter() - t
        xb = torch.rand(args.batch, size, size)

        def step(layer, x0):
            def run():
                x = x0.clone().requires_grad_(True)
                layer(x).sum().backward()
            return run

        med = alternate([('ours', step(ours, xb)),
                         ('theirs', step(theirs, xb[:, None]))], args.rounds)
        r = med['ours'] / med['theirs']
        rows.append((f'{size}x{size}', ours.batching,
                     f'{med["ours"] * 1e3:.1f}', f'{med["theirs"] * 1e3:.1f}',
                     f'{r:.3f}', f'{assembly:.1f}'))
        ratio = r
    print(f'ray transform, 30 angles, batch {args.batch}, forward + backward '
          f'(torch threads: {torch.get_num_threads()})')
    table(rows, ('size', 'mode', 'OperatorLayer ms', 'OperatorModule ms',
                 'ratio', 'matrix s'))
    print(f'ratio: {ratio:.3f}')


if __name__ == '__main__':
    main()
