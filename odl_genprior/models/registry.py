"""The model registry: every trainable family once, one way to load.

A `Family` says how its models are built from a config, trained into a
run folder (``fit(config, out_dir, **options)``), reloaded from one, how
its ``config.json`` is recognised and where its shipped models lie. The
families register themselves when `odl_genprior.models` is imported.
Every shipped model is one run folder (``config.json``, ``weights.pt``,
``metrics.csv``; never a ``checkpoint.pt``); `pretrained` loads any of them
by name, whatever its family, and `ship` puts a finished run among them.
(The unrolled networks ship under `PRETRAINED_ROOT`; the generators' and
the limited-angle networks' folders move there next, issue 26.)
"""
import dataclasses
from pathlib import Path
from typing import Callable

from odl_genprior.training import complete_runs, export_run
from odl_genprior.training.runs import CONFIG, _read_config_file

__all__ = ('Family', 'FAMILIES', 'PRETRAINED_ROOT', 'FIT_OPTIONS',
           'register', 'family_of', 'list_pretrained', 'pretrained', 'load',
           'ship')

#: The one folder of shipped models (one run folder each).
PRETRAINED_ROOT = Path(__file__).resolve().parent / 'pretrained'
#: name -> `Family`, filled by `register`.
FAMILIES = {}
#: The options every family's ``fit(config, out_dir, **options)`` takes,
#: with one meaning (those of `odl_genprior.training.train`: a budget in
#: ``epochs`` or ``steps``, Adam's ``lr``, checkpoints, resume, device);
#: a family may take more (data folders, warm-up, autocast).
FIT_OPTIONS = ('n_train', 'n_val', 'epochs', 'steps', 'batch_size', 'lr',
               'seed', 'progress', 'resume', 'command', 'checkpoint_every',
               'log_every', 'device')


@dataclasses.dataclass(frozen=True)
class Family:
    """One trainable family.

    Parameters
    ----------
    name : str
        The registry key (``'unrolled'``, ``'generator'``, ...).
    build : callable
        ``build(config)``: the untrained model.
    fit : callable
        ``fit(config, out_dir, **options)``: the trained model (and its run
        folder).
    load : callable
        ``load(run_dir, device)``: the model of a run folder (eval mode).
    recognizes : callable
        ``recognizes(user)``: whether this family wrote a ``config.json``
        whose ``user`` part is ``user``.
    shipped : pathlib.Path, optional
        The folder of its shipped models (`PRETRAINED_ROOT`).
    commands : dict, optional
        The ``odl-genprior train KIND`` kinds that train it, each with its
        ``--help`` line (none: another kind's options reach it).
    """
    name: str
    build: Callable
    fit: Callable
    load: Callable
    recognizes: Callable
    shipped: Path = PRETRAINED_ROOT
    commands: dict = dataclasses.field(default_factory=dict)


def register(family):
    """Add a `Family` to `FAMILIES` (a second family of one name is
    refused)."""
    if not isinstance(family, Family):
        raise TypeError(f'register takes a Family, got '
                        f'{type(family).__name__}')
    if FAMILIES.get(family.name, family) != family:
        raise ValueError(f'family {family.name!r} is registered already')
    FAMILIES[family.name] = family
    return family


def family_of(run_dir):
    """The `Family` whose ``config.json`` ``run_dir`` holds (a ValueError
    naming the folder when none recognises it).

    Examples
    --------
    >>> family_of(PRETRAINED_ROOT / 'dival-lpd-128').name
    'unrolled'
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: not a training run folder')
    cfg = _read_config_file(path)
    user = cfg.get('user', cfg)
    recorded = (user.get('provenance') or {}).get('family')
    if recorded in FAMILIES:  # what made it says so (runs of this version)
        return FAMILIES[recorded]
    found = [f for f in FAMILIES.values() if f.recognizes(user)]
    if len(found) != 1:
        raise ValueError(
            f'{run_dir}: its config.json is of '
            + ('no registered family' if not found else
               f'several families ({[f.name for f in found]})')
            + f' (registered: {sorted(FAMILIES)})')
    return found[0]


def list_pretrained(family=None):
    """Names of the shipped models, of one family or of all.

    Examples
    --------
    >>> 'dival-lpd-128' in list_pretrained('unrolled')
    True
    >>> 'mnist-vae-20' in list_pretrained()
    True
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f'family must be one of {sorted(FAMILIES)}, got '
                         f'{family!r}')
    return sorted(_shipped(family))


def _shipped(family=None):
    """name -> folder of the shipped models (of ``family``)."""
    found = {}
    for root in dict.fromkeys(f.shipped for f in FAMILIES.values()):
        for name in complete_runs(root):
            fam = family_of(root / name).name
            if family in (None, fam):
                if name in found:
                    raise ValueError(f'two shipped models are named {name!r}: '
                                     f'{found[name]} and {root / name}')
                found[name] = root / name
    return found


def pretrained(name, device='cpu'):
    """A shipped model by name (eval mode), built by its own family.

    Examples
    --------
    >>> type(pretrained('dival-lpd-128')).__name__
    'LearnedPrimalDual'
    >>> pretrained('no-such-model')
    Traceback (most recent call last):
    ...
    KeyError: "no shipped model 'no-such-model'; available: [...]"
    """
    shipped = _shipped()
    if name not in shipped:
        raise KeyError(f'no shipped model {name!r}; available: '
                       f'{sorted(shipped)}')
    return family_of(shipped[name]).load(shipped[name], device)


def load(name_or_run, device='cpu'):
    """A run folder (by its family) or a shipped model by name."""
    if Path(name_or_run).is_dir():
        return family_of(name_or_run).load(Path(name_or_run), device)
    return pretrained(name_or_run, device)


def ship(run_dir, name):
    """Put a finished run among the shipped models as ``name``.

    The weights, ``config.json`` and ``metrics.csv`` go to the shipped
    folder of the run's family (`odl_genprior.training.export_run`: the
    optimiser state, ``checkpoint.pt``, never does); the run must be of a
    registered family and load by it, and ``name`` may not be another
    family's. Returns the step of the weights.
    """
    family = family_of(run_dir)  # refuses a folder no family can load
    if not isinstance(name, str) or not name or '/' in name or \
            name.startswith('.'):
        raise ValueError(f'name must be a plain folder name, got {name!r}')
    taken = _shipped()
    if name in taken and family_of(taken[name]) != family:
        raise ValueError(f'{name!r} is a shipped model of another family '
                         f'({taken[name]})')
    step = export_run(run_dir, family.shipped / name)
    family.load(family.shipped / name, 'cpu')  # it loads, or says why now
    return step
