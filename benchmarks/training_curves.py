"""Validation PSNR against training steps of unrolled runs, as one figure.

Reads the ``metrics.csv`` of each run folder (or shipped network name) given,
plots validation PSNR against steps, with TV's PSNR on the same validation
images as a line when ``--tv-alpha`` is given (TV is run here), and prints the
curve points as a table. The figure in docs/benchmarks.md came from

    python benchmarks/training_curves.py dival-lpd-128 runs/dival-lpd-128 \
        --tv-alpha 4 --out docs/figures/dival_training.png

"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

from odl_genprior.models.unrolled import (  # noqa: E402
    PRETRAINED_DIR, list_pretrained_unrolled)
from odl_genprior.training import read_metrics, read_run_config  # noqa: E402


def _folder(name):
    if Path(name).is_dir():
        return Path(name)
    if name in list_pretrained_unrolled():
        return PRETRAINED_DIR / name
    raise SystemExit(f'{name}: neither a run folder nor a shipped network '
                     f'({list_pretrained_unrolled()})')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+',
                        help='run folders or shipped network names')
    parser.add_argument('--tv-alpha', type=float, default=None,
                        help='also run TV with this weight on the runs\' '
                             'validation images (their n_val, benchmark)')
    parser.add_argument('--tv-iter', type=int, default=500)
    parser.add_argument('--out', default='training_curves.png')
    args = parser.parse_args(argv)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    rows, tv_line = [], None
    for name in args.runs:
        folder = _folder(name)
        user = read_run_config(folder, 'unrolled', 'train_unrolled')
        points = [(r['step'], r['val_psnr']) for r in read_metrics(folder)
                  if 'val_psnr' in r]
        if not points:
            print(f'{name}: no validation point yet')
            continue
        steps, psnr = np.array(points).T
        cfg = user['unrolled']
        label = (f"{name} ({cfg['scheme']}"
                 f"{', ' + cfg['group'] if cfg.get('group') else ''}"
                 f", start {cfg.get('start', 'zero')})")
        ax.plot(steps, psnr, 'o-', ms=3, label=label)
        rows += [(name, int(s), f'{p:.2f}') for s, p in points]
        if args.tv_alpha is not None and tv_line is None:
            tv_line = _tv_on_validation(user, args.tv_alpha, args.tv_iter)
    if tv_line is not None:
        ax.axhline(tv_line, color='k', ls='--',
                   label=f'TV (alpha {args.tv_alpha:g}), same images')
        rows.append(('TV', '-', f'{tv_line:.2f}'))
    ax.set_xlabel('Adam steps (batch 4)')
    ax.set_ylabel('validation PSNR [dB]')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    table(rows, ('run', 'step', 'val PSNR [dB]'))
    print(f'figure written to {args.out}')


def _tv_on_validation(user, alpha, niter):
    """Mean PSNR of TV on the validation images the run was scored on."""
    from odl_genprior.problems.ellipse_ct import evaluate
    from odl_genprior.problems.protocol import make_protocol
    from odl_genprior.recon import TV

    bench = make_protocol(user['unrolled']['benchmark'])
    n_val = user['options']['n_val']
    if hasattr(bench, 'problems'):
        val = bench.problems(n_val, 'validation')
    else:
        val = [bench.problem(i, 'validation') for i in range(n_val)]
    return evaluate(TV(alpha=alpha, niter=niter), val)['psnr']


if __name__ == '__main__':
    main()
