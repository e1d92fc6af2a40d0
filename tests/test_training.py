"""Tests of odl_genprior.training: determinism, files, resume, errors, DDP."""
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import _ddp_script
import _train_script
from odl_genprior import training
from odl_genprior.training import load_weights, read_metrics, seed_all, train

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_equal_params(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y), (x - y).abs().max()


def mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def small_problem(seed=0, n=24):
    seed_all(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(),
                                torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    return model, (torch.randn(n, 3), torch.randn(n, 1))


def losses_of(rows, *keys):
    return [tuple(r.get(k) for k in ('step',) + keys) for r in rows]


def run_script(*args, timeout=180):
    return subprocess.run([sys.executable, str(TESTS / '_train_script.py'),
                           *map(str, args)], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True)


# --- determinism, files ------------------------------------------------------

def test_seeded_runs_are_identical_and_files_are_written(tmp_path):
    a, data = small_problem()
    b, _ = small_problem()
    c, _ = small_problem()
    kw = dict(epochs=3, batch_size=8, lr=0.01, progress=False)
    ra = train(a, mse, data, out_dir=tmp_path / 'a', seed=7, **kw)
    train(b, mse, data, out_dir=tmp_path / 'b', seed=7, **kw)
    train(c, mse, data, out_dir=tmp_path / 'c', seed=8, **kw)
    assert_equal_params(params(a), params(b))
    assert not all(torch.equal(x, y) for x, y in zip(params(a), params(c)))
    assert ra.step == 9 and ra.epoch == 3 and ra.resumed_from == 0

    out = tmp_path / 'a'
    assert sorted(os.listdir(out)) == [training.CHECKPOINT, training.CONFIG,
                                       training.METRICS, training.WEIGHTS]
    cfg = json.loads((out / 'config.json').read_text())
    assert (cfg['seed'], cfg['batch_size'], cfg['epochs']) == (7, 8, 3)
    assert cfg['optimizers']['model']['class'] == 'Adam'
    assert cfg['optimizers']['model']['defaults']['lr'] == 0.01

    rows = read_metrics(out)
    assert [r['step'] for r in rows] == list(range(1, 10))
    assert [r['epoch'] for r in rows] == [0] * 3 + [1] * 3 + [2] * 3
    assert losses_of(rows, 'loss') == losses_of(ra.history, 'loss')
    assert losses_of(rows, 'loss') == losses_of(read_metrics(tmp_path / 'b'),
                                                'loss')
    assert rows[-1]['loss'] == ra.losses['loss']

    # Everything loads with weights_only=True (no code runs on load).
    ckpt = torch.load(out / 'checkpoint.pt', weights_only=True)
    assert ckpt['step'] == 9 and ckpt['epoch'] == 3
    assert len(ckpt['rng']) == 1
    assert_equal_params(ckpt['models']['model'].values(),
                        a.state_dict().values())
    fresh, _ = small_problem(seed=99)
    assert_equal_params(params(load_weights(fresh, out)), params(a))
    fresh, _ = small_problem(seed=99)
    load_weights(fresh, out / 'checkpoint.pt')
    assert_equal_params(params(fresh), params(a))


def test_no_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, data = small_problem()
    before = params(model)
    r = train(model, mse, data, out_dir=None, epochs=2, batch_size=8,
              progress=False)
    assert os.listdir(tmp_path) == []
    assert r.out_dir is None and r.step == 6 and len(r.history) == 6
    assert not all(torch.equal(x, y) for x, y in zip(before, params(model)))


def test_log_every_averages_steps(tmp_path):
    a, data = small_problem()
    b, _ = small_problem()
    r1 = train(a, mse, data, out_dir=None, epochs=3, batch_size=8,
               progress=False)
    r3 = train(b, mse, data, out_dir=tmp_path, epochs=3, batch_size=8,
               log_every=4, progress=False)
    per_step = [row['loss'] for row in r1.history]
    rows = read_metrics(tmp_path)
    assert [row['step'] for row in rows] == [4, 8, 9]  # and the last step
    expected = [np.mean(per_step[0:4]), np.mean(per_step[4:8]), per_step[8]]
    np.testing.assert_allclose([row['loss'] for row in rows], expected,
                               rtol=1e-12)


def test_dataset_gives_the_same_run_as_tensors():
    class Pairs(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {'x': self.x[i], 'y': self.y[i]}

    a, (x, y) = small_problem()
    b, _ = small_problem()
    kw = dict(out_dir=None, epochs=2, batch_size=5, lr=0.01, progress=False)
    train(a, mse, (x, y), **kw)
    train(b, lambda m, batch: mse(m, (batch['x'], batch['y'])), Pairs(x, y),
          **kw)
    assert_equal_params(params(a), params(b))


def test_validation_and_loss_dict_are_logged(tmp_path):
    model, data, val = _train_script.make_problem()
    r = train(model, _train_script.mse, data, out_dir=tmp_path, epochs=2,
              batch_size=8, val_data=val, val_metric=_train_script.noisy_val,
              progress=False)
    assert [s for s, _ in r.val_history] == [4, 8]  # each epoch end
    rows = read_metrics(tmp_path)
    assert {'loss', 'mean_abs_out'} <= set(rows[0])
    logged = [(row['step'], row['val']) for row in rows if 'val' in row]
    assert logged == r.val_history
    assert all(v > 0 for _, v in r.val_history)
    assert model.training  # eval mode only during validation


# --- resume ------------------------------------------------------------------

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp('full')
    model, result = _train_script.run(out)
    return params(model), result, read_metrics(out)


def test_resume_after_sigkill_is_bit_identical(tmp_path, uninterrupted):
    full_params, full, full_rows = uninterrupted
    # Killed right after step 7; the last checkpoint (step 6) is mid-epoch.
    proc = run_script(tmp_path, '--kill-at', 7)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert ckpt['step'] == 6
    assert not (tmp_path / 'weights.pt').exists()
    assert max(r['step'] for r in read_metrics(tmp_path)) == 7

    proc = run_script(tmp_path)  # a fresh process resumes
    assert proc.returncode == 0, proc.stderr
    model, _, _ = _train_script.make_problem()
    load_weights(model, tmp_path / 'weights.pt')
    assert_equal_params(params(model), full_params)
    rows = read_metrics(tmp_path)
    keys = ('loss', 'mean_abs_out', 'val')
    assert losses_of(rows, *keys) == losses_of(full_rows, *keys)
    ckpt = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert [tuple(v) for v in ckpt['val_history']] == full.val_history


@pytest.mark.slow  # a third subprocess; the atomic-write test covers the rest
def test_resume_after_kill_at_any_moment(tmp_path, uninterrupted):
    full_params, full, _ = uninterrupted
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / '_train_script.py'), str(tmp_path),
         '--sleep', '0.1'], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (tmp_path / 'checkpoint.pt').exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.005)
        time.sleep(random.Random().uniform(0.0, 0.3))  # any moment after
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    model, result = _train_script.run(tmp_path)
    assert 3 <= result.resumed_from < _train_script.STEPS
    assert_equal_params(params(model), full_params)
    assert result.val_history == full.val_history
    assert not list(tmp_path.glob('.*tmp*'))


def test_step_fn_two_models_resume_after_crash(tmp_path):
    """GAN-shaped: two models, two optimizers, alternating steps, an EMA."""
    class EMA:
        def __init__(self, module):
            self.avg = [p.detach().clone() for p in module.parameters()]
            self.module = module

        def update(self):
            for a, p in zip(self.avg, self.module.parameters()):
                a.mul_(0.9).add_(p.detach(), alpha=0.1)

        def state_dict(self):
            return {'avg': self.avg}

        def load_state_dict(self, state):
            self.avg = [a.clone() for a in state['avg']]

    def setup():
        seed_all(3)
        gen = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(),
                                  torch.nn.Linear(6, 3))
        critic = torch.nn.Sequential(torch.nn.Linear(3, 6),
                                     torch.nn.Dropout(0.1),
                                     torch.nn.Linear(6, 1))
        return {'G': gen, 'D': critic}, EMA(gen), torch.randn(30, 3)

    def step_fn(models, opts, real, step):
        gen, critic = models['G'], models['D']
        fake = gen(torch.randn(len(real), 2))
        opts['D'].zero_grad()
        loss_d = critic(fake.detach()).mean() - critic(real).mean()
        loss_d.backward()
        opts['D'].step()
        out = {'loss_d': loss_d}
        if step % 3 == 0:  # a generator step every 3rd step
            opts['G'].zero_grad()
            loss_g = -critic(gen(torch.randn(len(real), 2))).mean()
            loss_g.backward()
            opts['G'].step()
            ema.update()
            out['loss_g'] = loss_g
        return out

    def run(out, callback=None):
        nonlocal ema
        models, ema, data = setup()
        r = train(models, None, data, step_fn=step_fn, out_dir=out,
                  epochs=3, batch_size=6, seed=1, checkpoint_every=4,
                  optimizer={'G': functools.partial(torch.optim.Adam, lr=1e-2),
                             'D': functools.partial(torch.optim.RMSprop,
                                                    lr=1e-2)},
                  extra_state={'ema': ema}, callback=callback, progress=False)
        return models, ema, r

    ema = None
    full_models, full_ema, full = run(tmp_path / 'full')

    class Crash(Exception):
        """The simulated crash."""

    def crash(info):
        if info['step'] == 10:
            raise Crash

    with pytest.raises(Crash):
        run(tmp_path / 'cut', crash)
    models, ema_, r = run(tmp_path / 'cut')
    assert r.resumed_from == 8 and r.step == 15
    for n in 'GD':
        assert_equal_params(params(models[n]), params(full_models[n]))
    assert_equal_params(ema_.avg, full_ema.avg)
    rows = read_metrics(tmp_path / 'cut')
    assert [row['step'] for row in rows if 'loss_g' in row] == [1, 4, 7, 10,
                                                                13]
    assert losses_of(rows, 'loss_d', 'loss_g') == losses_of(
        read_metrics(tmp_path / 'full'), 'loss_d', 'loss_g')
    weights = torch.load(tmp_path / 'cut' / 'weights.pt', weights_only=True)
    assert set(weights) == {'G', 'D'}
    fresh, _, _ = setup()
    load_weights(fresh, tmp_path / 'cut')
    assert_equal_params(params(fresh['G']), params(full_models['G']))


def test_finished_run_is_kept_and_can_be_extended(tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=2)
    a, data = small_problem()
    train(a, mse, data, out_dir=tmp_path / 'long', epochs=4, **kw)

    b, _ = small_problem()
    train(b, mse, data, out_dir=tmp_path / 'short', epochs=2, **kw)
    after_two = params(b)
    mtime = (tmp_path / 'short' / 'weights.pt').stat().st_mtime_ns

    # Same config again: nothing retrained, the final weights are loaded.
    c, _ = small_problem(seed=50)
    r = train(c, mse, data, out_dir=tmp_path / 'short', epochs=2, **kw)
    assert r.resumed_from == r.step == 6 and r.history == []
    assert r.losses['loss'] == read_metrics(tmp_path / 'short')[-1]['loss']
    assert_equal_params(params(c), after_two)
    assert (tmp_path / 'short' / 'weights.pt').stat().st_mtime_ns == mtime

    # More epochs: continues, and equals the run that had 4 from the start.
    r = train(b, mse, data, out_dir=tmp_path / 'short', epochs=4, **kw)
    assert r.resumed_from == 6 and r.step == 12
    assert_equal_params(params(b), params(a))
    assert losses_of(read_metrics(tmp_path / 'short'), 'loss') == losses_of(
        read_metrics(tmp_path / 'long'), 'loss')

    with pytest.raises(ValueError, match='past the 6 steps'):
        train(b, mse, data, out_dir=tmp_path / 'short', epochs=2, **kw)


def test_a_budget_of_steps_ends_mid_epoch_and_can_be_raised(tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=2)
    a, data = small_problem()  # 3 steps per epoch
    train(a, mse, data, out_dir=tmp_path / 'long', epochs=3, **kw)
    b, _ = small_problem()
    r = train(b, mse, data, out_dir=tmp_path / 'budget', steps=5,
              epochs=99, **kw)  # epochs is ignored
    assert (r.step, r.epoch) == (5, 1)
    cfg = json.loads((tmp_path / 'budget' / 'config.json').read_text())
    assert (cfg['steps'], cfg['steps_done'], cfg['epochs']) == (5, 5, 2)
    assert losses_of(read_metrics(tmp_path / 'budget'), 'loss') == losses_of(
        read_metrics(tmp_path / 'long'), 'loss')[:5]
    # A raised budget goes on from step 5 and ends where 3 epochs end.
    r = train(b, mse, data, out_dir=tmp_path / 'budget', steps=9, **kw)
    assert r.resumed_from == 5 and r.step == 9
    assert_equal_params(params(b), params(a))
    with pytest.raises(ValueError, match='`steps` must be a positive int'):
        train(b, mse, data, out_dir=None, steps=0, **kw)


def test_config_records_each_session_machine_threads_and_wall_time(
        tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=2)
    a, data = small_problem()
    train(a, mse, data, out_dir=tmp_path, steps=2, **kw)
    torch.set_num_threads(1)
    try:
        train(a, mse, data, out_dir=tmp_path, steps=4, **kw)
    finally:
        torch.set_num_threads(2)
    cfg = json.loads((tmp_path / 'config.json').read_text())
    first, second = cfg['sessions']
    assert (first['from_step'], first['to_step']) == (0, 2)
    assert (second['from_step'], second['to_step']) == (2, 4)
    assert second['threads'] == 1 and second['processes'] == 1
    assert first['machine'] and first['started'].endswith('Z')
    assert first['wall_seconds'] >= 0 and second['wall_seconds'] >= 0
    assert first['versions']['torch'] == torch.__version__
    assert cfg['steps_done'] == 4 and cfg['wall_seconds'] >= 0
    # a session recorded without its own wall time gets the remainder
    del cfg['sessions'][0]['wall_seconds']
    (tmp_path / 'config.json').write_text(json.dumps(cfg))
    train(a, mse, data, out_dir=tmp_path, steps=4, **kw)  # finished: as is
    cfg = json.loads((tmp_path / 'config.json').read_text())
    assert cfg['sessions'][0]['wall_seconds'] >= 0
    assert cfg['steps_done'] == 4  # kept when a finished run is opened
    assert len(cfg['sessions']) == 2  # and a call that ran no step adds none
    # provenance in the user config may be added to a run in flight; any
    # other user entry is compared
    r = train(a, mse, data, out_dir=tmp_path, steps=5, **kw,
              config={'provenance': {'operator': 'matrix'}})
    assert r.resumed_from == 4 and r.step == 5
    with pytest.raises(ValueError, match='another configuration'):
        train(a, mse, data, out_dir=tmp_path, steps=6, **kw,
              config={'width': 3})


def test_bfloat16_autocast_trains_and_may_change_on_resume(tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=2)
    a, data = small_problem()
    seen = []

    def loss(model, batch):
        x, y = batch
        out = model(x)
        seen.append(out.dtype)
        return torch.nn.functional.mse_loss(out.float(), y)

    train(a, loss, data, out_dir=tmp_path / 'run', epochs=2, **kw)
    b, _ = small_problem()
    r = train(b, loss, data, out_dir=tmp_path / 'bf16', epochs=2,
              autocast='bfloat16', **kw)
    assert set(seen) == {torch.float32, torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in b.parameters())
    cfg = json.loads((tmp_path / 'bf16' / 'config.json').read_text())
    assert cfg['autocast'] == 'bfloat16'
    # Close to the float32 run, not equal to it.
    assert not torch.equal(params(a)[0], params(b)[0])
    torch.testing.assert_close(params(a)[0], params(b)[0], atol=0.05,
                               rtol=0.05)
    # Resuming in float32 is allowed: the precision of the steps to come.
    r = train(b, loss, data, out_dir=tmp_path / 'bf16', epochs=3, **kw)
    assert r.resumed_from == 6 and r.step == 9
    with pytest.raises(ValueError, match='autocast must be one of'):
        train(b, loss, data, out_dir=None, autocast='float16', **kw)


def test_other_configuration_or_foreign_files_are_refused(tmp_path):
    model, data = small_problem()
    kw = dict(epochs=1, lr=0.01, progress=False)
    (tmp_path / 'notes.txt').write_text('mine')
    train(model, mse, data, out_dir=tmp_path, batch_size=8,
          config={'width': 8}, **kw)
    saved = (tmp_path / 'checkpoint.pt').read_bytes()
    with pytest.raises(ValueError, match='batch_size: 8 .saved. != 6'):
        train(model, mse, data, out_dir=tmp_path, batch_size=6,
              config={'width': 8}, **kw)
    with pytest.raises(ValueError, match='user'):
        train(model, mse, data, out_dir=tmp_path, batch_size=8,
              config={'width': 16}, **kw)
    with pytest.raises(ValueError, match='optimizers'):
        train(model, mse, data, out_dir=tmp_path, batch_size=8, epochs=1,
              optimizer=functools.partial(torch.optim.SGD, lr=0.01),
              config={'width': 8}, progress=False)
    with pytest.raises(FileExistsError, match='resume=True'):
        train(model, mse, data, out_dir=tmp_path, batch_size=8,
              config={'width': 8}, resume=False, **kw)
    assert (tmp_path / 'checkpoint.pt').read_bytes() == saved
    assert (tmp_path / 'notes.txt').read_text() == 'mine'

    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'weights.pt').write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='no config.json'):
        train(model, mse, data, out_dir=foreign, batch_size=8, **kw)
    assert (foreign / 'weights.pt').read_bytes() == b'not ours'


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model, data = small_problem()
    kw = dict(epochs=3, batch_size=8, lr=0.01, checkpoint_every=2,
              progress=False)
    real_save = torch.save
    calls = []

    def save_then_die(obj, f):
        calls.append(obj.get('step') if isinstance(obj, dict) else None)
        if len(calls) == 3:  # the third checkpoint dies half-written
            f.write(b'half a checkpoint')
            raise KeyboardInterrupt
        real_save(obj, f)

    monkeypatch.setattr(training.loop.torch, 'save', save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(model, mse, data, out_dir=tmp_path, **kw)
    monkeypatch.setattr(training.loop.torch, 'save', real_save)
    assert calls == [2, 4, 6]
    assert torch.load(tmp_path / 'checkpoint.pt', weights_only=True)[
        'step'] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'checkpoint.pt', 'config.json', 'metrics.csv']

    resumed, _ = small_problem()
    r = train(resumed, mse, data, out_dir=tmp_path, **kw)
    assert r.resumed_from == 4
    full, _ = small_problem()
    train(full, mse, data, out_dir=None, **kw)
    assert_equal_params(params(resumed), params(full))


# --- errors ------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, error, match', [
    (dict(data=iter([1, 2, 3])), TypeError, 'map-style Dataset'),
    (dict(data=object()), TypeError, 'torch.Tensor, a tuple'),
    (dict(data=(torch.ones(4, 3), torch.ones(5, 1))), ValueError,
     'differ in length'),
    (dict(batch_size=25), ValueError, 'larger than the 24 training samples'),
    (dict(batch_size=0), ValueError, 'positive int'),
    (dict(optimizer=torch.optim.SGD), ValueError, 'not both'),
    (dict(loss_fn=None), ValueError, 'exactly one'),
    (dict(step_fn=lambda *a: 0.0), ValueError, 'exactly one'),
    (dict(seed=-1), ValueError, 'non-negative'),
    (dict(model='net'), TypeError, 'torch.nn.Module'),
    (dict(val_every=2), ValueError, 'without `val_metric`'),
    (dict(scheduler={'other': None}), ValueError, 'models are'),
    (dict(distributed=True), RuntimeError, 'torchrun'),
    (dict(data_parallel='ddp'), ValueError, "one of \\('auto', 'average'\\)"),
    (dict(loss_fn=lambda m, b: {'val': mse(m, b), 'loss': mse(m, b)}),
     ValueError, 'rename'),
    (dict(loss_fn=lambda m, b: m(b[0])), TypeError, 'scalar tensor'),
])
def test_errors_are_clear(kwargs, error, match):
    model, data = small_problem()
    args = dict(model=model, loss_fn=mse, data=data, out_dir=None,
                batch_size=8, lr=0.01, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        train(args.pop('model'), args.pop('loss_fn'), args.pop('data'),
              **args)


def test_iterable_dataset_is_refused():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(torch.ones(4, 3))

    model, _ = small_problem()
    with pytest.raises(TypeError, match='IterableDataset'):
        train(model, mse, Stream(), out_dir=None, progress=False)


def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path):
    model, (x, y) = small_problem()
    y[20] = float('nan')  # in some batch of the second epoch, or the first
    with pytest.raises(FloatingPointError, match='loss = nan at step'):
        train(model, mse, (x, y), out_dir=tmp_path, epochs=3, batch_size=8,
              progress=False, shuffle=False, checkpoint_every=1)
    assert torch.load(tmp_path / 'checkpoint.pt',
                      weights_only=True)['step'] == 2  # batch 3 holds y[20]
    assert not (tmp_path / 'weights.pt').exists()


def test_progress_bar_shows_loss(capsys):
    model, data = small_problem()
    train(model, mse, data, out_dir=None, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert '3/3' in err and 'loss=' in err


# --- two processes -----------------------------------------------------------

def test_two_process_data_parallel_matches_single_process(tmp_path):
    # --standalone: rendezvous on localhost with a free port.
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2', str(TESTS / '_ddp_script.py'), str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    for key in ('loss_fn', 'step_fn_a', 'step_fn_b', 'loss_by_layers'):
        assert_equal_params(r0[key], r1[key])  # the processes agree exactly
    # loss_fn calling the model: DDP; only its layers, or step_fn: averaged
    assert r0['data_parallel'] == ['DistributedDataParallel', 'averaged',
                                   'averaged']
    assert r0['val_history'] == r1['val_history'] and r0['step'] == 8
    assert r0['losses'] == r1['losses']
    cfg = json.loads((tmp_path / 'loss_fn' / 'config.json').read_text())
    assert cfg['world_size'] == 2

    # Half a batch each + averaged gradients == one process, whole batches.
    model, r = _ddp_script.run_loss_fn(tmp_path / 'single')
    for a, b in zip(params(model), r0['loss_fn']):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [s for s, _ in r0['val_history']] == [4, 8]
    np.testing.assert_allclose([v for _, v in r0['val_history']],
                               [v for _, v in r.val_history], rtol=1e-5)
    ddp_rows = read_metrics(tmp_path / 'loss_fn')
    single_rows = read_metrics(tmp_path / 'single')
    np.testing.assert_allclose([row['loss'] for row in ddp_rows],
                               [row['loss'] for row in single_rows],
                               rtol=1e-5)
    layered, r = _ddp_script.run_loss_by_layers(tmp_path / 'single_layers')
    assert r.data_parallel == 'none'
    for a, b in zip(params(layered), r0['loss_by_layers']):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    models, _ = _ddp_script.run_step_fn(tmp_path / 'single_step_fn')
    for name in 'ab':
        for a, b in zip(params(models[name]), r0['step_fn_' + name]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_second_trainer_on_one_folder_stops_by_name(tmp_path):
    # A live process holds the lock: a second train() refuses the folder.
    holder = subprocess.Popen([sys.executable, '-c',
                               'import time; time.sleep(60)'])
    try:
        (tmp_path / '.lock').write_text(f'{holder.pid} '
                                        f'{__import__("socket").gethostname()}\n')
        model, data = small_problem()
        with pytest.raises(training.RunInUseError,
                           match=rf'in use by process {holder.pid}'):
            train(model, mse, data, out_dir=tmp_path, batch_size=8,
                  progress=False)
        assert not (tmp_path / 'metrics.csv').exists()
    finally:
        holder.kill()
        holder.wait()
    # Its owner gone, the lock is stale: taken over, and released at the end.
    train(model, mse, data, out_dir=tmp_path, batch_size=8, progress=False)
    assert (tmp_path / 'weights.pt').exists()
    assert not (tmp_path / '.lock').exists()


def test_cut_metrics_file_is_repaired_from_the_checkpoint(tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=4,
              checkpoint_every=3)
    a, data = small_problem()
    train(a, mse, data, out_dir=tmp_path / 'whole', epochs=4, **kw)
    b, _ = small_problem()
    train(b, mse, data, out_dir=tmp_path / 'cut', epochs=2, **kw)
    path = tmp_path / 'cut' / 'metrics.csv'
    text = path.read_text()
    path.write_text(text[:len(text) // 2 + 3])  # cut inside a row
    with pytest.warns(UserWarning, match='cut or damaged; rewritten'):
        train(b, mse, data, out_dir=tmp_path / 'cut', epochs=4, **kw)
    assert losses_of(read_metrics(path), 'loss') == losses_of(
        read_metrics(tmp_path / 'whole'), 'loss')


def test_cut_metrics_without_a_copy_in_the_checkpoint_is_refused(tmp_path):
    kw = dict(batch_size=8, lr=0.01, progress=False, seed=4)
    b, data = small_problem()
    train(b, mse, data, out_dir=tmp_path, epochs=2, **kw)
    # A checkpoint of an older version: no copy of the log.
    ckpt = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    del ckpt['metrics']
    torch.save(ckpt, tmp_path / 'checkpoint.pt')
    path = tmp_path / 'metrics.csv'
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(''.join(lines[:2]) + lines[2][:5] + '\n'
                    + ''.join(lines[3:]))
    with pytest.raises(ValueError, match=r'metrics.csv, line 3, is cut or '
                                         r'damaged'):
        train(b, mse, data, out_dir=tmp_path, epochs=3, **kw)


def test_cut_corrupt_or_foreign_weight_files_are_refused_by_name(tmp_path):
    net = torch.nn.Linear(2, 1)
    train(net, mse, (torch.randn(8, 2), torch.randn(8, 1)), out_dir=tmp_path,
          batch_size=4, progress=False)
    weights = tmp_path / 'weights.pt'
    whole = weights.read_bytes()
    for damaged in (whole[:len(whole) // 2], b''):
        weights.write_bytes(damaged)
        with pytest.raises(training.UnreadableFileError,
                           match='weights.pt is not a readable') as err:
            load_weights(torch.nn.Linear(2, 1), tmp_path)
        assert 'weights_only=False' not in str(err.value)
    torch.save({'w': training.RunLock}, weights)  # pickled code
    with pytest.raises(training.UnreadableFileError, match='refused'):
        load_weights(torch.nn.Linear(2, 1), tmp_path)
    weights.write_bytes(whole)
    with pytest.raises(training.UnreadableFileError,
                       match=r'does not fit Linear.*size mismatch'):
        load_weights(torch.nn.Linear(3, 1), tmp_path)
    # A cut checkpoint stops a resume with the same kind of message.
    (tmp_path / 'checkpoint.pt').write_bytes(b'PK\x03\x04')
    with pytest.raises(training.UnreadableFileError, match='checkpoint.pt'):
        train(net, mse, (torch.randn(8, 2), torch.randn(8, 1)),
              out_dir=tmp_path, batch_size=4, epochs=2, progress=False)


def test_call_through_view_is_the_model_except_for_calls():
    """What loss_fn sees under DDP: calls go to the wrapper and are
    counted; attributes, isinstance and indexing are the model's."""
    from odl_genprior.training.loop import _CallThrough
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
    seen = []
    view = _CallThrough(model, lambda x: seen.append(x) or model(x))
    x = torch.randn(3, 2)
    assert torch.equal(view(x), model(x)) and view.calls == 1 and seen
    assert isinstance(view, torch.nn.Sequential)
    assert view[0] is model[0] and len(view) == 2
    assert list(view) == list(model)
    view.flag = 'set'
    assert model.flag == 'set'


def test_call_through_names_the_fallback_for_unused_parameters():
    from odl_genprior.training.loop import _CallThrough
    model = torch.nn.Linear(2, 2)

    def unfinished(x):
        raise RuntimeError('Expected to have finished reduction in the '
                           'prior iteration before starting a new one')

    def other(x):
        raise RuntimeError('mat1 and mat2 shapes cannot be multiplied')

    with pytest.raises(RuntimeError, match="data_parallel='average'"):
        _CallThrough(model, unfinished)(torch.zeros(1, 2))
    with pytest.raises(RuntimeError, match='shapes') as info:
        _CallThrough(model, other)(torch.zeros(1, 2))
    assert 'data_parallel' not in str(info.value)
