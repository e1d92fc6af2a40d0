"""The one training loop: seeded, logged, checkpointed, resumable, parallel.

`train` fits one ``torch.nn.Module`` or a dict of them (a GAN's generator
and critic, a VAE's encoder and decoder) and is the only training loop of
the package. What it guarantees:

* **Seeded.** The data order of epoch ``e`` is a permutation drawn from
  ``(seed, e)`` alone; torch, NumPy and Python RNGs are seeded from
  ``(seed, rank)`` at the start of a fresh run. Two runs of one
  configuration on the CPU give bit-identical parameters.
* **Logged.** A tqdm bar shows the loss; ``out_dir/metrics.csv`` gets one
  row per ``log_every`` steps (step, epoch, wall time, losses averaged over
  the steps and processes since the last row, validation metric).
* **Checkpointed.** ``out_dir/checkpoint.pt`` (models, optimizers,
  schedulers, step, every process's RNG states, validation history) is
  written every ``checkpoint_every`` steps to a temporary file that then
  replaces the old one (`os.replace`), so a kill at any moment leaves the
  previous checkpoint whole. Everything in it loads with
  ``torch.load(..., weights_only=True)``: no pickled code runs on load.
* **Resumable.** Calling `train` again with the same configuration and
  ``out_dir`` (for instance after the process was SIGKILLed) continues from
  the checkpoint, mid-epoch included, and on the CPU ends with exactly the
  parameters of an uninterrupted run. A different configuration is refused
  with an error naming the differences; a finished run is not retrained.
* **Data-parallel.** Under ``torchrun`` (``WORLD_SIZE > 1``) every process
  takes its share of each batch and gradients are averaged over processes
  (``torch.distributed``, gloo on the CPU, nccl on CUDA) before every
  optimizer step, so 2 processes with ``batch_size=B`` follow single-process
  training with ``batch_size=B`` (for losses that are means over the batch).
"""
import contextlib
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from odl_genprior.files import TMP_PREFIX, atomic_write
from odl_genprior.training.distributed import _Dist
from odl_genprior.training.runs import (CHECKPOINT, CONFIG, METRICS, WEIGHTS,
                                        _FORMAT, RunLock,
                                        UnreadableFileError,
                                        _load, _MetricsLog, _plain,
                                        _read_config_file, _write_json,
                                        read_metrics)
from odl_genprior.training.seeding import (_check_seed, _derive_seed,
                                           _epoch_order, _rng_state,
                                           _set_rng_state, seed_all)

__all__ = ('train', 'TrainResult', 'AUTOCAST')

# config.json entries that must agree to resume a run. ``epochs`` may grow
# (continue a finished run); ``log_every``, ``checkpoint_every`` and
# ``world_size`` change no parameter value and may differ too, and so may
# ``autocast`` (the precision of the steps still to come, not the model).
_RUN_KEYS = ('format', 'mode', 'seed', 'batch_size', 'shuffle', 'n_train',
             'n_val', 'val_every', 'clip_grad_norm', 'models', 'optimizers',
             'schedulers', 'extra_state', 'user')

#: Lower-precision autocast of the loss (``None``: float32 throughout).
AUTOCAST = (None, 'bfloat16')
#: how processes share gradients (`train`'s ``data_parallel``)
DATA_PARALLEL = ('auto', 'average')


# --- data --------------------------------------------------------------------

class _Data:
    """Index access to a tensor, a tuple of tensors, or a map-style Dataset."""

    def __init__(self, data):
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(data)
        if isinstance(data, torch.Tensor):
            if data.ndim == 0:
                raise ValueError('`data` is a 0-d tensor; samples run along '
                                 'its first axis')
            _no_meta(data)
            self.kind, self.data, self.n = 'tensor', data, len(data)
        elif isinstance(data, tuple):
            parts = tuple(torch.from_numpy(d) if isinstance(d, np.ndarray)
                          else d for d in data)
            if not parts or not all(isinstance(p, torch.Tensor) and p.ndim
                                    for p in parts):
                raise TypeError(
                    'a tuple `data` must hold tensors (or arrays) that share '
                    'their first axis, got ' + repr(tuple(
                        type(p).__name__ for p in parts)))
            for p in parts:
                _no_meta(p)
            lengths = {len(p) for p in parts}
            if len(lengths) != 1:
                raise ValueError('the tensors of tuple `data` differ in length'
                                 f': {[len(p) for p in parts]}')
            self.kind, self.data, self.n = 'tuple', parts, lengths.pop()
        elif isinstance(data, torch.utils.data.IterableDataset):
            raise TypeError('`data` is an IterableDataset; train needs index '
                            'access (a map-style Dataset) to shuffle from a '
                            'seed and to resume mid-epoch')
        elif hasattr(data, '__getitem__') and hasattr(data, '__len__'):
            self.kind, self.data, self.n = 'dataset', data, len(data)
        else:
            raise TypeError('`data` must be a torch.Tensor, a tuple of '
                            'tensors or a map-style Dataset (__getitem__ and '
                            f'__len__), got {type(data).__name__}')

    def batch(self, idx):
        if self.kind == 'tensor':
            return self.data[idx]
        if self.kind == 'tuple':
            return tuple(p[idx] for p in self.data)
        return torch.utils.data.default_collate(
            [self.data[i] for i in idx.tolist()])


def _no_meta(t):
    if t.is_meta:
        raise ValueError(f'`data` holds a tensor of shape {tuple(t.shape)} on '
                         'the meta device (no values)')


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # namedtuple
        return type(obj)(*(_to_device(o, device) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


# --- the loop ----------------------------------------------------------------

@dataclass
class TrainResult:
    """What `train` returns.

    Attributes
    ----------
    step : int
        Optimization steps done in total (over all calls, resumed included).
    epoch : int
        Epochs completed.
    resumed_from : int
        Step of the checkpoint this call started from (0: a fresh run).
    losses : dict
        The last logged losses (averaged over steps and processes).
    val_history : list of (int, float or dict)
        ``(step, val_metric value)``, the whole run.
    history : list of dict
        The rows this call logged (as in ``metrics.csv``).
    out_dir : Path or None
    data_parallel : str
        How gradients were shared: ``'none'`` (one process),
        ``'DistributedDataParallel'`` or ``'averaged'`` (see `train`).

    Examples
    --------
    >>> r = train(torch.nn.Linear(2, 1), lambda m, x: m(x).pow(2).mean(),
    ...           torch.randn(8, 2), out_dir=None, batch_size=4, epochs=3,
    ...           progress=False)
    >>> r.step, r.epoch, r.resumed_from
    (6, 3, 0)
    """

    step: int
    epoch: int
    resumed_from: int
    losses: dict = field(default_factory=dict)
    val_history: list = field(default_factory=list)
    history: list = field(default_factory=list)
    out_dir: Path = None
    data_parallel: str = 'none'


def _models_dict(model):
    if isinstance(model, dict):
        return model
    return {'model': model} if isinstance(model, torch.nn.Module) else None


def _length(obj):
    if isinstance(obj, tuple) and obj and isinstance(obj[0], torch.Tensor):
        obj = obj[0]  # paired tensors, as for `data`
    try:
        return len(obj)
    except TypeError:
        return None


def _describe_optimizer(opt):
    return {'class': type(opt).__name__,
            'defaults': _plain({k: v for k, v in opt.defaults.items()
                                if k not in ('params',)})}


def _per_model(value, names, what):
    """``value`` for each model name: a dict keyed by name, or shared."""
    if isinstance(value, dict):
        if set(value) != set(names):
            raise ValueError(f'`{what}` has keys {sorted(value)} but the '
                             f'models are {sorted(names)}')
        return value
    return {n: value for n in names}


#: what every checkpoint of `train` holds
_CHECKPOINT_KEYS = ('format', 'step', 'models', 'optimizers', 'schedulers',
                    'extra', 'rng', 'val_history', 'elapsed')


def _check_checkpoint(ckpt, path):
    """A checkpoint with every entry `train` writes, or a clear refusal."""
    if not isinstance(ckpt, dict):
        raise UnreadableFileError(f'{path} holds a {type(ckpt).__name__}, not '
                                  'a checkpoint of train')
    missing = [k for k in _CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise UnreadableFileError(
            f'{path} lacks {", ".join(missing)}: not a checkpoint of train, '
            'or a damaged one; move it away to start the run afresh')


def _check_device(device):
    """A device that holds values: the CPU or a GPU."""
    if device.type not in ('cpu', 'cuda', 'mps', 'xpu'):
        raise ValueError(f'device {device} holds no values to train on; use '
                         "'cpu' or 'cuda'")


def _session(world, device, from_step):
    """Who trains now: CPU model, threads, processes, device, start step."""
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name')), cpu)
    except OSError:
        pass
    if torch.device(device).type == 'cuda':
        cpu += ' + ' + torch.cuda.get_device_name(torch.device(device))
    return {'machine': cpu, 'threads': torch.get_num_threads(),
            'processes': world, 'device': str(device),
            'from_step': int(from_step), 'to_step': int(from_step),
            'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'versions': _versions()}


def _versions():
    """The package (and its git commit, in a checkout) and the libraries
    whose versions decide a run's numbers."""
    from importlib import metadata
    out = {}
    for name in ('odl-genprior', 'torch', 'odl', 'astra-toolbox', 'numpy'):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    root = Path(__file__).resolve().parents[2]
    if (root / '.git').exists():
        import subprocess
        try:
            commit = subprocess.run(
                ['git', '-C', str(root), 'rev-parse', 'HEAD'],
                capture_output=True, text=True, timeout=5).stdout.strip()
            dirty = subprocess.run(
                ['git', '-C', str(root), 'status', '--porcelain',
                 '--untracked-files=no'], capture_output=True, text=True,
                timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit, dirty = '', ''
        if commit:
            out['commit'] = commit + ('+changes' if dirty else '')
    return out


def _compared(config, key):
    """A config entry as resume compares it: the user config without its
    ``provenance`` (facts about where and how a run was made, which may be
    added to a run in flight)."""
    v = config.get(key)
    if key == 'user' and isinstance(v, dict):
        v = {k: x for k, x in v.items() if k != 'provenance'}
    return v


def _config_diff(old, new):
    return [f'{k}: {_compared(old, k)!r} (saved) != {_compared(new, k)!r} '
            '(now)' for k in _RUN_KEYS
            if _compared(old, k) != _compared(new, k)]


def _losses_of(out, step_fn):
    """Loss dict (floats) from what loss_fn or step_fn returned."""
    who = 'step_fn' if step_fn else 'loss_fn'
    if out is None and step_fn:
        return {}
    items = out.items() if isinstance(out, dict) else [('loss', out)]
    losses = {}
    for k, v in items:
        if k in ('step', 'epoch', 'time', 'val') or str(k).startswith('val_'):
            raise ValueError(f'{who} returned the key {k!r}, a name '
                             'metrics.csv uses itself; rename it')
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise ValueError(f'{who} returned {k!r} of shape '
                                 f'{tuple(v.shape)}; expected a scalar')
            v = v.item()
        try:
            losses[str(k)] = float(v)
        except (TypeError, ValueError):
            raise TypeError(f'{who} returned {k!r} = {v!r}; expected a '
                            'number') from None
    return losses


def train(model, loss_fn, data, *, out_dir, epochs=1, batch_size=32,
          steps=None, lr=None, optimizer=None, scheduler=None,
          step_fn=None, seed=0,
          shuffle=True, val_data=None, val_metric=None, val_every=None,
          log_every=1, checkpoint_every=None, clip_grad_norm=None,
          extra_state=None, callback=None, config=None, resume=True,
          progress=True, device='cpu', distributed=None, autocast=None,
          data_parallel='auto'):
    """Train ``model`` on ``data``: seeded, logged, checkpointed, resumable.

    Each step takes ``batch_size`` samples (the epoch's permutation, drawn
    from ``(seed, epoch)``; the incomplete batch at the end of an epoch is
    left out) and either

    * calls ``loss = loss_fn(model, batch)``, backpropagates, averages the
      gradients over processes, clips them (``clip_grad_norm``) and steps
      every optimizer; or
    * calls ``step_fn(model, optimizer, batch, step)``, which does its own
      backward passes and optimizer steps (GANs: a critic step every step
      and a generator step every 5th). Gradients are averaged over
      processes inside every ``optimizer.step()`` call (a step pre-hook),
      so a ``step_fn`` needs no distributed code.

    Then every scheduler steps (schedules count steps, not epochs).

    Parameters
    ----------
    model : torch.nn.Module or dict of str to torch.nn.Module
        Moved to ``device`` and put in train mode. Give a dict for several
        networks (``{'G': generator, 'D': critic}``); ``loss_fn``,
        ``step_fn`` and ``val_metric`` then receive the dict.
    loss_fn : callable or None
        ``loss_fn(model, batch)`` returns a scalar tensor to minimize, or a
        dict of scalars with the minimized one under ``'loss'`` (others,
        e.g. a VAE's ``'kl'``, are only logged). ``None`` with ``step_fn``.
    data : torch.Tensor, tuple of torch.Tensor, or Dataset
        Samples along the first axis. A tensor gives batches
        ``data[idx]``, a tuple of tensors (e.g. ``(sinograms, images)``)
        tuples of batches, a map-style Dataset
        ``default_collate([data[i] for i in idx])``. Batches are moved to
        ``device``.
    out_dir : str, Path or None
        Directory for ``config.json``, ``metrics.csv``, ``checkpoint.pt``
        and ``weights.pt`` (created; other files in it are never touched).
        ``None``: no files, no checkpoints, no resume.
    epochs : int, optional
        Passes over ``data``. May be raised to continue a finished run.
    batch_size : int, optional
        Samples per step over all processes (divisible by their number).
    steps : int, optional
        Stop after this many steps in all, mid-epoch if need be (a budget
        of steps, not passes); ``epochs`` is then ignored. May be raised to
        continue a finished run.
    lr : float, optional
        Learning rate of the default optimizer, ``torch.optim.Adam``
        (default ``1e-3``). Give ``lr`` or ``optimizer``, not both.
    optimizer : callable or dict of callables, optional
        ``optimizer(params) -> torch.optim.Optimizer``, e.g.
        ``functools.partial(torch.optim.SGD, lr=0.1)``; one per model if a
        dict. ``step_fn`` receives the optimizer(s), shaped like ``model``.
    scheduler : callable or dict of callables, optional
        ``scheduler(optimizer) -> LRScheduler``, stepped after every step.
    step_fn : callable, optional
        ``step_fn(model, optimizer, batch, step)`` performs one step and
        returns a number or a dict of numbers to log. Replaces ``loss_fn``.
    seed : int, optional
        Seeds the data order and, at the start of a fresh run, the torch,
        NumPy and Python RNGs (per process). Seed the model's
        initialization yourself (`seed_all`).
    shuffle : bool, optional
        Draw a new sample order each epoch (else the data order).
    val_data : object, optional
        Passed unchanged to ``val_metric``.
    val_metric : callable, optional
        ``val_metric(model, val_data)`` returns a number or a dict of
        numbers; called in eval mode under ``torch.no_grad()`` on process 0,
        every ``val_every`` steps (default: each epoch end) and at the end.
    log_every : int, optional
        Steps per row of ``metrics.csv`` (validation steps always log).
    checkpoint_every : int, optional
        Steps between checkpoints (default: one per epoch); the last step
        always writes one.
    clip_grad_norm : float, optional
        Clip the global gradient norm (``loss_fn`` only).
    extra_state : dict of str to object, optional
        Further state to checkpoint and restore, each object with
        ``state_dict()`` and ``load_state_dict()`` (an EMA copy of the
        model, a GradScaler) holding only tensors and plain Python values.
    callback : callable, optional
        ``callback(info)`` after each step, before that step's checkpoint
        (so random numbers it draws are part of the saved state); ``info``
        is a dict with ``step``, ``epoch``, ``losses``, ``val`` (None if not
        computed), ``model``, ``optimizer`` and ``rank``.
    config : dict, optional
        JSON-able hyperparameters of your own (network sizes, the command
        line) written to ``config.json`` and compared on resume.
    resume : bool, optional
        Continue the run in ``out_dir`` if there is one (its configuration
        must match). ``False``: refuse to use an ``out_dir`` holding a run.
    progress : bool, optional
        Show a tqdm bar (process 0 only).
    device : str or torch.device, optional
        ``'cuda'`` under torchrun means ``cuda:LOCAL_RANK``.
    distributed : bool, optional
        Default: data-parallel when a process group is initialized or
        ``WORLD_SIZE > 1`` (torchrun). ``False`` forces a single process;
        ``True`` raises unless launched distributed. A process group `train`
        initializes stays initialized (later calls reuse it; re-creating
        one under torchrun can hang): call
        ``torch.distributed.destroy_process_group()`` at the end.
    data_parallel : {'auto', 'average'}, optional
        How processes share gradients. ``'auto'``: a single model trained
        with ``loss_fn`` is wrapped in
        ``torch.nn.parallel.DistributedDataParallel`` (gradients
        all-reduced in buckets while the backward pass runs) and
        ``loss_fn`` gets a view of it whose call runs the wrapper (its other
        attributes are the model's); a step whose ``loss_fn`` never calls
        the model (only its methods, e.g. ``model.loss(batch)``), a dict of
        models and ``step_fn`` average the gradients inside
        ``optimizer.step()`` instead. ``'average'``: always the latter (for
        a ``loss_fn`` that calls the model twice or leaves parameters
        unused, which the wrapper refuses).
    autocast : {None, 'bfloat16'}, optional
        Run ``loss_fn`` under ``torch.autocast`` in this precision
        (convolutions in bfloat16, weights, optimizer and accumulations in
        float32; validation stays in float32). On CPUs with AVX-512 BF16 a
        learned primal-dual step at 128x128 takes about 0.6x the time
        (``benchmarks/train_step.py``). May differ when a run resumes.

    Returns
    -------
    result : TrainResult
        ``model`` itself holds the trained weights.

    Raises
    ------
    FileExistsError
        ``out_dir`` holds a run and ``resume=False``.
    ValueError
        ``out_dir`` holds a run with another configuration; bad sizes.
    FloatingPointError
        A loss became NaN or infinite (the last checkpoint stays intact).

    Examples
    --------
    Linear regression; the files of the run:

    >>> import os, tempfile
    >>> seed_all(0)
    >>> net = torch.nn.Linear(3, 1)
    >>> x = torch.randn(64, 3)
    >>> y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    >>> def mse(model, batch):
    ...     xb, yb = batch
    ...     return torch.nn.functional.mse_loss(model(xb), yb)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     r = train(net, mse, (x, y), out_dir=d, epochs=20, batch_size=16,
    ...               lr=0.05, progress=False)
    ...     sorted(os.listdir(d))
    ['checkpoint.pt', 'config.json', 'metrics.csv', 'weights.pt']
    >>> r.step, r.losses['loss'] < 1e-2
    (80, True)
    """
    # -- arguments --
    models = _models_dict(model)
    if models is None or not models or not all(
            isinstance(m, torch.nn.Module) for m in models.values()):
        raise TypeError('`model` must be a torch.nn.Module or a non-empty '
                        'dict of them, got ' + type(model).__name__)
    if (loss_fn is None) == (step_fn is None):
        raise ValueError('give exactly one of `loss_fn` (the loop does '
                         'backward and optimizer steps) and `step_fn` (you '
                         'do them)')
    if lr is not None and optimizer is not None:
        raise ValueError('give `lr` (for the default Adam) or `optimizer`, '
                         'not both')
    if clip_grad_norm is not None and step_fn is not None:
        raise ValueError('`clip_grad_norm` applies to `loss_fn` only; clip in '
                         'your `step_fn`')
    if val_metric is None and val_every is not None:
        raise ValueError('`val_every` given without `val_metric`')
    for name, value in (('epochs', epochs), ('batch_size', batch_size),
                        ('steps', steps),
                        ('log_every', log_every),
                        ('checkpoint_every', checkpoint_every),
                        ('val_every', val_every)):
        if value is None and name in ('checkpoint_every', 'val_every',
                                      'steps'):
            continue
        if isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < 1:
            raise ValueError(f'`{name}` must be a positive int, got {value!r}')
    seed = _check_seed(seed)
    if data_parallel not in DATA_PARALLEL:
        raise ValueError(f'data_parallel must be one of {DATA_PARALLEL}, got '
                         f'{data_parallel!r}')
    device = torch.device(device)
    _check_device(device)
    for name, m in models.items():
        meta = [n for n, p in m.named_parameters() if p.is_meta]
        if meta:
            raise ValueError(f'model {name!r} has parameters on the meta '
                             f'device (no values), e.g. {meta[0]!r}: '
                             'materialise it first (to_empty and init)')
    train_data = _Data(data)
    if batch_size > train_data.n:
        raise ValueError(f'batch_size {batch_size} is larger than the '
                         f'{train_data.n} training samples')
    names = list(models)
    ddp = _Dist(device, distributed)
    # One trainer per run folder: a second process stops here, by name.
    lock = (RunLock(out_dir) if out_dir is not None and ddp.rank == 0
            else contextlib.nullcontext())
    with lock:
        return _train(**locals())


def _train(**options):
    """One call of `train`, in named pieces (`_Run`)."""
    return _Run(**options).run()


class _CallThrough:
    """The model as ``loss_fn`` sees it under DistributedDataParallel:
    calling it runs the wrapper (counted in ``calls``); every other
    attribute, ``isinstance`` included, is the model's."""

    def __init__(self, model, wrapper):
        object.__setattr__(self, '_model', model)
        object.__setattr__(self, '_wrapper', wrapper)
        object.__setattr__(self, 'calls', 0)

    def __call__(self, *args, **kwargs):
        object.__setattr__(self, 'calls', self.calls + 1)
        try:
            return self._wrapper(*args, **kwargs)
        except RuntimeError as err:
            # DDP names unused parameters of the last step only here
            if 'reduction' not in str(err):
                raise
            raise RuntimeError(
                f"{err}\nDistributedDataParallel: pass data_parallel="
                "'average' to train for a loss_fn that leaves parameters "
                'unused') from err

    def __getattr__(self, name):
        return getattr(self._model, name)

    # looked up on the type, not through __getattr__
    def __getitem__(self, key):
        return self._model[key]

    def __len__(self):
        return len(self._model)

    def __iter__(self):
        return iter(self._model)

    def __setattr__(self, name, value):
        if name == 'calls':
            object.__setattr__(self, name, value)
        else:
            setattr(self._model, name, value)

    @property
    def __class__(self):
        return type(self._model)


class _Run:
    """The state of one `train` call and its pieces: the run folder, the
    restore, one optimisation step, the evaluation, the checkpoint, the log
    row and the loop that calls them."""

    def __init__(self, *, models, model, loss_fn, train_data, out_dir,
                 epochs, steps, batch_size, lr, optimizer, scheduler, step_fn,
                 seed,
                 shuffle, val_data, val_metric, val_every, log_every,
                 checkpoint_every, clip_grad_norm, extra_state, callback,
                 config, resume, progress, names, ddp, autocast,
                 data_parallel, **_):
        self.rank, self.world, self.device = ddp.rank, ddp.world, ddp.device
        if autocast not in AUTOCAST:
            raise ValueError(f'autocast must be one of {AUTOCAST}, got '
                             f'{autocast!r}')
        if batch_size % self.world:
            raise ValueError(f'batch_size {batch_size} does not split over '
                             f'{self.world} processes')
        self.models, self.model, self.names, self.ddp = (models, model,
                                                         names, ddp)
        self.loss_fn, self.step_fn, self.callback = loss_fn, step_fn, callback
        self.train_data, self.val_data = train_data, val_data
        self.val_metric, self.seed, self.shuffle = val_metric, seed, shuffle
        self.epochs, self.batch_size = epochs, batch_size
        self.local = batch_size // self.world
        self.steps_per_epoch = train_data.n // batch_size
        self.total = (epochs * self.steps_per_epoch if steps is None
                      else int(steps))
        if steps is not None:  # the passes the budget takes, last one cut
            self.epochs = epochs = -(-self.total // self.steps_per_epoch)
        self.checkpoint_every = checkpoint_every or self.steps_per_epoch
        self.val_every = val_every or self.steps_per_epoch
        self.log_every, self.clip_grad_norm = log_every, clip_grad_norm
        self.autocast, self.progress, self.resume = autocast, progress, resume
        self.extra_state = dict(extra_state or {})
        for k, obj in self.extra_state.items():
            if not (hasattr(obj, 'state_dict')
                    and hasattr(obj, 'load_state_dict')):
                raise TypeError(f'extra_state[{k!r}] has no state_dict / '
                                'load_state_dict')
        for m in models.values():
            m.to(self.device)
            m.train()
        # loss_fn sees the model, or under DDP a view that calls the wrapper
        self.loss_model = model
        self.wrapper = None
        if (self.world > 1 and loss_fn is not None and len(models) == 1
                and not isinstance(model, dict) and data_parallel == 'auto'):
            self.wrapper = ddp.data_parallel(model)
            self.loss_model = _CallThrough(model, self.wrapper)
        self.opts = self._optimizers(optimizer, lr)
        self.params = [p for o in self.opts.values() for g in o.param_groups
                       for p in g['params']]  # for clip_grad_norm
        self.scheds = {n: make(self.opts[n]) for n, make in _per_model(
            scheduler, names, 'scheduler').items() if make is not None}
        self.out = None if out_dir is None else Path(out_dir)
        self.config = self._run_config(config)
        self.checked = False  # the first checkpoint is read back once
        self.by_ddp = False  # some step's gradients were reduced by DDP
        # set by restore()
        self.start, self.val_history, self.elapsed0 = 0, [], 0.0
        self.log = None

    # -- setup --
    def _optimizers(self, optimizer, lr):
        factories = _per_model(optimizer, self.names, 'optimizer')
        opts = {}
        for n in self.names:
            params = [p for p in self.models[n].parameters()
                      if p.requires_grad]
            if not params:
                raise ValueError(f'model {n!r} has no trainable parameters')
            make = factories[n] or (lambda ps: torch.optim.Adam(
                ps, lr=1e-3 if lr is None else lr))
            opts[n] = make(params)
            if not isinstance(opts[n], torch.optim.Optimizer):
                raise TypeError(f'the optimizer factory for {n!r} returned '
                                f'{type(opts[n]).__name__}, not an Optimizer')
        return opts

    def _run_config(self, user):
        return _plain({
            'format': _FORMAT,
            'mode': 'step_fn' if self.step_fn else 'loss_fn',
            'seed': self.seed, 'batch_size': self.batch_size,
            'shuffle': bool(self.shuffle), 'epochs': self.epochs,
            'steps': self.total,
            'steps_per_epoch': self.steps_per_epoch,
            'n_train': self.train_data.n, 'n_val': _length(self.val_data),
            'val_every': self.val_every if self.val_metric else None,
            'clip_grad_norm': self.clip_grad_norm,
            'log_every': self.log_every,
            'checkpoint_every': self.checkpoint_every,
            'world_size': self.world, 'autocast': self.autocast,
            'models': {n: {'class': type(m).__name__,
                           'parameters': sum(p.numel()
                                             for p in m.parameters())}
                       for n, m in self.models.items()},
            'optimizers': {n: _describe_optimizer(o)
                           for n, o in self.opts.items()},
            'schedulers': {n: type(s).__name__
                           for n, s in self.scheds.items()},
            'extra_state': sorted(self.extra_state), 'user': user or {},
            'argv': sys.argv, 'torch': torch.__version__,
        })

    # -- the run folder: fresh run, resume, or refuse --
    def open_folder(self):
        """Check ``out_dir`` against this run; return its checkpoint (None
        for a fresh run) and write ``config.json``."""
        out, ckpt = self.out, None
        if out is None:
            return None
        cfg_path = out / CONFIG
        ours = [f for f in (METRICS, CHECKPOINT, WEIGHTS)
                if (out / f).exists()]
        if ours and not cfg_path.exists():
            raise FileExistsError(
                f'{out} holds {", ".join(ours)} but no {CONFIG}: not a run of '
                'train (or its config was deleted); not overwriting. Choose '
                'another out_dir')
        if cfg_path.exists():
            old = _read_config_file(cfg_path)
            if not self.resume:
                raise FileExistsError(
                    f'{out} already holds a training run ({CONFIG}); pass '
                    'resume=True to continue it, or choose another out_dir')
            diff = _config_diff(old, self.config)
            if diff:
                raise ValueError(
                    f'{out} holds a run with another configuration; not '
                    'resuming or overwriting it. Choose another out_dir (or '
                    'delete this one). Differences: ' + '; '.join(diff))
            if (out / CHECKPOINT).exists():
                ckpt = _load(out / CHECKPOINT)
                _check_checkpoint(ckpt, out / CHECKPOINT)
                if ckpt['step'] > self.total:
                    raise ValueError(
                        f'the checkpoint in {out} is at step {ckpt["step"]}, '
                        f'past the {self.total} steps of epochs={self.epochs}')
        self.ddp.barrier()  # every process has read the old files
        if self.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            for f in (CONFIG, METRICS, CHECKPOINT, WEIGHTS):
                for tmp in out.glob(TMP_PREFIX(f) + '*'):  # left by a killed run
                    tmp.unlink()
            old_cfg = (_read_config_file(cfg_path) if cfg_path.exists()
                       else {})
            previous = old_cfg.get('sessions', [])
            for key in ('steps_done', 'wall_seconds'):  # until a checkpoint
                if key in old_cfg:
                    self.config[key] = old_cfg[key]
            missing = [s for s in previous if 'wall_seconds' not in s]
            if ckpt is not None and len(missing) == 1:
                # a session of a version that kept only the total time
                known = sum(s.get('wall_seconds', 0.0) for s in previous)
                missing[0]['wall_seconds'] = round(
                    max(0.0, ckpt['elapsed'] - known), 1)
            # A finished run opened with the same budget runs no step: no
            # session for it (a study that re-runs its list would pile
            # them up).
            idle = ckpt is not None and ckpt['step'] >= self.total
            self.config['sessions'] = previous + ([] if idle else [_session(
                self.world, self.device,
                0 if ckpt is None else ckpt['step'])])
            _write_json(out / CONFIG, self.config)
        return ckpt

    def record_session(self, step, elapsed):
        """This call's steps and the run's wall time in ``config.json``
        (where the run went, machine by machine, across sessions)."""
        if self.out is None or self.rank != 0:
            return
        self.config['sessions'][-1].update(
            to_step=step, wall_seconds=round(elapsed - self.elapsed0, 1))
        self.config.update(steps_done=step, wall_seconds=round(elapsed, 1))
        _write_json(self.out / CONFIG, self.config)

    # -- state: fresh or from the checkpoint --
    def restore(self, ckpt):
        if ckpt is None:
            seed_all(_derive_seed(self.seed, self.rank))
            for m in self.models.values():
                self.ddp.broadcast_module(m)  # all start from rank 0's
        else:
            self.start, self.val_history = ckpt['step'], ckpt['val_history']
            self.elapsed0 = ckpt['elapsed']
            for n in self.names:
                self.models[n].load_state_dict(ckpt['models'][n])
                self.opts[n].load_state_dict(ckpt['optimizers'][n])
            for n, s in self.scheds.items():
                s.load_state_dict(ckpt['schedulers'][n])
            for k, obj in self.extra_state.items():
                obj.load_state_dict(ckpt['extra'][k])
            if len(ckpt['rng']) == self.world:
                _set_rng_state(ckpt['rng'][self.rank], self.device)
            else:
                warnings.warn(
                    f'the checkpoint was written by {len(ckpt["rng"])} '
                    f'processes, this run has {self.world}: random states '
                    'are reseeded, so the run is not bit-identical to an '
                    'uninterrupted one')
                seed_all(_derive_seed(self.seed, self.rank, self.start))
        self.log = _MetricsLog(None if self.out is None
                               else self.out / METRICS, self.rank)
        self.log.start(self.start, None if ckpt is None
                       else ckpt.get('metrics'))

    # -- gradients averaged over processes --
    def sync_gradients(self):
        """Average gradients inside every optimizer.step(), once per step
        call, whoever calls it (this loop or a user's step_fn); returns
        the hooks to remove."""
        self.synced, hooks = set(), []
        if self.world > 1:
            def pre_hook(opt, args, kwargs):
                if id(opt) not in self.synced:
                    self.ddp.sync_grads(p for g in opt.param_groups
                                        for p in g['params'])
                self.synced.discard(id(opt))

            for o in self.opts.values():
                hooks.append(o.register_step_pre_hook(pre_hook))
        return hooks

    # -- one optimisation step with loss_fn --
    def step(self, batch):
        opts = self.opts.values()
        for o in opts:
            o.zero_grad(set_to_none=True)
        if self.wrapper is not None:
            self.loss_model.calls = 0
        with torch.autocast(torch.device(self.device).type,
                            dtype=getattr(torch, self.autocast or 'float32'),
                            enabled=self.autocast is not None):
            out_ = self.loss_fn(self.loss_model, batch)
        loss = out_['loss'] if isinstance(out_, dict) else out_
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError('loss_fn must return a scalar tensor (or a dict '
                            "with one under 'loss'), got "
                            f'{type(loss).__name__}')
        # DDP reduces during backward only if loss_fn called the wrapper
        by_ddp = self.wrapper is not None and self.loss_model.calls > 0
        try:
            loss.backward()
        except RuntimeError as err:
            if not by_ddp:
                raise
            raise RuntimeError(
                f'DistributedDataParallel could not reduce the gradients '
                f'({err}); if loss_fn calls the model more than once or '
                "leaves parameters unused, pass data_parallel='average' to "
                'train') from err
        if self.world > 1:
            for o in opts:
                if not by_ddp:
                    self.ddp.sync_grads(p for g in o.param_groups
                                        for p in g['params'])
                self.synced.add(id(o))
        self.by_ddp = self.by_ddp or by_ddp
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm)
        for o in opts:
            o.step()
        return out_

    # -- validation --
    def evaluate(self):
        modes = {n: m.training for n, m in self.models.items()}
        for m in self.models.values():
            m.eval()
        try:
            with torch.no_grad():
                value = self.val_metric(self.model, self.val_data)
        finally:
            for n, m in self.models.items():
                m.train(modes[n])
        if isinstance(value, dict):
            return {str(k): float(v) for k, v in value.items()}
        return float(value)

    # -- checkpoint --
    def checkpoint(self, step, elapsed):
        if self.out is None:
            return
        rng = self.ddp.gather(_rng_state(self.device))  # every process's
        if self.rank != 0:
            return
        state = {
            'format': _FORMAT, 'step': step,
            'epoch': step // self.steps_per_epoch, 'world_size': self.world,
            'models': {n: m.state_dict() for n, m in self.models.items()},
            'optimizers': {n: o.state_dict() for n, o in self.opts.items()},
            'schedulers': {n: s.state_dict()
                           for n, s in self.scheds.items()},
            'extra': {k: o.state_dict()
                      for k, o in self.extra_state.items()},
            'rng': rng, 'val_history': self.val_history, 'elapsed': elapsed,
            'metrics': self.log.rows,
        }
        path = self.out / CHECKPOINT
        atomic_write(path, lambda f: torch.save(state, f))
        self.record_session(step, elapsed)
        if not self.checked:  # fail now, not when resuming
            try:
                _load(path)
            except Exception as e:
                raise TypeError(
                    'the checkpoint does not load with weights_only=True '
                    '(does extra_state or a scheduler hold non-tensor '
                    f'objects?): {e}') from e
            self.checked = True

    def write_weights(self, step):
        """``weights.pt`` once more only if training advanced (or it is
        missing); the loop always checkpoints its last step."""
        out = self.out
        if out is None or self.rank != 0 or not (
                step > self.start or not (out / WEIGHTS).exists()):
            return
        weights = (self.models['model'].state_dict()
                   if isinstance(self.model, torch.nn.Module) else
                   {n: m.state_dict() for n, m in self.models.items()})
        atomic_write(out / WEIGHTS, lambda f: torch.save(weights, f))

    # -- the log row of a step --
    def log_row(self, step, elapsed):
        row = {'step': step, 'epoch': (step - 1) // self.steps_per_epoch,
               'time': round(elapsed, 3)}
        self.last_losses = {k: sum(v) / len(v)
                            for k, v in self.pending.items()}
        row.update(self.last_losses)
        self.pending = {}
        if self.rank == 0 and self.val_history and (
                self.val_history[-1][0] == step):
            v = self.val_history[-1][1]
            row.update({'val_' + k: x for k, x in v.items()}
                       if isinstance(v, dict) else {'val': v})
        self.history.append(row)
        self.log.append(row)

    def _losses(self, step, last_saved, losses):
        """Mean over processes; a non-finite loss stops the run."""
        keys = sorted(losses)
        losses = dict(zip(keys, self.ddp.mean([losses[k] for k in keys])))
        for k, v in losses.items():
            if not math.isfinite(v):
                raise FloatingPointError(
                    f'{k} = {v} at step {step}; the checkpoint of step '
                    f'{last_saved} is intact')
            self.pending.setdefault(k, []).append(v)
        return losses

    # -- the loop --
    def run(self):
        self.restore(self.open_folder())
        start, total, rank = self.start, self.total, self.rank
        spe, bs = self.steps_per_epoch, self.batch_size
        opt_arg = (self.opts if isinstance(self.model, dict)
                   else self.opts['model'])
        hooks = self.sync_gradients()
        bar = tqdm(total=total, initial=start,
                   disable=not self.progress or rank != 0, desc='train',
                   unit='step', dynamic_ncols=True)
        t0 = time.perf_counter()
        self.history, self.pending, self.last_losses = [], {}, {}
        last_saved = step = start
        try:
            while step < total:
                epoch = step // spe
                order = _epoch_order(self.seed, epoch, self.train_data.n,
                                     self.shuffle)
                for i in range(step % spe, spe):
                    idx = order[i * bs:(i + 1) * bs]
                    idx = idx[rank * self.local:(rank + 1) * self.local]
                    batch = _to_device(self.train_data.batch(idx),
                                       self.device)
                    if self.step_fn is None:
                        losses = _losses_of(self.step(batch), False)
                    else:
                        losses = _losses_of(self.step_fn(
                            self.model, opt_arg, batch, step), True)
                    self.synced.clear()
                    for s in self.scheds.values():
                        s.step()
                    for m in self.models.values():
                        self.ddp.broadcast_module(m, buffers_only=True)
                    step += 1
                    losses = self._losses(step, last_saved, losses)
                    val = None
                    if self.val_metric is not None and (
                            step % self.val_every == 0 or step == total):
                        val = self.evaluate() if rank == 0 else None
                        self.val_history.append((step, val))
                    elapsed = self.elapsed0 + time.perf_counter() - t0
                    if step % self.log_every == 0 or step == total or (
                            self.val_metric is not None and self.val_history
                            and self.val_history[-1][0] == step):
                        self.log_row(step, elapsed)
                    if self.progress and rank == 0:
                        post = {k: f'{v:.4g}' for k, v in losses.items()}
                        if val is not None:
                            post['val'] = (f'{val:.4g}' if not isinstance(
                                val, dict) else str(val))
                        bar.set_postfix(post, refresh=False)
                        bar.update(1)
                    if self.callback is not None:
                        self.callback({'step': step, 'epoch': epoch,
                                       'losses': losses, 'val': val,
                                       'model': self.model,
                                       'optimizer': opt_arg, 'rank': rank})
                    if step % self.checkpoint_every == 0 or step == total:
                        self.checkpoint(step, elapsed)
                        last_saved = step
                    if step >= total:  # a budget of steps ends mid-epoch
                        break
            self.write_weights(step)
            self.ddp.barrier()  # the files exist when any process returns
        finally:
            bar.close()
            for h in hooks:
                h.remove()
        return self._result(step)

    def _result(self, step):
        out, last_losses = self.out, self.last_losses
        if not last_losses and self.history == [] and self.start:
            rows = read_metrics(out) if out is not None and (
                out / METRICS).exists() else []
            last_losses = {k: v for k, v in (rows[-1] if rows else {}).items()
                           if k not in ('step', 'epoch', 'time')
                           and k != 'val' and not k.startswith('val_')}
        val_history = self.val_history
        # Process 0 alone validated; share its history so all return it.
        if self.world > 1 and self.val_metric is not None:
            val_history = self.ddp.gather(val_history)[0]
        shared = ('none' if self.world == 1 else 'DistributedDataParallel'
                  if self.by_ddp else 'averaged')
        return TrainResult(step=step, epoch=step // self.steps_per_epoch,
                           resumed_from=self.start, losses=last_losses,
                           val_history=[tuple(v) for v in val_history],
                           history=self.history, out_dir=out,
                           data_parallel=shared)
