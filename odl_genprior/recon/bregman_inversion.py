r"""Lifted Bregman inversion of a given network (one layer, multilayer,
residual).

For a network ``N(u) = sigma(W u + b)`` whose activation is a proximal map,
``sigma = prox_Psi`` (`odl_genprior.bregman.activations`), the lifted Bregman
inversion (Wang & Benning, Front. Appl. Math. Stat. 9, 2023) replaces the
non-convex least-squares fit ``1/2 ||N(u) - f||^2`` by the Fenchel-Bregman
loss of `odl_genprior.bregman`,

    u_alpha in argmin_u  B_Psi(f, W u + b) + alpha J(u),

which is convex in ``u`` for every ``f``, smooth with the gradient
``W^T (sigma(W u + b) - f)`` (no derivative of ``sigma`` is needed) and
vanishes exactly at ``f = N(u)``. ``J`` is isotropic total variation
(ODL's ``Gradient`` and ``GroupL1Norm``) or ``1/2 ||u||^2``.

* `LiftedBregmanInversion`: the method under the reconstruction contract
  (`odl_genprior.recon.base.Reconstructor`), solved with ODL's ``pdhg``
  (default) or ``forward_backward_pd`` (the generalised PDHG of the seed,
  with an explicit gradient step on the Bregman term).
* `perceptron_problem`: the seed's test problem, a ReLU perceptron
  ``R^{n x n} -> R^m`` with Gaussian ``W`` and ``b``.
* `MultilayerBregmanInversion`: the multilayer / residual formulation
  (hidden layers as variables, each tied to its input by ``B_Psi``; for
  residual networks the constraint ``M u = V z`` with penalty ``rho``),
  solved by the seed's coordinate descent with ODL's ``pdhg`` for the
  input block; `multilayer_problem`, its test problem.

The networks themselves (`network_operator`: ``sigma(W . + b)`` as an ODL
operator; `NetworkLayer`, `multilayer_network_operator`, `network_forward`,
`lifted_objective`, and `network_layers` / `lifted_network` between them and
the one lifted network type, so a network trained by lifted training is
inverted here) are `odl_genprior.bregman.networks`.

The convergence-rate theorem of the seed (with ``J = 1/2 ||.||^2``, source
condition ``u^dagger = W^T v``, ``B_Psi(f^delta, W u^dagger + b) <=
delta^2`` and ``alpha = sqrt(2) delta / ||v||``, ReLU with ``v`` vanishing
where ``f^delta`` does) gives ``1/2 ||u^dagger - u_alpha||^2 <= 2 sqrt(2)
||v|| delta``; ``tests/test_bregman_inversion.py`` checks it.
"""
import functools

import numpy as np
import odl
import torch

from odl_genprior.metrics import operator_norm
from odl_genprior.bregman.activations import ProximalActivation, get_activation
from odl_genprior.bregman import BregmanLossY, BregmanLossZ
from odl_genprior.bridge import to_numpy
from odl_genprior.bregman.networks import (NetworkLayer, _check_affine,
                                           _check_layers,
                                           multilayer_network_operator,
                                           network_forward, network_operator,
                                           perceptron_weights)
from odl_genprior.problems import ForwardProblem, relative_noise_std
from odl_genprior.recon.base import Reconstructor, progress_callback

__all__ = ('LiftedBregmanInversion', 'NetworkLeastSquares',
           'shallow_network_inversion', 'perceptron_problem',
           'MultilayerBregmanInversion', 'multilayer_problem')

# ||op|| from below, times 1.02: an upper bound for step sizes
_norm = functools.partial(operator_norm, maxiter=100, safety=1.02)

_REGULARISERS = ('tv', 'l2')
_SOLVERS = ('pdhg', 'forward_backward_pd')


def _into_domain(f, act):
    """Noisy data ``f`` moved into ``dom Psi`` (see `perceptron_problem`)."""
    kind = type(act).__name__
    if kind in ('ReLU', 'HardTanh'):
        return act.operator(f.space)(f)  # projection onto dom Psi
    if kind == 'Tanh':
        return f.space.element(np.clip(f.asarray(), -1 + 1e-6, 1 - 1e-6))
    return f


def perceptron_problem(size=64, num_outputs=512, activation='relu',
                       phantom='shepp_logan', noise_level=0.01, seed=0,
                       dtype='float64'):
    r"""The seed's test problem: invert a random perceptron.

    ``f = sigma(W u + b) + e`` with ``W``, ``b`` from `perceptron_weights`
    (standard normal entries), ``u`` a piecewise-constant phantom on the
    ``size x size`` grid and Gaussian noise ``e`` of standard deviation
    ``noise_level * mean(|sigma(W u + b)|)``. The seed's setting is
    ``size=64, num_outputs=512`` (``R^{64x64} -> R^{512}``), ReLU,
    ``alpha = 0.015`` with TV.

    Parameters
    ----------
    size, num_outputs, seed, dtype
        See `perceptron_weights` (the noise uses the same generator, after
        ``W`` and ``b``).
    activation : str or ProximalActivation
        ``sigma = prox_Psi``.
    phantom : {'shepp_logan', 'ellipses'} or array-like
        ``'shepp_logan'``: ODL's modified Shepp-Logan phantom (values in
        ``[0, 1]``); ``'ellipses'``: random ellipses of `odl_genprior.data`.
    noise_level : float
        Relative noise (0: exact data).

    Returns
    -------
    ForwardProblem
        ``operator`` is the network (`network_operator`), ``noise_level``
        is ``||f - sigma(W u + b)||``, ``info`` holds ``'W'``, ``'b'``,
        ``'activation'`` (the name) and the settings.

    Notes
    -----
    The noisy data are put back into ``dom Psi`` (`_into_domain`): ReLU and
    hard tanh data are projected (``f = sigma(clean + e)``, i.e. clipped),
    tanh data clipped to ``|f| <= 1 - 1e-6``. Outside ``dom Psi`` the loss
    ``B_Psi(f, .)`` is ``+inf``, and the shifted ``(1/2 ||.||^2 + Psi)^* -
    <f, .>`` is unbounded below (ReLU, ``f_j < 0``: let ``z_j -> -inf``), so
    the inversion has no solution.

    Examples
    --------
    >>> p = perceptron_problem(size=8, num_outputs=16, seed=0)
    >>> p.space.shape, p.data.shape, p.info['activation']
    ((8, 8), (16,), 'relu')
    >>> float((p.operator(p.ground_truth) - p.data).norm()) == p.noise_level
    True
    """
    W, b = perceptron_weights(size, num_outputs, seed, dtype)
    rng = np.random.default_rng([seed, 1])
    act = get_activation(activation)
    space = W.domain
    if isinstance(phantom, str):
        if phantom in ('shepp_logan', 'shepp-logan'):
            u = odl.core.phantom.shepp_logan(space, modified=True)
        elif phantom == 'ellipses':
            from odl_genprior import data as _data
            u = space.element(to_numpy(_data.random_ellipses(space,
                                                             rng=rng)))
        else:
            raise ValueError(f"phantom must be 'shepp_logan', 'ellipses' or "
                             f'an array, got {phantom!r}')
    else:
        arr = np.asarray(phantom)
        if arr.shape != space.shape:
            raise ValueError(f'phantom has shape {arr.shape}, the image '
                             f'space {space!r} has shape {space.shape}')
        u = space.element(arr)
    N = network_operator(W, b, act)
    clean = N(u)
    std = relative_noise_std(clean, noise_level)
    f = _into_domain(clean + W.range.element(
        std * rng.standard_normal(num_outputs)), act)
    name = type(act).__name__
    info = {'W': W, 'b': b, 'activation': name.lower(), 'seed': seed,
            'size': space.shape, 'num_outputs': num_outputs,
            'noise_std': std, 'phantom': phantom if isinstance(phantom, str)
            else 'given'}
    return ForwardProblem(N, f, u, float((f - clean).norm()),
                          f'{name} perceptron inversion', info)


def _check_positive(name, value):
    if not float(value) > 0:
        raise ValueError(f'{name} must be positive, got {value!r}')


def _check_regularisation(alpha, regulariser):
    """The checks every inversion method makes of its regulariser."""
    _check_positive('alpha', alpha)
    if regulariser not in _REGULARISERS:
        raise ValueError(f'regulariser must be one of {_REGULARISERS}, '
                         f'got {regulariser!r}')

class LiftedBregmanInversion(Reconstructor):
    r"""Lifted Bregman inversion of a one-layer network ``sigma(W u + b)``.

    Minimises ``B_Psi(f, W u + b) + alpha J(u)`` over ``u`` in the problem
    space, ``J`` isotropic TV (``||grad u||_{2,1}``, ODL's ``Gradient`` and
    ``GroupL1Norm``) or ``1/2 ||u||^2``. ``W``, ``b`` and the activation are
    taken from the problem's ``info`` (`perceptron_problem` puts them there)
    unless given here.

    Parameters
    ----------
    activation : str, ProximalActivation or None
        ``sigma = prox_Psi``; None: ``problem.info['activation']``.
    alpha : float
        Regularisation weight (> 0).
    regulariser : {'tv', 'l2'}
        ``J``: total variation or ``1/2 ||u||^2``.
    niter : int
        Iterations.
    solver : {'pdhg', 'forward_backward_pd'}
        ``'pdhg'`` (default): ODL's ``pdhg`` with the Bregman term as a
        proximal block, ``g = (B_Psi(f, . + b), alpha J_1)`` on ``L = (W,
        s grad)`` (TV) or ``g = B_Psi(f, . + b)`` on ``L = W`` and ``f =
        alpha/2 ||.||^2`` with the linearly convergent step sizes of
        Chambolle & Pock for two strongly convex terms (l2).
        ``'forward_backward_pd'``: ODL's ``forward_backward_pd``, the
        seed's generalised PDHG: explicit
        gradient steps ``W^T (sigma(W u + b) - f)`` on the Bregman term.
    step_ratio : float
        ``tau / sigma`` of PDHG for TV (``tau sigma ||L||^2`` stays
        ``0.98``); larger values take larger primal steps.
    W : odl.Operator, optional
        Linear operator; default ``problem.info['W']``.
    b : element-like, optional
        Bias; default ``problem.info['b']`` (or zero).
    callback : callable, optional
        An ODL callback, called with the iterate.

    Notes
    -----
    Why ``pdhg`` is the default: ``B_Psi(f, .)`` has the closed-form
    proximal map ``BregmanLossZ.proximal`` and a 1-strongly convex
    conjugate, so the Bregman block costs one activation call per iteration
    and PDHG's step size is limited only by ``tau sigma ||L||^2 < 1``. The
    explicit gradient step of ``forward_backward_pd`` needs ``tau <
    1/||W||^2`` (``||W|| ~ sqrt(m) + sqrt(n)`` for Gaussian ``W``, ``~87``
    in the seed's setting), and ODL's step condition bounds the dual step
    by the same ``1/||W||^2``; at equal cost per iteration it lags behind
    (table in ``docs/activations_bregman.md``). With ``J = 1/2 ||.||^2``
    both the regulariser and the conjugate of the Bregman term are
    strongly convex and PDHG converges linearly (the theorem test reaches
    ``1e-6`` relative accuracy in ``25 / sqrt(alpha)`` iterations). As in
    `odl_genprior.recon.classical.TV`, the gradient block is scaled by
    ``s = ||W|| / ||grad||`` (and ``alpha`` by ``1/s``): the same problem,
    with one step size suiting both blocks.

    Examples
    --------
    >>> p = perceptron_problem(size=8, num_outputs=32, noise_level=0.0)
    >>> rec = LiftedBregmanInversion(alpha=1e-3, niter=50)
    >>> u = rec(p, progress=False)
    >>> u in p.space
    True
    """

    name = 'Lifted Bregman'

    def __init__(self, activation=None, alpha=0.015, regulariser='tv',
                 niter=500, solver='pdhg', step_ratio=1.0, W=None, b=None,
                 callback=None):
        _check_regularisation(alpha, regulariser)
        if solver not in _SOLVERS:
            raise ValueError(f'solver must be one of {_SOLVERS}, got '
                             f'{solver!r}')
        self.activation = (None if activation is None
                           else get_activation(activation))
        self.alpha = float(alpha)
        self.regulariser = regulariser
        self.niter = int(niter)
        self.solver = solver
        _check_positive('step_ratio', step_ratio)
        self.step_ratio = float(step_ratio)
        self.W = W
        self.b = b
        self.callback = callback

    def _parts(self, problem):
        info = getattr(problem, 'info', None) or {}
        W = self.W if self.W is not None else info.get('W')
        if W is None:
            raise ValueError(f"{self.name}: no `W` given and the problem's "
                             "info has no 'W'")
        b = self.b if self.b is not None else info.get('b')
        act = self.activation
        if act is None:
            if 'activation' not in info:
                raise ValueError(f"{self.name}: no activation given and the "
                                 "problem's info has no 'activation'")
            act = get_activation(info['activation'])
        b = _check_affine(W, b, problem.space, problem.data.space, self.name)
        return W, b, act

    def _reconstruct(self, problem, progress):
        W, b, act = self._parts(problem)
        f = problem.data
        space = W.domain
        # z -> B_Psi(f, z + b): ODL's translation by -b.
        loss = BregmanLossZ(W.range, act, f)
        if loss._psi_y == float('inf'):
            raise ValueError(
                f'{self.name}: the data lie outside the domain of Psi of '
                f'{act!r} (e.g. negative entries for ReLU), where B_Psi(f, .) '
                'is +inf and the inversion has no solution; project the data '
                'onto the range of the activation first')
        breg = loss.translated(-b)
        norm_w = _norm(W)
        x = space.zero()
        with progress_callback(progress, self.niter,
                               f'Bregman-{self.solver}',
                               self.callback) as callback:
            if self.regulariser == 'l2':
                self._solve_l2(x, breg, W, norm_w, callback)
            else:
                self._solve_tv(x, breg, W, norm_w, callback)
        return x

    def _solve_l2(self, x, breg, W, norm_w, callback):
        space = W.domain
        reg = (0.5 * self.alpha) * odl.functionals.L2NormSquared(space)
        if self.solver == 'pdhg':
            # Both terms are strongly convex: alpha/2 ||.||^2 (modulus
            # alpha) and the conjugate of B_Psi(f, . + b) (modulus 1, its
            # gradient is 1-Lipschitz). Chambolle & Pock (2011), Alg. 3:
            # mu = 2 sqrt(alpha) / ||W||, tau = mu / (2 alpha), sigma = mu / 2,
            # theta = 1 / (1 + mu) converge linearly, with rate about
            # 1 - sqrt(alpha) / ||W|| per iteration.
            mu = 2.0 * self.alpha ** 0.5 / norm_w
            odl.solvers.pdhg(x, reg, breg, W, niter=self.niter,
                             tau=mu / (2.0 * self.alpha), sigma=mu / 2.0,
                             theta=1.0 / (1.0 + mu), callback=callback)
        else:
            # Proximal gradient (no dual blocks): tau < 2 / ||W||^2.
            h = breg * W
            odl.solvers.forward_backward_pd(
                x, reg, [], [], h, tau=1.0 / norm_w ** 2, sigma=[],
                niter=self.niter, callback=callback)

    def _solve_tv(self, x, breg, W, norm_w, callback):
        space = W.domain
        grad = odl.Gradient(space)
        # Upper bound of ||grad|| for forward differences.
        norm_g = 2.0 * sum(1.0 / float(h) ** 2
                           for h in space.cell_sides) ** 0.5
        scale = norm_w / norm_g
        tv = (self.alpha / scale) * odl.functionals.GroupL1Norm(grad.range)
        zero = odl.functionals.ZeroFunctional(space)
        if self.solver == 'pdhg':
            L = odl.BroadcastOperator(W, scale * grad)
            g = odl.functionals.SeparableSum(breg, tv)
            step = 0.99 / (norm_w * 2 ** 0.5)  # ||L||^2 <= 2 ||W||^2
            ratio = self.step_ratio ** 0.5
            odl.solvers.pdhg(x, zero, g, L, niter=self.niter,
                             tau=step * ratio, sigma=step / ratio,
                             callback=callback)
        else:
            # ODL's condition: 2 min(1/tau, 1/sigma) eta sqrt(1 - tau sigma
            # ||L||^2) > 1, eta = 1/||W||^2 the inverse Lipschitz constant
            # of the gradient W^T (sigma(W u + b) - f). tau = sigma =
            # 1/||W||^2 and ||L||^2 = 1/(2 tau sigma) give 2 sqrt(1/2) > 1:
            # the gradient block is scaled so that its dual step is as
            # large as the condition allows.
            step = 1.0 / norm_w ** 2
            scale_fb = 0.5 ** 0.5 / (step * norm_g)
            tv_fb = ((self.alpha / scale_fb)
                     * odl.functionals.GroupL1Norm(grad.range))
            odl.solvers.forward_backward_pd(
                x, zero, [tv_fb], [scale_fb * grad], breg * W, tau=step,
                sigma=[step], niter=self.niter, callback=callback)


class NetworkLeastSquares(Reconstructor):
    r"""Least-squares inversion ``min_u 1/2 ||N(u) - f||^2`` of the network.

    The classical (non-lifted) baseline: ODL's ``steepest_descent`` on
    the fit, whose gradient ``W^T (sigma'(W u + b) (N(u) - f))`` needs the
    derivative of the activation (torch autograd of the activation module;
    the lifted Bregman loss does not need it), with the constant step
    ``1 / ||W||^2`` from ``u = 0``. For an underdetermined ``W`` this
    converges to a least-squares solution near the minimum-norm one: no
    regularisation beyond the iteration count.

    For a multilayer or residual network (``problem.info['layers']``, see
    `multilayer_problem`) the fit is ``1/2 ||N(u) - f||^2`` with ``N`` from
    `multilayer_network_operator`; its gradient comes from ODL's chain rule
    (backpropagation through the layers, each activation's derivative by
    torch autograd), the step is ``1 / prod_l ||W_l||^2`` (``prod_l (1 +
    ||V_l|| ||W_l||)^2`` for residual layers).

    Parameters
    ----------
    niter : int
        Gradient-descent iterations.
    W, b, activation
        As in `LiftedBregmanInversion` (default: from ``problem.info``).

    Examples
    --------
    >>> p = perceptron_problem(size=8, num_outputs=32, noise_level=0.0)
    >>> u = NetworkLeastSquares(niter=20)(p, progress=False)
    >>> u in p.space
    True
    """

    name = 'Least squares'

    def __init__(self, niter=500, activation=None, W=None, b=None,
                 callback=None):
        self.niter = int(niter)
        self.activation = (None if activation is None
                           else get_activation(activation))
        self.W = W
        self.b = b
        self.callback = callback

    _parts = LiftedBregmanInversion._parts

    def _fit_multilayer(self, problem, layers):
        # 1/2 ||N(u) - f||^2 with N from ODL's operator algebra: its
        # gradient N'(u)^* (N(u) - f) is ODL's chain rule (the activations'
        # derivatives by torch autograd); step 1 / Lip, Lip bounded by the
        # product of the layers' Lipschitz constants (squared).
        layers, is_res = _check_layers(layers, who=self.name,
                                       dtype=problem.space.dtype)
        N = multilayer_network_operator(layers)
        if N.range != problem.data.space:
            raise odl.OpRangeError(f'{self.name}: the network has range '
                                   f'{N.range!r}, the data lie in '
                                   f'{problem.data.space!r}')
        lip = 1.0
        for layer in layers:
            nw = _norm(layer.W)
            lip *= (1.0 + _norm(layer.V) * nw) if is_res else nw
        fit = (0.5 * odl.functionals.L2NormSquared(N.range).translated(
            problem.data)) * N
        return fit, 1.0 / lip ** 2

    def _reconstruct(self, problem, progress):
        info = getattr(problem, 'info', None) or {}
        if self.W is None and 'layers' in info:
            layers = info['layers']
        else:  # one layer: the same fit, ODL's chain rule
            layers = [NetworkLayer(*self._parts(problem))]
        fit, step = self._fit_multilayer(problem, layers)
        x = fit.domain.zero()
        with progress_callback(progress, self.niter, 'least squares',
                               self.callback) as callback:
            odl.solvers.steepest_descent(
                fit, x, line_search=step,
                maxiter=self.niter, tol=0.0, callback=callback)
        return x


def shallow_network_inversion(f, w, b, c, activation, alpha, niter=1000,
                              u0=0.0):
    r"""Invert a shallow network ``f = sum_j c_j sigma(w_j u_0 + b_j)``.

    The seed's lifted scheme for a scalar input ``u_0`` and ``m`` hidden
    perceptrons: minimise over ``u = (u_0, u_1, ..., u_m)``::

        1/2 |f - sum_j c_j u_j|^2 + sum_j B_Psi(u_j, w_j u_0 + b_j)
        + alpha/2 |u_0|^2

    by the seed's implicit/explicit coordinate descent: for ``l = 1..m``
    (Gauss-Seidel, exact minimisation in ``u_l``)::

        u_l <- prox_{Psi/(1 + c_l^2)}((c_l (f - sum_{j != l} c_j u_j)
               + w_l u_0 + b_l) / (1 + c_l^2)),

    then a proximal gradient step in ``u_0`` with step ``1/||w||^2``::

        u_0 <- (u_0 - sum_j w_j (sigma(w_j u_0 + b_j) - u_j) / ||w||^2)
               / (1 + alpha / ||w||^2).

    Parameters
    ----------
    f : float
        The (scalar) network output.
    w, b, c : array-like, shape ``(m,)``
        Input weights, biases and output weights.
    activation : str or ProximalActivation
        ``sigma = prox_Psi``.
    alpha : float
        Weight of ``1/2 |u_0|^2`` (>= 0).
    niter : int
        Sweeps.
    u0 : float
        Initial ``u_0``; the hidden ``u_j`` start at ``sigma(w_j u_0 +
        b_j)``.

    Returns
    -------
    u0 : float
        The recovered input.
    u : numpy.ndarray, shape ``(m,)``
        The hidden variables (``~ sigma(w u_0 + b)`` at convergence).

    Examples
    --------
    >>> w, b, c = np.array([1.0, 2.0]), np.array([0.0, -1.0]), np.ones(2)
    >>> f = float(np.sum(c * np.maximum(w * 0.7 + b, 0)))  # u_0 = 0.7
    >>> u0, u = shallow_network_inversion(f, w, b, c, 'relu', alpha=1e-6,
    ...                                   niter=2000)
    >>> round(u0, 3)
    0.7
    """
    act = get_activation(activation)
    arrs = [torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(-1)
            for a in (w, b, c)]
    w_t, b_t, c_t = arrs
    if not w_t.shape == b_t.shape == c_t.shape:
        raise ValueError(f'`w`, `b`, `c` must have equal shapes, got '
                         f'{tuple(w_t.shape)}, {tuple(b_t.shape)}, '
                         f'{tuple(c_t.shape)}')
    if not float(alpha) >= 0:
        raise ValueError(f'alpha must be >= 0, got {alpha!r}')
    f, alpha = float(f), float(alpha)
    nw2 = float(torch.sum(w_t * w_t))
    if nw2 == 0:
        raise ValueError('`w` is zero: the output does not depend on u_0')
    x0 = torch.tensor(float(u0), dtype=torch.float64)
    u = act(w_t * x0 + b_t)
    with torch.no_grad():
        for _ in range(int(niter)):
            total = torch.dot(c_t, u)
            for l in range(u.numel()):
                rest = total - c_t[l] * u[l]
                d = 1.0 + c_t[l] ** 2
                z = (c_t[l] * (f - rest) + w_t[l] * x0 + b_t[l]) / d
                new = act.prox(z.reshape(1), 1.0 / float(d))[0]
                total = rest + c_t[l] * new
                u[l] = new
            g = torch.dot(w_t, act(w_t * x0 + b_t) - u)
            x0 = (x0 - g / nw2) / (1.0 + alpha / nw2)
    return float(x0), u.numpy().copy()


# --- multilayer and residual networks ---------------------------------------


def multilayer_problem(widths, activations='leaky_relu', residual=False,
                       image_size=None, phantom='shepp_logan',
                       noise_level=0.0, weight_scale=1.0, seed=0,
                       dtype='float64', activation_kwargs=None):
    r"""A random multilayer (or residual) network and data in its range.

    Feed-forward: layer ``l`` maps ``R^{widths[l-1]} -> R^{widths[l]}``
    with ``W_l`` of i.i.d. ``N(0, weight_scale^2 / widths[l-1])`` entries
    and ``b_l ~ N(0, 0.1^2)``. Residual (``residual=True``): all states have
    ``widths[0]`` entries, ``W_l: R^{widths[0]} -> R^{widths[l]}`` as
    above and ``V_l = W_l^* / L`` (the seed's ``V = W^T``, damped so that
    the network stays near the identity). With ``image_size=n`` the input
    is an ``n x n`` image on ``uniform_discr([0, 0], [n, n])`` (unit cells:
    Euclidean inner product), ``widths[0]`` must be ``n^2``, ``W_1`` is
    ``MatrixOperator * FlatteningOperator`` and the ground truth is the
    modified Shepp-Logan phantom (or ``phantom``); else the input is
    Gaussian.

    Parameters
    ----------
    widths : sequence of int
        ``[n_0, n_1, ..., n_L]``.
    activations : str, ProximalActivation or sequence of them
        One for all layers or one per layer.
    residual : bool
    image_size : int, optional
    phantom : {'shepp_logan'} or array-like
        The image input (``image_size`` given): ODL's modified Shepp-Logan
        phantom or an ``n x n`` array.
    noise_level : float
        Gaussian noise of ``noise_level * mean|N(u)|``, then projected onto
        ``dom Psi_L`` (ReLU, hard tanh) or clipped into it (tanh) as in
        `perceptron_problem` (feed-forward only).
    weight_scale : float
    seed : int
    dtype : str
    activation_kwargs : dict, optional
        Passed to `get_activation` for named activations.

    Returns
    -------
    ForwardProblem
        ``operator`` from `multilayer_network_operator`; ``info`` has
        ``'layers'``, ``'residual'`` and the settings.

    Examples
    --------
    >>> p = multilayer_problem([4, 8, 6])
    >>> p.space, p.data.space
    (rn(4), rn(6))
    >>> len(p.info['layers'])
    2
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f'`widths` needs at least two positive sizes, got '
                         f'{widths}')
    num = len(widths) - 1
    if isinstance(activations, (str, ProximalActivation)):
        activations = [activations] * num
    activations = list(activations)
    if len(activations) != num:
        raise ValueError(f'{len(activations)} activations for {num} layers')
    acts = [get_activation(a, **(activation_kwargs or {}))
            if isinstance(a, str) else get_activation(a) for a in activations]
    rng = np.random.default_rng(seed)
    if image_size is not None:
        if int(image_size) ** 2 != widths[0]:
            raise ValueError(f'image_size {image_size} needs widths[0] = '
                             f'{int(image_size) ** 2}, got {widths[0]}')
        n = int(image_size)
        space = odl.uniform_discr([0, 0], [n, n], (n, n), dtype=dtype)
        flat = odl.FlatteningOperator(space)
        if isinstance(phantom, str):
            if phantom not in ('shepp_logan', 'shepp-logan'):
                raise ValueError(f"phantom must be 'shepp_logan' or an "
                                 f'array, got {phantom!r}')
            u = odl.core.phantom.shepp_logan(space, modified=True)
        else:
            arr = np.asarray(phantom, dtype=dtype)
            if arr.shape != space.shape:
                raise ValueError(f'phantom has shape {arr.shape}, the image '
                                 f'space {space!r} has shape {space.shape}')
            u = space.element(arr)
    else:
        space = odl.rn(widths[0], dtype=dtype)
        flat = None
        u = space.element(rng.standard_normal(widths[0]))
    layers = []
    dom = space
    for l in range(1, num + 1):
        n_in = widths[0] if residual else widths[l - 1]
        mat = (weight_scale / np.sqrt(n_in)) * rng.standard_normal(
            (widths[l], n_in))
        ran = odl.rn(widths[l], dtype=dtype)
        if dom is space and flat is not None:
            W = odl.MatrixOperator(mat, domain=flat.range, range=ran) * flat
        else:
            W = odl.MatrixOperator(mat, domain=dom, range=ran)
        b = ran.element(0.1 * rng.standard_normal(widths[l]))
        V = (1.0 / num) * W.adjoint if residual else None
        layers.append(NetworkLayer(W, b, acts[l - 1], V))
        if not residual:
            dom = ran
    N = multilayer_network_operator(layers)
    clean = N(u)
    std = float(noise_level) * float(np.mean(np.abs(to_numpy(clean))))
    f = clean + clean.space.element(std * rng.standard_normal(clean.shape))
    if not residual and std > 0:
        f = _into_domain(f, acts[-1])
    kind = 'residual' if residual else 'feed-forward'
    info = {'layers': layers, 'residual': residual, 'widths': widths,
            'activations': [type(a).__name__.lower() for a in acts],
            'seed': seed, 'noise_std': std}
    return ForwardProblem(N, f, u, float((f - clean).norm()),
                          f'{num}-layer {kind} network inversion', info)


class MultilayerBregmanInversion(Reconstructor):
    r"""Lifted Bregman inversion of a multilayer or residual network.

    **Feed-forward** ``N(u) = x_L``, ``x_l = sigma_l(W_l x_{l-1} + b_l)``:
    with the last layer tied to the data (``x_L = f``) minimise over
    ``u = x_0`` and the hidden ``x_1, ..., x_{L-1}``

        sum_{l=1}^{L} B_{Psi_l}(x_l, W_l x_{l-1} + b_l) + alpha J(u).

    **Residual** ``N(u) = K u_L``, ``u_l = u_{l-1} + V_l sigma_l(W_l u_{l-1}
    + b_l)`` (the seed's ``M u = V z`` form with states ``u = (u_0, ...,
    u_L)`` and activations ``z = (z_1, ..., z_L)``): minimise over ``u, z``

        lam/2 ||K u_L - f||^2 + sum_l B_{Psi_l}(z_l, W_l u_{l-1} + b_l)
        + rho/2 ||M u - V z||^2 + alpha J(u_0),

    ``(M u - V z)_l = u_l - u_{l-1} - V_l z_l``: the constraint ``M u = V
    z`` relaxed to a quadratic penalty of weight ``rho`` (it holds in the
    limit ``rho -> inf``).

    Every ``B_Psi`` is zero exactly on the forward pass, so for data in the
    range the objective (``alpha = 0``) vanishes at the lifted ground
    truth. Each term is convex in each block of variables; the objective is
    minimised by the seed's coordinate descent, one Gauss-Seidel sweep per
    iteration:

    * ``u_0`` (``J`` = TV or ``1/2 ||.||^2``): ``inner`` iterations of
      ODL's ``pdhg`` on ``B_{Psi_1}(x_1, W_1 . + b_1) + alpha J (+ the
      penalty)``, warm-started (primal, dual and relaxation variables are
      kept across sweeps), the Bregman block through its closed-form
      proximal map (`BregmanLossZ`);
    * hidden ``x_l`` / ``z_l``: a proximal gradient step, the proximal map
      of ``B_{Psi_l}(., W_l x_{l-1} + b_l)`` in closed form (ODL's
      `BregmanLossY` proximal factory), the gradient of the next layer's
      term ``W_{l+1}^* (sigma_{l+1}(W_{l+1} x_l + b_{l+1}) - x_{l+1})``
      (no derivative of any activation), step ``1 / ||W_{l+1}||^2``;
    * residual states ``u_l``, ``l >= 1``: a gradient step on the smooth
      terms with step ``1 / (2 rho + ||W_{l+1}||^2)`` (``1 / (rho + lam
      ||K||^2)`` for ``u_L``).

    Parameters
    ----------
    alpha : float
        Weight of ``J`` (> 0).
    regulariser : {'tv', 'l2'}
    niter : int
        Sweeps.
    inner : int
        ``pdhg`` iterations on ``u_0`` per sweep.
    rho : float
        Residual networks: penalty weight of ``M u = V z``.
    lam : float
        Residual networks: weight of the data fit.
    layers : sequence of NetworkLayer, optional
        Default ``problem.info['layers']``.
    output : odl.Operator, optional
        Residual networks: ``K`` (default ``problem.info.get('output')``,
        else the identity).
    callback : callable, optional
        An ODL callback, called with ``u_0`` after every sweep.

    Notes
    -----
    The hidden variables start at the forward pass of ``u = 0``. The
    objective is not jointly convex (``<x_l, W_l x_{l-1}>`` is bilinear), so
    the sweep finds a stationary point; for expansive layers with injective
    activations (leaky ReLU, tanh) and data in the range it recovers ``u``
    (``tests/test_bregman_inversion.py``). `lifted_objective` evaluates the
    objective, e.g. in a callback.

    Examples
    --------
    >>> p = multilayer_problem([4, 8, 12], activations='tanh', seed=1)
    >>> rec = MultilayerBregmanInversion(alpha=1e-8, regulariser='l2',
    ...                                  niter=10, inner=3)
    >>> u = rec(p, progress=False)
    >>> u in p.space
    True
    """

    name = 'Multilayer lifted Bregman'

    def __init__(self, alpha=1e-3, regulariser='tv', niter=500, inner=5,
                 rho=1.0, lam=1.0, layers=None, output=None,
                 callback=None):
        _check_regularisation(alpha, regulariser)
        for name, value in (('rho', rho), ('lam', lam)):
            _check_positive(name, value)
        if int(inner) < 1 or int(niter) < 0:
            raise ValueError(f'inner must be >= 1 and niter >= 0, got '
                             f'{inner!r}, {niter!r}')
        self.alpha = float(alpha)
        self.regulariser = regulariser
        self.niter = int(niter)
        self.inner = int(inner)
        self.rho = float(rho)
        self.lam = float(lam)
        self.layers = layers
        self.output = output
        self.callback = callback

    # -- set-up --
    def _setup(self, problem):
        info = getattr(problem, 'info', None) or {}
        layers = self.layers if self.layers is not None else info.get(
            'layers')
        if layers is None:
            raise ValueError(f"{self.name}: no `layers` given and the "
                             "problem's info has no 'layers'")
        layers, is_res = _check_layers(layers, who=self.name,
                                       dtype=problem.space.dtype)
        if layers[0].W.domain != problem.space:
            raise odl.OpDomainError(
                f'{self.name}: the first layer has domain '
                f'{layers[0].W.domain!r}, but the problem space is '
                f'{problem.space!r}')
        f = problem.data
        K = None
        if is_res:
            K = self.output if self.output is not None else info.get(
                'output')
            if K is None:
                K = odl.IdentityOperator(layers[-1].W.domain)
            _check_affine(K, None, layers[-1].W.domain, f.space, self.name)
        elif layers[-1].W.range != f.space:
            raise odl.OpRangeError(
                f'{self.name}: the last layer has range '
                f'{layers[-1].W.range!r}, but the data lie in {f.space!r}')
        else:
            act = layers[-1].activation
            if act.psi(f.space)(f) == float('inf'):
                raise ValueError(
                    f'{self.name}: the data lie outside the domain of Psi of '
                    f'the last activation {act!r} (e.g. negative entries for '
                    'ReLU), where the last Bregman term is +inf; project the '
                    'data onto the range of the activation first')
        return layers, is_res, K, f

    def _u0_solver(self, first, space, norm_w):
        """Warm-started ODL ``pdhg`` for ``u_0``: returns ``step(u, y1,
        shift)`` running ``inner`` iterations on ``B(y1, W_1 u + b_1) +
        alpha J(u) + rho/2 ||u - shift||^2`` (``shift`` None: no penalty)."""
        W = first.W
        if self.regulariser == 'tv':
            grad = odl.Gradient(space)
            norm_g = 2.0 * sum(1.0 / float(h) ** 2
                               for h in space.cell_sides) ** 0.5
            scale = norm_w / norm_g
            L = odl.BroadcastOperator(W, scale * grad)
            tv = (self.alpha / scale) * odl.functionals.GroupL1Norm(
                grad.range)
            step = 0.99 / (norm_w * 2 ** 0.5)
        else:
            L = W
            step = 0.99 / norm_w
        state = {'y': L.range.zero(), 'x_relax': None}

        def run(u, y1, shift):
            breg = BregmanLossZ(W.range, first.activation, y1).translated(
                -first.b)
            if self.regulariser == 'tv':
                g = odl.functionals.SeparableSum(breg, tv)
                if shift is None:
                    fq = odl.functionals.ZeroFunctional(space)
                else:
                    fq = ((0.5 * self.rho)
                          * odl.functionals.L2NormSquared(space).translated(
                              shift))
            else:
                g = breg
                # alpha/2 ||u||^2 + rho/2 ||u - s||^2 = c/2 ||u - rho s /
                # c||^2 + const, c = alpha + rho: one proximable quadratic.
                c = self.alpha + (0.0 if shift is None else self.rho)
                fq = (0.5 * c) * odl.functionals.L2NormSquared(space)
                if shift is not None:
                    fq = fq.translated((self.rho / c) * shift)
            if state['x_relax'] is None:
                state['x_relax'] = u.copy()
            odl.solvers.pdhg(u, fq, g, L, niter=self.inner, tau=step,
                             sigma=step, y=state['y'],
                             x_relax=state['x_relax'])

        return run

    def _reconstruct(self, problem, progress):
        layers, is_res, K, f = self._setup(problem)
        space = problem.space
        u = space.zero()
        norms = [_norm(layer.W) for layer in layers]
        u0_step = self._u0_solver(layers[0], space, norms[0])
        with progress_callback(progress, self.niter, 'lifted Bregman',
                               self.callback) as callback:
            if is_res:
                self._sweeps_residual(u, layers, norms, K, f, u0_step,
                                      callback)
            else:
                self._sweeps_feedforward(u, layers, norms, f, u0_step,
                                         callback)
        return u

    def _sweeps_feedforward(self, u, layers, norms, f, u0_step, callback):
        xs = network_forward(layers, u)
        xs[-1] = f  # the last layer is tied to the data
        L = len(layers)
        for _ in range(self.niter):
            u0_step(xs[0], xs[1], None)
            for l in range(1, L):
                nxt = layers[l]
                tau = 1.0 / norms[l] ** 2
                grad = nxt.W.adjoint(nxt.activate(xs[l]) - xs[l + 1])
                z = layers[l - 1].pre_activation(xs[l - 1])
                prox = BregmanLossY(z.space, layers[l - 1].activation,
                                    z).proximal(tau)
                xs[l] = prox(xs[l] - tau * grad)
            if callback is not None:
                callback(xs[0])
        u.assign(xs[0])

    def _sweeps_residual(self, u, layers, norms, K, f, u0_step, callback):
        states, acts = network_forward(layers, u)
        L = len(layers)
        rho, lam = self.rho, self.lam
        norms_v = [_norm(layer.V) for layer in layers]
        norm_k = _norm(K)

        def res(l):  # r_l = u_l - u_{l-1} - V_l z_l, l = 1..L
            return states[l] - states[l - 1] - layers[l - 1].V(acts[l - 1])

        for _ in range(self.niter):
            u0_step(states[0], acts[0], states[1] - layers[0].V(acts[0]))
            for l in range(1, L + 1):
                layer = layers[l - 1]
                # z_l: prox of B(., W_l u_{l-1} + b_l) after a gradient step
                # on rho/2 ||r_l||^2 (gradient -rho V_l^* r_l).
                tau = 1.0 / (rho * norms_v[l - 1] ** 2)
                z = layer.pre_activation(states[l - 1])
                prox = BregmanLossY(z.space, layer.activation,
                                    z).proximal(tau)
                acts[l - 1] = prox(acts[l - 1]
                                   + (tau * rho) * layer.V.adjoint(res(l)))
                # u_l: gradient step on the smooth terms that contain it.
                if l < L:
                    nxt = layers[l]
                    grad = (rho * (res(l) - res(l + 1))
                            + nxt.W.adjoint(nxt.activate(states[l])
                                            - acts[l]))
                    step = 1.0 / (2 * rho + norms[l] ** 2)
                else:
                    grad = rho * res(l) + lam * K.adjoint(K(states[l]) - f)
                    step = 1.0 / (rho + lam * norm_k ** 2)
                states[l] = states[l] - step * grad
            if callback is not None:
                callback(states[0])
        u.assign(states[0])


