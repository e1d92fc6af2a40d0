"""ODL 1.0 on pytorch spaces against NumPy spaces, with and without the fix.

TV-PDHG (the demo's solver: 128x128 random-ellipse CT, 30 angles, astra_cpu)
and ``odl.Gradient`` on 128x128, per iteration / per call, on:
NumPy spaces; pytorch spaces with odl_genprior's compatibility fix; pytorch
spaces with ODL 1.0 as shipped (fix reverted for that column only).
Variants alternate; medians are reported. Goal: pytorch/NumPy <= 1.15.

Run: ``python benchmarks/odl_pytorch_speed.py [--iters 50] [--rounds 5]``
"""
import argparse
import os
import statistics
import sys
import time

import odl

sys.path.insert(0, os.path.dirname(__file__))
from _common import alternate, table  # noqa: E402

from odl_genprior import problems  # noqa: E402
from odl_genprior._compat import odl_fixes as _odl_compat
from odl_genprior.recon import TV  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--iters', type=int, default=50)
    ap.add_argument('--rounds', type=int, default=5)
    args = ap.parse_args()
    n = args.iters

    setups = {}
    for impl in ('numpy', 'pytorch'):
        p = problems.ct(size=128, num_angles=30, seed=0, impl=impl)
        grad = odl.Gradient(p.space)
        setups[impl] = (p, grad, p.space.one())
    stamps = []
    # Time the iterations themselves: the callback stamps each one.
    tv = TV(alpha=1e-3, niter=n,
            callback=lambda x: stamps.append(time.perf_counter()))

    def run_tv(impl, fixed):
        def run():
            if not fixed:
                _odl_compat.revert()
            try:
                stamps.clear()
                tv.reconstruct(setups[impl][0], progress=False)
                run.per_iteration.append((stamps[-1] - stamps[0]) / (n - 1))
            finally:
                if not fixed:
                    _odl_compat.apply()
        run.per_iteration = []
        return run

    def run_grad(impl, fixed, calls=20):
        def run():
            if not fixed:
                _odl_compat.revert()
            try:
                _, grad, x = setups[impl]
                for _ in range(calls):
                    grad(x)
            finally:
                if not fixed:
                    _odl_compat.apply()
        return run

    if not _odl_compat.is_applied():
        print(f'note: the fix is not active for ODL {odl.__version__}; the '
              'two pytorch columns measure the same code')
    tvs = {'numpy': run_tv('numpy', True), 'pytorch': run_tv('pytorch', True),
           'pytorch raw': run_tv('pytorch', False)}
    variants = [('tv numpy', tvs['numpy']),
                ('tv pytorch', tvs['pytorch']),
                ('tv pytorch raw', tvs['pytorch raw']),
                ('grad numpy', run_grad('numpy', True)),
                ('grad pytorch', run_grad('pytorch', True)),
                ('grad pytorch raw', run_grad('pytorch', False, calls=3))]
    for _, fn in variants:  # warm up
        fn()
    for run in tvs.values():
        run.per_iteration.clear()
    med = alternate(variants, args.rounds)
    per_it = {k: statistics.median(run.per_iteration) * 1e3
              for k, run in tvs.items()}
    per_call = {'numpy': med['grad numpy'] / 20 * 1e3,
                'pytorch': med['grad pytorch'] / 20 * 1e3,
                'pytorch raw': med['grad pytorch raw'] / 3 * 1e3}
    print(f'ODL {odl.__version__}; 128x128, 30 angles, astra_cpu; median of '
          f'{args.rounds} alternating rounds')
    table([('TV-PDHG ms/iteration', *(f'{per_it[k]:.2f}' for k in per_it),
            f'{per_it["pytorch"] / per_it["numpy"]:.3f}',
            f'{per_it["pytorch raw"] / per_it["numpy"]:.2f}'),
           ('odl.Gradient ms/call', *(f'{per_call[k]:.3f}' for k in per_call),
            f'{per_call["pytorch"] / per_call["numpy"]:.3f}',
            f'{per_call["pytorch raw"] / per_call["numpy"]:.1f}')],
          ('', 'numpy', 'pytorch+fix', 'pytorch as shipped',
           'ratio fix/numpy', 'ratio shipped/numpy'))
    print(f'ratio: {per_it["pytorch"] / per_it["numpy"]:.3f}')


if __name__ == '__main__':
    main()
