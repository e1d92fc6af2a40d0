"""HTC2022 limited-angle protocol: MCC per level for FBP, TV and learned nets.

Every teaching phantom (``ta``, ``tb``, ``tc``, ``td``, ``solid_disc``) is cut
at the challenge's seven levels (90 ... 30 degrees) from the start angles of
`odl_genprior.problems.htc2022_protocol.start_angles` (seed 2022: 88.5,
253.5 and 269.5 degrees), reconstructed on a 128x128 grid (1-degree steps,
detector pixels merged by 4), segmented and scored by the Matthews
correlation coefficient against the organisers' 512x512 segmentation. The
table gives the mean MCC per level over the 15 problems of the level, and
the challenge's score (the sum over levels).

* FBP: Hann filter, frequency scaling 0.8; Otsu's threshold.
* TV: ``||Ax - y||^2 + alpha TV(x)``, ``x >= 0``, ``--tv-iter`` PDHG steps;
  Otsu's threshold; ``alpha`` tuned on simulated data (``--tune-tv``: mean
  MCC on simulated phantoms of `htc2022_protocol.simulated_problem` at 90,
  60 and 30 degrees; never on the teaching phantoms).
* Learned: every network shipped in ``odl_genprior/models/pretrained`` (``htc-*``)
  (and ``--model RUN`` folders), `odl_genprior.recon.limited_angle.
  LimitedAngleCT`; threshold 1/2.

Data: ``--data DIR`` or ``$ODL_GENPRIOR_HTC2022`` (default
``../shared/data/htc2022`` beside the repository). The table in
docs/htc2022.md came from ``python benchmarks/htc2022.py --plot
docs/figures/htc2022/levels.png``.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np

from odl_genprior.problems import htc2022
from odl_genprior.problems import htc2022_protocol as protocol
from odl_genprior.recon.limited_angle import LimitedAngleCT, htc2022_baselines
from odl_genprior.models.limited_angle import list_pretrained_limited_angle

DEFAULT_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'


def _methods(args):
    methods = [] if args.no_baselines else list(
        htc2022_baselines(args.tv_alpha, args.tv_iter).values())
    names = list_pretrained_limited_angle() if args.models is None \
        else args.models
    methods += [LimitedAngleCT(name) for name in names]
    return methods


def _segmentation_threshold(method):
    return getattr(method, 'threshold', None)  # None: Otsu's


def tune_tv(args):
    """Mean MCC of TV on simulated problems for each alpha; the best."""
    problems = [protocol.simulated_problem(level, seed=100 + i,
                                           size=args.size)
                for level in (90, 60, 30) for i in range(args.n_tune)]
    rows = []
    for alpha in args.tv_alphas:
        method = htc2022_baselines(alpha, args.tv_iter)['tv']
        scores = [htc2022.score(method(p, progress=False),
                                p.info['reference_segmentation'])
                  for p in problems]
        rows.append((alpha, float(np.mean(scores))))
        print(f'TV alpha {alpha:g}: mean MCC {rows[-1][1]:.3f} on '
              f'{len(problems)} simulated problems', flush=True)
    best = max(rows, key=lambda r: r[1])[0]
    print(f'best alpha: {best:g}')
    return best


def run(args):
    methods = _methods(args)
    starts = protocol.start_angles(args.starts)
    print(f'start angles (seed {protocol.START_SEED}): {starts}', flush=True)
    scores = {m.name: {} for m in methods}
    seconds = {m.name: [] for m in methods}
    images = {}
    for level in args.levels:
        for name, start, p in protocol.level_problems(
                level, args.data, starts, args.phantoms, size=args.size):
            truth = p.info['reference_segmentation']
            for m in methods:
                t0 = time.time()
                x = m(p, progress=False).asarray()
                seconds[m.name].append(time.time() - t0)
                s = htc2022.score(x, truth, _segmentation_threshold(m))
                scores[m.name].setdefault(level, []).append(s)
                if start == starts[0]:
                    images[name, level, m.name] = x
            if not args.quiet:
                print(f'{level:3d} deg {name:>10} from {start:5.1f}: '
                      + ', '.join(f'{m.name} {scores[m.name][level][-1]:.3f}'
                                  for m in methods), flush=True)
    _print_table(args, methods, scores, seconds)
    if args.plot:
        _plot(args, methods, images)
    return scores


def _print_table(args, methods, scores, seconds):
    n = len(args.phantoms) * args.starts
    print(f'\nHTC2022 teaching data, mean MCC over {n} problems per level '
          f'({len(args.phantoms)} phantoms x {args.starts} start angles), '
          f'{args.size}x{args.size} grid, TV alpha {args.tv_alpha:g} x '
          f'{args.tv_iter} iterations')
    names = [m.name for m in methods]
    print('| level (deg) | ' + ' | '.join(names) + ' |')
    print('|---' * (len(names) + 1) + '|')
    for level in args.levels:
        cells = [f'{np.mean(scores[k][level]):.3f}' for k in names]
        best = max(range(len(names)),
                   key=lambda i: np.mean(scores[names[i]][level]))
        cells[best] = f'**{cells[best]}**'
        print(f'| {level} | ' + ' | '.join(cells) + ' |')
    print('| score (sum) | ' + ' | '.join(
        f'{protocol.challenge_score(scores[k]):.2f}' for k in names) + ' |')
    print('| s / image | ' + ' | '.join(
        f'{np.mean(seconds[k]):.2f}' for k in names) + ' |')
    print('| min MCC | ' + ' | '.join(
        f'{min(min(v) for v in scores[k].values()):.3f}' for k in names)
        + ' |')


def _plot(args, methods, images):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    name = args.plot_phantom
    _, truth = htc2022.load_reference(name, args.data)
    rows = len(methods)
    fig, axes = plt.subplots(rows, len(args.levels) + 1,
                             figsize=(1.6 * (len(args.levels) + 1),
                                      1.7 * rows))
    axes = np.atleast_2d(axes)
    for i, m in enumerate(methods):
        # Arrays are indexed (x, y): shown with x to the right.
        axes[i, 0].imshow(truth.T, cmap='gray', origin='lower')
        axes[i, 0].set_title('reference', fontsize=7)
        axes[i, 0].set_ylabel(m.name, fontsize=7)
        for j, level in enumerate(args.levels, start=1):
            x = images[name, level, m.name]
            seg = htc2022.segment(htc2022.resample(x, truth.shape),
                                  _segmentation_threshold(m))
            axes[i, j].imshow(seg.T, cmap='gray', origin='lower')
            axes[i, j].set_title(f'{level} deg: {htc2022.mcc(seg, truth):.2f}',
                                 fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f'{name}, start {protocol.start_angles(args.starts)[0]:g} '
                 'deg: segmentations and MCC', fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f'saved {args.plot}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.environ.get(htc2022.HTC2022_ENV)
                        or str(DEFAULT_DATA))
    parser.add_argument('--levels', nargs='+', type=int,
                        default=list(protocol.LEVELS))
    parser.add_argument('--phantoms', nargs='+',
                        default=list(htc2022.PHANTOMS))
    parser.add_argument('--starts', type=int, default=3,
                        help='start angles per level (seeded)')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--tv-alpha', type=float, default=protocol.TV_ALPHA)
    parser.add_argument('--tv-iter', type=int, default=200)
    parser.add_argument('--models', nargs='*', default=None,
                        help='learned run folders or shipped names '
                             '(default: every shipped one)')
    parser.add_argument('--no-baselines', action='store_true',
                        help='learned methods only (no FBP, no TV)')
    parser.add_argument('--tune-tv', action='store_true',
                        help='choose TV alpha on simulated data and exit')
    parser.add_argument('--tv-alphas', nargs='+', type=float,
                        default=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    parser.add_argument('--n-tune', type=int, default=4,
                        help='simulated problems per level for --tune-tv')
    parser.add_argument('--plot', metavar='PNG', default=None)
    parser.add_argument('--plot-phantom', default='tb')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    if args.tune_tv:
        return tune_tv(args)
    return run(args)


if __name__ == '__main__':
    main()
