"""HTC2022 limited-angle networks as a trainable family: one unrolled
network over the scanner's fixed fan-beam operator at ``0, 1, ..., 90``
degrees, a range being a row mask (see `odl_genprior.recon.limited_angle`,
the method that reconstructs with them).

`train_limited_angle` trains it on the simulator of
`odl_genprior.problems.htc2022_sim` (never on the teaching phantoms) with
the mean squared error on the acrylic fraction plus a segmentation loss
(binary cross-entropy of ``sigmoid(10 (x - 1/2))`` against the phantom's
mask), so the output is a map whose 1/2 level set is the segmentation;
`load_limited_angle` rebuilds one from its run folder or shipped name
(``odl_genprior/models/pretrained/htc-*``).
"""
from pathlib import Path

import numpy as np
import torch

from odl_genprior.models.registry import (PRETRAINED_ROOT, Family,
                                          list_pretrained, register)
from odl_genprior.models.unrolled import (_fit_unrolled, _load_network,
                                          build_unrolled)
from odl_genprior.problems import htc2022, htc2022_sim
from odl_genprior.problems.cache import cached_arrays
from odl_genprior.training import seed_all

__all__ = ('LIMITED_ANGLE_GEOMETRY', 'DEFAULT_NETWORK', 'build_limited_angle',
           'train_limited_angle', 'load_limited_angle',
           'list_pretrained_limited_angle', 'HTC_PRETRAINED_DIR')

HTC_PRETRAINED_DIR = PRETRAINED_ROOT
#: The best shipped network on the teaching data (docs/htc2022.md): the
#: default of ``odl-genprior htc2022``.
DEFAULT_NETWORK = 'htc-lpd-128'

#: The fixed operator and the ranges drawn in training.
LIMITED_ANGLE_GEOMETRY = {'size': 128, 'max_range': 90.0, 'min_range': 30.0,
                          'angle_step': 1.0, 'det_binning': 4}
# Weight of the segmentation loss and the slope of its sigmoid.
_BCE_WEIGHT, _SLOPE = 0.1, 10.0


def _geometry(config):
    geometry = dict(LIMITED_ANGLE_GEOMETRY)
    geometry.update(config.get('htc2022') or {})
    unknown = set(geometry) - set(LIMITED_ANGLE_GEOMETRY)
    if unknown:
        raise ValueError(f'unknown htc2022 geometry keys {sorted(unknown)}; '
                         f'expected {sorted(LIMITED_ANGLE_GEOMETRY)}')
    return geometry


def build_limited_angle(config):
    """The untrained network of ``config`` over its fixed operator.

    ``config``: ``scheme`` ('lpd' or 'lfb'), optional ``group`` and
    architecture keys (as `odl_genprior.models.unrolled.build_unrolled`) and
    ``htc2022``: keys of `LIMITED_ANGLE_GEOMETRY`.

    Examples
    --------
    >>> net = build_limited_angle({'scheme': 'lfb', 'n_iter': 1,
    ...     'hidden_channels': 4, 'htc2022': {'size': 32, 'max_range': 10}})
    >>> net.data_shape
    (11, 140)
    """
    geometry = _geometry(config)
    operator = htc2022_sim.limited_angle_operator(
        geometry['size'], geometry['max_range'], geometry['angle_step'],
        geometry['det_binning'])
    net = build_unrolled({k: v for k, v in config.items() if k != 'htc2022'},
                         operator)
    net.config = {**config, 'htc2022': geometry}
    return net


def _loss(model, batch):
    y, mask, x = batch
    out = model(y, mask)
    mse = torch.mean((out - x) ** 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        _SLOPE * (out - 0.5), (x > 0.5).to(out.dtype))
    return {'loss': mse + _BCE_WEIGHT * bce, 'mse': mse.detach(),
            'bce': bce.detach()}


def _val_metric(model, val):
    y, mask, x = val
    dev = next(model.parameters()).device  # the triples stay on the CPU
    out = torch.cat([model(y[i:i + 8].to(dev), mask[i:i + 8].to(dev))
                     .float().cpu() for i in range(0, len(y), 8)])
    scores = [htc2022.mcc(a.numpy() > 0.5, b.numpy() > 0.5)
              for a, b in zip(out, x)]
    return {'mcc': float(np.mean(scores)),
            'mse': torch.mean((out - x) ** 2).item()}


def _pairs(geometry, n, seed, progress):
    key = ['htc2022_sim', geometry, htc2022_sim.scanner_dict(), n, seed, 'v1']
    make = (lambda: htc2022_sim.limited_angle_pairs(
        n, seed, geometry['size'], geometry['max_range'],
        geometry['min_range'], geometry['angle_step'],
        geometry['det_binning'], progress=progress))
    return tuple(map(torch.from_numpy, cached_arrays(
        key, make, ('y', 'mask', 'x'), length=n)))


def train_limited_angle(config, out_dir, *, n_train=4000, n_val=20, epochs=4,
                        batch_size=4, lr=1e-3, seed=0, progress=True,
                        resume=True, command=None, checkpoint_every=None,
                        log_every=10, autocast=None, steps=None, warmup=0,
                        compile=False, device='cpu'):
    """Train a limited-angle network on simulated HTC-like data.

    ``n_train`` training and ``n_val`` validation triples of
    `odl_genprior.problems.htc2022_sim.limited_angle_pairs` (seeds
    ``seed`` and ``seed + 1``; ranges uniform in ``[min_range,
    max_range]``), Adam with a cosine schedule over all steps, the loss of
    the module doc; validation: mean MCC of the 1/2 level set. The run
    folder (resumable) is what `load_limited_angle` reads.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> cfg = {'scheme': 'lfb', 'n_iter': 1, 'hidden_channels': 4,
    ...        'htc2022': {'size': 16, 'max_range': 6, 'min_range': 2,
    ...                    'angle_step': 2}}
    >>> net = train_limited_angle(cfg, d, n_train=4, n_val=2, epochs=1,
    ...                           batch_size=2, progress=False)
    >>> load_limited_angle(d).data_shape
    (4, 140)
    """
    config = {**config, 'htc2022': _geometry(config)}
    seed_all(seed)
    model = build_limited_angle(config)
    geometry = config['htc2022']
    options = {'n_train': n_train, 'n_val': n_val, 'batch_size': batch_size,
               'lr': lr, 'seed': seed,
               'scanner': htc2022_sim.scanner_dict(),
               'loss': {'bce_weight': _BCE_WEIGHT, 'slope': _SLOPE}}
    if warmup:
        options['warmup'] = warmup
    if compile:
        options['compile'] = True
    return _fit_unrolled(
        model, _loss, _val_metric, _pairs(geometry, n_train, seed, progress),
        _pairs(geometry, n_val, seed + 1, progress),
        {'unrolled': config, 'options': options,
         'provenance': {'family': 'limited_angle', 'protocol': 'htc2022'}},
        out_dir, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, progress=progress,
        resume=resume, command=command, checkpoint_every=checkpoint_every,
        log_every=log_every, autocast=autocast, steps=steps, warmup=warmup,
        compile=compile, device=device)


def list_pretrained_limited_angle():
    """Names of the shipped limited-angle networks.

    Examples
    --------
    >>> isinstance(list_pretrained_limited_angle(), list)
    True
    """
    return list_pretrained('limited_angle')


def load_limited_angle(run_dir, device='cpu'):
    """Rebuild a trained limited-angle network from a run folder or name."""
    if not Path(run_dir).is_dir():
        names = list_pretrained_limited_angle()
        if run_dir not in names:
            raise KeyError(f'{run_dir!r} is neither a run folder nor a '
                           f'shipped limited-angle network; shipped: {names}')
        run_dir = HTC_PRETRAINED_DIR / run_dir
    return _load_network(run_dir, build_limited_angle, 'train_limited_angle',
                         device, family='limited_angle')


def _is_limited_angle(user):
    return isinstance(user.get('unrolled'), dict) and \
        'htc2022' in user['unrolled']


# Trained by ``odl-genprior train unrolled --protocol htc2022``.
register(Family('limited_angle', build=build_limited_angle,
                fit=train_limited_angle, load=load_limited_angle,
                recognizes=_is_limited_angle))
