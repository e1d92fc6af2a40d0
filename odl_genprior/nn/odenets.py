r"""Structure-preserving networks: ResNets as explicit Runge-Kutta steps.

A network of ``K`` layers integrates ``dz/dt = f(z, theta(t))`` on
``[0, T]``; layer ``k`` is one explicit Runge-Kutta step of size ``h_k``
with the parameters ``theta_k`` held fixed over the step,

.. math::
    Z_i = z_k + h_k \sum_{j<i} a_{ij} f(Z_j, \theta_k),\quad
    z_{k+1} = z_k + h_k \sum_i b_i f(Z_i, \theta_k),

given by a Butcher tableau ``(a, b)`` (`TABLEAUS`: Euler = ResNet, improved
Euler (Heun), Kutta(3), Kutta(4)). Layer vector fields:

* ``'dense'``: ``f(z) = sigma(K z + b)``;
* ``'antisymmetric'``: ``f(z) = sigma((K - K^T - gamma I) z + b)``;
* ``'gradient'``: ``f(z) = -A^T sigma(A z + b)`` with ``0 <= sigma' <= 1``,
  the negative gradient of a convex potential; an Euler step with
  ``0 <= h <= 2 / ||A||^2`` is nonexpansive, and `RKNet` enforces it by
  capping every step at that bound.

Step sizes are fixed (``T/K``), learned freely, or learned on the simplex
``{h >= 0, sum h = T}`` and kept there by ODL's `odl.solvers.proj_simplex`
after every optimizer step (`attach_simplex_projection`).
`HamiltonianNet` couples two variables and is integrated by the
(symplectic) Verlet / leapfrog scheme, which has an exact `inverse`.
`FeedForwardNet` is the plain ``z <- sigma(K z + b)`` baseline.

`lipschitz_bound` computes a certified Lipschitz constant from the layers,
`lipschitz_estimate` a lower estimate from the network itself (power
iteration on ``J^T J`` and a local search over pairs), and `rk_adjoint`
the exact discrete adjoint (gradient) of an `RKNet` by the partitioned
adjoint Runge-Kutta scheme of Hager / Sanz-Serna. `as_operator` makes any
of these networks an ODL operator on ``odl.rn(d)`` through
`odl_genprior.bridge.TorchOperator`.
"""
import math
from dataclasses import dataclass

import numpy as np
import odl
import torch

from odl_genprior.activations import activation, lipschitz
from odl_genprior.bridge import TorchOperator
from odl_genprior.metrics import max_pair_ratio

__all__ = ('ButcherTableau', 'TABLEAUS', 'DenseField', 'AntisymmetricField',
           'GradientField', 'RKNet', 'FeedForwardNet', 'HamiltonianNet',
           'rk_step', 'rk_adjoint', 'attach_simplex_projection',
           'lipschitz_bound', 'lipschitz_estimate', 'as_operator')


# --- Butcher tableaus ------------------------------------------------------

@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method ``(a, b)``, ``a`` strictly lower.

    Parameters
    ----------
    name : str
    a : tuple of tuple of float
        ``s x s`` coefficients, zero on and above the diagonal.
    b : tuple of float
        ``s`` weights (summing to 1 for a consistent method).

    Examples
    --------
    >>> TABLEAUS['heun'].c
    (0.0, 1.0)
    >>> TABLEAUS['rk4'].stages
    4
    """

    name: str
    a: tuple
    b: tuple

    def __post_init__(self):
        s = len(self.b)
        if len(self.a) != s or any(len(row) != s for row in self.a):
            raise ValueError(f'tableau {self.name!r}: `a` must be {s}x{s} '
                             f'for {s} weights, got {self.a}')
        for i, row in enumerate(self.a):
            if any(row[j] != 0 for j in range(i, s)):
                raise ValueError(f'tableau {self.name!r} is not explicit: '
                                 f'a[{i}] = {row} has entries on or above '
                                 'the diagonal')

    @property
    def stages(self):
        """Number of stages ``s``."""
        return len(self.b)

    @property
    def c(self):
        """Nodes ``c_i = sum_j a_ij``."""
        return tuple(float(sum(row)) for row in self.a)


TABLEAUS = {
    'euler': ButcherTableau('euler', ((0.0,),), (1.0,)),
    'heun': ButcherTableau('heun', ((0.0, 0.0), (1.0, 0.0)), (0.5, 0.5)),
    'kutta3': ButcherTableau(
        'kutta3', ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (-1.0, 2.0, 0.0)),
        (1 / 6, 2 / 3, 1 / 6)),
    'rk4': ButcherTableau(
        'rk4', ((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0),
                (0.0, 0.5, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}
TABLEAUS['improved_euler'] = TABLEAUS['heun']
TABLEAUS['resnet'] = TABLEAUS['euler']


def _tableau(method):
    if isinstance(method, ButcherTableau):
        return method
    try:
        return TABLEAUS[method]
    except (KeyError, TypeError):
        raise ValueError(f'unknown Runge-Kutta method {method!r}; choose one '
                         f'of {sorted(TABLEAUS)} or pass a ButcherTableau')


# --- activations and vector fields -----------------------------------------

def _activation(name):
    """The module and Lipschitz constant S of `odl_genprior.activations`
    entry ``name`` (every entry has ``0 <= sigma' <= S``)."""
    return activation(name), lipschitz(name)


def _spectral_norm(m):
    """``||m||_2`` (largest singular value), differentiable."""
    return torch.linalg.matrix_norm(m, ord=2)


class DenseField(torch.nn.Module):
    """``f(z) = sigma(K z + b)`` on ``R^dim``; Lipschitz ``S ||K||_2``.

    Examples
    --------
    >>> f = DenseField(3)
    >>> f(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    def __init__(self, dim, activation='tanh', init_scale=1.0):
        super().__init__()
        self.dim = int(dim)
        self.activation = activation
        self._sigma, self.sigma_lipschitz = _activation(activation)
        self.K = torch.nn.Parameter(
            init_scale * torch.randn(dim, dim) / math.sqrt(dim))
        self.b = torch.nn.Parameter(0.1 * torch.randn(dim))

    def matrix(self):
        """The matrix applied to ``z``."""
        return self.K

    def forward(self, z):
        return self._sigma(z @ self.matrix().T + self.b)

    def lipschitz(self):
        """Lipschitz constant ``S ||K||_2`` of ``z -> f(z)`` (a float)."""
        with torch.no_grad():
            return float(self.sigma_lipschitz * _spectral_norm(self.matrix()))


class AntisymmetricField(DenseField):
    """``f(z) = sigma((K - K^T - gamma I) z + b)`` (Haber-Ruthotto).

    The Jacobian ``D (K - K^T - gamma I)`` of the field has eigenvalues with
    real part ``<= 0`` for ``gamma >= 0`` when ``D = diag(sigma') >= 0``.

    Examples
    --------
    >>> f = AntisymmetricField(3)
    >>> m = f.matrix().detach()
    >>> bool(torch.allclose(m, -m.T))
    True
    """

    def __init__(self, dim, activation='tanh', gamma=0.0, init_scale=1.0):
        super().__init__(dim, activation, init_scale)
        self.gamma = float(gamma)

    def matrix(self):
        eye = torch.eye(self.dim, dtype=self.K.dtype, device=self.K.device)
        return self.K - self.K.T - self.gamma * eye


class GradientField(torch.nn.Module):
    """``f(u) = -A^T sigma(A u + b)``, ``A`` of shape ``(hidden, dim)``.

    With ``0 <= sigma' <= 1`` (tanh, ReLU, sigmoid) this is ``-grad V`` of a
    convex ``V`` whose gradient is ``||A||^2``-Lipschitz, hence
    ``1/||A||^2``-cocoercive (Baillon-Haddad), and the Euler step
    ``u - h A^T sigma(A u + b)`` is nonexpansive for
    ``0 <= h <= 2 / ||A||_2^2`` (`max_step`).

    Examples
    --------
    >>> f = GradientField(2, hidden=4)
    >>> f(torch.randn(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(self, dim, hidden=None, activation='tanh', init_scale=1.0):
        super().__init__()
        self.dim = int(dim)
        hidden = self.dim if hidden is None else int(hidden)
        self.activation = activation
        self._sigma, self.sigma_lipschitz = _activation(activation)
        self.A = torch.nn.Parameter(
            init_scale * torch.randn(hidden, dim) / math.sqrt(dim))
        self.b = torch.nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, u):
        return -(self._sigma(u @ self.A.T + self.b) @ self.A)

    def max_step(self):
        """``2 / ||A||_2^2`` as a (differentiable) tensor."""
        return 2.0 / _spectral_norm(self.A) ** 2

    def lipschitz(self):
        """Lipschitz constant ``S ||A||_2^2`` of the field (a float)."""
        with torch.no_grad():
            return float(self.sigma_lipschitz * _spectral_norm(self.A) ** 2)


_FIELDS = {'dense': DenseField, 'antisymmetric': AntisymmetricField,
           'gradient': GradientField}


# --- the Runge-Kutta network -----------------------------------------------

def rk_step(field, z, h, tableau):
    """One explicit Runge-Kutta step ``z + h sum_i b_i f(Z_i)``.

    Parameters
    ----------
    field : callable
        ``f(z)``, autonomous over the step.
    z : torch.Tensor
        State, shape ``(..., d)``.
    h : float or torch.Tensor
        Step size (a scalar).
    tableau : ButcherTableau or str

    Returns
    -------
    z_next : torch.Tensor

    Examples
    --------
    One RK4 step of ``z' = -z`` matches ``exp(-h)`` to ``O(h^5)``:

    >>> z = torch.ones(1, dtype=torch.float64)
    >>> float(rk_step(lambda u: -u, z, 0.1, 'rk4')) - math.exp(-0.1) < 1e-7
    True
    """
    tab = _tableau(tableau)
    ks = []
    for i in range(tab.stages):
        zi = z
        for j in range(i):
            if tab.a[i][j] != 0:
                zi = zi + (h * tab.a[i][j]) * ks[j]
        ks.append(field(zi))
    incr = sum(bi * k for bi, k in zip(tab.b, ks) if bi != 0)
    return z + h * incr


_STEP_MODES = ('fixed', 'free', 'simplex')


class RKNet(torch.nn.Module):
    """``n_layers`` explicit Runge-Kutta steps of ``dz/dt = f(z, theta_k)``.

    Parameters
    ----------
    dim : int
        Width ``d``: the network maps ``(..., d) -> (..., d)``.
    n_layers : int
        Number of layers (time steps) ``K``.
    field : {'dense', 'antisymmetric', 'gradient'}, optional
        Layer vector field (see the module docstring).
    method : str or ButcherTableau, optional
        ``'euler'`` (ResNet), ``'heun'`` (improved Euler), ``'kutta3'``,
        ``'rk4'``.
    T : float, optional
        Final time; initial steps are ``T / K``.
    steps : {'fixed', 'free', 'simplex'}, optional
        ``'fixed'``: a buffer ``T/K`` (ResNet). ``'free'``: a learned
        parameter. ``'simplex'``: a learned parameter projected back onto
        ``{h >= 0, sum h = T}`` after every optimizer step (call
        `project_steps`, or `attach_simplex_projection` once).
    activation : {'tanh', 'relu', 'sigmoid', 'none'}, optional
    hidden : int, optional
        Rows of ``A`` for ``field='gradient'`` (default ``d``).
    gamma : float, optional
        Damping of ``field='antisymmetric'``.
    init_scale : float, optional
        Scale of the random initial matrices.
    dtype, device : optional
        Of the parameters (default float32, CPU).

    Notes
    -----
    For ``field='gradient'`` the step actually taken is
    ``clamp(h_k, 0, 2 / ||A_k||_2^2)`` (`effective_steps`), recomputed on
    every forward pass from the current ``A_k``: with ``method='euler'``
    every layer is nonexpansive whatever the parameters, so
    `lipschitz_bound` returns 1.

    Examples
    --------
    >>> net = RKNet(2, n_layers=5, method='rk4', steps='simplex')
    >>> net(torch.randn(7, 2)).shape
    torch.Size([7, 2])
    >>> float(net.step_sizes.detach().sum())
    1.0
    """

    def __init__(self, dim, n_layers, field='dense', method='euler', T=1.0,
                 steps='fixed', activation='tanh', hidden=None, gamma=0.0,
                 init_scale=1.0, dtype=torch.float32, device='cpu'):
        super().__init__()
        if field not in _FIELDS:
            raise ValueError(f'unknown field {field!r}; choose one of '
                             f'{sorted(_FIELDS)}')
        if steps not in _STEP_MODES:
            raise ValueError(f'`steps` must be one of {_STEP_MODES}, got '
                             f'{steps!r}')
        if int(n_layers) < 1 or int(dim) < 1:
            raise ValueError(f'`dim` and `n_layers` must be positive, got '
                             f'{dim}, {n_layers}')
        if not T > 0:
            raise ValueError(f'final time `T` must be positive, got {T}')
        self.dim, self.n_layers, self.T = int(dim), int(n_layers), float(T)
        self.field_kind, self.steps_mode = field, steps
        self.tableau = _tableau(method)
        kwargs = dict(activation=activation, init_scale=init_scale)
        if field == 'gradient':
            kwargs['hidden'] = hidden
        if field == 'antisymmetric':
            kwargs['gamma'] = gamma
        self.fields = torch.nn.ModuleList(
            [_FIELDS[field](dim, **kwargs) for _ in range(self.n_layers)])
        h0 = torch.full((self.n_layers,), self.T / self.n_layers)
        if steps == 'fixed':
            self.register_buffer('step_sizes', h0)
        else:
            self.step_sizes = torch.nn.Parameter(h0)
        self.to(dtype=dtype, device=device)

    def effective_steps(self):
        """The step sizes used in `forward` (capped for gradient fields)."""
        h = self.step_sizes
        if self.field_kind != 'gradient':
            return h
        cap = torch.stack([f.max_step() for f in self.fields])
        return torch.minimum(torch.clamp(h, min=0), cap)

    def _check(self, z):
        if not isinstance(z, torch.Tensor):
            raise TypeError(f'input must be a torch.Tensor, got '
                            f'{type(z).__name__}')
        if z.shape[-1:] != (self.dim,):
            raise ValueError(f'input has shape {tuple(z.shape)}; expected '
                             f'(..., {self.dim})')
        if z.dtype != self.step_sizes.dtype:
            raise TypeError(f'input has dtype {z.dtype}, the network '
                            f'{self.step_sizes.dtype}')

    def forward(self, z):
        self._check(z)
        h = self.effective_steps()
        for k, f in enumerate(self.fields):
            z = rk_step(f, z, h[k], self.tableau)
        return z

    def trajectory(self, z):
        """All states ``[z_0, ..., z_K]`` (with their autograd graph)."""
        self._check(z)
        h = self.effective_steps()
        out = [z]
        for k, f in enumerate(self.fields):
            out.append(rk_step(f, out[-1], h[k], self.tableau))
        return out

    @torch.no_grad()
    def project_steps(self):
        """Project ``step_sizes`` onto ``{h >= 0, sum h = T}`` in place.

        Uses ODL's `odl.solvers.proj_simplex` (Duchi et al. 2008). A no-op
        unless ``steps='simplex'``.
        """
        if self.steps_mode != 'simplex':
            return
        h = self.step_sizes.detach().cpu().double().numpy()
        self.step_sizes.copy_(torch.as_tensor(_proj_simplex(h, self.T)))


class _ArrayWithAsarray(np.ndarray):
    """A NumPy array that also answers ``asarray()`` like an ODL element."""

    def asarray(self):
        return np.asarray(self)


def _proj_simplex(h, diameter):
    """ODL's `odl.solvers.proj_simplex` on a 1D NumPy array.

    In ODL 1.0 ``proj_simplex`` fails on its own elements (its final
    ``np.maximum(x - shift, 0)`` converts an element to an array, which ODL
    1.0 forbids), and ``IndicatorSimplex.proximal`` fails with it; the
    algorithm itself only needs ``asarray()``, ``size``, subtraction and
    ``out[:] =``, so it runs unchanged on this array view.
    """
    out = np.empty_like(h)
    odl.solvers.proj_simplex(np.asarray(h, dtype=float).view(
        _ArrayWithAsarray), diameter=float(diameter), out=out)
    return out


def attach_simplex_projection(optimizer, net):
    """Project ``net``'s simplex steps after every ``optimizer.step()``.

    Registers a step post-hook (``Optimizer.register_step_post_hook``) that
    calls ``net.project_steps()``, so the constraint holds after every
    update, also inside `odl_genprior.training.train`.

    Returns
    -------
    handle : torch.utils.hooks.RemovableHandle

    Examples
    --------
    >>> net = RKNet(2, 4, steps='simplex')
    >>> opt = torch.optim.SGD(net.parameters(), lr=1.0)
    >>> _ = attach_simplex_projection(opt, net)
    >>> net(torch.randn(8, 2)).pow(2).sum().backward(); opt.step()
    >>> h = net.step_sizes.detach()
    >>> bool(h.min() >= 0) and abs(float(h.sum()) - 1.0) < 1e-6
    True
    """
    return optimizer.register_step_post_hook(
        lambda *_args, **_kw: net.project_steps())


class FeedForwardNet(torch.nn.Module):
    """Plain ``z_{k+1} = sigma(K_k z_k + b_k)``, ``n_layers`` layers.

    Examples
    --------
    >>> FeedForwardNet(2, 3)(torch.randn(4, 2)).shape
    torch.Size([4, 2])
    """

    def __init__(self, dim, n_layers, activation='tanh', init_scale=1.0,
                 dtype=torch.float32, device='cpu'):
        super().__init__()
        self.dim, self.n_layers = int(dim), int(n_layers)
        self.fields = torch.nn.ModuleList(
            [DenseField(dim, activation, init_scale)
             for _ in range(self.n_layers)])
        self.to(dtype=dtype, device=device)

    def forward(self, z):
        if z.shape[-1:] != (self.dim,):
            raise ValueError(f'input has shape {tuple(z.shape)}; expected '
                             f'(..., {self.dim})')
        for f in self.fields:
            z = f(z)
        return z


class HamiltonianNet(torch.nn.Module):
    r"""Two-variable Hamiltonian-inspired network, Verlet-integrated.

    The state ``x = (y, z)`` (shape ``(..., 2 dim)``, ``y`` first) follows
    ``y' = sigma(K z + b)``, ``z' = -sigma(K^T y + c)``; layer ``k`` is the
    symplectic Verlet (leapfrog / symplectic Euler) step

    .. math::
        y_{k+1} = y_k + h \sigma(K_k z_k + b_k),\quad
        z_{k+1} = z_k - h \sigma(K_k^T y_{k+1} + c_k),

    a composition of two shears, so `inverse` undoes it exactly (up to
    rounding) by running the shears backwards.

    Examples
    --------
    >>> net = HamiltonianNet(2, 6, dtype=torch.float64)
    >>> x = torch.randn(5, 4, dtype=torch.float64)
    >>> bool((net.inverse(net(x)) - x).abs().max() < 1e-12)
    True
    """

    def __init__(self, dim, n_layers, h=None, T=1.0, activation='tanh',
                 init_scale=1.0, dtype=torch.float32, device='cpu'):
        super().__init__()
        self.dim, self.n_layers = int(dim), int(n_layers)
        self.h = float(T) / self.n_layers if h is None else float(h)
        self._sigma, self.sigma_lipschitz = _activation(activation)
        self.K = torch.nn.Parameter(
            init_scale * torch.randn(self.n_layers, dim, dim) / math.sqrt(dim))
        self.b = torch.nn.Parameter(0.1 * torch.randn(self.n_layers, dim))
        self.c = torch.nn.Parameter(0.1 * torch.randn(self.n_layers, dim))
        self.to(dtype=dtype, device=device)

    def _split(self, x):
        if x.shape[-1:] != (2 * self.dim,):
            raise ValueError(f'input has shape {tuple(x.shape)}; expected '
                             f'(..., {2 * self.dim}) = (y, z)')
        return x[..., :self.dim], x[..., self.dim:]

    def forward(self, x):
        y, z = self._split(x)
        h, s = self.h, self._sigma
        for k in range(self.n_layers):
            K = self.K[k]
            y = y + h * s(z @ K.T + self.b[k])
            z = z - h * s(y @ K + self.c[k])
        return torch.cat([y, z], dim=-1)

    def inverse(self, x):
        """The exact inverse map (shears run backwards)."""
        y, z = self._split(x)
        h, s = self.h, self._sigma
        for k in reversed(range(self.n_layers)):
            K = self.K[k]
            z = z + h * s(y @ K + self.c[k])
            y = y - h * s(z @ K.T + self.b[k])
        return torch.cat([y, z], dim=-1)


# --- stability ---------------------------------------------------------------

def _rk_step_lipschitz(tab, h, L):
    """Lipschitz bound of one explicit RK step for an ``L``-Lipschitz field.

    ``Lip(k_i) <= L (1 + |h| sum_j |a_ij| Lip(k_j))`` stage by stage, then
    ``Lip(step) <= 1 + |h| sum_i |b_i| Lip(k_i)``.
    """
    lk = []
    for i in range(tab.stages):
        lk.append(L * (1 + abs(h) * sum(abs(tab.a[i][j]) * lk[j]
                                        for j in range(i))))
    return 1 + abs(h) * sum(abs(bi) * li for bi, li in zip(tab.b, lk))


def lipschitz_bound(net):
    r"""A certified Lipschitz constant of ``net`` (Euclidean norms).

    The product of per-layer constants:

    * `RKNet`, explicit RK step with an ``L_k``-Lipschitz field
      (``L_k = S ||K_k||_2`` dense, ``S ||K_k - K_k^T - gamma I||_2``
      antisymmetric, ``S ||A_k||_2^2`` gradient; ``S`` the activation's
      Lipschitz constant): the stage recursion
      ``l_i = L_k (1 + |h_k| sum_j |a_ij| l_j)``, layer constant
      ``1 + |h_k| sum_i |b_i| l_i``. Euler gives ``1 + |h_k| L_k``, RK4
      ``sum_{n<=4} (|h_k| L_k)^n / n!``; all are ``<= exp(|h_k| L_k)``, so
      the product is ``<= exp(T max_k L_k)`` (the seed's ``exp(T L)``).
    * `RKNet` with ``field='gradient'`` and ``method='euler'``: each layer
      is nonexpansive (steps capped at ``2/||A_k||^2``), constant ``1``.
    * `FeedForwardNet`: ``S ||K_k||_2``.
    * `HamiltonianNet`: two shears, ``(1 + h S ||K_k||_2)^2``.

    Examples
    --------
    >>> net = RKNet(2, 3, field='gradient')
    >>> lipschitz_bound(net)
    1.0
    >>> lipschitz_bound(RKNet(2, 3)) > 1
    True
    """
    with torch.no_grad():
        if isinstance(net, RKNet):
            if net.field_kind == 'gradient' and net.tableau.stages == 1 \
                    and net.tableau.b == (1.0,):
                return 1.0
            h = net.effective_steps().detach().cpu().double().numpy()
            out = 1.0
            for hk, f in zip(h, net.fields):
                out *= _rk_step_lipschitz(net.tableau, float(hk),
                                          f.lipschitz())
            return float(out)
        if isinstance(net, FeedForwardNet):
            return float(np.prod([f.lipschitz() for f in net.fields]))
        if isinstance(net, HamiltonianNet):
            s = net.sigma_lipschitz
            return float(np.prod([(1 + abs(net.h) * s * float(
                _spectral_norm(K))) ** 2 for K in net.K]))
    raise TypeError(f'no Lipschitz bound for {type(net).__name__}; expected '
                    'RKNet, FeedForwardNet or HamiltonianNet')


def _row_norms(t):
    """Euclidean norm of each sample ``t[n]`` (all axes but the first)."""
    return t.flatten(1).norm(dim=1)


def _per_row(n, t):
    """``n`` of shape ``(B,)`` reshaped to broadcast against ``t``."""
    return n.reshape((-1,) + (1,) * (t.ndim - 1))


def _jvp_and_jtjv(net, x, v):
    """``J v`` and ``J^T J v`` at the samples of ``x``, by torch autograd.

    Forward mode (`torch.autograd.forward_ad`) and a vector-Jacobian
    product rather than `torch.func`: a network may contain an
    `odl_genprior.bridge.OperatorLayer`, which `torch.func` cannot run.
    """
    with torch.autograd.forward_ad.dual_level():
        out = net(torch.autograd.forward_ad.make_dual(x, v))
        jv = torch.autograd.forward_ad.unpack_dual(out).tangent
    if jv is None:  # the output does not depend on the input
        return torch.zeros_like(out), torch.zeros_like(x)
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (jtjv,) = torch.autograd.grad(net(xg), xg, jv.detach())
    return jv.detach(), jtjv


def _jac_norms(net, x, iters, generator):
    """``||J(x_n)||_2`` per sample of ``x`` by power iteration on ``J^T J``."""
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    v = (v / _per_row(_row_norms(v), v)).to(x.device)
    sq = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(iters):
        jv, jtjv = _jvp_and_jtjv(net, x, v)
        sq = _row_norms(jv) ** 2  # = ||J v||^2 for the current unit v
        nrm = _per_row(_row_norms(jtjv), jtjv)
        v = torch.where(nrm > 0, jtjv / nrm.clamp_min(1e-300), v)
    return sq.sqrt(), v


def lipschitz_estimate(net, x0, iters=50, search_steps=100, lr=1e-2,
                       seed=0):
    r"""A lower estimate of ``net``'s Lipschitz constant from the network.

    Two parts, the larger is returned:

    1. ``max_n ||J(x_n)||_2`` over the rows of ``x0``, by power iteration on
       ``J^T J`` (Jacobian-vector and vector-Jacobian products);
    2. a local search: pairs ``(x, y)`` started at ``x_n`` and
       ``x_n + 0.1 v_n`` (``v_n`` the top right singular vector) and
       improved by Adam on ``-log(||N(x) - N(y)|| / ||x - y||)``; the best
       ratio seen over all steps (`odl_genprior.metrics.max_pair_ratio`).

    Both are attained values, so the result never exceeds the true
    Lipschitz constant (nor `lipschitz_bound`) beyond rounding.

    Parameters
    ----------
    net : torch.nn.Module
        Maps a batch ``(B, ...) -> (B, ...)`` sample by sample (rows
        ``(B, d)``, or images, sinograms, ...: norms are taken over all
        axes but the first).
    x0 : torch.Tensor
        Points, shape ``(B, ...)``, of the network's dtype.
    iters, search_steps : int, optional
    lr : float, optional
        Adam learning rate of the search.
    seed : int, optional

    Returns
    -------
    estimate : float

    Examples
    --------
    >>> net = RKNet(2, 4, dtype=torch.float64)
    >>> x = torch.randn(16, 2, dtype=torch.float64)
    >>> lipschitz_estimate(net, x) <= lipschitz_bound(net)
    True
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2:
        raise ValueError(f'`x0` must be a (B, ...) tensor, got '
                         f'{getattr(x0, "shape", type(x0).__name__)}')
    gen = torch.Generator().manual_seed(int(seed))
    was_training = net.training
    net.eval()
    params = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        x0 = x0.detach()
        norms, v = _jac_norms(net, x0, int(iters), gen)

        def ratio(x, y):
            dx = _row_norms(x - y)
            r = _row_norms(net(x) - net(y)) / dx.clamp_min(1e-12)
            return torch.where(dx > 1e-9, r, torch.zeros_like(r)), False

        searched = max_pair_ratio(ratio, x0, x0 + 0.1 * v,
                                  steps=int(search_steps), lr=lr)[0] \
            if search_steps else 0.0
        best = max(float(norms.max()), searched)
    finally:
        for p, r in zip(net.parameters(), params):
            p.requires_grad_(r)
        net.train(was_training)
    return best


# --- the discrete adjoint ----------------------------------------------------

def rk_adjoint(net, x, grad_output):
    r"""Gradient of ``<grad_output, net(x)>`` by the adjoint RK scheme.

    For the step ``Z_i = z + h sum_j a_ij f(Z_j)``,
    ``z' = z + h sum_i b_i f(Z_i)`` and ``lambda' = dL/dz'``, the discrete
    adjoint is the partitioned Runge-Kutta partner (Hager 2000, Sanz-Serna
    2016) with the same weights ``b_i`` and coefficients
    ``abar_ij = b_j a_ji / b_i`` (upper triangular: stages run backwards)
    applied to ``lambda-dot = -f_z^T lambda``:

    .. math::
        \Lambda_i = \lambda' + h \sum_j \bar a_{ij} f_z(Z_j)^T \Lambda_j,\quad
        \lambda = \lambda' + h \sum_i b_i f_z(Z_i)^T \Lambda_i,

    and the parameter gradients are ``dL/dtheta_k = h sum_i b_i
    f_theta(Z_i)^T Lambda_i``, ``dL/dh_k = <lambda', sum_i b_i k_i> +
    sum_l h b_l <f_z(Z_l)^T Lambda_l, sum_j a_lj k_j>``. Only the
    vector-Jacobian products of the single field ``f`` use autograd.

    Parameters
    ----------
    net : RKNet
        With ``field`` other than ``'gradient'`` (whose capped steps depend
        on the parameters); all weights ``b_i`` nonzero.
    x : torch.Tensor
        Initial states ``(B, d)``.
    grad_output : torch.Tensor
        ``dL/dz_K``, same shape.

    Returns
    -------
    grad_x : torch.Tensor
        ``dL/dx``.
    grads : dict of str to torch.Tensor
        ``dL/dp`` for every name in ``net.named_parameters()``.

    Examples
    --------
    >>> net = RKNet(2, 3, method='heun', steps='free', dtype=torch.float64)
    >>> x = torch.randn(4, 2, dtype=torch.float64)
    >>> w = torch.randn(4, 2, dtype=torch.float64)
    >>> gx, grads = rk_adjoint(net, x, w)
    >>> xa = x.clone().requires_grad_(True)
    >>> (net(xa) * w).sum().backward()
    >>> bool(torch.allclose(gx, xa.grad, atol=1e-12))
    True
    """
    if not isinstance(net, RKNet):
        raise TypeError(f'`net` must be an RKNet, got {type(net).__name__}')
    if net.field_kind == 'gradient':
        raise ValueError('rk_adjoint does not handle field="gradient": its '
                         'effective steps depend on A through the cap')
    tab = net.tableau
    if any(bi == 0 for bi in tab.b):
        raise ValueError(f'tableau {tab.name!r} has a zero weight b_i; the '
                         'adjoint coefficients b_j a_ji / b_i are undefined')
    if grad_output.shape != x.shape:
        raise ValueError(f'`grad_output` has shape {tuple(grad_output.shape)}'
                         f', expected {tuple(x.shape)}')
    s, a, b = tab.stages, tab.a, tab.b
    abar = [[b[j] * a[j][i] / b[i] for j in range(s)] for i in range(s)]
    h_all = net.step_sizes.detach()
    names = {id(p): n for n, p in net.named_parameters()}
    grads = {n: torch.zeros_like(p) for n, p in net.named_parameters()}

    # forward sweep: store the stage values Z_i and k_i of every layer
    stages = []
    with torch.no_grad():
        z = x.detach()
        for k, f in enumerate(net.fields):
            h = h_all[k]
            Z, ks = [], []
            for i in range(s):
                zi = z
                for j in range(i):
                    if a[i][j] != 0:
                        zi = zi + (h * a[i][j]) * ks[j]
                Z.append(zi)
                ks.append(f(zi))
            stages.append((Z, ks))
            z = z + h * sum(bi * ki for bi, ki in zip(b, ks))

    # backward sweep: the adjoint Runge-Kutta scheme, layer by layer
    lam = grad_output.detach()
    step_grad = torch.zeros_like(h_all)
    for k in reversed(range(net.n_layers)):
        f, h = net.fields[k], h_all[k]
        Z, ks = stages[k]
        params = list(f.parameters())
        Lam = [None] * s
        fzT = [None] * s  # f_z(Z_i)^T Lambda_i
        for i in reversed(range(s)):
            Li = lam
            for j in range(i + 1, s):
                if abar[i][j] != 0:
                    Li = Li + (h * abar[i][j]) * fzT[j]
            Lam[i] = Li
            zi = Z[i].clone().requires_grad_(True)
            with torch.enable_grad():
                out = f(zi)
                gz, *gp = torch.autograd.grad(out, [zi] + params, Li)
            fzT[i] = gz
            for p, g in zip(params, gp):
                grads[names[id(p)]] += h * b[i] * g
        dh = (lam * sum(bi * ki for bi, ki in zip(b, ks))).sum()
        for l in range(s):
            inner = sum(a[l][j] * ks[j] for j in range(l) if a[l][j] != 0)
            if isinstance(inner, torch.Tensor):
                dh = dh + h * b[l] * (fzT[l] * inner).sum()
        step_grad[k] = dh
        lam = lam + h * sum(bi * g for bi, g in zip(b, fzT))
    if isinstance(net.step_sizes, torch.nn.Parameter):
        grads[names[id(net.step_sizes)]] = step_grad
    return lam, grads


# --- ODL ---------------------------------------------------------------------

def _net_dim(net):
    if isinstance(net, HamiltonianNet):
        return 2 * net.dim
    return net.dim


def as_operator(net, space=None):
    """``net`` as an ODL operator ``space -> space`` (`TorchOperator`).

    Parameters
    ----------
    net : RKNet, FeedForwardNet or HamiltonianNet
    space : odl.TensorSpace, optional
        Default ``odl.rn(d)`` with the network's dtype.

    Examples
    --------
    >>> net = RKNet(2, 3, dtype=torch.float64)
    >>> op = as_operator(net)
    >>> op.domain
    rn(2)
    >>> x = op.domain.element([0.3, -0.2])
    >>> op.derivative(x).adjoint(x).shape
    (2,)
    """
    d = _net_dim(net)
    dtype = next(net.parameters()).dtype
    if space is None:
        space = odl.rn(d, dtype=str(dtype).replace('torch.', ''))
    if space.shape != (d,):
        raise ValueError(f'space {space!r} has shape {space.shape}; the '
                         f'network acts on R^{d}')
    return TorchOperator(net, space, space, in_shape=(1, d))
