r"""Unrolled proximal neural network (PNN) denoiser: dual forward-backward.

The proximal map of ``g o L`` with ``g = alpha ||.||_1``,

    x_hat = argmin_x  1/2 ||x - z||^2 + alpha ||L x||_1,

is the limit of the dual forward-backward iteration (Combettes, Dung & Vu
2010)

    u_{k+1} = prox_{tau_k g^*}(u_k - tau_k L (L^* u_k - z)),
    x_hat   = z - lim_k L^* u_k,

where ``prox_{tau g^*}`` is the projection onto the box ``[-alpha,
alpha]`` (``g^*`` is the indicator of that box, ODL's
``(alpha * L1Norm).convex_conj``, ``SoftThreshold(alpha).psi_conj``, for
every step ``tau``). Unrolling ``k^*`` iterations and learning one
operator ``L_k`` per layer gives the PNN of the seed (Wang, Benning &
Repetti, MLSP 2024),

    u_{k+1} = prox_{tau_k g^*}(u_k - tau_k L_k (L_k^* u_k - z)),
    k = 0, ..., k^* - 1,   u_0 = 0,
    x_{k^*} = z - L_{k^*}^* u_{k^*}.

Each layer is a proximal activation
(`odl_genprior.bregman.activations.HardTanh` with ``bound=alpha``) of an
affine map of ``u_k``: the network is a
`odl_genprior.bregman.lifted.LiftedNetwork` whose pre-activations take the
input ``z`` as context, so it can be trained by backpropagation or by the
lifted Bregman objective of the seed,

    sum_i [ l(z^i - L_{k^*}^* u_{k^*}^i, xbar^i)
            + sum_k B_{tau_k g^*}(u_{k+1}^i, u_k^i - tau_k L_k (L_k^* u_k^i
              - z^i)) ],

minimised over the auxiliary ``u`` and the operators (`lifted_step`).

* `ConvAnalysis`, `DenseAnalysis`: the operators ``L_k`` with adjoint and an
  upper bound of ``||L_k||^2``.
* `ProximalNeuralNetwork`: the torch module.
* `pnn_operator`: the module as an ODL operator (`TorchOperator`).
* `lifted_objective`, `lifted_step`, `train_pnn`: training.

Step sizes. ``tau_k = 1.99 sigmoid(theta_k) / beta_k`` with ``beta_k`` an
upper bound of ``||L_k||^2`` that is recomputed from the weights in every
forward pass, so ``tau_k ||L_k||^2 < 1.99 < 2`` (the step condition of the
dual forward-backward iteration, whose smooth part ``1/2 ||L^* u -
z||^2`` has an ``||L||^2``-Lipschitz gradient) holds for all weights the
training visits.
"""
import functools
import math
import numbers

import odl  # noqa: F401  (the doctests use it)
import torch

from odl_genprior.bregman.activations import HardTanh, SoftThreshold
from odl_genprior.bregman import bregman_prox
from odl_genprior.bregman import lifted
from odl_genprior.bridge import TorchOperator

__all__ = ('ConvAnalysis', 'DenseAnalysis', 'ProximalNeuralNetwork',
           'pnn_operator', 'box_prox', 'lifted_objective', 'lifted_step',
           'supervised_loss', 'train_pnn', 'MAX_STEP')

#: ``tau_k ||L_k||^2`` stays below this (< 2, the stability limit)
MAX_STEP = 1.99


def box_prox(v, alpha):
    """``prox_{tau g^*}(v)`` for ``g = alpha ||.||_1``: the clip to
    ``[-alpha, alpha]`` (any ``tau``), ``HardTanh(bound=alpha)``.

    Examples
    --------
    >>> box_prox(torch.tensor([-2.0, 0.1, 3.0]), 0.5)
    tensor([-0.5000,  0.1000,  0.5000])
    """
    return HardTanh(alpha)(v)


class ConvAnalysis(torch.nn.Module):
    r"""``L x = w * x``: a convolution from 1 to ``features`` channels.

    Zero padding of ``kernel_size // 2`` keeps the size; the adjoint is the
    transposed convolution with the same weights (exact for odd kernels).
    ``norm_sq_bound()`` is ``sum_f ||w_f||_1^2 >= ||L||^2`` (Young's
    inequality per channel), differentiable in the weights; it is sharp for
    difference kernels (``4`` for ``[-1, 1]``).

    Parameters
    ----------
    features : int
        Output channels.
    kernel_size : int
        Odd.
    dim : {1, 2}
        Signals ``(B, 1, n)`` or images ``(B, 1, H, W)``.
    weight : torch.Tensor, optional
        Initial weights ``(features, 1, *[kernel_size] * dim)``; default
        random normal with standard deviation ``1 / kernel_size^dim``.
    trainable : bool
        False: the weights are a buffer (a fixed operator).

    Examples
    --------
    >>> L = ConvAnalysis(features=2, kernel_size=3, dim=1)
    >>> x, u = torch.randn(1, 1, 8), torch.randn(1, 2, 8)
    >>> bool(torch.isclose((L(x) * u).sum(), (x * L.adjoint(u)).sum()))
    True
    """

    def __init__(self, features=8, kernel_size=3, dim=2, weight=None,
                 trainable=True):
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f'`dim` must be 1 or 2, got {dim!r}')
        if int(kernel_size) % 2 != 1:
            raise ValueError(f'`kernel_size` must be odd (same-size '
                             f'convolution with exact adjoint), got '
                             f'{kernel_size!r}')
        self.dim, self.kernel_size = dim, int(kernel_size)
        shape = (int(features), 1) + (self.kernel_size,) * dim
        if weight is None:
            weight = torch.randn(shape) / self.kernel_size ** dim
        weight = torch.as_tensor(weight, dtype=torch.get_default_dtype()
                                 if not torch.is_tensor(weight)
                                 else weight.dtype)
        if tuple(weight.shape) != shape:
            raise ValueError(f'`weight` has shape {tuple(weight.shape)}, '
                             f'expected {shape}')
        if trainable:
            self.weight = torch.nn.Parameter(weight.clone())
        else:
            self.register_buffer('weight', weight.clone())
        self._conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d
                      )[dim - 1]
        self._convt = (torch.nn.functional.conv_transpose1d,
                       torch.nn.functional.conv_transpose2d)[dim - 1]

    @property
    def features(self):
        """Number of output channels."""
        return self.weight.shape[0]

    def check_input(self, x, who='ConvAnalysis'):
        """Raise a clear error unless ``x`` is ``(B, 1, *spatial)``."""
        if not torch.is_tensor(x):
            raise TypeError(f'{who}: expected a torch.Tensor, got '
                            f'{type(x).__name__}')
        if x.ndim != self.dim + 2 or x.shape[1] != 1:
            spatial = ('n',) if self.dim == 1 else ('H', 'W')
            raise ValueError(
                f'{who}: expected input of shape (B, 1, '
                f'{", ".join(spatial)}) for a {self.dim}D convolutional '
                f'PNN, got {tuple(x.shape)}')

    def forward(self, x):
        """``L x``: ``(B, 1, *s) -> (B, features, *s)``."""
        return self._conv(x, self.weight, padding=self.kernel_size // 2)

    def adjoint(self, u):
        """``L^* u``: ``(B, features, *s) -> (B, 1, *s)``."""
        return self._convt(u, self.weight, padding=self.kernel_size // 2)

    def norm_sq_bound(self):
        """``sum_f ||w_f||_1^2``, an upper bound of ``||L||^2``."""
        return (self.weight.abs().reshape(self.features, -1).sum(1) ** 2
                ).sum()

    def dual_shape(self, x_shape):
        """Shape of ``L x`` for ``x`` of shape ``x_shape``."""
        return (x_shape[0], self.features) + tuple(x_shape[2:])

    def extra_repr(self):
        return (f'features={self.features}, kernel_size={self.kernel_size}, '
                f'dim={self.dim}')


class DenseAnalysis(torch.nn.Module):
    r"""``L x = A x`` with a matrix ``A`` of shape ``(m, n)``, on ``(B, n)``.

    ``norm_sq_bound()`` is ``||A||_2^2`` (largest singular value, exact and
    differentiable).

    Parameters
    ----------
    in_features, out_features : int
        ``n`` and ``m``.
    matrix : torch.Tensor, optional
        Initial ``A``; default random normal ``/ sqrt(n)``.
    trainable : bool
        False: ``A`` is a buffer (a fixed operator, e.g. finite
        differences).

    Examples
    --------
    >>> D = torch.diff(torch.eye(4), dim=0)  # forward differences, (3, 4)
    >>> L = DenseAnalysis(4, 3, matrix=D, trainable=False)
    >>> L(torch.tensor([[0.0, 1.0, 1.0, 3.0]]))
    tensor([[1., 0., 2.]])
    >>> round(float(L.norm_sq_bound()), 4)  # 4 sin^2(3 pi / 8)
    3.4142
    """

    def __init__(self, in_features, out_features, matrix=None,
                 trainable=True):
        super().__init__()
        n, m = int(in_features), int(out_features)
        if matrix is None:
            matrix = torch.randn(m, n) / math.sqrt(n)
        matrix = torch.as_tensor(matrix)
        if tuple(matrix.shape) != (m, n):
            raise ValueError(f'`matrix` has shape {tuple(matrix.shape)}, '
                             f'expected ({m}, {n})')
        if trainable:
            self.weight = torch.nn.Parameter(matrix.clone())
        else:
            self.register_buffer('weight', matrix.clone())

    @property
    def in_features(self):
        """``n``."""
        return self.weight.shape[1]

    def check_input(self, x, who='DenseAnalysis'):
        """Raise a clear error unless ``x`` is ``(B, n)``."""
        if not torch.is_tensor(x):
            raise TypeError(f'{who}: expected a torch.Tensor, got '
                            f'{type(x).__name__}')
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f'{who}: expected input of shape (B, '
                             f'{self.in_features}) for a dense PNN, got '
                             f'{tuple(x.shape)}')

    def forward(self, x):
        """``A x`` on ``(B, n)``."""
        return x @ self.weight.T

    def adjoint(self, u):
        """``A^T u`` on ``(B, m)``."""
        return u @ self.weight

    def norm_sq_bound(self):
        """``||A||_2^2``."""
        return torch.linalg.matrix_norm(self.weight, ord=2) ** 2

    def dual_shape(self, x_shape):
        """Shape of ``L x`` for ``x`` of shape ``x_shape``."""
        return (x_shape[0], self.weight.shape[0])

    def extra_repr(self):
        return f'in_features={self.weight.shape[1]}, ' \
               f'out_features={self.weight.shape[0]}'


def _logit(p):
    return math.log(p / (1.0 - p))


class ProximalNeuralNetwork(lifted.LiftedNetwork):
    r"""Unrolled dual forward-backward denoiser with learned ``L_k``.

    ``forward(z)`` runs ``u_0 = 0``, ``u_{k+1} = clip_alpha(u_k - tau_k L_k
    (L_k^* u_k - z))`` for ``k < k^*`` and returns ``z - L_{k^*}^*
    u_{k^*}``; with all ``L_k = L`` and ``k^* -> inf`` this is the proximal
    map of ``alpha ||L .||_1`` (tested against ODL's ``pdhg``).

    Parameters
    ----------
    operators : sequence of ConvAnalysis or DenseAnalysis
        ``L_0, ..., L_{k^*}`` (``k^* + 1`` operators for ``k^*`` layers),
        or a single operator shared by all layers (then give
        ``num_layers``).
    alpha : float
        Weight of ``g = alpha ||.||_1``; the dual variables live in
        ``[-alpha, alpha]``.
    num_layers : int, optional
        ``k^*`` when one shared operator is given.
    step : float in (0, 1.99)
        Initial ``tau_k ||L_k||^2`` bound ratio: ``tau_k = 1.99
        sigmoid(theta_k) / beta_k``, ``theta_k`` trainable (unless
        ``train_steps=False``), ``beta_k = L_k.norm_sq_bound()``.
    train_steps : bool
        Learn ``theta_k``.

    Examples
    --------
    >>> net = ProximalNeuralNetwork.conv(num_layers=3, features=4, dim=1)
    >>> z = torch.randn(2, 1, 16)
    >>> net(z).shape
    torch.Size([2, 1, 16])
    >>> bool(torch.all(net.steps() * net.norm_bounds() < 2))
    True
    """

    def __init__(self, operators, alpha=0.1, num_layers=None, step=1.0,
                 train_steps=True):
        if not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f'`alpha` must be positive, got {alpha!r}')
        if isinstance(operators, (ConvAnalysis, DenseAnalysis)):
            if num_layers is None or int(num_layers) < 1:
                raise ValueError('one shared operator needs `num_layers` '
                                 f'>= 1, got {num_layers!r}')
            shared, ops = operators, []
            num_layers = int(num_layers)
        else:
            ops = list(operators)
            if len(ops) < 2:
                raise ValueError(f'give k* + 1 >= 2 operators L_0, ..., '
                                 f'L_k*, got {len(ops)}')
            kinds = {type(op) for op in ops}
            if len(kinds) != 1 or not kinds <= {ConvAnalysis,
                                                DenseAnalysis}:
                names = sorted(k.__name__ for k in kinds)
                raise TypeError('`operators` must all be ConvAnalysis or all '
                                f'DenseAnalysis, got {names}')
            if num_layers is not None and int(num_layers) != len(ops) - 1:
                raise ValueError(f'{len(ops)} operators make '
                                 f'{len(ops) - 1} layers, not {num_layers}')
            shared, num_layers = None, len(ops) - 1
        # the layers' affine maps are pre_activations (they need z and tau)
        super().__init__((), [HardTanh(alpha) for _ in range(num_layers)])
        self.shared = shared
        self.operators = torch.nn.ModuleList(ops)
        if not 0 < float(step) < MAX_STEP:
            raise ValueError(f'`step` must lie in (0, {MAX_STEP}), got '
                             f'{step!r}')
        self.alpha = float(alpha)
        theta = torch.full((self.num_layers,), _logit(float(step)
                                                      / MAX_STEP))
        if train_steps:
            self.theta = torch.nn.Parameter(theta)
        else:
            self.register_buffer('theta', theta)
        #: g^* = indicator of [-alpha, alpha]^m: ODL's conjugate of alpha L1
        self.g = SoftThreshold(self.alpha)

    # -- constructors --
    @classmethod
    def conv(cls, num_layers=10, features=8, kernel_size=3, dim=2,
             alpha=0.1, step=1.0, train_steps=True):
        """A convolutional PNN with ``num_layers + 1`` random
        `ConvAnalysis` operators."""
        ops = [ConvAnalysis(features, kernel_size, dim)
               for _ in range(int(num_layers) + 1)]
        return cls(ops, alpha=alpha, step=step, train_steps=train_steps)

    @classmethod
    def dense(cls, num_layers, in_features, out_features, alpha=0.1,
              step=1.0, train_steps=True):
        """A dense PNN with ``num_layers + 1`` random `DenseAnalysis`
        operators."""
        ops = [DenseAnalysis(in_features, out_features)
               for _ in range(int(num_layers) + 1)]
        return cls(ops, alpha=alpha, step=step, train_steps=train_steps)

    # -- pieces --
    def dual_prox_odl(self, space, tau=1.0):
        """``prox_{tau g^*}`` on an ODL space: the proximal map of ODL's
        conjugate of ``alpha * L1Norm`` (the projection onto the box
        ``[-alpha, alpha]``), which `box_prox` computes on tensors."""
        return self.g.psi(space).convex_conj.proximal(float(tau))

    def operator(self, k):
        """``L_k`` (``k = 0, ..., k^*``)."""
        if not 0 <= k <= self.num_layers:
            raise IndexError(f'k must lie in [0, {self.num_layers}], got {k}')
        return self.shared if self.shared is not None else self.operators[k]

    def norm_bounds(self):
        """``beta_k >= ||L_k||^2`` for ``k < k^*`` (a tensor)."""
        return torch.stack([self.operator(k).norm_sq_bound()
                            for k in range(self.num_layers)])

    def steps(self):
        """``tau_k = 1.99 sigmoid(theta_k) / beta_k`` (a tensor)."""
        return MAX_STEP * torch.sigmoid(self.theta) / self.norm_bounds()

    def check_input(self, z):
        """Raise a clear error for a tensor of the wrong shape or dtype."""
        op = self.operator(0)
        op.check_input(z, who=type(self).__name__)
        if z.dtype != op.weight.dtype:
            raise TypeError(f'{type(self).__name__}: input has dtype '
                            f'{z.dtype}, the network {op.weight.dtype}')

    def pre_activation(self, k, u, context=None, tau=None):
        """``u - tau L_k (L_k^* u - z)``, the argument of layer ``k``
        (``context`` is the input ``z``; ``tau`` defaults to ``tau_k``)."""
        if context is None:
            raise ValueError('a PNN layer needs its input `z` as context')
        if tau is None:
            tau = self.steps()[k]
        L = self.operator(k)
        return u - tau * L(L.adjoint(u) - context)

    def pre_activations(self, states, context=None):
        """All layers' arguments for dual variables ``states`` and input
        ``z = context`` (the steps computed once)."""
        taus = self.steps()
        return [self.pre_activation(k, states[k], context, taus[k])
                for k in range(self.num_layers)]

    def forward_states(self, x, context=None):
        """``[u_0 = x, u_1, ..., u_{k^*}]`` for input ``z = context``."""
        taus = self.steps()
        states = [x]
        for k, act in enumerate(self.activations):
            states.append(act(self.pre_activation(k, states[-1], context,
                                                  taus[k])))
        return states

    def output(self, z, u_last):
        """``z - L_{k^*}^* u_{k^*}``."""
        return z - self.operator(self.num_layers).adjoint(u_last)

    def dual_variables(self, z):
        """The forward pass ``[u_0 = 0, u_1, ..., u_{k^*}]``."""
        self.check_input(z)
        u0 = z.new_zeros(self.operator(0).dual_shape(z.shape))
        return self.forward_states(u0, context=z)

    def forward(self, z):
        """The denoised ``x_{k^*}`` for noisy ``z``."""
        return self.output(z, self.dual_variables(z)[-1])

    def extra_repr(self):
        return f'num_layers={self.num_layers}, alpha={self.alpha}'


def pnn_operator(model, space):
    """A `ProximalNeuralNetwork` as an ODL operator ``space -> space``.

    ``space`` is a 1D (dense or ``dim=1`` convolutional PNN) or 2D
    (``dim=2``) real space whose dtype matches the model; the derivative and
    its adjoint come from torch autograd (`TorchOperator`).

    Examples
    --------
    >>> net = ProximalNeuralNetwork.conv(num_layers=2, features=2, dim=2)
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> op = pnn_operator(net, space)
    >>> op(space.one()).space == space
    True
    """
    if not isinstance(model, ProximalNeuralNetwork):
        raise TypeError(f'`model` must be a ProximalNeuralNetwork, got '
                        f'{type(model).__name__}')
    op = model.operator(0)
    if isinstance(op, DenseAnalysis):
        if space.shape != (op.in_features,):
            raise ValueError(f'a dense PNN on {op.in_features} entries needs '
                             f'a space of shape ({op.in_features},), got '
                             f'{space!r}')
    elif len(space.shape) != op.dim:
        raise ValueError(f'a {op.dim}D convolutional PNN needs a {op.dim}D '
                         f'space, got {space!r} of shape {space.shape}')
    in_shape = ((1,) + space.shape if isinstance(op, DenseAnalysis)
                else (1, 1) + space.shape)
    return TorchOperator(model, space, space, in_shape=in_shape)


# --- training ---------------------------------------------------------------

def _mse_per_sample(x, xbar):
    """``1/2 ||x - xbar||^2`` per sample."""
    d = (x - xbar).reshape(x.shape[0], -1)
    return 0.5 * (d * d).sum(1)


def supervised_loss(model, batch):
    """Mean over the batch of ``1/2 ||model(z) - xbar||^2`` (backprop
    training); ``batch = (z, xbar)``."""
    z, xbar = batch
    return _mse_per_sample(model(z), xbar).mean()


def lifted_objective(model, z, xbar, us, per_term=False):
    r"""The lifted Bregman objective of the seed, mean over the batch.

    ``l(z - L_{k^*}^* u_{k^*}, xbar) + sum_k B_{tau_k g^*}(u_{k+1}, u_k -
    tau_k L_k (L_k^* u_k - z))``, ``l = 1/2 ||. - .||^2``; ``us = [u_0, ...,
    u_{k^*}]`` (``u_0`` is 0). At the forward pass (`dual_variables`) every
    Bregman term vanishes and the objective is the loss of the network
    output. Differentiable in the parameters (the gradient of each Bregman
    term in its second argument is the closed form ``prox(.) - u_{k+1}``).
    The Bregman sum is the package's one lifted objective,
    `odl_genprior.bregman.lifted.lifted_objective`, with ``z`` as context.

    Parameters
    ----------
    model : ProximalNeuralNetwork
    z, xbar : torch.Tensor
        Noisy inputs and targets (same shape).
    us : list of torch.Tensor
        ``k^* + 1`` dual variables.
    per_term : bool
        Also return ``(loss, bregman)`` separately.

    Examples
    --------
    >>> net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=1)
    >>> z, xbar = torch.randn(2, 1, 8), torch.randn(2, 1, 8)
    >>> us = net.dual_variables(z)
    >>> total, loss, breg = lifted_objective(net, z, xbar, us, per_term=True)
    >>> abs(float(breg.detach())) < 1e-6
    True
    """
    if len(us) != model.num_layers + 1:
        raise ValueError(f'{model.num_layers} layers need '
                         f'{model.num_layers + 1} dual variables, got '
                         f'{len(us)}')
    if z.shape != xbar.shape:
        raise ValueError(f'`z` has shape {tuple(z.shape)} but `xbar` '
                         f'{tuple(xbar.shape)}')
    loss = _mse_per_sample(model.output(z, us[-1]), xbar).mean()
    breg = lifted.lifted_objective(model, us, context=z)
    total = loss + breg
    return (total, loss, breg) if per_term else total


def _dual_sweep(model, z, xbar, us, taus):
    """One backward Gauss-Seidel sweep of proximal gradient steps on the
    auxiliary ``u_{k^*}, ..., u_1`` (all closed form, no autograd).

    ``u_k`` (``k < k^*``) sees ``B_{k-1}(u_k, a_{k-1}(u_{k-1}))`` (its prox
    is `bregman_prox`) and the smooth ``B_k(u_{k+1}, a_k(u_k))``, ``a_k(u)
    = u - tau_k L_k (L_k^* u - z)``, with gradient ``(I - tau_k L_k L_k^*)
    (clip(a_k(u_k)) - u_{k+1})``, 1-Lipschitz since ``tau_k ||L_k||^2 <
    2``: step 1. ``u_{k^*}`` sees the loss, gradient ``-L_{k^*}(z -
    L_{k^*}^* u - xbar)``, Lipschitz ``beta_{k^*}``: step ``1 / beta_{k^*}``.
    """
    K = model.num_layers
    acts = model.activations
    last = model.operator(K)
    mu = 1.0 / max(float(last.norm_sq_bound()), 1e-12)
    grad = -last(model.output(z, us[K]) - xbar)
    pre = model.pre_activation(K - 1, us[K - 1], z, taus[K - 1])
    us[K] = bregman_prox(us[K] - mu * grad, pre, mu, acts[K - 1])
    for k in range(K - 1, 0, -1):
        L = model.operator(k)
        pre_k = model.pre_activation(k, us[k], z, taus[k])
        r = acts[k](pre_k) - us[k + 1]
        grad = r - taus[k] * L(L.adjoint(r))
        pre = model.pre_activation(k - 1, us[k - 1], z, taus[k - 1])
        us[k] = bregman_prox(us[k] - grad, pre, 1.0, acts[k - 1])
    return us


def lifted_step(model, optimizer, batch, dual_sweeps=3, param_steps=1):
    r"""One lifted-Bregman training step on a batch (no backprop through
    the network).

    1. ``u`` starts at the forward pass (every Bregman term zero);
    2. ``dual_sweeps`` sweeps of closed-form proximal gradient steps in the
       auxiliary ``u`` (`_dual_sweep`);
    3. ``param_steps`` optimizer steps on `lifted_objective` with ``u``
       fixed: its gradient in ``L_k`` and ``theta_k`` is the closed-form
       Bregman gradient ``prox(a_k) - u_{k+1}`` pulled back through the
       affine ``a_k`` (one layer deep, by autograd).

    Parameters
    ----------
    model : ProximalNeuralNetwork
    optimizer : torch.optim.Optimizer
    batch : (z, xbar)
    dual_sweeps, param_steps : int

    Returns
    -------
    dict
        ``'loss'`` (the network's loss before the step, as in backprop
        training), ``'lifted'`` and ``'bregman'`` (the lifted objective and
        its Bregman part after the dual sweeps).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=1)
    >>> opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    >>> xbar = torch.randn(4, 1, 16)
    >>> out = lifted_step(net, opt, (xbar + 0.1 * torch.randn(4, 1, 16), xbar))
    >>> sorted(out)
    ['bregman', 'lifted', 'loss']
    """
    z, xbar = batch
    model.check_input(z)
    if z.shape != xbar.shape:
        raise ValueError(f'`z` has shape {tuple(z.shape)} but `xbar` '
                         f'{tuple(xbar.shape)}')
    with torch.no_grad():
        taus = model.steps()
        us = model.dual_variables(z)
        loss0 = float(_mse_per_sample(model.output(z, us[-1]), xbar).mean())
        for _ in range(int(dual_sweeps)):
            us = _dual_sweep(model, z, xbar, us, taus)
    us = [u.detach() for u in us]
    for _ in range(int(param_steps)):
        optimizer.zero_grad()
        total, _, breg = lifted_objective(model, z, xbar, us, per_term=True)
        total.backward()
        optimizer.step()
    return {'loss': loss0, 'lifted': float(total.detach()),
            'bregman': float(breg.detach())}


_MODES = ('backprop', 'lifted')


def train_pnn(model, data, *, out_dir=None, mode='backprop', epochs=1,
              batch_size=32, lr=1e-3, seed=0, dual_sweeps=3, param_steps=1,
              progress=True, **train_kwargs):
    """Train a PNN denoiser with `odl_genprior.training.train`.

    ``mode='backprop'``: Adam on ``1/2 ||model(z) - xbar||^2`` through the
    unrolled network. ``mode='lifted'``: `lifted_step` (Adam on the lifted
    Bregman objective after closed-form sweeps in the auxiliary variables;
    no backprop through the network). Both are seeded, checkpointed in
    ``out_dir`` and resume from it.

    Parameters
    ----------
    model : ProximalNeuralNetwork
    data : tuple of torch.Tensor
        ``(noisy, clean)``: training pairs ``(z^i, xbar^i)`` along the
        first axis (the package's trainers all take ``(model, data, *,
        out_dir, ...)``).
    out_dir, epochs, batch_size, lr, seed, progress
        As in `odl_genprior.training.train`.
    mode : {'backprop', 'lifted'}
    dual_sweeps, param_steps : int
        Lifted mode only (see `lifted_step`).
    **train_kwargs
        Passed on to `odl_genprior.training.train`.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> net = ProximalNeuralNetwork.conv(num_layers=2, features=2, dim=1)
    >>> clean = torch.randn(8, 1, 16)
    >>> noisy = clean + 0.1 * torch.randn(8, 1, 16)
    >>> r = train_pnn(net, (noisy, clean), mode='lifted', batch_size=4,
    ...               progress=False)
    >>> r.step
    2
    """
    from odl_genprior.training import train
    if mode not in _MODES:
        raise ValueError(f'`mode` must be one of {_MODES}, got {mode!r}')
    if not isinstance(model, ProximalNeuralNetwork):
        raise TypeError(f'`model` must be a ProximalNeuralNetwork, got '
                        f'{type(model).__name__}')
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f'`data` must be a pair (noisy, clean) of tensors, '
                        f'got {type(data).__name__}')
    noisy, clean = data
    if not (torch.is_tensor(noisy) and torch.is_tensor(clean)):
        raise TypeError('`noisy` and `clean` must be torch tensors')
    if noisy.shape != clean.shape:
        raise ValueError(f'`noisy` has shape {tuple(noisy.shape)} but '
                         f'`clean` {tuple(clean.shape)}')
    model.check_input(noisy[:1])
    config = dict(train_kwargs.pop('config', None) or {})
    config.update(pnn_mode=mode, num_layers=model.num_layers,
                  alpha=model.alpha)
    if mode == 'backprop':
        return train(model, supervised_loss, (noisy, clean),
                     out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                     lr=lr, seed=seed, progress=progress, config=config,
                     **train_kwargs)
    config.update(dual_sweeps=int(dual_sweeps), param_steps=int(param_steps))
    step_fn = functools.partial(_lifted_step_fn, dual_sweeps=dual_sweeps,
                                param_steps=param_steps)
    return train(model, None, (noisy, clean), out_dir=out_dir,
                 epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                 step_fn=step_fn, progress=progress, config=config,
                 **train_kwargs)


def _lifted_step_fn(model, optimizer, batch, step, dual_sweeps, param_steps):
    return lifted_step(model, optimizer, batch, dual_sweeps, param_steps)
