"""Test PSNR of DIVal-ellipses networks against the CPU-hours that trained them.

For each run folder or shipped network given: its weights (an unfinished
run: the model of its last checkpoint) on DIVal's first ``--n-test`` test
pairs (`odl_genprior.problems.ellipse_ct.DivalEllipses`), and the CPU-hours
behind them from ``config.json`` (each session's wall time times its torch
threads; a run trained before sessions were recorded: its logged wall time
times ``--threads`` of its name, 1 by default; a run started with
``--init`` adds the hours of the run it started from). Each point is added to
``--points`` (a CSV, one row per run and step, kept under ``checkpoints/``
and committed), so the curve grows session by session; the figure draws
every point with DIVal's published figures as marks (learned PD 32.27,
learned GD 30.30, TV 27.96, FBP 24.18 dB; DIVal trained on a GPU, 50
epochs of 32,000 pairs).

    python benchmarks/dival_progress.py dival-lpd-128 dival-lfb-c4-128 \\
        runs/dival-lpd-long --points checkpoints/dival_progress.csv \\
        --out docs/figures/dival_progress.png

Each point also records the training samples behind it (steps x batch x
processes, plus those of the run it started from), and ``--extrapolate RUN``
fits ``PSNR = a + b log10(samples)`` to the points of RUN and of the runs it
started from that lie past ``--fit-from`` samples (default 50,000: the
first, short runs on a fixed 4,000-pair set rose faster than any later
stretch, and a line through them promises too much), and prints where
that line is at DIVal's budget (50 epochs of 32,000 pairs: 1.6 million
samples) and how many samples it needs to reach DIVal's learned PD:

    python benchmarks/dival_progress.py --extrapolate dival-lpd-long2

The test pairs are for this curve and the final table only; every choice of
recipe is made on validation (benchmarks/training_efficiency.py).
"""
import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

#: DIVal's published mean PSNR on its first 100 ellipses test pairs.
DIVAL_MARKS = {'learned PD': 32.27, 'learned GD': 30.30, 'TV': 27.96,
               'FBP': 24.18}
FIELDS = ('run', 'step', 'cpu_hours', 'gpu_hours', 'n_test', 'psnr', 'ssim',
          'samples')
#: DIVal's training of learned PD: 50 epochs of its 32,000 training pairs.
DIVAL_SAMPLES = 50 * 32000


def _folder(name):
    from odl_genprior.models.unrolled import (PRETRAINED_DIR,
                                              list_pretrained_unrolled)
    if Path(name).is_dir():
        return Path(name)
    if name in list_pretrained_unrolled():
        return PRETRAINED_DIR / name
    raise SystemExit(f'{name}: neither a run folder nor a shipped network')


def _init_of(folder, sources):
    """``(folder, step)`` of the run ``folder`` started from (``--init``;
    ``step`` None: its last), or ``(None, None)``. A ``--source`` may name
    the step the export was taken at: ``FROM=FOLDER@STEP``."""
    cfg = json.loads((folder / 'config.json').read_text())
    init = (cfg.get('user', {}).get('options') or {}).get('init')
    if not init:
        return None, None
    where, _, step = sources.get(init['from'], init['from']).partition('@')
    return _folder(where), (int(step) if step else None)


def samples(folder, step=None, sources=None):
    """Training samples behind a run at ``step`` (default: its last):
    steps x batch x processes, plus the samples behind the run it started
    from (at that run's last step)."""
    sources = sources or {}
    cfg = json.loads((folder / 'config.json').read_text())
    if step is None:
        step = cfg.get('steps_done') or cfg['epochs'] * cfg['steps_per_epoch']
    own = int(step) * cfg['batch_size'] * cfg.get('world_size', 1)
    init, at = _init_of(folder, sources)
    return own + (samples(init, at, sources) if init else 0)


def lineage(name, sources=None):
    """The names of ``name``'s run and of the runs it started from."""
    sources = sources or {}
    folder, names = _folder(name), []
    while folder is not None:
        names.append(folder.name)
        folder = _init_of(folder, sources)[0]
    return names


def extrapolate(points, names, fit_from=0):
    """Fit ``psnr = a + b log10(samples)`` to the points of ``names`` past
    ``fit_from`` samples;
    ``(a, b, n_points, psnr at DIVAL_SAMPLES, samples for DIVal's learned
    PD)``."""
    pts = [(float(p['samples']), float(p['psnr'])) for p in points
           if p['run'] in names and float(p.get('samples') or 0) > max(
               fit_from, 0)]
    if len(pts) < 2:
        raise SystemExit(f'--extrapolate: {len(pts)} point(s) with samples '
                         f'for {names}; need 2')
    n, v = np.array(pts).T
    b, a = np.polyfit(np.log10(n), v, 1)
    at_dival = a + b * np.log10(DIVAL_SAMPLES)
    # past 1e12 samples (or a flat or falling line) it is never reached
    exponent = (DIVAL_MARKS['learned PD'] - a) / b if b > 0 else np.inf
    needed = 10 ** exponent if exponent < 12 else np.inf
    return a, b, len(pts), at_dival, needed


def hours(folder, threads=None, sources=None):
    """``(cpu_hours, gpu_hours)`` of a run.

    CPU sessions: wall time x torch threads (runs from before sessions were
    recorded: the logged wall time x ``threads`` of their name, 1 by
    default); GPU sessions: wall time. Plus the hours of the run it started
    from (``--init``; ``sources`` maps a recorded ``from`` that is not a
    folder here, e.g. the device machine's copy, to the folder it was
    exported from), so a continued network counts all the training behind
    it."""
    from odl_genprior.training import read_metrics

    threads, sources = threads or {}, sources or {}
    cfg = json.loads((folder / 'config.json').read_text())
    sessions = cfg.get('sessions') or []
    cpu = gpu = 0.0
    if sessions and all('wall_seconds' in s for s in sessions):
        for s in sessions:
            if str(s.get('device', 'cpu')).startswith('cuda'):
                gpu += s['wall_seconds'] / 3600
            else:
                cpu += s['wall_seconds'] * s['threads'] / 3600
    else:
        rows = read_metrics(folder)
        cpu = ((rows[-1]['time'] if rows else 0.0)
               * int(threads.get(folder.name, 1)) / 3600)
    init = _init_of(folder, sources)[0]
    if init is not None:
        c, g = hours(init, threads, sources)
        cpu, gpu = cpu + c, gpu + g
    return cpu, gpu


def network(folder):
    """The run's network with its latest weights, and the step they are at."""
    from odl_genprior.models.unrolled import build_unrolled, load_unrolled
    from odl_genprior.training import read_run_config

    ckpt = folder / 'checkpoint.pt'
    weights = folder / 'weights.pt'
    cfg = json.loads((folder / 'config.json').read_text())
    if weights.exists() and (not ckpt.exists() or weights.stat().st_mtime
                             >= ckpt.stat().st_mtime):
        step = cfg.get('steps_done') or cfg['epochs'] * cfg['steps_per_epoch']
        return load_unrolled(folder), step
    import torch
    user = read_run_config(folder, 'unrolled', 'train_unrolled')
    net = build_unrolled(user['unrolled'])
    state = torch.load(ckpt, weights_only=True, map_location='cpu')
    net.load_state_dict(state['models']['model'])
    return net.eval(), state['step']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='*', help='run folders or shipped names')
    parser.add_argument('--n-test', type=int, default=100)
    parser.add_argument('--points', default='checkpoints/dival_progress.csv')
    parser.add_argument('--threads', nargs='*', default=[], metavar='NAME=N',
                        help='torch threads of runs without session records')
    parser.add_argument('--source', nargs='*', default=[],
                        metavar='FROM=FOLDER[@STEP]',
                        help='where an --init source recorded as FROM is '
                             'kept here (and the step it was exported at, '
                             'for the samples)')
    parser.add_argument('--out', default=None, help='figure file (.png)')
    parser.add_argument('--extrapolate', default=None, metavar='RUN',
                        help='fit PSNR against log samples over RUN and the '
                             'runs it started from, and extrapolate')
    parser.add_argument('--fit-from', type=float, default=50000,
                        help='fit only points past this many samples '
                             '(default 50,000)')
    args = parser.parse_args(argv)

    from odl_genprior.problems.ellipse_ct import evaluate
    from odl_genprior.problems.protocol import make_protocol
    from odl_genprior.recon.learned import LearnedReconstructor
    from odl_genprior.models.unrolled import _display_name, protocol_of

    threads = dict(t.split('=') for t in args.threads)
    sources = dict(t.split('=', 1) for t in args.source)
    points_path = Path(args.points)
    points = []
    if points_path.exists():
        with open(points_path, newline='') as f:
            points = list(csv.DictReader(f))
    tests = {}  # the test pairs of each benchmark, made once
    for name in args.runs:
        folder = _folder(name)
        net, step = network(folder)
        if protocol_of(net.config) != 'dival':
            raise SystemExit(f'{name} was not trained on DIVal\'s ellipses')
        key = json.dumps(net.config['benchmark'], sort_keys=True)
        if key not in tests:
            tests[key] = make_protocol(net.config['benchmark']).problems(
                args.n_test, 'test')
        cpu, gpu = hours(folder, threads, sources)
        r = evaluate(LearnedReconstructor(net, name=_display_name(
            net.config)), tests[key])
        label = folder.name
        points = [p for p in points if not (p['run'] == label and int(
            p['step']) == step and int(p['n_test']) == args.n_test)]
        points.append({'run': label, 'step': step,
                       'cpu_hours': f'{cpu:.3f}', 'gpu_hours': f'{gpu:.3f}',
                       'n_test': args.n_test,
                       'psnr': f'{r["psnr"]:.3f}', 'ssim': f'{r["ssim"]:.4f}',
                       'samples': samples(folder, step, sources)})
    for p in points:  # points from before samples were recorded
        if not p.get('samples'):
            p['samples'] = samples(_kept(p['run']), int(p['step']), sources)
    if args.runs or any(p.get('samples') for p in points):
        points_path.parent.mkdir(parents=True, exist_ok=True)
        with open(points_path, 'w', newline='') as f:
            w = csv.DictWriter(f, FIELDS, restval='0.000')
            w.writeheader()
            w.writerows(points)
    print(f"DIVal ellipses, test PSNR against training CPU-hours "
          f"({points_path})")
    table([(p['run'], p['step'], p['cpu_hours'], p.get('gpu_hours') or
            '0.000', p['n_test'], p['psnr'], p['ssim'], p['samples'])
           for p in points], FIELDS)
    fit = None
    if args.extrapolate:
        names = lineage(args.extrapolate, sources)
        fit = extrapolate(points, names, args.fit_from)
        a, b, n, at_dival, needed = fit
        print(f'\n{" <- ".join(names)}: PSNR = {a:.2f} + {b:.2f} log10('
              f'samples) over the {n} points past {args.fit_from:,.0f} '
              f'samples; at DIVal\'s {DIVAL_SAMPLES:,} '
              f'samples: {at_dival:.2f} dB; DIVal\'s learned PD '
              f'({DIVAL_MARKS["learned PD"]}) at {needed:,.0f} samples')
    if args.out and points:
        _figure(points, args.out, fit)
    return points


def _kept(name):
    """The folder of a recorded run: as named, under checkpoints/ or
    runs/, or shipped."""
    for where in ('', 'checkpoints', 'runs'):
        if (Path(where) / name / 'config.json').exists():
            return Path(where) / name
    return _folder(name)


def _figure(points, path, fit=None):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    _by_samples(bx, points, fit)
    for run in dict.fromkeys(p['run'] for p in points):
        pts = sorted((float(p['cpu_hours']), float(p['psnr']))
                     for p in points if p['run'] == run)
        h, v = np.array(pts).T
        gpu = max(float(p.get('gpu_hours') or 0) for p in points
                  if p['run'] == run)
        ax.plot(h, v, 'o-', label=run + (f' (+{gpu * 60:.1f} H200-minutes)'
                                         if gpu else ''))
    for label, value in DIVAL_MARKS.items():
        ax.axhline(value, ls='--', lw=0.8, color='gray')
        ax.text(ax.get_xlim()[1], value, f' DIVal {label} {value}',
                va='center', fontsize=7, color='gray')
    ax.set_xlabel('training CPU-hours (wall time x torch threads)')
    ax.set_ylabel('mean test PSNR (dB), first 100 pairs')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f'figure: {path}')


def _by_samples(ax, points, fit):
    """Test PSNR against training samples (log), with the fitted line."""
    for run in dict.fromkeys(p['run'] for p in points):
        pts = sorted((float(p['samples']), float(p['psnr']))
                     for p in points if p['run'] == run)
        n, v = np.array(pts).T
        ax.plot(n, v, 'o-', label=run)
    ax.set_xscale('log')
    if fit is not None:
        a, b, _, _, needed = fit
        n = np.geomspace(1e4, max(DIVAL_SAMPLES, min(needed, 1e8)), 50)
        ax.plot(n, a + b * np.log10(n), 'k:', lw=1,
                label=f'fit: {a:.1f} + {b:.2f} log10(samples)')
    ax.axvline(DIVAL_SAMPLES, ls='--', lw=0.8, color='gray')
    ax.axhline(DIVAL_MARKS['learned PD'], ls='--', lw=0.8, color='gray')
    ax.text(DIVAL_SAMPLES, 0.5, 'DIVal: 1.6 M samples ', fontsize=7,
            color='gray', rotation=90, ha='right', va='center',
            transform=ax.get_xaxis_transform())
    ax.set_xlabel('training samples (steps x batch)')
    ax.set_ylabel('mean test PSNR (dB), first 100 pairs')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')


if __name__ == '__main__':
    main()
