"""Ellipse CT benchmark in the style of DIVal: one table, six methods.

FBP, TV, learned gradient descent, learned primal-dual and learned
forward-backward (ordinary and C4-equivariant blocks) on the fixed test split
of `odl_genprior.problems.ellipse_ct.EllipseCT` (random ellipses, parallel beam,
relative Gaussian noise; every split drawn from its own seeds). PSNR, SSIM
and seconds per reconstruction, next to DIVal's reference PSNR on its own
ellipses data (128x128, 30 angles, 5% noise) as the anchor.

Protocol:

* FBP: Hann filter; the frequency scaling is chosen from a grid by mean
  PSNR on the first ``--n-tune`` validation images.
* TV: ``||Ax - y||^2 + alpha TV(x)``, ``x >= 0``, ``--tv-iter`` PDHG steps;
  ``alpha`` chosen from ``--tv-alphas`` the same way.
* Learned methods: trained with `odl_genprior.models.unrolled.train_unrolled`
  (mean squared error, Adam, cosine schedule, seed ``--seed``) on the first
  ``--n-train`` training pairs, ``--n-val`` validation pairs; each is a run
  folder ``<--runs>/<model>`` that resumes when interrupted, and a finished
  run is not retrained, so the same command prints the table again from the
  cached models (only the baselines and the test evaluation run again).

The image size and geometry default to DIVal's (128x128, 30 angles, 5%
noise); the training budget defaults to the CPU-sized one of
``docs/benchmarks.md`` (400 training pairs, 4 epochs at batch 4 = 400 Adam
steps per model), which on the shared 2-core development machine was run at
64x64 only (128x128 costs ~4x per step). DIVal trained on 32,000 pairs for
many epochs on a GPU; a run of that scale is e.g. ``--n-train 32000
--epochs 20``. The table in docs/benchmarks.md came from

    python benchmarks/ellipse_ct.py --size 64 --angles 30 --n-train 400 \
        --epochs 4 --batch-size 4 --n-test 50 --quiet \
        --json runs/ellipse_ct64.json --runs runs/ellipse_ct64


``--protocol dival`` is DIVal's ellipses data set
(`odl_genprior.problems.ellipse_ct.DivalEllipses`) and trains nothing: FBP and TV
tuned on its validation split, the trained networks shipped with the package
(`odl_genprior.models.unrolled.list_pretrained_unrolled`) on the first
``--n-test`` test images (DIVal reports its figures on the first 100), and
DIVal's published PSNR beside them:

    python benchmarks/ellipse_ct.py --protocol dival

``--symmetrize`` adds, under each learned row, the same network averaged over
the eight symmetries of the parallel-beam ray transform
(`odl_genprior.recon.SymmetryAveraged`; eight times the reconstruction time):

    python benchmarks/ellipse_ct.py --protocol dival --symmetrize

"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

from odl_genprior.problems.ellipse_ct import (  # noqa: E402
    DivalEllipses, EllipseCT, evaluate)
from odl_genprior.recon import FBP, TV, SymmetryAveraged  # noqa: E402
from odl_genprior.models.unrolled import (  # noqa: E402
    PRETRAINED_DIR, list_pretrained_unrolled, pretrained_for, train_unrolled)
from odl_genprior.recon.learned import LearnedReconstructor  # noqa: E402
from odl_genprior.training import read_metrics, read_run_config  # noqa: E402

# (scheme, group, DIVal reference PSNR on its ellipses, 128x128, 30 angles)
MODELS = {'lgd': ('lgd', None, 30.30), 'lpd': ('lpd', None, 32.27),
          'lfb': ('lfb', None, None), 'lfb-c4': ('lfb', 'C4', None)}
NAMES = {'lgd': 'learned GD', 'lpd': 'learned PD',
         'lfb': 'learned FB ordinary', 'lfb-c4': 'learned FB C4'}
DIVAL = {'FBP': 24.18, 'TV': 27.96}
# DIVal's published PSNR of the shipped networks' schemes (None: not in DIVal).
DIVAL_SHIPPED = {'lgd': 30.30, 'lpd': 32.27}


def _tune(make, values, problems):
    """The value of ``values`` whose method has the best mean PSNR."""
    scores = {v: evaluate(make(v), problems)['psnr'] for v in values}
    return max(scores, key=scores.get), scores


def _baselines(args, tune, test):
    """FBP and TV rows, each setting chosen by mean PSNR on ``tune``."""
    fs, fbp_scores = _tune(lambda v: FBP('Hann', v), args.fbp_scalings, tune)
    alpha, tv_scores = _tune(lambda v: TV(alpha=v, niter=args.tv_iter),
                             args.tv_alphas, tune)
    print('FBP frequency scaling on validation: '
          + ', '.join(f'{k:g}: {v:.2f}' for k, v in fbp_scores.items())
          + f' dB -> {fs:g}', flush=True)
    print('TV alpha on validation: '
          + ', '.join(f'{k:g}: {v:.2f}' for k, v in tv_scores.items())
          + f' dB -> {alpha:g}', flush=True)
    return [('FBP', f'Hann, scaling {fs:g}', DIVAL['FBP'],
             evaluate(FBP('Hann', fs), test)),
            ('TV', f'alpha {alpha:g}, {args.tv_iter} it', DIVAL['TV'],
             evaluate(TV(alpha=alpha, niter=args.tv_iter), test))]


def _shipped_row(name):
    """Name, settings, DIVal reference and method of a shipped network."""
    method = LearnedReconstructor.pretrained(name)
    model = method.model
    cfg = model.config
    rows = read_metrics(PRETRAINED_DIR / name)
    steps = rows[-1]['step'] if rows else 0
    minutes = rows[-1].get('time', float('nan')) / 60 if rows else float('nan')
    ref = None if cfg.get('group') else DIVAL_SHIPPED.get(cfg['scheme'])
    n_par = sum(p.numel() for p in model.parameters())
    label = method.name if name in method.name else f'{method.name} ({name})'
    user = read_run_config(PRETRAINED_DIR / name, 'options', '')
    init = (user['options'].get('init') or {}).get('from')
    if init:  # a shipped name, or a run folder of the training machine
        label += (f', from {init}' if init in list_pretrained_unrolled()
                  else ', continued')
    gpu = any(str(s.get('device', 'cpu')).startswith('cuda') for s in
              json.loads((PRETRAINED_DIR / name / 'config.json').read_text())
              .get('sessions', []))
    return (label, f'{steps} steps, {minutes:.0f} min{" GPU" if gpu else ""}, '
                   f'{n_par / 1e3:.0f}k par.', ref, method)


def _dival(args, t_start):
    """DIVal's ellipses: baselines tuned on validation, shipped networks."""
    if args.noise is not None or args.bench_seed != 0 or args.size != 128:
        raise SystemExit('--protocol dival has its own noise, seeds and size;'
                         ' drop --noise, --bench-seed and --size')
    bench = DivalEllipses(num_angles=args.angles)
    tune = bench.problems(args.n_tune, 'validation')
    test = bench.problems(args.n_test, 'test')
    results = _baselines(args, tune, test)
    print(f'baselines done ({time.perf_counter() - t_start:.0f} s)',
          flush=True)
    shipped = pretrained_for('dival', size=bench.size)
    for name in shipped:
        label, note, ref, method = _shipped_row(name)
        if method.model.operator.range.shape != bench.operator.range.shape:
            print(f'{name}: made for another geometry, skipped')
            continue
        _learned_rows(results, label, note, ref, method, test, args,
                      t_start)
    print(f'\nDIVal ellipses {bench.size}x{bench.size}, {bench.num_angles} '
          f'angles, {bench.noise_level:.1%} noise; first {args.n_test} test '
          f'images; FBP / TV tuned on {args.n_tune} validation images; '
          'learned: the shipped networks (nothing trained here)')
    return results


def _learned_rows(results, label, note, ref, method, test, args, t_start):
    """A network's row, and (``--symmetrize``) its symmetry-averaged row."""
    rows = [(label, note, ref, method)]
    if args.symmetrize:
        rows.append((f'{label}, symmetry-averaged', 'the same, averaged over '
                     'the 8 symmetries', None, SymmetryAveraged(method)))
    for name, text, reference, m in rows:
        r = evaluate(m, test)
        results.append((name, text, reference, r))
        print(f'{name}: {r["psnr"]:.2f} dB '
              f'({time.perf_counter() - t_start:.0f} s)', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--protocol', choices=('ellipse', 'dival'),
                        default='ellipse',
                        help="'dival': DIVal's ellipses with the shipped "
                             'networks (nothing is trained)')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--angles', type=int, default=30)
    parser.add_argument('--noise', type=float, default=None,
                        help='relative noise (ellipse protocol, default 0.05)')
    parser.add_argument('--bench-seed', type=int, default=0,
                        help='seed of the splits (EllipseCT.seed)')
    parser.add_argument('--n-train', type=int, default=400)
    parser.add_argument('--n-val', type=int, default=10)
    parser.add_argument('--n-test', type=int, default=None,
                        help='test images (default 50; dival 100)')
    parser.add_argument('--n-tune', type=int, default=5,
                        help='validation images that choose FBP/TV settings')
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--width', type=int, default=32,
                        help='hidden channels (C4: width / 4 regular fields)')
    parser.add_argument('--seed', type=int, default=0,
                        help='training seed')
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument('--fbp-scalings', type=float, nargs='+',
                        default=[0.3, 0.45, 0.6, 0.8, 1.0])
    parser.add_argument('--tv-alphas', type=float, nargs='+', default=None,
                        help='default 3e-5 1e-4 3e-4 1e-3 (dival: 1 2 4 8 '
                             '16, DIVal\'s [-64, 64]^2 domain)')
    parser.add_argument('--tv-iter', type=int, default=None,
                        help='PDHG iterations (default 200; dival 500)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (default: torch\'s choice)')
    parser.add_argument('--runs', default='runs/ellipse_ct')
    parser.add_argument('--json', default=None,
                        help='also write the results to this file')
    parser.add_argument('--symmetrize', action='store_true',
                        help='also each learned network averaged over the '
                             'symmetries of the ray transform')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    dival = args.protocol == 'dival'
    if args.n_test is None:
        args.n_test = 100 if dival else 50
    if args.tv_alphas is None:
        args.tv_alphas = ([1., 2., 4., 8., 16.] if dival
                          else [3e-5, 1e-4, 3e-4, 1e-3])
    if args.tv_iter is None:
        args.tv_iter = 500 if dival else 200
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    if dival:
        _print(_dival(args, t_start), t_start, args)
        return

    args.noise = 0.05 if args.noise is None else args.noise
    bench = EllipseCT(size=args.size, num_angles=args.angles,
                      noise_level=args.noise, seed=args.bench_seed)
    tune = [bench.problem(i, 'validation') for i in range(args.n_tune)]
    test = [bench.problem(i, 'test') for i in range(args.n_test)]
    results = _baselines(args, tune, test)
    print(f'baselines done ({time.perf_counter() - t_start:.0f} s)',
          flush=True)

    for key in args.models:
        scheme, group, ref = MODELS[key]
        config = {'scheme': scheme, 'group': group,
                  'hidden_channels': args.width, 'benchmark': bench.config()}
        run = Path(args.runs) / key
        model = train_unrolled(config, run, n_train=args.n_train,
                               n_val=args.n_val, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed, progress=not args.quiet,
                               log_every=25)
        rows = read_metrics(run)
        steps = rows[-1]['step'] if rows else 0
        train_s = rows[-1].get('time', float('nan')) if rows else float('nan')
        n_par = sum(p.numel() for p in model.parameters())
        _learned_rows(results, NAMES[key], f'{steps} steps, '
                      f'{train_s / 60:.0f} min, {n_par / 1e3:.0f}k par.',
                      ref, LearnedReconstructor(model), test, args, t_start)

    print(f'\nellipse CT {args.size}x{args.size}, {args.angles} angles, '
          f'{args.noise:.0%} noise, splits seed {args.bench_seed}; '
          f'{args.n_test} test images; learned: {args.n_train} training '
          f'pairs, {args.epochs} epochs, batch {args.batch_size}, '
          f'lr {args.lr:g}, width {args.width}, seed {args.seed}')
    _print(results, t_start, args)


def _print(results, t_start, args):
    """The table, and the JSON file of ``--json``."""
    table([(name, f'{r["psnr"]:.2f}', f'{r["ssim"]:.3f}',
            f'{r["seconds"]:.3f}',
            f'{ref:.2f}' if ref is not None else '-', note)
           for name, note, ref, r in results],
          ('method', 'PSNR [dB]', 'SSIM', 's / image', 'DIVal PSNR',
           'settings / training'))
    print(f'total {time.perf_counter() - t_start:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args),
                       'results': [{'method': n, 'settings': s,
                                    'dival_psnr': ref,
                                    **{k: r[k] for k in ('psnr', 'ssim',
                                                         'seconds')}}
                                   for n, s, ref, r in results]}, f,
                      indent=1)


if __name__ == '__main__':
    main()
