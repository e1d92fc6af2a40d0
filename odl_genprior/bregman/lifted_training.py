r"""Lifted Bregman training of feed-forward networks (Wang and Benning, 2023).

A network ``N(x) = sigma_L(W_L (... sigma_1(W_1 x + b_1) ...) + b_L)`` whose
activations are proximal maps, ``sigma_l = prox_{Psi_l}``
(`odl_genprior.bregman.activations`), is trained by minimising the *lifted* energy

    E(Theta, X) = 1/s sum_i sum_{l=1}^L B_{Psi_l}(x_l^i, W_l x_{l-1}^i + b_l)

over the parameters ``Theta = (W_l, b_l)_l`` **and** the auxiliary layer
variables ``X = (x_l^i)``, ``l = 1, ..., L-1``, with the input layer fixed,
``x_0^i`` = the (noisy) input, and the output layer tied to the target,
``x_L^i = y^i`` (as in the seed, "where x_i^0 = x_i and x_i^L = y_i").
``B_Psi`` is the Fenchel-Bregman loss (`odl_genprior.bregman`):
``B_Psi(y, z) >= 1/2 ||y - prox_Psi(z)||^2 >= 0``, zero iff
``y = prox_Psi(z)``, so ``E = 0`` exactly at the forward pass of a network
that maps every input to its target. Its gradient in ``z`` is
``prox_Psi(z) - y``: no derivative of an activation is ever needed.

Minimisation is by the seed's *implicit stochastic gradient* method: for a
random batch ``S`` the outer step is

    (Theta^{k+1}, X_S^{k+1}) = argmin_{Theta, X_S}  E_S(Theta, X_S)
                                 + 1/(2 tau) ||Theta - Theta^k||^2,

solved approximately by ``inner_iters`` block proximal-gradient iterations
(`implicit_sgd_step`); each iteration is

* a backward sweep ``l = L-1, ..., 1`` over the layer variables,
  ``x_l <- prox_{mu_l (1/2||.||^2 + Psi_l)}(x_l - mu_l g_l)`` with
  ``g_l = W_{l+1}^T (sigma_{l+1}(W_{l+1} x_l + b_{l+1}) - x_{l+1})
  - (W_l x_{l-1} + b_l)`` and ``mu_l = 1 / (1.05 ||W_{l+1}||_2^2)``
  (`lifted_prox`);
* a gradient step on every layer's ``(W_l, b_l)`` (independent given X)
  with the closed-form gradient
  ``1/s sum_i (sigma_l(W_l x_{l-1}^i + b_l) - x_l^i) [x_{l-1}^i; 1]^T
  + (Theta_l - Theta_l^k)/tau`` (`weight_gradients`), either with step
  ``1/L_l`` (its Lipschitz constant) or preconditioned by the Hessian of
  the same quadratic majorant (`LiftedStep`, ``w_step``).

The hidden variables of a batch start at the forward pass of the current
network (all hidden Bregman terms zero), so nothing per sample is stored.
`train_lifted` runs the method as a seeded, checkpointed, resumable job
through `odl_genprior.training.train` (``step_fn``). The network type and
the energy are the package's one lifted network and objective
(`odl_genprior.bregman.lifted`), shared with the PNN and lifted inversion.
"""
import math
import numbers

import torch

from odl_genprior.bregman import bregman_loss
from odl_genprior.bregman.lifted import (LiftedNetwork, _activation,
                                         lifted_objective)
from odl_genprior.training import train

__all__ = ('LiftedNetwork', 'lifted_energy', 'lifted_prox',
           'weight_gradients', 'forward_states', 'implicit_sgd_step',
           'LiftedStep', 'train_lifted')

_W_STEPS = ('lipschitz', 'metric')


def forward_states(network, x0):
    """``[x_0, ..., x_L]`` of ``network`` at ``x0`` (validated input); see
    `LiftedNetwork.forward_states`.

    Examples
    --------
    >>> net = LiftedNetwork([3, 2], ['relu'])
    >>> x = torch.randn(4, 3)
    >>> torch.equal(forward_states(net, x)[-1], net(x))
    True
    """
    _check_network(network)
    _check_input(network, x0, 'x0', 0)
    return network.forward_states(x0)


def _check_network(network):
    if not isinstance(network, LiftedNetwork):
        raise TypeError(f'expected a LiftedNetwork, got '
                        f'{type(network).__name__}')
    if network.sizes is None:
        raise TypeError('lifted training takes a dense LiftedNetwork (built '
                        'from sizes, torch.nn.Linear layers); got one of '
                        f'{[type(m).__name__ for m in network.affine]}')


def _check_input(network, x, name, layer):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'`{name}` must be a torch tensor, got '
                        f'{type(x).__name__}')
    n = network.sizes[layer]
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f'`{name}` (layer {layer}) must have shape '
                         f'(batch, {n}), got {tuple(x.shape)}')
    w = network.affine[0].weight
    if x.dtype != w.dtype:
        raise TypeError(f'`{name}` has dtype {x.dtype} but the network\'s '
                        f'parameters have dtype {w.dtype}')


def _layers(network, x0, hidden, target):
    """Validated ``[x_0, x_1, ..., x_L]`` from input, hidden and target."""
    _check_network(network)
    L = len(network)
    hidden = list(hidden)
    if len(hidden) != L - 1:
        raise ValueError(f'a network of {L} layers has {L - 1} hidden layer '
                         f'variables, got {len(hidden)}')
    xs = [x0] + hidden + [target]
    names = ['x0'] + [f'hidden[{i}]' for i in range(L - 1)] + ['target']
    for l, (x, name) in enumerate(zip(xs, names)):
        _check_input(network, x, name, l)
        if x.shape[0] != x0.shape[0]:
            raise ValueError(f'`{name}` has {x.shape[0]} samples, `x0` has '
                             f'{x0.shape[0]}')
    return xs


def lifted_energy(network, x0, hidden, target, reduction='mean'):
    r"""The lifted Bregman energy of a batch.

    ``E = 1/s sum_i sum_{l=1}^L B_{Psi_l}(x_l^i, W_l x_{l-1}^i + b_l)`` with
    ``x_0 = x0``, ``(x_1, ..., x_{L-1}) = hidden`` and ``x_L = target``.
    Differentiable (in the parameters and the layer variables) with the
    closed-form ``z``-gradients of `odl_genprior.bregman.bregman_loss`:
    `odl_genprior.bregman.lifted.lifted_objective` on validated layer
    variables of a dense network.

    Parameters
    ----------
    network : LiftedNetwork
    x0 : torch.Tensor, shape ``(s, sizes[0])``
        Network input.
    hidden : sequence of torch.Tensor
        ``L - 1`` tensors, shapes ``(s, sizes[l])``.
    target : torch.Tensor, shape ``(s, sizes[L])``
        The output layer variable.
    reduction : {'mean', 'sum', 'layers'}
        ``'mean'``: the energy above; ``'sum'``: ``s`` times it;
        ``'layers'``: a tensor of the ``L`` per-layer means.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    Zero at the forward pass, positive elsewhere:

    >>> net = LiftedNetwork([3, 4, 2], ['relu', 'identity'])
    >>> x = torch.randn(5, 3)
    >>> xs = net.forward_states(x)
    >>> lifted_energy(net, x, xs[1:-1], xs[-1]).item()
    0.0
    >>> lifted_energy(net, x, xs[1:-1], xs[-1] + 1).item() > 0
    True
    """
    if reduction not in ('mean', 'sum', 'layers'):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'layers', "
                         f'got {reduction!r}')
    return lifted_objective(network, _layers(network, x0, hidden, target),
                            reduction=reduction)


def lifted_prox(v, mu, activation):
    r"""``prox_{mu (1/2 ||.||^2 + Psi)}(v)``: the layer-variable prox.

    The optimality condition ``0 in u - v + mu u + mu dPsi(u)`` reads
    ``0 in u - v/(1+mu) + mu/(1+mu) dPsi(u)``, hence

        prox_{mu (1/2||.||^2 + Psi)}(v) = prox_{mu/(1+mu) Psi}(v / (1+mu)),

    closed form whenever the activation's ``prox(z, sigma)`` is: ReLU
    ``max(v, 0)/(1+mu)``, soft-thresholding at ``alpha`` the threshold
    ``mu alpha/(1+mu)`` of ``v/(1+mu)``, identity ``v/(1+mu)``. (With
    ``v = x + mu z`` this is `odl_genprior.bregman.bregman_prox`, the prox
    of ``mu B_Psi(., z)``.)

    Parameters
    ----------
    v : torch.Tensor
    mu : positive float or torch.Tensor
        Step size(s); a tensor broadcasts against ``v``.
    activation : str or ProximalActivation

    Examples
    --------
    >>> lifted_prox(torch.tensor([-2.0, 3.0]), 1.0, 'relu')
    tensor([0.0000, 1.5000])
    >>> lifted_prox(torch.tensor([-2.0, 3.0]), 1.0, 'soft_threshold')
    tensor([-0.5000,  1.0000])
    """
    act = _activation(activation)
    if isinstance(mu, numbers.Real) and not (0 < mu < math.inf):
        raise ValueError(f'step size `mu` must be positive and finite, got '
                         f'{mu!r}')
    return act.prox(v / (1 + mu), mu / (1 + mu))


def weight_gradients(network, x0, hidden, target):
    r"""Closed-form gradients of `lifted_energy` (mean) in ``(W_l, b_l)``.

    ``grad_{W_l} E = 1/s sum_i r_l^i (x_{l-1}^i)^T`` and
    ``grad_{b_l} E = 1/s sum_i r_l^i`` with the residual
    ``r_l = sigma_l(W_l x_{l-1} + b_l) - x_l = grad_z B_{Psi_l}(x_l, z)``:
    one forward evaluation of each layer, no backpropagation and no
    derivative of an activation.

    Parameters
    ----------
    network : LiftedNetwork
    x0, hidden, target
        As in `lifted_energy`.

    Returns
    -------
    list of (torch.Tensor, torch.Tensor)
        ``(grad_W, grad_b)`` per layer.

    Examples
    --------
    >>> net = LiftedNetwork([3, 2], ['relu']).double()
    >>> x, y = torch.randn(4, 3).double(), torch.rand(4, 2).double()
    >>> (gw, gb), = weight_gradients(net, x, [], y)
    >>> lifted_energy(net, x, [], y).backward()
    >>> bool(torch.allclose(gw, net.affine[0].weight.grad))
    True
    """
    xs = _layers(network, x0, hidden, target)
    s = x0.shape[0]
    grads = []
    with torch.no_grad():
        for l, (lin, act) in enumerate(zip(network.affine,
                                           network.activations)):
            r = act(lin(xs[l])) - xs[l + 1]
            grads.append((r.T @ xs[l] / s, r.sum(0) / s))
    return grads


def _power_sq_norm(weight, vec, iters):
    """``||W||_2^2`` by ``iters`` power iterations on ``W^T W`` from
    ``vec`` (updated in place); returns the Rayleigh quotient, a lower
    bound that converges from below."""
    for _ in range(iters):
        w = weight.T @ (weight @ vec)
        nrm = torch.linalg.vector_norm(w)
        if nrm == 0:
            return 0.0
        vec.copy_(w / nrm)
    return float(torch.linalg.vector_norm(weight @ vec) ** 2)


class LiftedStep:
    r"""One implicit stochastic gradient step of lifted Bregman training.

    Calling ``step(network, x0, target)`` replaces the parameters
    ``Theta^k`` of ``network`` (in place) by an approximate minimiser of

        F(Theta, X) = E_S(Theta, X) + 1/(2 tau) ||Theta - Theta^k||^2

    over ``Theta`` and the batch's layer variables ``X``, with ``x_0 = x0``
    and ``x_L = target``. ``X`` starts at the forward pass of ``Theta^k``
    (so ``F = E_S(Theta^k)`` is the output layer's term only); then
    ``inner_iters`` times:

    1. for ``l = L-1, ..., 1`` (backwards, so the target reaches every layer
       in one sweep): ``x_l <- lifted_prox(x_l - mu_l g_l, mu_l, sigma_l)``
       with ``g_l = W_{l+1}^T (sigma_{l+1}(W_{l+1} x_l + b_{l+1}) -
       x_{l+1}) - (W_l x_{l-1} + b_l)``, the gradient of the smooth part of
       ``F`` in ``x_l`` (per sample). It is Lipschitz with constant
       ``||W_{l+1}||_2^2`` (``prox_Psi`` is 1-Lipschitz), so
       ``mu_l = 1 / (margin ||W_{l+1}||_2^2)``; the norm comes from power
       iteration on ``W^T W`` (``power_iters`` at the start of the step from
       a fixed vector, then one more per inner iteration, warm started: the
       estimate converges from below, ``margin = 1.05`` covers the gap);
    2. for every layer (independently): ``Theta_l <- Theta_l - G_l P_l``
       with the closed-form gradient
       ``G_l = 1/s sum_i (sigma_l(Theta_l a^i) - x_l^i)(a^i)^T +
       (Theta_l - Theta_l^k)/tau``, ``a^i = [x_{l-1}^i; 1]``,
       ``Theta_l = [W_l, b_l]``. The smooth part of ``F`` in ``Theta_l``
       is majorised by the quadratic with Hessian
       ``M_l = A^T A / s + I / tau`` (``A`` the ``s x (n+1)`` matrix of the
       ``a^i``; again because ``grad_z B`` is 1-Lipschitz). ``w_step``:

       * ``'lipschitz'``: ``P_l = I / L_l`` with the Lipschitz constant
         ``L_l = ||A||_2^2 / s + 1/tau`` (exact: the largest eigenvalue of
         the ``s x s`` Gram matrix ``A A^T``); the seed's plain step;
       * ``'metric'`` (default): ``P_l = M_l^{-1}``, the minimiser of the
         same majorant (a variable-metric forward-backward step; applied
         through the Woodbury identity with an ``s x s`` Cholesky
         solve). For the identity layer the majorant is exact and one step
         solves the layer's ridge-regression subproblem.

    Both steps minimise a majorant of ``F`` in their block, so every inner
    iteration decreases ``F`` (given the power-iteration estimate).

    Parameters
    ----------
    tau : positive float
        Implicit (proximal) step size in the parameters.
    inner_iters : positive int
        Proximal-gradient iterations per outer step.
    w_step : {'metric', 'lipschitz'}
    power_iters : positive int
        Power iterations for ``||W_{l+1}||_2`` at the start of a step.
    margin : float >= 1
        Safety factor on the estimated ``||W_{l+1}||_2^2``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = LiftedNetwork([6, 6, 6], ['relu', 'identity'])
    >>> x = torch.rand(16, 6)
    >>> step = LiftedStep(tau=1.0, inner_iters=5)
    >>> info = step(net, x, x)
    >>> info['energy'] <= info['energy_start']
    True
    """

    def __init__(self, tau=1.0, inner_iters=5, w_step='metric',
                 power_iters=20, margin=1.05):
        if not (isinstance(tau, numbers.Real) and 0 < tau < math.inf):
            raise ValueError(f'`tau` must be a positive number, got {tau!r}')
        for name, v in (('inner_iters', inner_iters),
                        ('power_iters', power_iters)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'`{name}` must be a positive int, got '
                                 f'{v!r}')
        if w_step not in _W_STEPS:
            raise ValueError(f'`w_step` must be one of {_W_STEPS}, got '
                             f'{w_step!r}')
        if not (isinstance(margin, numbers.Real) and margin >= 1):
            raise ValueError(f'`margin` must be >= 1, got {margin!r}')
        self.tau, self.inner_iters, self.w_step = float(tau), inner_iters, w_step
        self.power_iters, self.margin = power_iters, float(margin)

    def config(self):
        """The step's settings as a JSON-able dict."""
        return {'tau': self.tau, 'inner_iters': self.inner_iters,
                'w_step': self.w_step, 'power_iters': self.power_iters,
                'margin': self.margin}

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in self.config().items())
        return f'LiftedStep({args})'

    @torch.no_grad()
    def __call__(self, network, x0, target, trace=False):
        """Do the step in place; return energies (floats).

        Returns
        -------
        dict
            ``energy_start`` (``E_S`` at ``Theta^k`` and the forward pass),
            ``energy`` (``E_S`` at the new ``(Theta, X)``), ``objective``
            (``F`` there), and with ``trace=True`` ``objectives``: ``F``
            after every inner iteration.
        """
        _check_network(network)
        _check_input(network, x0, 'x0', 0)
        _check_input(network, target, 'target', len(network))
        if target.shape[0] != x0.shape[0]:
            raise ValueError(f'`target` has {target.shape[0]} samples, `x0` '
                             f'has {x0.shape[0]}')
        lins, acts = list(network.affine), list(network.activations)
        L, s = len(lins), x0.shape[0]
        theta0 = [torch.cat([lin.weight, lin.bias[:, None]], 1)
                  for lin in lins]
        xs = network.forward_states(x0)
        xs[-1] = target
        # At the forward pass only the output layer's term is nonzero.
        energy_start = float(bregman_loss(target, lins[-1](xs[-2]), acts[-1],
                                          reduction='sum')) / s
        # Power-iteration vectors for ||W_{l+1}||, l = 1..L-1 (fixed start:
        # the step is a deterministic function of Theta^k and the batch).
        vecs = [torch.full((lin.weight.shape[1],), lin.weight.shape[1] ** -0.5,
                           dtype=x0.dtype, device=x0.device)
                for lin in lins[1:]]
        ones = torch.ones_like(x0[:, :1])
        eye = torch.eye(s, dtype=x0.dtype, device=x0.device)
        objectives = []
        for it in range(self.inner_iters):
            # -- layer variables: backward block proximal-gradient sweep --
            z_next = lins[-1](xs[L - 1])  # W_L x_{L-1} + b_L
            for l in range(L - 1, 0, -1):
                lin, nxt = lins[l - 1], lins[l]
                lip = _power_sq_norm(nxt.weight, vecs[l - 1],
                                     self.power_iters if it == 0 else 1)
                mu = 1.0 / (self.margin * lip) if lip > 0 else 1e6
                z = lin(xs[l - 1])
                r = acts[l](z_next) - xs[l + 1]
                grad = r @ nxt.weight - z
                xs[l] = lifted_prox(xs[l] - mu * grad, mu, acts[l - 1])
                z_next = z  # x_{l-1} and W_l are unchanged until next step
            # -- parameters: one majorisation step per layer --
            for l, (lin, act) in enumerate(zip(lins, acts)):
                a = torch.cat([xs[l], ones], 1)
                theta = torch.cat([lin.weight, lin.bias[:, None]], 1)
                r = act(lin(xs[l])) - xs[l + 1]
                grad = r.T @ a / s + (theta - theta0[l]) / self.tau
                gram = a @ a.T
                if self.w_step == 'lipschitz':
                    lip = float(torch.linalg.eigvalsh(gram)[-1]) / s \
                        + 1.0 / self.tau
                    theta = theta - grad / lip
                else:
                    # grad M^{-1}, M = A^T A/s + I/tau, by Woodbury:
                    # tau grad - tau^2 (grad A^T)(s I + tau A A^T)^{-1} A.
                    chol = torch.linalg.cholesky(s * eye + self.tau * gram)
                    inner = torch.cholesky_solve((grad @ a.T).T, chol).T
                    theta = theta - self.tau * grad \
                        + self.tau ** 2 * (inner @ a)
                lin.weight.copy_(theta[:, :-1])
                lin.bias.copy_(theta[:, -1])
            if trace or it == self.inner_iters - 1:
                objectives.append(self._objective(network, x0, xs, theta0))
        out = {'energy_start': energy_start, 'energy': objectives[-1][1],
               'objective': objectives[-1][0]}
        if trace:
            out['objectives'] = [o for o, _ in objectives]
        return out

    def _objective(self, network, x0, xs, theta0):
        prox_term = sum(float(torch.sum(
            (torch.cat([lin.weight, lin.bias[:, None]], 1) - t0) ** 2))
            for lin, t0 in zip(network.affine, theta0))
        energy = float(lifted_energy(network, x0, xs[1:-1], xs[-1]))
        return energy + prox_term / (2 * self.tau), energy


def implicit_sgd_step(network, x0, target, tau=1.0, inner_iters=5,
                      w_step='metric', trace=False):
    r"""One implicit SGD outer step of lifted Bregman training, in place.

    Shorthand for ``LiftedStep(tau, inner_iters, w_step)(network, x0,
    target, trace)``; see `LiftedStep` for the iteration and step sizes.

    Examples
    --------
    >>> net = LiftedNetwork([5, 5, 5], ['relu', 'identity']).double()
    >>> x = torch.rand(8, 5, dtype=torch.float64)
    >>> info = implicit_sgd_step(net, x, x, trace=True)
    >>> all(a >= b for a, b in zip(info['objectives'],
    ...                            info['objectives'][1:]))
    True
    """
    return LiftedStep(tau, inner_iters, w_step)(network, x0, target, trace)


def train_lifted(network, data, *, out_dir, epochs=1, batch_size=100,
                 tau=1.0, inner_iters=5, w_step='metric', seed=0,
                 val_data=None, val_metric=None, log_every=1,
                 checkpoint_every=None, callback=None, config=None,
                 resume=True, progress=True, device='cpu'):
    r"""Lifted Bregman training as a seeded, checkpointed, resumable job.

    Runs `LiftedStep` on the batches of `odl_genprior.training.train`
    (its ``step_fn`` mode): the same seeded data order, tqdm bar,
    ``metrics.csv``, atomic ``checkpoint.pt`` and resume (also mid-epoch,
    bit-identical on the CPU: the step is deterministic given the
    parameters and the batch). The loop's own optimizer (Adam) is created
    but never stepped. Logged per step: ``energy`` (the batch energy after
    the step) and ``energy_start`` (before it, at the forward pass).

    Parameters
    ----------
    network : LiftedNetwork
        Trained in place; seed its initialisation yourself
        (`odl_genprior.training.seed_all`).
    data : tuple (inputs, targets) of torch.Tensor
        Shapes ``(N, sizes[0])`` and ``(N, sizes[L])`` (for denoising: noisy
        and clean images, flattened).
    out_dir : str, Path or None
        Run directory (see `odl_genprior.training.train`); ``None``: no
        files.
    epochs, batch_size, seed, val_data, val_metric, log_every,
    checkpoint_every, callback, resume, progress, device
        As in `odl_genprior.training.train`.
    tau, inner_iters, w_step
        As in `LiftedStep`.
    config : dict, optional
        Further JSON-able settings recorded in ``config.json``; the lifted
        settings are recorded (and compared on resume) anyway.

    Returns
    -------
    odl_genprior.training.TrainResult

    Examples
    --------
    >>> from odl_genprior.training import seed_all
    >>> seed_all(0)
    >>> net = LiftedNetwork([8, 8, 8], ['relu', 'identity'])
    >>> x = torch.rand(32, 8)
    >>> r = train_lifted(net, (x, x), out_dir=None, epochs=2, batch_size=16,
    ...                  progress=False)
    >>> r.step, r.losses['energy'] < r.losses['energy_start']
    (4, True)
    """
    _check_network(network)
    if not (isinstance(data, tuple) and len(data) == 2):
        raise TypeError('`data` must be a tuple (inputs, targets) of tensors')
    x, y = data
    _check_input(network, x, 'inputs', 0)
    _check_input(network, y, 'targets', len(network))
    step = LiftedStep(tau, inner_iters, w_step)

    def step_fn(model, optimizer, batch, k):
        xb, yb = batch
        info = step(model, xb, yb)
        return {'energy': info['energy'],
                'energy_start': info['energy_start']}

    cfg = {'lifted_bregman': step.config(), 'sizes': network.sizes,
           'activations': [repr(a) for a in network.activations]}
    cfg.update(config or {})
    return train(network, None, (x, y), out_dir=out_dir, epochs=epochs,
                 batch_size=batch_size, step_fn=step_fn, seed=seed,
                 val_data=val_data, val_metric=val_metric,
                 log_every=log_every, checkpoint_every=checkpoint_every,
                 callback=callback, config=cfg, resume=resume,
                 progress=progress, device=device)
