"""benchmarks/training_efficiency.py on a tiny protocol: step times, equal
budgets, resumable training, the progressive variant, the kept files and
the table."""
import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture
def study(tmp_path):
    mod = runpy.run_path(str(ROOT / 'benchmarks' / 'training_efficiency.py'),
                         run_name='training_efficiency')
    small = {'protocol': 'dival', 'size': 16, 'num_angles': 6,
             'sim_size': 24, 'noise_level': 0.025}
    tiny = {'scheme': 'lpd', 'start': 'fbp', 'n_iter': 1,
            'hidden_channels': 4}
    g = mod['main'].__globals__  # the functions' own namespace
    g.update(DIVAL=small, COARSE={**small, 'size': 8, 'sim_size': 12},
             KEEP=tmp_path / 'keep',
             VARIANTS={'lpd-bf16': (tiny, {}),
                       'lpd-lr3e-3': (tiny, {'lr': 3e-3, 'warmup': 2}),
                       'lpd-64to128': (tiny, {'progressive': True})},
             DEFAULTS={**g['DEFAULTS'], 'n_train': 8, 'batch_size': 2})
    return g


def test_study_times_trains_keeps_and_tabulates(study, tmp_path, capsys):
    main = study['main']
    runs = str(tmp_path / 'runs')
    assert main(['time', '--rounds', '2']) == 0
    times = json.loads((tmp_path / 'keep' / 'step_times.json').read_text())
    # one step, one timing: variants with the same step share it
    t = times['times']
    assert t['lpd-bf16'] == t['lpd-lr3e-3']
    assert t['lpd-64to128@64']['step'] > 0
    budget = 12 * t['lpd-bf16']['step']
    phases = study['budget_steps']('lpd-64to128', t, budget)
    assert [s for _, s, _ in phases] == [
        int(0.4 * budget / t['lpd-64to128@64']['step']),
        int(0.6 * budget / t['lpd-bf16']['step'])]

    argv = ['--budget', str(budget), '--runs', runs, '--n-val', '2',
            '--val-every', '3', '--quiet']
    assert main(['train', *argv]) == 0
    out = capsys.readouterr().out
    assert 'lpd-64to128' in out and 'val PSNR' in out
    for name in ('lpd-bf16', 'lpd-lr3e-3', 'lpd-64to128@64', 'lpd-64to128'):
        kept = tmp_path / 'keep' / name
        assert (kept / 'metrics.csv').is_file()
        assert not (kept / 'checkpoint.pt').exists()  # finished
        cfg = json.loads((kept / 'config.json').read_text())
        assert cfg['steps_done'] == cfg['steps'] > 0
    fine = json.loads((tmp_path / 'keep' / 'lpd-64to128' /
                       'config.json').read_text())
    assert fine['user']['options']['init']['resized'] is True
    assert json.loads((tmp_path / 'keep' / 'lpd-lr3e-3' / 'config.json')
                      .read_text())['user']['options']['warmup'] == 2

    # The table reads the kept files alone (a fresh machine: no runs).
    rows = study['report'](list(study['VARIANTS']), budget,
                           str(tmp_path / 'fig.png'))
    assert [r[0] for r in rows] == list(study['VARIANTS'])
    assert all(r[-1] != '-' and '(at' not in r[-1] for r in rows)
    assert (tmp_path / 'fig.png').is_file()


def test_an_unfinished_variant_is_kept_with_its_checkpoint_and_resumes(
        study, tmp_path):
    main = study['main']
    runs = tmp_path / 'runs'
    main(['time', '--rounds', '1', '--variants', 'lpd-bf16'])
    step = json.loads((tmp_path / 'keep' / 'step_times.json').read_text())[
        'times']['lpd-bf16']['step']
    # a short budget first, then kept as if the session ended mid-run
    study['train_variant']('lpd-bf16', {'lpd-bf16': {'step': step,
                                                     'first': step}},
                           4 * step + 1e-9, runs, 2, 2, False)
    cfg_path = runs / 'lpd-bf16' / 'config.json'
    cfg = json.loads(cfg_path.read_text())
    cfg['steps'] = 8  # the kept run is short of a longer budget
    cfg_path.write_text(json.dumps(cfg))
    study['keep_all'](runs)
    kept = tmp_path / 'keep' / 'lpd-bf16'
    assert (kept / 'checkpoint.pt').is_file()
    # a fresh machine: the runs folder is gone, the kept files bring it back
    import shutil
    shutil.rmtree(runs)
    study['_restore'](runs / 'lpd-bf16', kept)
    assert (runs / 'lpd-bf16' / 'checkpoint.pt').is_file()


def test_progress_points_grow_across_calls(tmp_path, capsys):
    from odl_genprior.models.unrolled import train_unrolled

    progress = runpy.run_path(str(ROOT / 'benchmarks' / 'dival_progress.py'),
                              run_name='dival_progress')['main']
    cfg = {'scheme': 'lgd', 'n_iter': 1, 'hidden_channels': 4,
           'start': 'fbp', 'benchmark': {'protocol': 'dival', 'size': 16,
                                         'num_angles': 6, 'sim_size': 24}}
    run = tmp_path / 'run'
    train_unrolled(cfg, run, n_train=4, n_val=2, steps=2, batch_size=2,
                   progress=False)
    points = str(tmp_path / 'points.csv')
    argv = [str(run), '--n-test', '2', '--points', points]
    first = progress(argv)
    assert [(p['run'], int(p['step'])) for p in first] == [('run', 2)]
    assert float(first[0]['cpu_hours']) >= 0
    # more steps: a second point; the same step again replaces its row
    train_unrolled(cfg, run, n_train=4, n_val=2, steps=4, batch_size=2,
                   progress=False)
    progress(argv)
    again = progress(argv + ['--out', str(tmp_path / 'p.png')])
    assert [int(p['step']) for p in again] == [2, 4]
    assert (tmp_path / 'p.png').is_file()
    assert 'test PSNR against training CPU-hours' in capsys.readouterr().out
    # samples: steps x batch, plus those of the run a run started from
    assert [int(p['samples']) for p in again] == [4, 8]
    run2 = tmp_path / 'run2'
    train_unrolled(cfg, run2, n_train=4, n_val=2, steps=2, batch_size=2,
                   progress=False, init=str(run))
    last = progress([str(run2), '--n-test', '2', '--points', points,
                     '--extrapolate', str(run2), '--fit-from', '0'])
    assert [int(p['samples']) for p in last] == [4, 8, 12]
    out = capsys.readouterr().out
    assert 'run2 <- run: PSNR = ' in out and 'over the 3 points' in out
    assert "at DIVal's 1,600,000 samples" in out


def test_a_variant_with_a_timed_step_needs_no_timing_of_its_own(study,
                                                                 tmp_path):
    study['main'](['time', '--rounds', '1', '--variants', 'lpd-bf16'])
    times = study['_read_times']()
    # lr and warm-up do not change a step; progressive training has phases
    # of its own and must be timed
    assert times['lpd-lr3e-3'] == times['lpd-bf16']
    assert 'lpd-64to128' not in times
