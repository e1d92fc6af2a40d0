"""Unrolled CT networks as a trainable family: build, train, load, ship.

`NETWORKS` maps a scheme name to its class (`odl_genprior.nn.unrolled`,
the certified net); `build_unrolled` makes the network of a config,
operator included (from its protocol, `odl_genprior.problems.protocol`);
`train_unrolled` trains it on a protocol's pairs with the package's
training loop (seeded, checkpointed, resumable; on any torch device), and
`load_unrolled` rebuilds it from its run folder from ``config.json`` alone.
Trained networks shipped with the package (``odl_genprior/models/
pretrained/<name>``) load by name with `pretrained_unrolled`; code picks
them by the protocol their config records (`pretrained_for`). The method
that reconstructs with them is `odl_genprior.recon.learned.
LearnedReconstructor`.
"""
import hashlib
from pathlib import Path

import numpy as np
import torch

from odl_genprior import metrics
from odl_genprior.models.registry import (PRETRAINED_ROOT, Family,
                                          list_pretrained, pretrained,
                                          register)
from odl_genprior.nn.certified import CertifiedLearnedGradient
from odl_genprior.nn.unrolled import SCHEMES
from odl_genprior.problems.ellipse_ct import cached_pairs
from odl_genprior.problems.protocol import make_protocol
from odl_genprior.training import (load_weights,
                                   read_run_config, recorded_command,
                                   seed_all, train)

__all__ = ('NETWORKS', 'build_unrolled', 'train_unrolled', 'lr_schedule',
           'training_layout', 'protocol_of', 'pretrained_for',
           'load_unrolled', 'list_pretrained_unrolled', 'pretrained_unrolled',
           'PRETRAINED_DIR')

#: Trained unrolled networks shipped with the package, one run folder each
#: (config.json with the command that made it, weights.pt, metrics.csv).
PRETRAINED_DIR = PRETRAINED_ROOT

#: Scheme name -> network class: the one registry of trainable unrolled
#: schemes (the command line's --scheme choices come from it; the
#: certified net refuses a group).
NETWORKS = dict(SCHEMES, certified=CertifiedLearnedGradient)


def build_unrolled(config, operator=None):
    """The unrolled network of ``config`` (untrained).

    ``config`` has ``scheme`` (``'lgd'``, ``'lpd'``, ``'lfb'``, or
    ``'certified'``: `odl_genprior.nn.certified.CertifiedLearnedGradient`),
    optional ``group`` (``None`` or ``'C4'`` ...; not for ``'certified'``),
    architecture keys overriding
    the scheme's ``defaults()`` (its constructor's options), and ``benchmark`` (the `EllipseCT` fields) that
    makes the operator when ``operator`` is not given.

    Examples
    --------
    >>> cfg = {'scheme': 'lfb', 'group': 'C4', 'hidden_channels': 8,
    ...        'n_iter': 2, 'benchmark': {'size': 16, 'num_angles': 8}}
    >>> type(build_unrolled(cfg)).__name__
    'LearnedForwardBackward'
    """
    scheme = config.get('scheme')
    if scheme not in NETWORKS:
        raise ValueError(f'scheme must be one of {sorted(NETWORKS)}, got '
                         f'{scheme!r}')
    if operator is None:
        operator = make_protocol(config.get('benchmark')).operator
    kwargs = NETWORKS[scheme].defaults()
    kwargs.update({k: config[k] for k in kwargs if k in config})
    net = NETWORKS[scheme](operator, group=config.get('group'), **kwargs)
    net.config = dict(config)  # what rebuilds it (and its benchmark)
    return net


def _psnr_metric(model, val):
    y, x = val
    dev = next(model.parameters()).device  # the pairs stay on the CPU
    x_hat = torch.cat([model(y[i:i + 8].to(dev)).float().cpu()
                       for i in range(0, len(y), 8)])
    psnr = np.mean([metrics.psnr(a.numpy(), b.numpy())
                    for a, b in zip(x_hat, x)])
    return {'mse': torch.mean((x_hat - x) ** 2).item(), 'psnr': float(psnr)}


def _mse_loss(model, batch):
    y, x = batch
    return torch.mean((model(y) - x) ** 2)


def train_unrolled(config, out_dir, *, n_train=100, n_val=10, epochs=10,
                   steps=None, batch_size=4, lr=1e-3, warmup=0, seed=0,
                   progress=True, resume=True, command=None,
                   checkpoint_every=None, log_every=10, init=None,
                   init_resize=False, autocast=None, compile=False,
                   device='cpu', data_workers=1):
    """Train an unrolled network on the ellipse CT benchmark.

    Mean squared error on ``n_train`` training pairs of
    ``EllipseCT(**config['benchmark'])``; validation PSNR on ``n_val``
    validation pairs. Adam with a cosine schedule over all steps (Adler and
    Oktem's choice). Writes a run folder that `load_unrolled` reads; an
    interrupted run resumes from its last checkpoint.

    ``init`` (a run folder or a shipped name) starts from that network's
    weights instead of a random draw: fine-tuning, or a longer schedule
    after a finished one (a new run folder, fresh Adam and cosine schedule;
    the architecture and benchmark must be the same; with
    ``init_resize=True`` the benchmark may differ in its grid, ``size`` and
    ``sim_size``: progressive training, the same blocks first on a coarser
    grid). ``autocast='bfloat16'`` trains in mixed precision
    (`odl_genprior.training.train`). Networks with ordinary blocks train in
    the ``channels_last`` memory format.

    ``steps`` sets the budget in steps (``epochs`` is then ignored; the
    cosine schedule ends there); ``warmup`` steps of linear warm-up from
    ``lr / warmup`` come first. ``compile=True`` runs the learned blocks
    through ``torch.compile`` (the weights are the same parameters).

    ``device`` is the torch device of the steps (``'cuda'``: the operator
    as a sparse matrix on the GPU; the run resumes on any device);
    ``data_workers`` processes simulate missing training pairs
    (`~odl_genprior.problems.protocol.parallel_pairs`: the same pairs).

    Returns
    -------
    model : torch.nn.Module
        The trained network (eval mode).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> cfg = {'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 2,
    ...        'benchmark': {'size': 16, 'num_angles': 8}}
    >>> net = train_unrolled(cfg, d, n_train=4, n_val=2, epochs=1,
    ...                      batch_size=2, progress=False)
    >>> load_unrolled(d).n_iter
    2
    """
    bench = make_protocol(config.get('benchmark'))
    config = {**config, 'benchmark': bench.config()}
    seed_all(seed)
    model = build_unrolled(config, bench.operator)
    train_data = cached_pairs(bench, n_train, 'train', progress=progress,
                              workers=data_workers)
    val_data = cached_pairs(bench, n_val, 'validation', progress=progress,
                            workers=data_workers)
    options = {'n_train': n_train, 'n_val': n_val, 'batch_size': batch_size,
               'lr': lr, 'seed': seed}
    if warmup:
        options['warmup'] = warmup
    if compile:
        options['compile'] = True
    if init is not None:
        options['init'] = _init_weights(model, init, init_resize)
    return _fit_unrolled(
        model, _mse_loss, _psnr_metric, train_data, val_data,
        {'unrolled': config, 'options': options,
         'provenance': {'family': 'unrolled',
                        'protocol': protocol_of(config)}},
        out_dir, epochs=epochs,
        steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, seed=seed,
        progress=progress, resume=resume, command=command,
        checkpoint_every=checkpoint_every, log_every=log_every,
        autocast=autocast, compile=compile, device=device)


def lr_schedule(steps, warmup=0):
    """The unrolled networks' schedule: ``warmup`` linear steps, then
    cosine to zero at ``steps`` (a factory for `training.train`).

    Examples
    --------
    >>> opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = lr_schedule(10, warmup=2)(opt)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(round(opt.param_groups[0]['lr'], 3)); opt.step()
    ...     sched.step()
    >>> lrs[:4], lrs[-1]
    ([0.5, 1.0, 1.0, 0.962], 0.038)
    """
    if not isinstance(warmup, int) or not 0 <= warmup < steps:
        raise ValueError(f'warmup must be an int in [0, steps={steps}), got '
                         f'{warmup!r}')

    def make(opt):
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=steps - warmup)
        if not warmup:
            return cosine
        ramp = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=1 / warmup, total_iters=warmup - 1)
        return torch.optim.lr_scheduler.SequentialLR(
            opt, [ramp, cosine], milestones=[warmup])
    return make


def training_layout(model, compile=False):
    """``model`` as the unrolled recipe trains it (in place).

    Ordinary blocks in the ``channels_last`` memory format (NHWC
    convolutions: 0.8x the CPU step, 0.4-0.5x with bfloat16,
    ``benchmarks/train_step.py``; e2cnn blocks gain nothing); with
    ``compile``, every learned block through ``torch.compile`` (in place,
    so the state_dict keys and weights files stay the same).

    Examples
    --------
    >>> cfg = {'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 1,
    ...        'benchmark': {'size': 8, 'num_angles': 4}}
    >>> net = training_layout(build_unrolled(cfg))
    >>> net.blocks[0][0].weight.is_contiguous(
    ...     memory_format=torch.channels_last)
    True
    """
    if not getattr(model, 'group', None):
        model = model.to(memory_format=torch.channels_last)
    if compile:
        # forward, not Module.compile(): in torch 2.13 the latter leaves
        # these blocks uncompiled (no frame reaches dynamo)
        for blocks in ('blocks', 'primal', 'dual'):
            for block in getattr(model, blocks, ()):
                block.forward = torch.compile(block.forward)
    return model


def _fit_unrolled(model, loss_fn, val_metric, train_data, val_data,
                  run_config, out_dir, *, epochs, batch_size, lr, seed,
                  progress, resume, command, checkpoint_every, log_every,
                  autocast, steps=None, warmup=0, compile=False,
                  device='cpu'):
    """The training recipe of every unrolled network (ellipses, HTC2022).

    Adam with a cosine schedule over all steps (Adler and Oktem's choice),
    after ``warmup`` linear steps; validation every checkpoint, ordinary
    blocks in ``channels_last``, the command recorded in ``run_config``;
    returns the model in eval mode.
    """
    model = training_layout(model, compile)
    n_train = len(train_data[0])
    total = epochs * (n_train // batch_size) if steps is None else steps
    if n_train < batch_size or total < 1:
        raise ValueError(f'no training step: n_train={n_train}, batch_size='
                         f'{batch_size}, steps={total}')
    # Not the epochs in run_config: raising them continues a finished run.
    # (The cosine schedule's length is fixed by the first call's budget.)
    if command is not None:
        run_config = {**run_config, 'command': recorded_command(
            out_dir, run_config, command)}
    # The operator's path is fixed before the first step (each step applies
    # A and A^T n_iter times per image): the run does not switch mid-way,
    # and gives the same numbers whatever the caches hold.
    if hasattr(model, 'plan_operator'):
        path = model.plan_operator(
            total * batch_size * getattr(model, 'n_iter', 1))
        run_config = {**run_config, 'provenance': {
            **run_config.get('provenance', {}), 'operator_batching': path}}
    train(model, loss_fn, train_data, out_dir=out_dir, epochs=epochs,
          steps=steps, batch_size=batch_size, lr=lr,
          scheduler=lr_schedule(total, warmup), seed=seed,
          val_data=val_data, val_metric=val_metric, config=run_config,
          resume=resume, progress=progress,
          checkpoint_every=checkpoint_every, val_every=checkpoint_every,
          log_every=log_every, autocast=autocast, device=device)
    return model.eval()


def _init_weights(model, init, resize=False):
    """Load the weights of ``init`` into ``model``; what config.json keeps.

    The source's architecture and benchmark must be the model's (with
    ``resize``, but for the benchmark's ``size`` and ``sim_size``); the
    record names the source and the SHA-256 of its weights file (a later
    change of the source is seen when the run resumes: another
    configuration).
    """
    run = Path(init)
    if not run.is_dir():
        if init not in list_pretrained_unrolled():
            raise FileNotFoundError(
                f'init={init!r} is neither a run folder nor a shipped network '
                f'({list_pretrained_unrolled()})')
        run = PRETRAINED_DIR / init
    theirs = read_run_config(run, 'unrolled', 'train_unrolled')['unrolled']
    keys = ['scheme', 'group', 'benchmark',
            *NETWORKS[model.config['scheme']].defaults()]
    ours = {k: model.config.get(k) for k in keys}
    theirs = {k: theirs.get(k) for k in keys}
    for k, v in NETWORKS[model.config['scheme']].defaults().items():
        ours[k] = v if ours[k] is None else ours[k]
        theirs[k] = v if theirs[k] is None else theirs[k]
    if resize:  # the grid may differ, nothing else
        grid = ('size', 'sim_size')
        ours['benchmark'] = {k: v for k, v in (ours['benchmark'] or {}).items()
                             if k not in grid}
        theirs['benchmark'] = {k: v for k, v in
                               (theirs['benchmark'] or {}).items()
                               if k not in grid}
    if ours != theirs:
        diff = [f'{k}: {theirs[k]!r} != {ours[k]!r}' for k in keys
                if ours[k] != theirs[k]]
        raise ValueError(f'init={init!r} is another network or benchmark: '
                         + '; '.join(diff))
    load_weights(model, run / 'weights.pt')
    digest = hashlib.sha256((run / 'weights.pt').read_bytes()).hexdigest()
    record = {'from': str(init), 'weights_sha256': digest}
    return {**record, 'resized': True} if resize else record


def load_unrolled(run_dir, device='cpu'):
    """Rebuild a trained unrolled network from its run folder.

    The operator is made again from the recorded benchmark configuration;
    weights are read with ``torch.load(weights_only=True)``. A name of
    `list_pretrained_unrolled` (not a folder) loads that shipped network.
    """
    if not Path(run_dir).is_dir() and run_dir in list_pretrained_unrolled():
        run_dir = PRETRAINED_DIR / run_dir
    return _load_network(run_dir, build_unrolled, 'train_unrolled', device)


#: Largest architecture and problem sizes a run folder may ask for: what
#: this package trains, with room. A larger value is a damaged or foreign
#: config.json, refused before anything is built (a shared folder must not
#: make the loader allocate a 360 GB network or a 20000^2 problem).
CONFIG_BOUNDS = {'hidden_channels': 1024, 'n_iter': 100, 'memory': 64,
                 'n_primal': 64, 'n_dual': 64, 'n_layers': 16}
PROBLEM_BOUNDS = {'size': 2048, 'num_angles': 4096, 'sim_size': 4096}


def protocol_of(config):
    """The protocol a network config was trained on: ``'htc2022'``,
    ``'dival'`` or ``'ellipse'``.

    Examples
    --------
    >>> protocol_of({'scheme': 'lpd', 'benchmark': {'protocol': 'dival'}})
    'dival'
    >>> protocol_of({'scheme': 'lpd', 'htc2022': {'size': 128}})
    'htc2022'
    """
    if 'htc2022' in config:
        return 'htc2022'
    return (config.get('benchmark') or {}).get('protocol', 'ellipse')


def _check_config(config, path, family):
    """A run's network config: of a protocol whose networks are
    ``family``'s (`Protocol.family`), within bounds."""
    from odl_genprior.problems.protocol import PROTOCOLS

    if not isinstance(config, dict):
        raise ValueError(f'{path}: the unrolled entry is a '
                         f'{type(config).__name__}, not a mapping')
    protocol = protocol_of(config)
    protocols = sorted(name for name, cls in PROTOCOLS.items()
                       if cls.family == family)
    if protocol not in protocols:
        theirs = getattr(PROTOCOLS.get(protocol), 'family', None)
        use = ('odl-genprior htc2022 FILE --method RUN (LimitedAngleCT)'
               if theirs == 'limited_angle' else
               'odl-genprior reconstruct learned --model RUN '
               '(load_unrolled)')
        raise ValueError(f'{path} holds a network trained on the '
                         f'{protocol!r} protocol, not {" or ".join(protocols)}'
                         f'; it runs with {use}')
    problem = {**(config.get('benchmark') or {}),
               **(config.get('htc2022') or {})}
    for where, bounds in ((config, CONFIG_BOUNDS), (problem, PROBLEM_BOUNDS)):
        for key, bound in bounds.items():
            v = where.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(
                    v, int) or not 1 <= v <= bound):
                raise ValueError(f'{path}: {key} = {v!r} is not a size this '
                                 f'package trains (an integer in [1, '
                                 f'{bound}]); refused before building')


def _load_network(run_dir, build, made_by, device, family='unrolled'):
    """``build(config['unrolled'])`` with the run's weights (eval mode),
    after the config is checked (a protocol of ``family``, sizes)."""
    user = read_run_config(run_dir, 'unrolled', made_by)
    _check_config(user['unrolled'], Path(run_dir) / 'config.json', family)
    model = build(user['unrolled'])
    load_weights(model, Path(run_dir) / 'weights.pt')
    return model.to(device).eval()


def _display_name(config):
    cls = NETWORKS.get(config.get('scheme'))
    name = cls.display_name if cls else str(config.get('scheme'))
    return name + (f' {config["group"]}' if config.get('group') else '')


def list_pretrained_unrolled():
    """Names of the trained unrolled networks shipped with the package.

    Examples
    --------
    >>> isinstance(list_pretrained_unrolled(), list)
    True
    """
    return list_pretrained('unrolled')


def pretrained_for(protocol, **benchmark):
    """Names of the shipped networks trained on ``protocol`` (and the
    given benchmark fields), as their ``config.json`` records it.

    Examples
    --------
    >>> 'dival-lpd-128' in pretrained_for('dival', size=128)
    True
    >>> pretrained_for('dival', size=64)
    []
    """
    names = []
    for name in list_pretrained_unrolled():
        config = read_run_config(PRETRAINED_DIR / name, 'unrolled',
                                 'train_unrolled')['unrolled']
        recorded = config.get('benchmark') or {}
        if protocol_of(config) == protocol and all(
                recorded.get(k) == v for k, v in benchmark.items()):
            names.append(name)
    return names


def pretrained_unrolled(name, device='cpu'):
    """A trained unrolled network shipped with the package, by name.

    Its operator is rebuilt from the recorded benchmark (for example
    ``'dival-lpd-128'``: learned primal-dual for DIVal's ellipses, 128x128,
    30 angles, `odl_genprior.problems.ellipse_ct.DivalEllipses`); ``config.json``
    in its folder holds the training command, seed, steps and wall time.

    Examples
    --------
    >>> pretrained_unrolled('no-such-model')
    Traceback (most recent call last):
    ...
    KeyError: "no shipped unrolled network 'no-such-model'; available: [...]"
    """
    names = list_pretrained_unrolled()
    if name not in names:  # the registry's pretrained, of this family only
        raise KeyError(f'no shipped unrolled network {name!r}; available: '
                       f'{names}')
    return pretrained(name, device)


def _is_unrolled(user):
    return isinstance(user.get('unrolled'), dict) and \
        'htc2022' not in user['unrolled']


register(Family('unrolled', build=build_unrolled, fit=train_unrolled,
                load=load_unrolled, recognizes=_is_unrolled, commands={
                    'unrolled': 'unrolled CT network: learned gradient '
                                'descent, primal-dual, forward-backward or '
                                'certified'}))
