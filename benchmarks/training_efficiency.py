"""Which training recipe learns fastest per CPU-second on DIVal's ellipses.

Every variant trains a learned CT network on DIVal's ellipses
(`odl_genprior.problems.ellipse_ct.DivalEllipses`, 128x128, 30 angles) with
the package's own recipe (`odl_genprior.models.unrolled.train_unrolled`: MSE,
Adam, a cosine schedule that ends at the variant's budget) for **the same CPU
budget**: ``--budget`` seconds (default 1200, 20 minutes) of a step as fast
as it runs on 2 quiet threads. Each variant's steps are its budget divided
by its own step time, measured side by side by ``time`` (alternating
rounds, medians; compile time is charged to the budget). So the runs may
train on a loaded machine, on 1 thread, across sessions: the budget is in
quiet CPU-seconds, not in the wall time of the loaded run. Choice is made on
validation only: the mean PSNR on DIVal's first ``--n-val`` validation
pairs (fixed images), every ``--val-every`` steps; the test pairs are left
for the final table of docs/benchmarks.md.

Variants (FBP start as DIVal's ``init_fbp``, batch 4, lr 1e-3, the fixed
first 4,000 training pairs, bfloat16 autocast with channels_last, unless
named):

* ``lpd-f32``: learned primal-dual as shipped (float32);
* ``lpd-bf16``: the same in bfloat16;
* ``lpd-c4``, ``lpd-c8``: C4 / C8-equivariant primal blocks;
* ``lfb-c4``: learned forward-backward with C4 blocks (the shipped best);
  ``lfb-c4-12it``: the same with 12 iterations instead of 8;
* ``lpd-lr3e-3``: lr 3e-3 after 150 steps of linear warm-up;
* ``lpd-b8``: batch 8;
* ``lpd-fresh``: the full 32,000-pair training split (cached on disk once;
  the budget sees a pair at most once), against the fixed 4,000;
* ``lpd-compile``: the blocks through ``torch.compile``;
* ``lpd-64to128`` (progressive training): the same blocks first for 40 %
  of the budget on a 64x64 version of the protocol (the 200x200
  simulation; a step costs a quarter), then on 128x128 from those weights;
* ``lpd-lr3e-3-fresh``, ``lfb-c4-lr3e-3-fresh``: the two single changes
  that helped most (lr 3e-3 with warm-up, fresh pairs) together, on
  learned PD and on learned FB with C4 blocks.

A variant whose step is another's (same network, batch, precision and
compilation; the learning rate and the pairs do not change a step) shares
that one's step time: it needs no new ``time`` run.

Run (each command prints a table):

    python benchmarks/training_efficiency.py time    # step times, quiet
    python benchmarks/training_efficiency.py train --threads 1
    python benchmarks/training_efficiency.py keep    # before a session ends
    python benchmarks/training_efficiency.py         # table [+ --figure]

``train`` trains every variant still short of its budget, in run folders
under ``--runs`` (resumable: rerun the same command after an interruption),
and keeps ``config.json``, ``metrics.csv`` and the step times, plus the
checkpoint of an unfinished run, under ``checkpoints/efficiency/`` (a
fresh machine resumes from there). The table reads that folder: it prints
without training.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

KEEP = ROOT / 'checkpoints' / 'efficiency'
TIMES = 'step_times.json'
BASE = {'scheme': 'lpd', 'start': 'fbp'}
DIVAL = {'protocol': 'dival', 'size': 128, 'num_angles': 30,
         'sim_size': 400, 'noise_level': 0.025}
COARSE = {**DIVAL, 'size': 64, 'sim_size': 200}
#: the share of the budget that progressive training spends at 64x64
COARSE_SHARE = 0.4

#: name -> (network config, training options); see the module docstring.
VARIANTS = {
    'lpd-bf16': (BASE, {}),
    'lpd-lr3e-3': (BASE, {'lr': 3e-3, 'warmup': 150}),
    'lfb-c4': ({'scheme': 'lfb', 'group': 'C4', 'start': 'fbp'}, {}),
    'lpd-c4': ({**BASE, 'group': 'C4'}, {}),
    'lpd-b8': (BASE, {'batch_size': 8}),
    'lpd-fresh': (BASE, {'n_train': 32000}),
    'lpd-64to128': (BASE, {'progressive': True}),
    'lpd-f32': (BASE, {'autocast': None}),
    'lpd-c8': ({**BASE, 'group': 'C8'}, {}),
    'lfb-c4-12it': ({'scheme': 'lfb', 'group': 'C4', 'start': 'fbp',
                     'n_iter': 12}, {}),
    'lpd-compile': (BASE, {'compile': True}),
    # the two single changes that helped most, together
    'lpd-lr3e-3-fresh': (BASE, {'lr': 3e-3, 'warmup': 150,
                                'n_train': 32000}),
    'lfb-c4-lr3e-3-fresh': ({'scheme': 'lfb', 'group': 'C4',
                             'start': 'fbp'},
                            {'lr': 3e-3, 'warmup': 150, 'n_train': 32000}),
}
DEFAULTS = {'autocast': 'bfloat16', 'batch_size': 4, 'lr': 1e-3,
            'warmup': 0, 'n_train': 4000, 'compile': False,
            'progressive': False}


def options(name):
    return {**DEFAULTS, **VARIANTS[name][1]}


def network_config(name, benchmark=None):
    return {**VARIANTS[name][0], 'benchmark': benchmark or DIVAL}


# --- step times ----------------------------------------------------------------

def _stepper(name, benchmark, batch):
    """One training step of variant ``name`` on ``batch`` (a closure)."""
    import torch
    from odl_genprior.problems.protocol import make_protocol
    from odl_genprior.models.unrolled import build_unrolled, training_layout

    opt = options(name)
    bench = make_protocol(benchmark)
    torch.manual_seed(0)
    net = training_layout(build_unrolled(network_config(name, benchmark),
                                         bench.operator), opt['compile'])
    net._A.matrix()  # what 'auto' batching uses from the first steps on
    adam = torch.optim.Adam(net.parameters(), opt['lr'])
    y, x = batch

    def step():
        adam.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16,
                            enabled=opt['autocast'] is not None):
            out = net(y)
        torch.mean((out - x) ** 2).backward()
        adam.step()
    return step


def _signature(name, benchmark):
    """What fixes a variant's step time (variants that share it share one
    timing: their budgets are then the same number of steps)."""
    opt = options(name)
    return json.dumps([network_config(name, benchmark), opt['batch_size'],
                       opt['autocast'], opt['compile']], sort_keys=True)


def measure_times(names, rounds, threads):
    """Median step seconds of each variant (and of its 64x64 phase),
    alternating rounds over the distinct steps; the first call of each
    (compilation) reported apart."""
    import torch
    from odl_genprior.problems.protocol import make_protocol

    torch.set_num_threads(threads)
    pairs, steppers, first, of = {}, {}, {}, {}
    for name in names:
        grids = [('', DIVAL)] + ([('@64', COARSE)]
                                 if options(name)['progressive'] else [])
        for tag, bench in grids:
            sig = of[name + tag] = _signature(name, bench)
            if sig in steppers:
                continue
            b = options(name)['batch_size']
            if (tag, b) not in pairs:
                pairs[tag, b] = make_protocol(bench).pairs(b, 'validation')
            run = _stepper(name, bench, pairs[tag, b])
            t0 = time.perf_counter()
            run()  # warm-up (and compilation)
            first[sig] = time.perf_counter() - t0
            steppers[sig] = run
    times = {sig: [] for sig in steppers}
    for _ in range(rounds):
        for sig, run in steppers.items():
            t0 = time.perf_counter()
            run()
            times[sig].append(time.perf_counter() - t0)
    return {k: {'step': float(np.median(times[sig])), 'first': first[sig]}
            for k, sig in of.items()}


# --- budgets -------------------------------------------------------------------

def budget_steps(name, times, budget):
    """``[(benchmark, steps, seconds per step), ...]`` of the variant's
    phases: its budget in quiet seconds over its step time."""
    t = times[name]
    spend = budget  # compilation is paid from the budget
    if options(name)['compile']:
        spend -= max(0.0, t['first'] - t['step'])
    if options(name)['progressive']:
        coarse = times[name + '@64']['step']
        return [(COARSE, int(COARSE_SHARE * spend / coarse), coarse),
                (DIVAL, int((1 - COARSE_SHARE) * spend / t['step']),
                 t['step'])]
    return [(DIVAL, int(spend / t['step']), t['step'])]


# --- training ------------------------------------------------------------------

def _restore(run, kept):
    """A fresh machine: the kept files of an unfinished run go back."""
    if kept.is_dir() and not (run / 'config.json').exists():
        run.mkdir(parents=True, exist_ok=True)
        for f in kept.iterdir():
            shutil.copy2(f, run / f.name)


def _keep(run, kept, finished):
    """config.json and metrics.csv (and, unfinished, the checkpoint)."""
    kept.mkdir(parents=True, exist_ok=True)
    files = ['config.json', 'metrics.csv'] + ([] if finished
                                              else ['checkpoint.pt'])
    for f in files:
        if (run / f).exists():
            shutil.copyfile(run / f, kept / f)  # the umask's mode
    if finished and (kept / 'checkpoint.pt').exists():
        (kept / 'checkpoint.pt').unlink()


def keep_all(runs):
    """Keep every run under ``runs`` (unfinished ones with their
    checkpoint) in checkpoints/efficiency: what a session commits."""
    for run in sorted(Path(runs).glob('*/config.json')):
        cfg = json.loads(run.read_text())
        finished = cfg.get('steps_done', 0) >= cfg.get('steps', 1)
        _keep(run.parent, KEEP / run.parent.name, finished)
        print(f'kept {run.parent.name}: step {cfg.get("steps_done", 0)} of '
              f'{cfg.get("steps")}')


def train_variant(name, times, budget, runs, n_val, val_every, progress):
    from odl_genprior.models.unrolled import train_unrolled

    opt = options(name)
    phases = budget_steps(name, times, budget)
    init = None
    for k, (bench, steps, _) in enumerate(phases):
        folder = name + ('@64' if bench is COARSE else '')
        run, kept = Path(runs) / folder, KEEP / folder
        _restore(run, kept)
        if steps < 1:
            raise SystemExit(f'{name}: no step fits in {budget} s')
        # the checkpoint is kept at every validation point
        train_unrolled(
            network_config(name, bench), run, n_train=opt['n_train'],
            n_val=n_val, steps=steps, batch_size=opt['batch_size'],
            lr=opt['lr'], warmup=min(opt['warmup'], steps - 1), seed=0,
            progress=progress, checkpoint_every=val_every, log_every=50,
            init=init, init_resize=init is not None,
            autocast=opt['autocast'], compile=opt['compile'],
            command=['benchmarks/training_efficiency.py', 'train',
                     '--budget', str(budget), '--variants', name])
        _keep(run, kept, finished=True)
        init = str(run)


# --- the table and the figure ----------------------------------------------------

def curve(name, times, budget):
    """``(quiet seconds, samples, val PSNR)`` points of a variant, from the
    kept metrics (the coarse phase first)."""
    from odl_genprior.training import read_metrics

    points, t0, n0 = [], 0.0, 0
    for bench, steps, sec in budget_steps(name, times, budget):
        folder = KEEP / (name + ('@64' if bench is COARSE else ''))
        if not (folder / 'metrics.csv').exists():
            break
        batch = options(name)['batch_size']
        rows = [r for r in read_metrics(folder) if 'val_psnr' in r]
        points += [(t0 + r['step'] * sec, n0 + r['step'] * batch,
                    r['val_psnr'], bench is COARSE) for r in rows]
        t0, n0 = t0 + steps * sec, n0 + steps * batch
    return points


def report(names, budget, figure=None):
    times = _read_times()
    rows, curves = [], {}
    ref = times.get('lpd-f32', {}).get('step')
    for name in names:
        if name not in times:
            rows.append((name, '-', '-', '-', '-', 'no step time'))
            continue
        phases = budget_steps(name, times, budget)
        steps = sum(s for _, s, _ in phases)
        samples = sum(s for _, s, _ in phases) * options(name)['batch_size']
        pts = curve(name, times, budget)
        curves[name] = pts
        fine = [p for p in pts if not p[3]]
        done = bool(fine) and fine[-1][1] >= samples - 1e-9
        psnr = (f'{fine[-1][2]:.2f}' + ('' if done else
                f' (at {fine[-1][0] / 60:.0f} min)')) if fine else '-'
        rows.append((name, f'{times[name]["step"]:.3f}',
                     f'{times[name]["step"] / ref:.2f}' if ref else '-',
                     steps, samples, psnr))
    print(f'validation PSNR (dB) after {budget / 60:.0f} quiet CPU-minutes '
          '(2 threads) of training, DIVal ellipses 128x128')
    table(rows, ('variant', 'step s', 'step / lpd-f32', 'steps', 'samples',
                 'val PSNR'))
    if figure:
        _figure(curves, budget, figure)
    return rows


def _figure(curves, budget, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    # more variants than the default cycle has colours: tab20, and dashes
    # past ten, so that no two curves look alike
    colours = plt.get_cmap('tab20').colors
    for i, (name, pts) in enumerate(curves.items()):
        pts = [p for p in pts if not p[3]]
        if not pts:
            continue
        t, n, psnr, _ = map(np.array, zip(*pts))
        style = dict(color=colours[(2 * i) % 20 + (i // 10) % 2],
                     ls='-' if i < 10 else '--', marker='.')
        axes[0].plot(t / 60, psnr, label=name, **style)
        axes[1].plot(n, psnr, **style)
    axes[0].set_xlabel('quiet CPU-minutes (2 threads)')
    axes[1].set_xlabel('training samples seen')
    axes[0].set_ylabel('validation PSNR (dB)')
    axes[0].axvline(budget / 60, color='gray', lw=0.5)
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Training efficiency on DIVal's ellipses (128x128, "
                 '30 angles)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f'figure: {path}')


def _read_times():
    path = KEEP / TIMES
    if not path.exists():
        raise SystemExit(f'no step times in {path}: run '
                         '`python benchmarks/training_efficiency.py time` '
                         'first (on a quiet machine)')
    return shared_times(json.loads(path.read_text())['times'])


def shared_times(times):
    """``times`` with an entry for every variant whose step is a timed
    variant's (`_signature`): the same step, so the same time."""
    times = dict(times)
    for name in VARIANTS:
        if name in times or options(name)['progressive']:
            continue
        sig = _signature(name, DIVAL)
        for other in list(times):
            if other in VARIANTS and not options(other)['progressive'] and \
                    _signature(other, DIVAL) == sig:
                times[name] = times[other]
                break
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('command', nargs='?', default='table',
                        choices=('time', 'train', 'keep', 'table'))
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=list(VARIANTS), metavar='NAME')
    parser.add_argument('--budget', type=float, default=1200.0,
                        help='quiet CPU-seconds per variant (default 1200)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of `train` (default 1); `time` '
                             'always uses 2')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--runs', default='runs/efficiency')
    parser.add_argument('--n-val', type=int, default=50)
    parser.add_argument('--val-every', type=int, default=250)
    parser.add_argument('--figure', default=None)
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)

    if args.command == 'time':
        import torch
        times = measure_times(args.variants, args.rounds, threads=2)
        KEEP.mkdir(parents=True, exist_ok=True)
        old = (json.loads((KEEP / TIMES).read_text())['times']
               if (KEEP / TIMES).exists() else {})
        import platform
        (KEEP / TIMES).write_text(json.dumps({
            'times': {**old, **times}, 'threads': 2, 'rounds': args.rounds,
            'torch': torch.__version__, 'machine': platform.processor()
            or platform.machine()}, indent=2) + '\n')
        rows = [(k, f'{v["step"]:.3f}', f'{v["first"]:.2f}')
                for k, v in times.items()]
        table(rows, ('variant', 'step s (median)', 'first step s'))
        return 0
    if args.command == 'keep':
        keep_all(args.runs)
        return 0
    if args.command == 'train':
        import torch
        torch.set_num_threads(args.threads)
        times = _read_times()
        for name in args.variants:
            print(f'--- {name} ---', flush=True)
            train_variant(name, times, args.budget, args.runs, args.n_val,
                          args.val_every, not args.quiet)
    report(args.variants, args.budget, args.figure)
    return 0


if __name__ == '__main__':
    sys.exit(main())
