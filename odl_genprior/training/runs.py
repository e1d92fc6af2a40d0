"""Run folders: ``config.json``, ``metrics.csv``, atomic checkpoints,
refusal of foreign or cut files, the run lock, export of a finished run and
loading of its weights."""
import csv
import io
import json
import os
import pickle
import socket
import warnings
from pathlib import Path

import torch

from odl_genprior.files import atomic_write

__all__ = ('load_weights', 'read_metrics', 'recorded_command',
           'read_run_config', 'export_run', 'complete_runs', 'RunLock',
           'RunInUseError', 'UnreadableFileError', 'CONFIG', 'METRICS',
           'CHECKPOINT', 'WEIGHTS')

CONFIG = 'config.json'
METRICS = 'metrics.csv'
CHECKPOINT = 'checkpoint.pt'
WEIGHTS = 'weights.pt'
_FORMAT = 1


# --- files -------------------------------------------------------------------

def _write_json(path, obj):
    atomic_write(path, lambda f: f.write(
        (json.dumps(obj, indent=2, sort_keys=True) + '\n').encode()))


class UnreadableFileError(ValueError):
    """A checkpoint or weights file that is cut, corrupt or untrusted."""


def _load(path):
    """A checkpoint or weights file, read with ``weights_only=True``.

    Tensors and plain containers only, never pickled code: a file holding
    anything else is refused as untrusted, and a cut or corrupt one is
    named, in the package's words (torch's own message would suggest
    loading untrusted code).
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:
        raise UnreadableFileError(
            f'{path} holds objects other than tensors and plain values: '
            'refused (odl_genprior never loads pickled code; a file it '
            'wrote holds none)') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UnreadableFileError(
            f'{path} is not a readable checkpoint or weights file (cut, '
            f'empty or corrupt: {type(err).__name__}); refused') from None


def _plain(obj):
    """A JSON-able copy of ``obj`` (tuples to lists, others to repr)."""
    return json.loads(json.dumps(obj, default=repr))


def read_metrics(path):
    """Read a ``metrics.csv`` written by `train` as a list of dicts.

    Numbers come back as ``float`` (``step`` and ``epoch`` as ``int``);
    empty cells (a value not computed at that step) are left out.

    Parameters
    ----------
    path : str or Path
        The file, or the ``out_dir`` holding it.

    Examples
    --------
    >>> import tempfile
    >>> from odl_genprior.training import train
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = train(torch.nn.Linear(2, 1), lambda m, x: m(x).pow(2).mean(),
    ...               torch.randn(8, 2), out_dir=d, batch_size=4, epochs=2,
    ...               progress=False)
    ...     rows = read_metrics(d)
    >>> [row['step'] for row in rows]
    [1, 2, 3, 4]
    >>> sorted(rows[0])
    ['epoch', 'loss', 'step', 'time']
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    with open(path, newline='') as f:
        rows = [_parse_row(r) for r in csv.DictReader(f)]
    return [r for r in rows if r is not None]


def _parse_row(raw):
    try:
        row = {k: float(v) for k, v in raw.items() if k and v not in ('',
                                                                     None)}
        row['step'], row['epoch'] = int(row['step']), int(row['epoch'])
    except (KeyError, ValueError, TypeError):
        return None  # a line cut short by a kill
    return row


class _MetricsLog:
    """``metrics.csv``: one row per logged step; new columns widen it.

    The rows are also kept in memory and saved in every checkpoint, so a
    resumed run rewrites the file from the checkpoint: a file cut or damaged
    while the run was stopped is repaired, never silently shortened.
    """

    def __init__(self, path, rank):
        self.path, self.active = path, path is not None and rank == 0
        self.columns = []
        self.rows = []

    def start(self, resume_step, saved_rows=None):
        if not self.active:
            return
        rows = []
        if resume_step and saved_rows is not None:
            rows = [dict(r) for r in saved_rows]
            if _plain_rows(self._file_rows(resume_step)) != _plain_rows(rows):
                warnings.warn(f'{self.path} was cut or damaged; rewritten '
                              f'from the checkpoint ({len(rows)} rows up to '
                              f'step {resume_step})')
        elif resume_step and self.path.exists():
            # A checkpoint of an older version keeps no copy of the log.
            # Rows past the checkpoint were written by the killed process
            # and are written again, identically, by this one.
            rows = self._file_rows(resume_step, strict=True)
        self.columns = ['step', 'epoch', 'time']
        for r in rows:
            self.columns += [k for k in r if k not in self.columns]
        self.rows = rows
        self._rewrite(rows)

    def _file_rows(self, resume_step, strict=False):
        """The file's rows up to ``resume_step``; damaged lines refused
        (``strict``) or left out."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = list(csv.DictReader(io.StringIO(text, newline='')))
        rows = []
        for n, raw in enumerate(lines):
            row = _parse_row(raw)
            last = n == len(lines) - 1
            damaged = (row is None or None in raw or None in raw.values()
                       or (last and not text.endswith('\n')))
            # A kill can cut only the last line, and that row is past the
            # checkpoint (a row is logged before its step's checkpoint).
            if damaged and not (last and row is not None
                                and row['step'] > resume_step):
                if strict:
                    raise ValueError(
                        f'{self.path}, line {n + 2}, is cut or damaged and '
                        'the checkpoint keeps no copy of the log: restore '
                        'the file or move it away to resume without it')
                continue
            if row is not None and row['step'] <= resume_step:
                rows.append(row)
        return rows

    def _rewrite(self, rows):
        def write(f):
            text = _csv_text(self.columns, rows)
            f.write(text.encode())
        atomic_write(self.path, write)

    def append(self, row):
        if not self.active:
            return
        self.rows.append(dict(row))
        new = [k for k in row if k not in self.columns]
        if new:  # rare: widen the header by rewriting the file
            old = read_metrics(self.path)
            self.columns += new
            self._rewrite(old)
        with open(self.path, 'a', newline='') as f:
            f.write(_csv_text(self.columns, [row], header=False))
            f.flush()


def _plain_rows(rows):
    """Rows as floats (file and memory rows compare equal)."""
    return [{k: float(v) for k, v in r.items()} for r in rows]


def _csv_text(columns, rows, header=True):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval='',
                            lineterminator='\n')
    if header:
        writer.writeheader()
    for r in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v)
                         for k, v in r.items()})
    return buf.getvalue()


def recorded_command(out_dir, config, command):
    """The command line to record in a run's configuration.

    The command is a record, not part of the run's identity: resuming with
    ``--resume``, without ``--quiet`` or with more ``--epochs`` must not
    count as another configuration. So when ``out_dir`` already holds a run
    whose configuration (every key of ``config`` but ``'command'`` and
    ``'provenance'``, facts about how the run was made) equals ``config``,
    its saved command is returned; otherwise ``command``.

    Examples
    --------
    >>> recorded_command(None, {'options': {}}, 'odl-genprior train ...')
    'odl-genprior train ...'
    """
    path = Path(out_dir) / CONFIG if out_dir is not None else None
    if path is not None and path.is_file():
        saved = _read_config_file(path).get('user', {})
        keys = [k for k in config if k not in ('command', 'provenance')]
        same = all(saved.get(k) == json.loads(json.dumps(config[k]))
                   for k in keys)
        if same and 'command' in saved:
            return saved['command']
    return command


def _read_config_file(path):
    """A run's ``config.json`` as a dict; a cut or edited file is named."""
    try:
        cfg = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise UnreadableFileError(
            f'{path} is not valid JSON (line {err.lineno}, column '
            f'{err.colno}: {err.msg}); was it cut or edited?') from None
    except UnicodeDecodeError:
        raise UnreadableFileError(f'{path} is not a text file') from None
    if not isinstance(cfg, dict):
        raise UnreadableFileError(f'{path} holds a {type(cfg).__name__}, '
                                  'not the mapping a run writes')
    return cfg


def read_run_config(run_dir, key, made_by):
    """The user part of a run's ``config.json``, checked to hold ``key``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder of `train`.
    key : str
        The entry the caller needs (e.g. ``'recipe'``, ``'unrolled'``).
    made_by : str
        What writes such runs, for the error message.

    Examples
    --------
    >>> read_run_config('/no/such/run', 'recipe', 'recipes.fit')
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/run/config.json not found: not a training run folder
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: not a training run folder')
    cfg = _read_config_file(path)
    user = cfg.get('user', cfg)
    if not isinstance(user, dict) or key not in user:
        raise ValueError(f'{path} holds no {key!r} entry: not made by '
                         f'{made_by}')
    return user


class RunInUseError(RuntimeError):
    """Another live process is training in this run folder."""


class RunLock:
    """An exclusive lock on a run folder: ``<folder>/.lock`` with the pid.

    Taken by `train` for the whole run, so that two trainers never write
    one folder (interleaved ``metrics.csv`` rows, clobbered checkpoints).
    A lock whose process is gone (killed, machine restarted, another host)
    is stale and taken over.

    Examples
    --------
    >>> import tempfile
    >>> from odl_genprior.training import train
    >>> d = tempfile.mkdtemp()
    >>> with RunLock(d):
    ...     with RunLock(d):
    ...         pass
    Traceback (most recent call last):
    ...
    odl_genprior.training.runs.RunInUseError: ... is in use by process ...
    """

    NAME = '.lock'

    def __init__(self, folder):
        self.path = Path(folder) / self.NAME
        self._held = False

    def _owner(self):
        """``(pid, host)`` written in the lock file, or None if unreadable."""
        try:
            pid, host = self.path.read_text().split(maxsplit=1)
            return int(pid), host.strip()
        except (OSError, ValueError):
            return None

    def _alive(self, owner):
        if owner is None:
            return False
        pid, host = owner
        if host != socket.gethostname():
            return False  # a folder copied from another machine
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f'{os.getpid()} {socket.gethostname()}\n'.encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if self._alive(owner):
                    raise RunInUseError(
                        f'{self.path.parent} is in use by process {owner[0]} '
                        f'(lock file {self.path}); wait for it to finish or '
                        'stop it, or choose another out_dir') from None
                try:
                    self.path.unlink()  # stale: its owner is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'wb') as f:
                f.write(me)
            self._held = True
            return self
        raise RunInUseError(f'could not take the lock {self.path}')

    def __exit__(self, *exc):
        if self._held:
            self._held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        return False


def complete_runs(folder):
    """Names of the run folders in ``folder`` that hold a model to load.

    A folder counts once it has ``config.json`` and ``weights.pt`` (a run
    still writing its first weights is not listed); a missing ``folder``
    holds none.

    Examples
    --------
    >>> complete_runs('/no/such/folder')
    []
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if (p / CONFIG).is_file() and (p / WEIGHTS).is_file())


def export_run(run_dir, dest):
    """Copy a run's model, config and log to ``dest`` (to ship or share).

    ``dest`` receives ``config.json``, ``metrics.csv`` and ``weights.pt``:
    the run's final weights, or the model of its last checkpoint if the run
    has not finished (the optimiser state is left out). ``metrics.csv`` is
    cut at the checkpoint's step, so the log matches the weights. Files are
    written atomically; an existing ``dest`` is refused rather than
    overwritten unless it holds an earlier export (a ``config.json``).

    Returns
    -------
    step : int
        The training step of the exported weights.

    Examples
    --------
    >>> import tempfile
    >>> from odl_genprior.training import train
    >>> net = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = train(net, lambda m, x: m(x).pow(2).mean(), torch.randn(8, 2),
    ...               out_dir=d + '/run', batch_size=4, progress=False)
    ...     step = export_run(d + '/run', d + '/shipped')
    ...     other = load_weights(torch.nn.Linear(2, 1), d + '/shipped')
    >>> step, torch.equal(other.weight, net.weight)
    (2, True)
    """
    run, dest = Path(run_dir), Path(dest)
    if not (run / CONFIG).is_file():
        raise FileNotFoundError(f'{run / CONFIG} not found: not a training '
                                'run folder')
    if dest.exists() and any(dest.iterdir()) and not (dest / CONFIG).exists():
        raise FileExistsError(f'{dest} holds other files; not overwriting')
    ckpt = _load(run / CHECKPOINT) if (run / CHECKPOINT).is_file() else None
    total = _read_config_file(run / CONFIG)
    total = total['epochs'] * total['steps_per_epoch']
    if ckpt is not None and ckpt['step'] < total:
        models = ckpt['models']
        weights = models['model'] if set(models) == {'model'} else models
        step = ckpt['step']
    elif (run / WEIGHTS).is_file():
        weights, step = _load(run / WEIGHTS), total
    else:
        raise FileNotFoundError(f'{run} holds neither {WEIGHTS} nor '
                                f'{CHECKPOINT}: nothing to export')
    dest.mkdir(parents=True, exist_ok=True)
    rows = (run / METRICS).read_text().splitlines(keepends=True)
    kept = rows[:1] + [r for r in rows[1:] if r.strip()
                       and int(r.split(',', 1)[0]) <= step]
    atomic_write(dest / METRICS, lambda f: f.write(''.join(kept).encode()))
    atomic_write(dest / WEIGHTS, lambda f: torch.save(weights, f))
    atomic_write(dest / CONFIG, lambda f: f.write((run / CONFIG).read_bytes()))
    return step


def load_weights(model, path, strict=True):
    """Load weights saved by `train` into ``model`` (``weights_only=True``).

    Parameters
    ----------
    model : torch.nn.Module or dict of str to torch.nn.Module
        The model(s) as passed to `train`.
    path : str or Path
        ``weights.pt`` or ``checkpoint.pt`` of a run, or its ``out_dir``
        (then ``weights.pt`` is used).
    strict : bool, optional
        Passed to ``load_state_dict``.

    Returns
    -------
    model : the argument, with the loaded weights

    Examples
    --------
    >>> import tempfile
    >>> from odl_genprior.training import train
    >>> net = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = train(net, lambda m, x: m(x).pow(2).mean(), torch.randn(8, 2),
    ...               out_dir=d, batch_size=4, progress=False)
    ...     other = load_weights(torch.nn.Linear(2, 1), d)
    >>> torch.equal(other.weight, net.weight)
    True
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    state = _load(path)
    if isinstance(state, dict) and state.get('format') == _FORMAT and (
            'models' in state):  # a checkpoint
        state = state['models']
        if isinstance(model, torch.nn.Module):
            if set(state) != {'model'}:
                raise ValueError(f'{path} holds the models {sorted(state)}; '
                                 'pass them as a dict')
            state = state['model']
    if isinstance(model, torch.nn.Module):
        _load_state(model, state, strict, path)
        return model
    if not isinstance(model, dict):
        raise TypeError('`model` must be a torch.nn.Module or a dict of them,'
                        f' got {type(model).__name__}')
    missing = set(model) - set(state)
    if missing:
        raise UnreadableFileError(f'{path} has no weights for '
                                  f'{sorted(missing)}; it holds '
                                  f'{sorted(state)}')
    for name, m in model.items():
        _load_state(m, state[name], strict, path)
    return model


def _load_state(module, state, strict, path):
    """``load_state_dict``; a file of another architecture is named."""
    if not isinstance(state, dict):
        raise UnreadableFileError(f'{path} holds no state dict '
                                  f'({type(state).__name__})')
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise UnreadableFileError(
            f'{path} does not fit {type(module).__name__} (another '
            f'architecture or a damaged file): {detail}') from None
