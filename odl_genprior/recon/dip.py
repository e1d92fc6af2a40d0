"""Deep image prior (Ulyanov et al. 2018) for linear inverse problems.

The reconstruction is the output of an untrained network at a fixed input,
``x = F_theta(z0)``, whose parameters are fitted to the data alone::

    theta* = argmin_theta ||A F_theta(z0) - y||^2 + alpha TV(F_theta(z0))

with ``A`` the problem's ODL operator used as a torch layer
(`odl_genprior.bridge.OperatorLayer`, its adjoint is the backward pass),
``TV(x) = ||grad x||_{2,1}`` with ``odl.Gradient`` as a layer, and the norms
of the operator's ODL spaces (cell volumes included), so that ``alpha``
means what it means for `odl_genprior.recon.TV`. ``torch.optim.Adam``
updates ``theta``. The network fits the image's structure before the noise;
the iterate has to be stopped before it fits the noise, by a rule that sees
the data only:

* ``'discrepancy'``: Morozov's discrepancy principle; stop at the first
  iterate with ``||A x_k - y|| <= tau * delta``, ``delta`` the problem's
  ``noise_level`` (the norm of the noise in ``A.range``).
* ``'wmv'``: ES-WMV of Wang, Li, Zhuang, Chen, Liang and Sun (2021): the
  variance of the last ``window`` iterates, ``(1/W) sum ||x_i - mean||^2``,
  falls while the network learns structure and rises when it starts to fit
  noise; stop when it has not reached a new minimum for ``patience``
  iterations and return the iterate at the minimum.
* ``'auto'`` (default): ``'discrepancy'`` when the noise level is known
  (finite and positive), else ``'wmv'``.

The educated warm start (Barbano, Leuschner, Schmidt, Denker, Hauptmann,
Maass, Jin 2022) pre-trains the same network as a post-processing map
``FBP(y) -> x`` on simulated random-ellipse pairs (`pretrain_dip_network`,
with the package's training loop) and then runs DIP from those weights with
``z0 = FBP(y)``.
"""
import collections
import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import odl
import torch
from tqdm.auto import tqdm

from odl_genprior import data as _data
from odl_genprior import training
from odl_genprior.bridge import (OperatorLayer, _arrays_digest,
                                 _discard_cache_file,
                                 as_element, as_tensor, space_dtype,
                                 to_numpy)
from odl_genprior.files import atomic_write
from odl_genprior.generators.skip_net import SkipNet
from odl_genprior.metrics import psnr
from odl_genprior.problems import measurement_pairs
from odl_genprior.recon.base import (Reconstructor, check_choice,
                                     check_flag, check_option)
from odl_genprior.recon.classical import FBP

__all__ = ('DeepImagePrior', 'pretrain_dip_network', 'ellipse_fbp_pairs')

_RULES = ('auto', 'discrepancy', 'wmv', None)
_INPUTS = ('noise', 'fbp')


def _device_of(space, device):
    if device is not None:
        return torch.device(device)
    if getattr(space, 'impl', 'numpy') == 'pytorch':
        return torch.device(space.device)
    return torch.device('cpu')


class DeepImagePrior(Reconstructor):
    """Deep image prior: fit a network's parameters to the data.

    ``x = F_theta(z0)`` with ``theta`` minimising ``||A x - y||^2 + alpha_tv
    * TV(x)`` by Adam, stopped by a data-driven rule (see the module
    docstring). After a call, `history` holds the per-iteration curves,
    `stop_iteration` where the rule stopped, `returned_iteration` which
    iterate was returned and `network_` the fitted network (its weights
    after the last iteration run).

    Parameters
    ----------
    network : torch.nn.Module, optional
        Maps ``z0`` (a batch of one) to an image of ``problem.space``'s
        shape, e.g. ``(1, 1, H, W)``. It is copied: the argument is never
        changed. Default: a `SkipNet` with the input's channels.
    z0 : {'noise', 'fbp'} or torch.Tensor
        The fixed input. ``'noise'``: ``noise_scale * U(0, 1)`` of shape
        ``(1, noise_channels, H, W)`` drawn from ``seed``; ``'fbp'``: the
        FBP of the data, ``(1, 1, H, W)`` (needs a ray transform); a tensor
        is used as given.
    niter : int
        Maximum number of Adam steps.
    learning_rate : float
        Adam's learning rate.
    alpha_tv : float
        Weight of the total variation term (0: plain DIP).
    early_stopping : {'auto', 'discrepancy', 'wmv', None}
        The stopping rule; None runs ``niter`` steps and returns the last
        iterate.
    tau : float
        Discrepancy principle factor (``>= 1`` in theory).
    window, patience : int
        ES-WMV's window length and patience (iterations).
    continue_after_stop : bool
        Keep iterating to ``niter`` after the rule fired (to record whole
        curves); the returned image is still the early-stopped one.
    warm_start : dict or str or Path, optional
        A ``state_dict`` for the network, or a file or run folder of
        `odl_genprior.training.train` (e.g. from `pretrain_dip_network`).
    noise_channels, noise_scale : int, float
        Shape and scale of the ``'noise'`` input.
    fbp_filter, fbp_frequency_scaling : str, float
        The FBP of the ``'fbp'`` input (`odl_genprior.recon.FBP`).
    track : element, array or callable, optional
        A reference image (``history['psnr']`` records the PSNR of every
        iterate against it) or ``f(x_array) -> float``
        (``history['track']``). Never used to stop.
    seed : int
        Seeds the default network's initialisation and the noise input.
    device : str, optional
        Where the network runs (default: the space's device).
    callback : callable, optional
        ``callback(x)`` after every Adam step on the iterate ``x`` (an
        element of the problem space), as ODL's solvers call theirs.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> p = problems.ct(size=16, num_angles=8, noise_level=0.05, seed=0)
    >>> dip = DeepImagePrior(niter=5, early_stopping=None, noise_channels=4,
    ...                      network=SkipNet(in_channels=4, channels=(4, 8)))
    >>> x = dip(p, progress=False)
    >>> x in p.space, len(dip.history['data_fit'])
    (True, 6)
    """

    name = 'DIP'
    divergence_hint = 'learning_rate (the network step size)'

    def __init__(self, network=None, z0='noise', niter=3000,
                 learning_rate=1e-3,
                 alpha_tv=0.0, early_stopping='auto', tau=1.0, window=100,
                 patience=500, continue_after_stop=False, warm_start=None,
                 noise_channels=32, noise_scale=0.1, fbp_filter='Hann',
                 fbp_frequency_scaling=0.6, track=None, seed=0, device=None,
                 callback=None):
        if network is not None and not isinstance(network, torch.nn.Module):
            raise TypeError(f'network must be a torch.nn.Module, got '
                            f'{type(network).__name__}')
        if not (isinstance(z0, torch.Tensor) or z0 in _INPUTS):
            raise ValueError(f"z0 must be 'noise', 'fbp' or a torch.Tensor, "
                             f'got {z0!r}')
        if isinstance(z0, torch.Tensor) and z0.ndim < 1:
            raise ValueError(f'z0 tensor must have a batch axis, got shape '
                             f'{tuple(z0.shape)}')
        if early_stopping == 'none':
            early_stopping = None
        own = 'DIP'
        check_choice(own, 'early_stopping', early_stopping, _RULES)
        niter, window, patience, noise_channels = (
            check_option(own, key, value, minimum=low, integer=True)
            for key, value, low in (('niter', niter, 1), ('window', window, 2),
                                    ('patience', patience, 1),
                                    ('noise_channels', noise_channels, 1)))
        learning_rate = check_option(own, 'learning_rate', learning_rate,
                                     minimum=0, open_minimum=True)
        alpha_tv = check_option(own, 'alpha_tv', alpha_tv, minimum=0)
        tau = check_option(own, 'tau', tau, minimum=0, open_minimum=True)
        noise_scale = check_option(own, 'noise_scale', noise_scale, minimum=0)
        fbp_frequency_scaling = check_option(
            own, 'fbp_frequency_scaling', fbp_frequency_scaling, minimum=0,
            maximum=1, open_minimum=True)
        check_choice(own, 'fbp_filter', fbp_filter, FBP.FILTERS)
        seed = check_option(own, 'seed', seed, minimum=0, integer=True)
        continue_after_stop = check_flag(own, 'continue_after_stop',
                                         continue_after_stop)
        if warm_start is not None and not isinstance(
                warm_start, (dict, os.PathLike)) and not (
                isinstance(warm_start, str) and os.path.exists(warm_start)):
            raise ValueError(f'DIP: warm_start must be a state_dict or the '
                             f'path of a weights file, got {warm_start!r}')
        if track is not None and not callable(track) and not hasattr(
                track, 'space') and not isinstance(
                track, (np.ndarray, torch.Tensor)):
            raise ValueError(f'DIP: track must be a reference image (element, '
                             f'array or tensor) or a callable, got {track!r}')
        if device is not None:
            try:
                torch.device(device)
            except (RuntimeError, TypeError):
                raise ValueError(f'DIP: device {device!r} is not a torch '
                                 'device') from None
        self.network = network
        self.z0 = z0
        self.niter = int(niter)
        self.learning_rate = float(learning_rate)
        self.callback = callback
        self.alpha_tv = float(alpha_tv)
        self.early_stopping = early_stopping
        self.tau = float(tau)
        self.window = int(window)
        self.patience = int(patience)
        self.continue_after_stop = bool(continue_after_stop)
        self.warm_start = warm_start
        self.noise_channels = int(noise_channels)
        self.noise_scale = float(noise_scale)
        self.fbp_filter = fbp_filter
        self.fbp_frequency_scaling = float(fbp_frequency_scaling)
        self.track = track
        self.seed = int(seed)
        self.device = device
        self._history = None
        self._stop = None
        self._returned = None
        self._network = None
        self._rule = None

    # -- results of the last call --
    @property
    def history(self):
        """Per-iteration curves of the last call (dict of lists).

        ``'iteration'`` (0 is the initial network), ``'data_fit'``
        (``||A x_k - y||^2``), ``'loss'`` (the objective), ``'tv'`` (if
        ``alpha_tv > 0``), ``'variance'`` (ES-WMV; NaN until the window is
        full), ``'psnr'`` or ``'track'`` (if ``track`` is given).
        """
        return self._history

    @property
    def stop_iteration(self):
        """Iteration at which the rule fired (None: it never did)."""
        return self._stop

    @property
    def returned_iteration(self):
        """Index (into `history`) of the returned iterate."""
        return self._returned

    @property
    def rule(self):
        """The stopping rule used in the last call (``'auto'`` resolved)."""
        return self._rule

    def _extras(self):
        return {'history': self._history, 'stop_iteration': self._stop,
                'returned_iteration': self._returned, 'rule': self._rule,
                'network': self._network}

    @property
    def network_(self):
        """The fitted network of the last call."""
        return self._network

    def __repr__(self):
        def short(v):
            if isinstance(v, torch.nn.Module):
                return type(v).__name__
            if isinstance(v, (torch.Tensor, np.ndarray)):
                return f'<{type(v).__name__} {tuple(v.shape)}>'
            if isinstance(v, dict):
                return '<state_dict>'
            if hasattr(v, 'space'):
                return f'<element of {v.space!r}>'
            return repr(v)
        opts = ', '.join(f'{k}={short(v)}' for k, v in sorted(vars(
            self).items()) if not k.startswith('_'))
        return f'{type(self).__name__}({opts})'

    # -- set-up --
    def _resolve_rule(self, problem):
        rule = self.early_stopping
        if rule == 'auto':
            delta = float(getattr(problem, 'noise_level', float('nan')))
            rule = 'discrepancy' if math.isfinite(delta) and delta > 0 else (
                'wmv')
        if rule == 'discrepancy':
            delta = float(getattr(problem, 'noise_level', float('nan')))
            if not (math.isfinite(delta) and delta > 0):
                raise ValueError(
                    f"early_stopping='discrepancy' needs a known noise level,"
                    f' the problem has noise_level={delta}; use '
                    "early_stopping='wmv'")
        return rule

    def make_input(self, problem):
        """The fixed network input ``z0`` for ``problem`` (a tensor)."""
        space = problem.space
        dev, dtype = _device_of(space, self.device), space_dtype(space)
        if isinstance(self.z0, torch.Tensor):
            return self.z0.detach().to(device=dev, dtype=dtype)
        if self.z0 == 'noise':
            gen = torch.Generator().manual_seed(self.seed)
            z = self.noise_scale * torch.rand(
                (1, self.noise_channels) + tuple(space.shape), generator=gen,
                dtype=torch.float64)
            return z.to(device=dev, dtype=dtype)
        fbp = FBP(filter_type=self.fbp_filter,
                  frequency_scaling=self.fbp_frequency_scaling)
        x = fbp(problem, progress=False)
        return as_tensor(x, device=dev, dtype=dtype).reshape(
            (1, 1) + tuple(space.shape))

    def make_network(self, problem, z0):
        """The network to fit: a copy of ``network`` (or a new `SkipNet`),
        warm-started if asked, on the device and dtype of the problem."""
        space = problem.space
        dev, dtype = _device_of(space, self.device), space_dtype(space)
        if self.network is None:
            if z0.ndim != 2 + len(space.shape):
                raise ValueError(
                    f'z0 has shape {tuple(z0.shape)}; the default SkipNet '
                    f'needs (1, C, {", ".join(map(str, space.shape))})')
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = SkipNet(in_channels=z0.shape[1])
        else:
            net = copy.deepcopy(self.network)
        if self.warm_start is not None:
            try:
                if isinstance(self.warm_start, dict):
                    net.load_state_dict(self.warm_start)
                else:
                    training.load_weights(net, Path(self.warm_start))
            except (RuntimeError, training.UnreadableFileError) as e:
                raise ValueError(f'warm_start does not fit the network '
                                 f'{type(net).__name__}: {e}') from None
        return net.to(device=dev, dtype=dtype)

    @staticmethod
    def _check_input(net, z0, space):
        want = getattr(net, 'in_channels', None)
        if want is not None and (z0.ndim != 2 + len(space.shape)
                                 or z0.shape[0] != 1 or z0.shape[1] != want):
            raise ValueError(
                f'z0 has shape {tuple(z0.shape)} but the network '
                f'{type(net).__name__} expects (1, {want}, '
                f'{", ".join(map(str, space.shape))})')

    @staticmethod
    def _as_image(out, z0, space):
        shape = tuple(space.shape)
        if tuple(out.shape[-len(shape):]) != shape or out.numel() != (
                space.size):
            raise ValueError(
                f'the network output has shape {tuple(out.shape)} for z0 of '
                f'shape {tuple(z0.shape)}; expected (1, 1, '
                f'{", ".join(map(str, shape))}) for {space!r}')
        return out.reshape(shape)

    def _tracker(self, space):
        if self.track is None:
            return None, None
        if callable(self.track) and not hasattr(self.track, 'space'):
            return 'track', lambda a: float(self.track(a))
        ref = np.asarray(to_numpy(self.track), dtype=np.float64)
        if ref.shape != tuple(space.shape):
            raise ValueError(f'track reference has shape {ref.shape}, the '
                             f'problem space has shape {space.shape}')
        return 'psnr', lambda a: psnr(a, ref)

    # -- the fit --
    def _reconstruct(self, problem, progress):
        space, y = problem.space, problem.data
        A = problem.operator
        if not A.is_linear:
            raise ValueError(f'DIP needs a linear forward operator, got {A!r}')
        rule = self._resolve_rule(problem)
        self._rule = rule
        z0 = self.make_input(problem)
        net = self.make_network(problem, z0)
        self._check_input(net, z0, space)
        dev, dtype = z0.device, z0.dtype

        forward = OperatorLayer(A)
        w_ran = forward.weights(dev, dtype)[1]
        y_t = as_tensor(y, device=dev, dtype=dtype)
        if self.alpha_tv > 0:
            grad = OperatorLayer(odl.Gradient(space))
            w_dom = grad.weights(dev, dtype)[0]
        delta = float(getattr(problem, 'noise_level', float('nan')))
        track_key, track_fn = self._tracker(space)

        hist = {'iteration': [], 'data_fit': [], 'loss': []}
        if self.alpha_tv > 0:
            hist['tv'] = []
        if rule == 'wmv':
            hist['variance'] = []
        if track_key:
            hist[track_key] = []
        self._history, self._stop, self._returned = hist, None, None
        self._network = net

        # foreach: one fused update over all parameters (faster on CPU too).
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate,
                               foreach=True)
        net.train()
        chosen, chosen_k = None, None
        queue = collections.deque(maxlen=self.window)
        var_min, var_k, var_x = math.inf, None, None
        bar = tqdm(total=self.niter, disable=not progress, desc=self.name,
                   unit='it', dynamic_ncols=True)
        try:
            for k in range(self.niter + 1):
                try:
                    out = net(z0)
                except RuntimeError as e:
                    raise ValueError(
                        f'the network {type(net).__name__} failed on z0 of '
                        f'shape {tuple(z0.shape)}: {e}') from e
                x = self._as_image(out, z0, space)
                residual = forward(x) - y_t
                data_fit = (w_ran * residual.pow(2)).sum()
                loss = data_fit
                if self.alpha_tv > 0:
                    tv = (w_dom * torch.linalg.vector_norm(grad(x), dim=0)
                          ).sum()
                    loss = loss + self.alpha_tv * tv
                    hist['tv'].append(float(tv.detach()))
                xd = x.detach()
                hist['iteration'].append(k)
                hist['data_fit'].append(float(data_fit.detach()))
                hist['loss'].append(float(loss.detach()))
                if track_fn is not None:
                    hist[track_key].append(track_fn(xd.cpu().numpy()))
                if self.callback is not None and k > 0:  # after a step
                    self.callback(as_element(xd, space))

                # The stopping rule sees the data fit and the iterates only.
                if rule == 'discrepancy' and self._stop is None and (
                        math.sqrt(hist['data_fit'][-1]) <= self.tau * delta):
                    self._stop, chosen, chosen_k = k, xd.clone(), k
                elif rule == 'wmv':
                    queue.append(xd.reshape(-1).to(torch.float64))
                    var = math.nan
                    if len(queue) == self.window:
                        stack = torch.stack(tuple(queue))
                        var = float((stack - stack.mean(0)).pow(2).sum(1)
                                    .mean())
                        if self._stop is None:
                            if var < var_min:
                                var_min, var_k, var_x = var, k, xd.clone()
                            elif k - var_k >= self.patience:
                                self._stop, chosen, chosen_k = k, var_x, var_k
                    hist['variance'].append(var)
                if progress:
                    res = math.sqrt(hist['data_fit'][-1])
                    bar.set_postfix(residual=f'{res:.3g}', refresh=False)
                if k == self.niter or (self._stop is not None
                                       and not self.continue_after_stop):
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
        finally:
            bar.close()
        if chosen is None:
            if rule == 'wmv' and var_x is not None:
                chosen, chosen_k = var_x, var_k
            else:
                chosen, chosen_k = xd, hist['iteration'][-1]
        self._returned = chosen_k
        return as_element(chosen, space)


def ellipse_fbp_pairs(operator, n, noise_level=0.05, seed=0,
                      fbp_filter='Hann', fbp_frequency_scaling=0.6):
    """Simulated pairs ``(FBP(A x + e), x)`` on random-ellipse phantoms.

    The data are `odl_genprior.problems.measurement_pairs` of the phantoms
    (relative Gaussian noise ``noise_level * mean(|A x|)`` per sample).

    Parameters
    ----------
    operator : odl.applications.tomo.RayTransform
    n : int
        Number of pairs.
    noise_level : float
        Relative noise level.
    seed : int
        Seeds the phantoms and the noise.
    fbp_filter, fbp_frequency_scaling : str, float
        The FBP (``odl.applications.tomo.fbp_op``).

    Returns
    -------
    fbps, images : torch.Tensor
        Both ``(n, 1, H, W)`` float32 on the CPU.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(16), num_angles=8)
    >>> fbps, images = ellipse_fbp_pairs(A, 3)
    >>> fbps.shape, images.shape
    (torch.Size([3, 1, 16, 16]), torch.Size([3, 1, 16, 16]))
    """
    from odl.applications import tomo
    space = operator.domain
    images = _data.ellipse_batch(space, int(n), seed)
    fbp = tomo.fbp_op(operator, filter_type=fbp_filter,
                      frequency_scaling=fbp_frequency_scaling)
    y, x = measurement_pairs(operator, images, noise_level, seed)
    fbps = np.stack([to_numpy(fbp(operator.range.element(yi.numpy())))
                     for yi in y]) if len(y) else np.empty_like(images)
    shape = (int(n), 1) + tuple(space.shape)
    return (torch.from_numpy(fbps.astype(np.float32)).reshape(shape),
            x.reshape(shape))


def _pairs_digest(key, fbps, images):
    return _arrays_digest(key, [('fbps', fbps.contiguous().numpy()),
                                ('images', images.contiguous().numpy())])


def _read_pairs(path, meta):
    """The training pairs cached in ``path`` if they were made for ``meta``
    and match their SHA-256; else None. A file that cannot be read, has no
    key and checksum, was made for other settings or fails its checksum is
    reported (a warning naming it and why) and removed, never used."""
    try:
        seen = os.stat(path)
    except OSError:
        return None
    key = json.dumps(meta, sort_keys=True)
    try:
        stored = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(stored, dict) or 'sha256' not in stored:
            why = 'it carries no key and checksum (an older format)'
        elif stored.get('key') != key:
            why = f'it was made for other settings ({stored.get("key")})'
        elif _pairs_digest(key, stored['fbps'],
                           stored['images']) != stored['sha256']:
            why = 'its tensors do not match their SHA-256 checksum'
        else:
            return stored['fbps'], stored['images']
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001  (any failure: not used)
        why = f'it cannot be read ({type(e).__name__}: {e})'
    _discard_cache_file(path, why, seen)
    return None


def _write_pairs(path, meta, pairs):
    """Keep ``pairs`` in ``path`` with their key and checksum, whole or not
    at all (temporary file, fsync, ``os.replace``)."""
    key = json.dumps(meta, sort_keys=True)
    fbps, images = (t.detach().cpu().contiguous() for t in pairs)
    stored = {'meta': meta, 'key': key, 'fbps': fbps, 'images': images,
              'sha256': _pairs_digest(key, fbps, images)}
    atomic_write(path, lambda f: torch.save(stored, f))


def pretrain_dip_network(operator, out_dir=None, network=None, n_train=1024,
                         noise_level=0.05, epochs=10, batch_size=16, lr=1e-3,
                         seed=0, fbp_filter='Hann', fbp_frequency_scaling=0.6,
                         progress=True, resume=True, device='cpu'):
    """Pre-train a DIP network as FBP post-processing on random ellipses.

    The educated warm start of Barbano et al. (2022): the network learns
    ``FBP(A x + e) -> x`` (mean squared error) on simulated random-ellipse
    pairs (`ellipse_fbp_pairs`) with `odl_genprior.training.train` (seeded,
    checkpointed, resumable in ``out_dir``). DIP then starts from these
    weights with ``z0='fbp'`` (same FBP filter).

    Parameters
    ----------
    operator : RayTransform
        The forward operator of the problems the network is meant for.
    out_dir : str or Path, optional
        Run folder: ``weights.pt`` (pass it as ``warm_start``),
        ``checkpoint.pt``, ``metrics.csv``, ``config.json`` and the cached
        training pairs ``pairs.pt``. A finished run is loaded, not
        retrained; an interrupted one resumes.
    network : torch.nn.Module, optional
        Default ``SkipNet(in_channels=1)`` initialised from ``seed``.
    n_train, noise_level, epochs, batch_size, lr, seed : optional
        Training set size and noise, and the training loop's options.
    fbp_filter, fbp_frequency_scaling : str, float
        The FBP of the network input.
    progress, resume, device : optional
        Passed to `odl_genprior.training.train`.

    Returns
    -------
    network : torch.nn.Module
        The trained network (a warm start: ``network.state_dict()``).

    Examples
    --------
    >>> from odl_genprior import problems
    >>> A = problems.ray_transform(problems.image_space(16), num_angles=8)
    >>> net = pretrain_dip_network(A, n_train=8, epochs=1, batch_size=4,
    ...     network=SkipNet(in_channels=1, channels=(4,)), progress=False)
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """
    if network is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            network = SkipNet(in_channels=1)
    meta = {'n': int(n_train), 'noise_level': float(noise_level),
            'seed': int(seed), 'shape': list(operator.domain.shape),
            'range_shape': list(operator.range.shape),
            'fbp': [fbp_filter, float(fbp_frequency_scaling)]}
    pairs = None
    cache = None if out_dir is None else Path(out_dir) / 'pairs.pt'
    if cache is not None:
        pairs = _read_pairs(cache, meta)
    if pairs is None:
        pairs = ellipse_fbp_pairs(operator, n_train, noise_level, seed,
                                  fbp_filter, fbp_frequency_scaling)
        if cache is not None:
            _write_pairs(cache, meta, pairs)

    def loss_fn(model, batch):
        fbps, images = batch
        return torch.nn.functional.mse_loss(model(fbps), images)

    training.train(network, loss_fn, pairs, out_dir=out_dir, epochs=epochs,
                   batch_size=batch_size, lr=lr, seed=seed,
                   config={'pretrain_dip': meta}, resume=resume,
                   progress=progress, device=device)
    return network
