"""Learned limited-angle CT of the HTC2022 scanner, one network for all ranges.

An unrolled network (`odl_genprior.nn.unrolled`: learned primal-dual or
forward-backward, ordinary or C_N-equivariant) runs over one fixed
operator, the scanner's fan-beam ray transform at ``0, 1, ..., 90``
degrees (`odl_genprior.problems.htc2022_sim.limited_angle_operator`); a
range of ``r`` degrees is the row mask ``angle <= r`` (``M A`` and ``A^T
M``), so one network serves every level of the challenge. Measured data
starting at an angle ``s`` are reconstructed in the frame where they start
at 0 and the image is turned back by ``s`` (a rotation of the object is a
shift of the angles).

`train_limited_angle` trains it on the simulator of
`odl_genprior.problems.htc2022_sim` (never on the teaching phantoms) with
the mean squared error on the acrylic fraction plus a segmentation loss
(binary cross-entropy of ``sigmoid(10 (x - 1/2))`` against the phantom's
mask), so the output is a map whose 1/2 level set is the segmentation.
`LimitedAngleCT` is the reconstruction method; shipped networks
(``odl_genprior/recon/pretrained_htc2022/<name>``) load by name.
"""
from pathlib import Path

import numpy as np
import torch

from odl_genprior.bridge import as_element, to_numpy
from odl_genprior.problems import htc2022, htc2022_protocol, htc2022_sim
from odl_genprior.problems.cache import cached_arrays
from odl_genprior.recon.base import Reconstructor, check_flag
from odl_genprior.recon.classical import FBP, TV
from odl_genprior.models.unrolled import (_display_name, _fit_unrolled,
                                          _load_network, build_unrolled)
from odl_genprior.training import complete_runs, seed_all

__all__ = ('LimitedAngleCT', 'LIMITED_ANGLE_GEOMETRY', 'DEFAULT_NETWORK',
           'htc2022_baselines', 'build_limited_angle',
           'train_limited_angle', 'load_limited_angle',
           'list_pretrained_limited_angle', 'HTC_PRETRAINED_DIR')

HTC_PRETRAINED_DIR = Path(__file__).resolve().parent / 'pretrained_htc2022'
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
    out = torch.cat([model(y[i:i + 8], mask[i:i + 8])
                     for i in range(0, len(y), 8)])
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
        {'unrolled': config, 'options': options}, out_dir, epochs=epochs,
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
    return complete_runs(HTC_PRETRAINED_DIR)


def load_limited_angle(run_dir, device='cpu'):
    """Rebuild a trained limited-angle network from a run folder or name."""
    if not Path(run_dir).is_dir():
        names = list_pretrained_limited_angle()
        if run_dir not in names:
            raise KeyError(f'{run_dir!r} is neither a run folder nor a '
                           f'shipped limited-angle network; shipped: {names}')
        run_dir = HTC_PRETRAINED_DIR / run_dir
    return _load_network(run_dir, build_limited_angle, 'train_limited_angle',
                         device)


def htc2022_baselines(tv_alpha=htc2022_protocol.TV_ALPHA, tv_iter=200):
    """The model-based methods of the HTC2022 protocol, by name.

    ``'fbp'``: FBP with the Hann filter at frequency scaling 0.8; ``'tv'``:
    nonnegative TV, ``tv_iter`` PDHG iterations, the weight tuned on
    simulated data (`htc2022_protocol.TV_ALPHA`). Both are segmented by
    Otsu's threshold. What the benchmark, the example and ``odl-genprior
    htc2022`` run.

    Examples
    --------
    >>> sorted(htc2022_baselines())
    ['fbp', 'tv']
    """
    return {'fbp': FBP(filter_type='Hann', frequency_scaling=0.8),
            'tv': TV(alpha=tv_alpha, niter=tv_iter, nonneg=True)}


class LimitedAngleCT(Reconstructor):
    """A trained limited-angle network applied to HTC2022-scanner data.

    Accepts a `~odl_genprior.problems.ForwardProblem` whose operator is
    the scanner's fan-beam ray transform
    (`odl_genprior.problems.htc2022.htc2022_ray_transform`) at equally
    spaced angles over any start angle and range; data past the network's
    ``max_range`` (90 degrees) are left out. The result is the acrylic
    fraction (1 acrylic, 0 air), resampled to the problem's grid; its
    segmentation is ``x > threshold`` (``threshold = 0.5``).

    Parameters
    ----------
    model : torch.nn.Module or str
        A network of `build_limited_angle`, a run folder or a shipped name
        (`list_pretrained_limited_angle`).
    name : str, optional
        Default: the scheme and the folder or shipped name, e.g. 'learned
        PD (htc-lpd-128)'.
    device : str, optional
        Where a network given by name or folder is loaded.
    allow_other_range : bool, optional
        Data covering less than the network's ``min_range`` (30 degrees for
        the shipped ones) are refused by name; True runs the network on
        them anyway (outside its training).

    Examples
    --------
    >>> net = build_limited_angle({'scheme': 'lfb', 'n_iter': 1,
    ...     'hidden_channels': 4, 'htc2022': {'size': 16}})
    >>> space = htc2022.htc2022_space(16)
    >>> A = htc2022.htc2022_ray_transform(space, np.arange(10, 71, 1.0),
    ...                                   det_binning=4)
    >>> from odl_genprior.problems import ForwardProblem
    >>> p = ForwardProblem(A, A.range.one(), name='toy')
    >>> LimitedAngleCT(net)(p, progress=False).shape
    (16, 16)
    """

    threshold = 0.5

    def __init__(self, model, name=None, device='cpu',
                 allow_other_range=False):
        self.allow_other_range = check_flag('LimitedAngleCT',
                                            'allow_other_range',
                                            allow_other_range)
        source = None
        if isinstance(model, (str, Path)):
            source = Path(model).name  # a shipped name or a run folder
            model = load_limited_angle(model, device=device)
        if not hasattr(model, 'config') or 'htc2022' not in model.config:
            raise TypeError(f'LimitedAngleCT needs a network of '
                            f'build_limited_angle, got {type(model).__name__}')
        self.model = model.eval()
        self.name = name or (f'{_display_name(model.config)} '
                             f'({source or "limited angle"})')

    @classmethod
    def pretrained(cls, name, device='cpu'):
        """A shipped network by name (`list_pretrained_limited_angle`)."""
        return cls(name, device=device)

    def __repr__(self):
        return f'LimitedAngleCT(name={self.name!r})'

    def _reconstruct(self, problem, progress):
        geometry = getattr(problem.operator, 'geometry', None)
        if geometry is None or not np.isclose(
                getattr(geometry, 'src_radius', np.nan),
                htc2022.SOURCE_ORIGIN):
            raise ValueError(f'{self.name} needs data of the HTC2022 scanner '
                             f'(a fan-beam ray transform with source radius '
                             f'{htc2022.SOURCE_ORIGIN} mm), got '
                             f'{problem.operator!r}')
        config = self.model.config['htc2022']
        angles = np.rad2deg(np.asarray(geometry.angles, dtype=np.float64))
        span = float(angles.max() - angles.min()) if angles.size else 0.0
        if span < config['min_range'] - 1e-6 and not self.allow_other_range:
            raise ValueError(
                f'{self.name} was trained for {config["min_range"]:g}-'
                f'{config["max_range"]:g} degrees of data; these cover '
                f'{span:g} degrees ({angles.size} angles). Use TV, or pass '
                'allow_other_range=True (--allow-other-range) to run it '
                'outside its training')
        y, mask, start = htc2022_sim.to_model_frame(
            to_numpy(problem.data), angles, config['max_range'],
            config['angle_step'], config['det_binning'])
        param = next(self.model.parameters())
        with torch.no_grad():
            out = self.model(torch.from_numpy(y)[None].to(param),
                             torch.from_numpy(mask)[None].to(param))
        image = htc2022.resample(out[0].float().cpu().numpy(),
                                 problem.space.shape)
        image = htc2022_sim.rotate_image(image, start)
        return as_element(image, problem.space)
