r"""Learned SVD (Boink and Brune): hybrid autoencoding for inverse problems.

A linear operator ``A = U Sigma V^T`` is inverted (regularised) by the
truncated SVD ``x = V Sigma_k^{-1} U_k^T y``: encode the data in the left
singular vectors, scale the coefficients, decode with the right singular
vectors. The learned SVD (L-SVD) of Boink and Brune replaces the three
factors by learned maps:

* an autoencoder in image space, encoder ``E_x`` and decoder ``D_x``;
* an autoencoder in measurement space, encoder ``E_y`` and decoder ``D_y``;
* a map ``M`` between the two latent codes (``R^k -> R^k``): by default
  diagonal, ``M(c) = sigma * c``, playing the singular values.

The reconstruction is ``x = D_x(M(E_y(y)))``. `LearnedSVDNet` is the torch
module, trained on pairs ``(x, y = A x + e)`` with the weighted loss

.. math::
    L = w_x \|D_x E_x x - x\|^2 + w_y \|D_y E_y y - y\|^2
        + w_{inv} \|D_x M E_y y - x\|^2
        + w_{code} \|M E_y y - E_x x\|^2 / \|E_x x\|^2

(means over entries and the batch; ``y`` divided by the model's
``data_scale``; the code target ``E_x x`` is held fixed in the last term, and
the term is relative to its size, so that shrinking both codes cannot lower
it). `odl_genprior.problems.measurement_pairs` makes the
pairs (``(y, x)``) through `odl_genprior.bridge.OperatorLayer` (``A`` is any ODL operator,
e.g. a ``RayTransform``), `train_learned_svd` trains with
`odl_genprior.training.train` (seeded, checkpointed, resumable run folder),
`load_learned_svd` rebuilds the model from the folder, and `fit_learned_svd`
makes the data and trains from a config alone (the registry's ``fit``;
``odl-genprior train learned-svd``). `odl_genprior.recon.learned_svd.LearnedSVD`
is the method under the reconstruction contract. With ``hidden=()`` and
``out_activation='none'`` every map is linear: the linear L-SVD.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from odl_genprior import data as _data
from odl_genprior.bridge import module_device
from odl_genprior.generators.decoders import MLPDecoder, MLPEncoder
from odl_genprior.models.registry import Family, register
from odl_genprior.problems import measurement_pairs
from odl_genprior.training import (load_weights, read_run_config,
                                   recorded_command, seed_all, train)

__all__ = ('LearnedSVDNet', 'DiagonalMap', 'LOSS_TERMS', 'LATENT_MAPS',
           'learned_svd_losses', 'check_operator', 'train_learned_svd',
           'fit_learned_svd', 'build_learned_svd', 'load_learned_svd', 'mnist_tomography_pairs',
           'describe_operator')

LATENT_MAPS = ('diagonal', 'linear')
# Loss terms: x from x, y from y, x from y (the inversion), code matching.
LOSS_TERMS = ('x', 'y', 'inv', 'code')
DEFAULT_WEIGHTS = {'x': 1.0, 'y': 1.0, 'inv': 1.0, 'code': 1.0}


# --- the model ---------------------------------------------------------------

class DiagonalMap(nn.Module):
    """``c -> sigma * c``: a learned diagonal map, the "singular values".

    Parameters
    ----------
    dim : int
        Latent dimension ``k``; ``sigma`` starts at ones.

    Examples
    --------
    >>> m = DiagonalMap(3)
    >>> with torch.no_grad():
    ...     _ = m.sigma.copy_(torch.tensor([2.0, 1.0, 0.5]))
    >>> m(torch.ones(1, 3)).tolist()
    [[2.0, 1.0, 0.5]]
    """

    def __init__(self, dim):
        super().__init__()
        self.sigma = nn.Parameter(torch.ones(int(dim)))

    def forward(self, c):
        return c * self.sigma


def _latent_map(kind, dim):
    if kind == 'diagonal':
        return DiagonalMap(dim)
    if kind == 'linear':
        lin = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(dim))
        return lin
    raise ValueError(f'latent_map must be one of {LATENT_MAPS}, got {kind!r}')


def _shape(shape, name):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f'{name} must be a tuple of ints, got {shape!r}') \
            from None
    if not shape or min(shape) < 1:
        raise ValueError(f'{name} must be a non-empty tuple of positive ints, '
                         f'got {shape}')
    return shape


class LearnedSVDNet(nn.Module):
    """The learned SVD: two autoencoders and a map between their codes.

    ``E_x, D_x`` act on images of ``image_shape``, ``E_y, D_y`` on data of
    ``data_shape`` (both fully connected, `MLPEncoder` / `MLPDecoder` with
    layer widths ``hidden``), and ``M`` (``latent_map``) maps the data code
    to the image code. ``model(y)`` is the reconstruction
    ``D_x(M(E_y(y)))``, batched: ``(B, *data_shape) -> (B, *image_shape)``.
    Data are divided by the buffer ``data_scale`` before ``E_y`` (and
    ``D_y`` returns them in the original units), so the codes do not depend
    on the units of the operator.

    Parameters
    ----------
    image_shape, data_shape : tuple of int
        ``A.domain.shape`` and ``A.range.shape``.
    latent_dim : int
        Code length ``k`` of both autoencoders.
    hidden : sequence of int
        Hidden widths of the encoders (reversed in the decoders). ``()``:
        linear encoders and decoders.
    latent_map : {'diagonal', 'linear'}
        ``M``: `DiagonalMap` (Boink and Brune's singular values) or a full
        ``k x k`` matrix; both start at the identity.
    out_activation : {'sigmoid', 'none', 'tanh'}
        Last activation of ``D_x`` (sigmoid for images in [0, 1]).
    data_scale : float
        Typical size of the data (`train_learned_svd` uses the mean of
        ``|y|`` over the training set).
    operator_info : dict, optional
        `describe_operator` of the operator the model is trained for;
        `LearnedSVD` refuses problems with another operator.

    Examples
    --------
    >>> net = LearnedSVDNet((8, 8), (5, 11), latent_dim=6, hidden=(32,))
    >>> y = torch.rand(4, 5, 11)
    >>> net(y).shape, net.encode_y(y).shape
    (torch.Size([4, 8, 8]), torch.Size([4, 6]))
    >>> sorted(net.losses(torch.rand(4, 8, 8), y))
    ['code', 'inv', 'x', 'y']
    """

    def __init__(self, image_shape, data_shape, latent_dim=64, hidden=(512,),
                 latent_map='diagonal', out_activation='sigmoid',
                 data_scale=1.0, operator_info=None):
        super().__init__()
        self.image_shape = _shape(image_shape, 'image_shape')
        self.data_shape = _shape(data_shape, 'data_shape')
        if int(latent_dim) < 1:
            raise ValueError(f'latent_dim must be positive, got {latent_dim}')
        if not float(data_scale) > 0:
            raise ValueError(f'data_scale must be positive, got {data_scale}')
        self.latent_dim = int(latent_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.latent_map_kind = latent_map
        self.out_activation = out_activation
        self.operator_info = operator_info
        k, rev = self.latent_dim, self.hidden[::-1]
        self.encoder_x = MLPEncoder(k, self.image_shape, self.hidden)
        self.decoder_x = MLPDecoder(k, self.image_shape, rev, out_activation)
        self.encoder_y = MLPEncoder(k, self.data_shape, self.hidden)
        self.decoder_y = MLPDecoder(k, self.data_shape, rev, 'none')
        self.latent_map = _latent_map(latent_map, k)
        self.register_buffer('data_scale',
                             torch.tensor(float(data_scale)))

    @property
    def config(self):
        """The constructor arguments, JSON-able (`load_learned_svd` uses it).
        """
        return {'image_shape': list(self.image_shape),
                'data_shape': list(self.data_shape),
                'latent_dim': self.latent_dim, 'hidden': list(self.hidden),
                'latent_map': self.latent_map_kind,
                'out_activation': self.out_activation,
                'data_scale': float(self.data_scale),
                'operator_info': self.operator_info}

    def _check(self, t, shape, what):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'{what} must be a torch.Tensor, got '
                            f'{type(t).__name__}')
        if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise ValueError(f'{what} of shape {tuple(t.shape)} is not a batch'
                             f' (B, *{shape}) of the shape {shape} this '
                             'model was built for')

    def encode_x(self, x):
        """``E_x``: images ``(B, *image_shape)`` to codes ``(B, k)``."""
        self._check(x, self.image_shape, 'image batch')
        return self.encoder_x(x)

    def decode_x(self, c):
        """``D_x``: codes ``(B, k)`` to images ``(B, *image_shape)``."""
        return self.decoder_x(c).reshape((-1,) + self.image_shape)

    def encode_y(self, y):
        """``E_y``: data ``(B, *data_shape)`` to codes ``(B, k)``."""
        self._check(y, self.data_shape, 'data batch')
        return self.encoder_y(y / self.data_scale)

    def decode_y(self, c):
        """``D_y``: codes ``(B, k)`` to data ``(B, *data_shape)``."""
        return self.decoder_y(c).reshape((-1,) + self.data_shape) * (
            self.data_scale)

    def forward(self, y):
        """The reconstruction ``D_x(M(E_y(y)))`` of a batch of data."""
        return self.decode_x(self.latent_map(self.encode_y(y)))

    @property
    def singular_values(self):
        """The diagonal of ``M`` (``latent_map='diagonal'``), detached."""
        if not isinstance(self.latent_map, DiagonalMap):
            # Not AttributeError: nn.Module would replace the message.
            raise ValueError(f'latent_map={self.latent_map_kind!r} has '
                                 'no singular values; use '
                                 "latent_map='diagonal'")
        return self.latent_map.sigma.detach().clone()

    def losses(self, x, y):
        """The four loss terms of a batch of pairs, as a dict of scalars.

        ``'x'``: ``mean |D_x E_x x - x|^2``; ``'y'``: ``mean |D_y E_y y -
        y|^2 / data_scale^2``; ``'inv'``: ``mean |D_x M E_y y - x|^2``;
        ``'code'``: ``mean |M E_y y - E_x x|^2 / mean |E_x x|^2`` with
        ``E_x x`` detached (a relative error: the codes' scale is free).
        """
        self._check(x, self.image_shape, 'image batch')
        self._check(y, self.data_shape, 'data batch')
        if x.shape[0] != y.shape[0]:
            raise ValueError(f'{x.shape[0]} images but {y.shape[0]} data')
        code_x = self.encode_x(x)
        code_y = self.encode_y(y)
        mapped = self.latent_map(code_y)
        target = code_x.detach()
        mse = nn.functional.mse_loss
        return {
            'x': mse(self.decode_x(code_x), x),
            'y': mse(self.decode_y(code_y) / self.data_scale,
                     y / self.data_scale),
            'inv': mse(self.decode_x(mapped), x),
            # Relative to the code's size, so the weight means the same
            # whatever scale E_x settles on.
            'code': mse(mapped, target) / (target.pow(2).mean() + 1e-12),
        }


def _weights(weights):
    w = dict(DEFAULT_WEIGHTS)
    if weights is not None:
        unknown = set(weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f'unknown loss weights {sorted(unknown)}; the '
                             f'terms are {LOSS_TERMS}')
        w.update({k: float(v) for k, v in weights.items()})
    if any(v < 0 for v in w.values()) or w['inv'] + w['code'] == 0:
        raise ValueError(f'loss weights must be >= 0 and link the codes '
                         f"(w['inv'] or w['code'] > 0), got {w}")
    return w


def learned_svd_losses(model, batch, weights=None):
    """The weighted L-SVD loss of a batch ``(x, y)`` (a `train` loss_fn).

    Returns a dict: ``'loss'`` (the weighted sum, minimised) and the terms
    ``'loss_x'``, ``'loss_y'``, ``'loss_inv'``, ``'loss_code'`` (logged).

    Examples
    --------
    >>> net = LearnedSVDNet((4, 4), (3, 5), latent_dim=2, hidden=())
    >>> out = learned_svd_losses(net, (torch.rand(2, 4, 4),
    ...                                torch.rand(2, 3, 5)),
    ...                          weights={'y': 0.0, 'code': 0.0})
    >>> bool(torch.isclose(out['loss'], out['loss_x'] + out['loss_inv']))
    True
    """
    w = _weights(weights)
    x, y = batch
    terms = model.losses(x, y)
    out = {'loss': sum(w[k] * terms[k] for k in LOSS_TERMS)}
    out.update({f'loss_{k}': terms[k] for k in LOSS_TERMS})
    return out


# --- operators and data ------------------------------------------------------

def describe_operator(operator):
    """A JSON-able description of ``operator`` to recognise it later.

    Shapes and extent of domain and range and, for a ray transform, the
    geometry: its class, angles, detector partition and (fan/cone) radii.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(16), num_angles=4)
    >>> info = describe_operator(A)
    >>> info['domain_shape'], info['range_shape'], info['geometry']
    ([16, 16], [4, 25], 'Parallel2dGeometry')
    """
    info = {}
    for role, space in (('domain', operator.domain),
                        ('range', operator.range)):
        info[f'{role}_shape'] = [int(s) for s in space.shape]
        if hasattr(space, 'min_pt'):
            info[f'{role}_min_pt'] = [float(v) for v in space.min_pt]
            info[f'{role}_max_pt'] = [float(v) for v in space.max_pt]
    geom = getattr(operator, 'geometry', None)
    if geom is not None:
        info['geometry'] = type(geom).__name__
        info['angles'] = [float(a) for a in np.ravel(geom.angles)]
        det = geom.det_partition
        info['detector'] = {'min_pt': [float(v) for v in det.min_pt],
                            'max_pt': [float(v) for v in det.max_pt],
                            'shape': [int(s) for s in det.shape]}
        for radius in ('src_radius', 'det_radius'):
            if hasattr(geom, radius):
                info[radius] = float(getattr(geom, radius))
    return info


def _info_differences(trained, given):
    """Entries where two `describe_operator` dicts differ (as strings)."""
    diffs = []
    for key in sorted(set(trained) | set(given)):
        a, b = trained.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f'{key}.{d}' for d in _info_differences(a, b)]
            continue
        same = a == b
        if not same and a is not None and b is not None and not isinstance(
                a, str) and not isinstance(b, str):
            a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
            same = (a_arr.shape == b_arr.shape
                    and np.allclose(a_arr, b_arr, rtol=1e-6, atol=1e-6))
        if not same:
            diffs.append(key if isinstance(a, (list, dict)) and len(
                str(a)) > 60 else f'{key}: {a!r} (trained) != {b!r} (given)')
    return diffs


def check_operator(model, operator, who='LearnedSVD', geometry=True):
    """Raise a ``ValueError`` unless ``operator`` is the one ``model`` knows.

    Shapes are always checked (the error names both); with ``geometry`` the
    extent and geometry too, when the model carries an ``operator_info``.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(16), num_angles=4)
    >>> net = LearnedSVDNet((16, 16), (5, 25), latent_dim=2, hidden=())
    >>> check_operator(net, A)
    Traceback (most recent call last):
    ...
    ValueError: LearnedSVD: the model was trained for data of shape (5, 25) but the operator's range has shape (4, 25)
    """
    dom, ran = tuple(operator.domain.shape), tuple(operator.range.shape)
    if dom != model.image_shape:
        raise ValueError(f'{who}: the model was trained for images of shape '
                         f'{model.image_shape} but the operator\'s domain has '
                         f'shape {dom}')
    if ran != model.data_shape:
        raise ValueError(f'{who}: the model was trained for data of shape '
                         f'{model.data_shape} but the operator\'s range has '
                         f'shape {ran}')
    if geometry and model.operator_info is not None:
        diffs = _info_differences(model.operator_info,
                                  describe_operator(operator))
        if diffs:
            raise ValueError(f'{who}: the operator is not the one the model '
                             'was trained for (same shapes, different '
                             'geometry or extent); differences: '
                             + '; '.join(diffs))


def mnist_tomography_pairs(operator, n=10000, split='train', start=0,
                           noise_level=0.05, seed=0, directory=None):
    """MNIST digits and their noisy measurements, for training an L-SVD.

    Digits ``start .. start + n - 1`` of ``split`` (float32 in [0, 1],
    28x28) are measured by ``operator`` (a ray transform on a 28x28 float32
    space, e.g. ``problems.ray_transform(problems.image_space(28), 30)``)
    through `odl_genprior.problems.measurement_pairs`.

    Parameters
    ----------
    operator : odl.Operator
        Domain shape ``(28, 28)``, float32.
    n, start : int
        How many digits, from which index.
    split : {'train', 'test'}
    noise_level, seed
        See `odl_genprior.problems.measurement_pairs`.
    directory : str or Path, optional
        The MNIST IDX files (default ``$ODL_GENPRIOR_MNIST``; see
        `odl_genprior.data.load_mnist`).

    Returns
    -------
    x, y : torch.Tensor

    Examples
    --------
    Without the files the error says where to put them:

    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(28), num_angles=4)
    >>> mnist_tomography_pairs(A, n=2, directory='/no/such/folder')
    Traceback (most recent call last):
    ...
    FileNotFoundError: MNIST directory /no/such/folder does not exist
    """
    if tuple(operator.domain.shape) != (28, 28):
        raise ValueError(f'MNIST digits are 28x28 but the operator domain '
                         f'has shape {operator.domain.shape}')
    if int(n) < 1 or int(start) < 0:
        raise ValueError(f'need n >= 1 and start >= 0, got n={n}, '
                         f'start={start}')
    images, _ = _data.load_mnist(split, directory, limit=int(start) + int(n))
    images = images[int(start):]
    if len(images) < int(n):
        raise ValueError(f'MNIST {split} has only {len(images) + start} '
                         f'digits; asked for {start} + {n}')
    y, x = measurement_pairs(operator, images, noise_level, seed)
    return x, y


# --- training and loading --------------------------------------------------

def train_learned_svd(operator, x, y, out_dir, *, latent_dim=64,
                      hidden=(512,), latent_map='diagonal',
                      out_activation='sigmoid', weights=None, epochs=10,
                      batch_size=64, lr=1e-3, seed=0, val_data=None,
                      data_info=None, progress=True, resume=True,
                      log_every=20, checkpoint_every=None, device='cpu',
                      command=None, steps=None):
    """Build and train a `LearnedSVDNet` on pairs ``(x, y)`` for ``operator``.

    Uses `odl_genprior.training.train` with `learned_svd_losses`: seeded
    (the model's initialisation by `seed_all`), logged to
    ``out_dir/metrics.csv`` (the total and the four terms), checkpointed and
    resumable; ``out_dir/config.json`` records the model (with
    `describe_operator` of ``operator`` and the data scale), the loss
    weights and ``data_info``, so `load_learned_svd` can rebuild the model.
    Calling again with the same arguments resumes (or returns the finished
    run); other arguments on the same folder are refused.

    Parameters
    ----------
    operator : odl.Operator
        The forward operator the pairs were made with.
    x, y : torch.Tensor
        ``(N, *operator.domain.shape)`` and ``(N, *operator.range.shape)``,
        e.g. `odl_genprior.problems.measurement_pairs` (which returns
        ``(y, x)``).
    out_dir : str, Path or None
        The run folder (None: no files).
    latent_dim, hidden, latent_map, out_activation
        See `LearnedSVDNet`.
    weights : dict, optional
        Loss weights ``{'x', 'y', 'inv', 'code'}``; missing ones are 1.
    epochs, batch_size, lr, seed, progress, resume, log_every,
    checkpoint_every, device, steps
        Passed to `odl_genprior.training.train` (Adam with ``lr``;
        ``steps``, a budget in steps, replaces ``epochs``).
    val_data : tuple of torch.Tensor, optional
        Held-out pairs ``(x, y)``: the validation metric (each epoch) is the
        mean squared reconstruction error ``val_mse``.
    data_info : dict, optional
        JSON-able description of the data (source, count, noise), recorded.
    command : str, optional
        The command line that made the run, recorded (not part of the run's
        identity: see `odl_genprior.training.recorded_command`).

    Returns
    -------
    model : LearnedSVDNet
        Trained, in eval mode.
    result : odl_genprior.training.TrainResult

    Examples
    --------
    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(16), num_angles=6)
    >>> y, x = measurement_pairs(A, np.random.rand(32, 16, 16), seed=0)
    >>> net, result = train_learned_svd(A, x, y, None, latent_dim=8,
    ...                                 hidden=(32,), epochs=2,
    ...                                 batch_size=16, progress=False)
    >>> result.step, sorted(result.losses)
    (4, ['loss', 'loss_code', 'loss_inv', 'loss_x', 'loss_y'])
    """
    image_shape, data_shape = (tuple(operator.domain.shape),
                               tuple(operator.range.shape))
    for t, shape, what in ((x, image_shape, 'x'), (y, data_shape, 'y')):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'{what} must be a torch.Tensor, got '
                            f'{type(t).__name__}')
        if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise ValueError(f'{what} of shape {tuple(t.shape)} is not a '
                             f'batch (N, *{shape}) for the operator')
    if len(x) != len(y):
        raise ValueError(f'{len(x)} images but {len(y)} data')
    w = _weights(weights)
    scale = float(y.abs().mean())
    if not scale > 0:
        raise ValueError('the data are all zero: nothing to learn from')
    seed_all(seed)
    model = LearnedSVDNet(image_shape, data_shape, latent_dim=latent_dim,
                          hidden=hidden, latent_map=latent_map,
                          out_activation=out_activation,
                          data_scale=round(scale, 6),
                          operator_info=describe_operator(operator))
    val_metric = None
    if val_data is not None:
        def val_metric(net, val):
            vx, vy = (t.to(module_device(net)) for t in val)
            return {'mse': float(torch.mean((net(vy) - vx) ** 2))}
    config = {'learned_svd': model.config, 'weights': w,
              'data': data_info or {}, 'lr': float(lr),
              'provenance': {'family': 'learned_svd',
                             'dataset': (data_info or {}).get('dataset')}}
    if command is not None:
        config['command'] = recorded_command(out_dir, config, command)
    result = train(model, lambda m, b: learned_svd_losses(m, b, w), (x, y),
                   out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                   lr=lr, seed=seed, val_data=val_data, val_metric=val_metric,
                   config=config, resume=resume, progress=progress,
                   log_every=log_every, checkpoint_every=checkpoint_every,
                   device=device, steps=steps)
    return model.eval(), result


def load_learned_svd(run_dir, device='cpu'):
    """Rebuild a trained `LearnedSVDNet` from its run folder (eval mode).

    Reads ``config.json`` (the model's arguments) and ``weights.pt``
    (``torch.load(weights_only=True)``) written by `train_learned_svd`.

    Examples
    --------
    >>> load_learned_svd('/no/such/run')
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/run/config.json not found: not a training run folder
    """
    cfg = read_run_config(run_dir, 'learned_svd', 'train_learned_svd')
    if not (Path(run_dir) / 'weights.pt').is_file():
        raise FileNotFoundError(f'{Path(run_dir) / "weights.pt"} not found: '
                                'the run has not finished (call '
                                'train_learned_svd again to resume it)')
    model = LearnedSVDNet(**cfg['learned_svd'])
    load_weights(model, Path(run_dir) / 'weights.pt')
    return model.to(device).eval()


# --- the reconstruction method ---------------------------------------------


def fit_learned_svd(config, out_dir, *, n_train=1000, n_val=100, epochs=10,
                    batch_size=64, lr=1e-3, seed=0, data_dir=None,
                    progress=True, resume=True, checkpoint_every=None,
                    command=None, device='cpu', steps=None, log_every=20):
    """Make the pairs of ``config`` and train a learned SVD on them.

    ``config``: ``dataset`` (``'ellipses'`` or ``'mnist'``; MNIST digits
    are 28x28 and read from ``data_dir`` or ``$ODL_GENPRIOR_MNIST``),
    ``size`` (ellipses; default 64), ``angles`` (parallel beam, default
    30), ``noise_level`` (relative, default 0.05), and `LearnedSVDNet`'s
    ``latent_dim``, ``hidden``, ``latent_map``, ``out_activation``, with
    the loss ``weights``. Training and validation images and noise come
    from the seeds ``seed`` and ``seed + 1``; the rest is
    `train_learned_svd`. Returns the trained model (eval mode).

    Examples
    --------
    >>> import tempfile
    >>> cfg = {'dataset': 'ellipses', 'size': 16, 'angles': 6,
    ...        'latent_dim': 4, 'hidden': [16]}
    >>> net = fit_learned_svd(cfg, tempfile.mkdtemp(), n_train=16, n_val=4,
    ...                       epochs=1, batch_size=8, progress=False)
    >>> net.image_shape, net.data_shape
    ((16, 16), (6, 25))
    """
    from odl_genprior import problems

    known = {'dataset', 'size', 'angles', 'noise_level', 'latent_dim',
             'hidden', 'latent_map', 'out_activation', 'weights'}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f'unknown learned-SVD option(s) {unknown}; known: '
                         f'{sorted(known)}')
    dataset = config.get('dataset', 'ellipses')
    if dataset not in ('ellipses', 'mnist'):
        raise ValueError(f"dataset must be 'ellipses' or 'mnist', got "
                         f'{dataset!r}')
    size = 28 if dataset == 'mnist' else int(config.get('size') or 64)
    if dataset == 'mnist' and config.get('size') not in (None, 28):
        raise ValueError('MNIST digits are 28x28; drop size')
    angles = int(config.get('angles', 30))
    noise = float(config.get('noise_level', 0.05))
    A = problems.ray_transform(problems.image_space(size), angles)
    if dataset == 'mnist':
        train_pairs = mnist_tomography_pairs(
            A, n=n_train, split='train', noise_level=noise, seed=seed,
            directory=data_dir)
        val_pairs = mnist_tomography_pairs(
            A, n=n_val, split='test', noise_level=noise, seed=seed + 1,
            directory=data_dir)
    else:
        train_pairs = measurement_pairs(
            A, _data.ellipse_batch(A.domain, n_train, seed=seed), noise,
            seed=seed)[::-1]
        val_pairs = measurement_pairs(
            A, _data.ellipse_batch(A.domain, n_val, seed=seed + 1), noise,
            seed=seed + 1)[::-1]
    info = {'dataset': dataset, 'size': size, 'angles': angles,
            'noise_level': noise, 'n_train': n_train, 'n_val': n_val}
    net = {k: config[k] for k in ('latent_dim', 'latent_map',
                                  'out_activation', 'weights')
           if k in config}
    if 'hidden' in config:
        net['hidden'] = tuple(config['hidden'])
    model, _ = train_learned_svd(
        A, *train_pairs, out_dir, epochs=epochs, batch_size=batch_size,
        lr=lr, seed=seed, val_data=val_pairs, data_info=info,
        progress=progress, resume=resume, checkpoint_every=checkpoint_every,
        command=command, device=device, steps=steps, log_every=log_every,
        **net)
    return model


def build_learned_svd(config):
    """The untrained network of a `fit_learned_svd` config (its operator
    made from ``size`` and ``angles``).

    Examples
    --------
    >>> build_learned_svd({'size': 16, 'angles': 6, 'latent_dim': 4}).data_shape
    (6, 25)
    """
    from odl_genprior import problems

    size = 28 if config.get('dataset') == 'mnist' else int(
        config.get('size') or 64)
    A = problems.ray_transform(problems.image_space(size),
                               int(config.get('angles', 30)))
    net = {k: config[k] for k in ('latent_dim', 'latent_map',
                                  'out_activation') if k in config}
    if 'hidden' in config:
        net['hidden'] = tuple(config['hidden'])
    return LearnedSVDNet(tuple(A.domain.shape), tuple(A.range.shape),
                         operator_info=describe_operator(A), **net)


def _is_learned_svd(user):
    return isinstance(user.get('learned_svd'), dict)


register(Family('learned_svd', build=build_learned_svd,
                fit=fit_learned_svd, load=load_learned_svd,
                recognizes=_is_learned_svd, commands={
                    'learned-svd': 'learned SVD (Boink and Brune) on CT '
                                   'pairs of ellipses or MNIST'}))
