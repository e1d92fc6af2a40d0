r"""Lifted Bregman inversion of a given one-layer network.

For a network ``N(u) = sigma(W u + b)`` whose activation is a proximal map,
``sigma = prox_Psi`` (`odl_genprior.activations`), the lifted Bregman
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
* `network_operator`: ``sigma(W . + b)`` as a nonlinear ODL operator.

The convergence-rate theorem of the seed (with ``J = 1/2 ||.||^2``, source
condition ``u^dagger = W^T v``, ``B_Psi(f^delta, W u^dagger + b) <=
delta^2`` and ``alpha = sqrt(2) delta / ||v||``, ReLU with ``v`` vanishing
where ``f^delta`` does) gives ``1/2 ||u^dagger - u_alpha||^2 <= 2 sqrt(2)
||v|| delta``; ``tests/test_bregman_inversion.py`` checks it.
"""
import numpy as np
import odl
import torch
from odl.core.set.space import LinearSpaceElement

from odl_genprior.activations import get_activation
from odl_genprior.bregman import BregmanLossZ
from odl_genprior.bridge import to_numpy
from odl_genprior.problems import ForwardProblem
from odl_genprior.recon.base import Reconstructor

__all__ = ('LiftedBregmanInversion', 'NetworkLeastSquares',
           'shallow_network_inversion', 'network_operator',
           'perceptron_problem', 'perceptron_weights')

_REGULARISERS = ('tv', 'l2')
_SOLVERS = ('pdhg', 'forward_backward_pd')


def _opnorm(op, maxiter=100):
    """``||op||`` by ODL's power method from a fixed start, times 1.02 (the
    power method approaches the norm from below)."""
    start = odl.core.phantom.white_noise(op.domain, seed=0)
    return 1.02 * float(odl.power_method_opnorm(op, maxiter=maxiter,
                                                xstart=start))


def _check_affine(W, b, domain=None, range=None, who='network'):
    """Check ``W`` (linear ODL operator) and ``b`` (in ``W.range``) against
    the expected spaces; return ``b`` as an element of ``W.range``."""
    if not isinstance(W, odl.Operator) or not W.is_linear:
        raise TypeError(f'{who}: `W` must be a linear ODL operator, got '
                        f'{W!r}')
    if domain is not None and W.domain != domain:
        raise odl.OpDomainError(f'{who}: `W` has domain {W.domain!r}, but the '
                                f'problem space is {domain!r}')
    if range is not None and W.range != range:
        raise odl.OpRangeError(f'{who}: `W` has range {W.range!r}, but the '
                               f'data lie in {range!r}')
    if b is None:
        return W.range.zero()
    if isinstance(b, LinearSpaceElement):
        if b.space != W.range:
            raise odl.OpRangeError(f'{who}: the bias `b` lies in '
                                   f'{b.space!r}, but `W` has range '
                                   f'{W.range!r}')
        return b
    arr = np.asarray(b)
    if arr.shape != W.range.shape:
        raise ValueError(f'{who}: the bias `b` has shape {arr.shape}, but '
                         f'`W` has range {W.range!r} of shape '
                         f'{W.range.shape}')
    return W.range.element(arr)


def network_operator(W, b, activation):
    """The one-layer network ``u -> sigma(W u + b)`` as an ODL operator.

    Assembled with ODL's operator algebra: ``act.operator(W.range) *
    odl.OperatorVectorSum(W, b)``, so ODL's chain rule gives its derivative.

    Parameters
    ----------
    W : odl.Operator
        Linear operator (e.g. ``odl.MatrixOperator``).
    b : ``W.range`` element-like or None
        The bias (None: zero).
    activation : str or ProximalActivation
        The activation ``sigma = prox_Psi`` (see `get_activation`).

    Returns
    -------
    odl.Operator
        Nonlinear, from ``W.domain`` to ``W.range``.

    Examples
    --------
    >>> W = odl.MatrixOperator(np.array([[1.0, -1.0], [2.0, 0.0]]))
    >>> N = network_operator(W, [0.0, -3.0], 'relu')
    >>> N(W.domain.element([1.0, 2.0]))  # relu([-1, -1])
    rn(2).element([ 0.,  0.])
    >>> N(W.domain.element([2.0, 0.0]))  # relu([2, 1])
    rn(2).element([ 2.,  1.])
    """
    b = _check_affine(W, b)
    act = get_activation(activation)
    return act.operator(W.range) * odl.OperatorVectorSum(W, b)


def perceptron_weights(size=64, num_outputs=512, seed=0, dtype='float64'):
    """Random ``W`` and ``b`` of the seed's perceptron, as ODL objects.

    The entries of ``W`` (a ``num_outputs x size^2`` matrix) and ``b`` are
    independent standard normal (zero mean, standard deviation one, as in
    the seed). The image space is ``uniform_discr([0, 0], [size, size])``
    with unit cells, so its inner product and ODL's ``Gradient`` are the
    plain Euclidean ones and forward differences of the seed; ``W`` is
    ``odl.MatrixOperator(M) * odl.FlatteningOperator(space)``.

    Parameters
    ----------
    size : int
        The image is ``size x size``.
    num_outputs : int
        ``m``, the length of ``W u + b``.
    seed : int
        Seed of the NumPy generator.
    dtype : str
        ``'float64'`` or ``'float32'``.

    Returns
    -------
    W : odl.Operator
        Linear, image space -> ``odl.rn(num_outputs)``.
    b : ``W.range`` element

    Examples
    --------
    >>> W, b = perceptron_weights(size=4, num_outputs=6, seed=1)
    >>> W.domain.shape, W.range.shape, b.shape
    ((4, 4), (6,), (6,))
    """
    rng = np.random.default_rng(seed)
    space = odl.uniform_discr([0, 0], [size, size], (size, size),
                              dtype=dtype)
    flat = odl.FlatteningOperator(space)
    matrix = rng.standard_normal((num_outputs, space.size)).astype(dtype)
    W = odl.MatrixOperator(matrix, domain=flat.range,
                           range=odl.rn(num_outputs, dtype=dtype)) * flat
    b = W.range.element(rng.standard_normal(num_outputs).astype(dtype))
    return W, b


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
    std = float(noise_level) * float(np.mean(np.abs(clean.asarray())))
    f = _into_domain(clean + W.range.element(
        std * rng.standard_normal(num_outputs)), act)
    name = type(act).__name__
    info = {'W': W, 'b': b, 'activation': name.lower(), 'seed': seed,
            'size': space.shape, 'num_outputs': num_outputs,
            'noise_std': std, 'phantom': phantom if isinstance(phantom, str)
            else 'given'}
    return ForwardProblem(N, f, u, float((f - clean).norm()),
                          f'{name} perceptron inversion', info)


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
        if not float(alpha) > 0:
            raise ValueError(f'alpha must be positive, got {alpha!r}')
        if regulariser not in _REGULARISERS:
            raise ValueError(f'regulariser must be one of {_REGULARISERS}, '
                             f'got {regulariser!r}')
        if solver not in _SOLVERS:
            raise ValueError(f'solver must be one of {_SOLVERS}, got '
                             f'{solver!r}')
        self.activation = (None if activation is None
                           else get_activation(activation))
        self.alpha = float(alpha)
        self.regulariser = regulariser
        self.niter = int(niter)
        self.solver = solver
        if not float(step_ratio) > 0:
            raise ValueError(f'step_ratio must be positive, got '
                             f'{step_ratio!r}')
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
        norm_w = _opnorm(W)
        x = space.zero()
        callback = self.callback
        bar = None
        if progress:
            bar = odl.solvers.CallbackProgressBar(
                niter=self.niter, desc=f'Bregman-{self.solver}')
            callback = bar if callback is None else bar & callback
        try:
            if self.regulariser == 'l2':
                self._solve_l2(x, breg, W, norm_w, callback)
            else:
                self._solve_tv(x, breg, W, norm_w, callback)
        finally:
            if bar is not None:
                bar.pbar.close()
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


class _LeastSquaresFit(odl.functionals.Functional):
    """``u -> 1/2 ||sigma(W u + b) - f||^2`` with gradient ``W^T
    (sigma'(z) (sigma(z) - f))``, ``z = W u + b``; ``sigma'`` by torch
    autograd of the activation module (ODL's ReLU, the box prox, has no
    derivative)."""

    def __init__(self, W, b, act, f):
        super().__init__(W.domain, linear=False)
        self.W, self.b, self.act, self.f = W, b, act, f

    def _residual(self, u):
        z = torch.from_numpy(np.asarray((self.W(u) + self.b).asarray()))
        z.requires_grad_(True)
        s = self.act(z)
        return z, s, s.detach().numpy() - np.asarray(self.f.asarray())

    def _call(self, u):
        return 0.5 * float(np.sum(self._residual(u)[2] ** 2))

    @property
    def gradient(self):
        fit = self

        class _Grad(odl.Operator):
            def __init__(self):
                super().__init__(fit.domain, fit.domain, linear=False)

            def _call(self, u):
                z, s, r = fit._residual(u)
                (g,) = torch.autograd.grad(s, z, torch.from_numpy(r))
                return fit.W.adjoint(fit.W.range.element(g.numpy()))

        return _Grad()


class NetworkLeastSquares(Reconstructor):
    r"""Least-squares inversion ``min_u 1/2 ||N(u) - f||^2`` of the network.

    The classical (non-lifted) baseline: ODL's ``steepest_descent`` on
    the fit, whose gradient ``W^T (sigma'(W u + b) (N(u) - f))`` needs the
    derivative of the activation (torch autograd of the activation module;
    the lifted Bregman loss does not need it), with the constant step
    ``1 / ||W||^2`` from ``u = 0``. For an underdetermined ``W`` this converges to a least-squares solution near
    the minimum-norm one: no regularisation beyond the iteration count.

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

    def _reconstruct(self, problem, progress):
        W, b, act = self._parts(problem)
        fit = _LeastSquaresFit(W, b, act, problem.data)
        x = W.domain.zero()
        callback = self.callback
        bar = None
        if progress:
            bar = odl.solvers.CallbackProgressBar(niter=self.niter,
                                                  desc='least squares')
            callback = bar if callback is None else bar & callback
        try:
            odl.solvers.steepest_descent(
                fit, x, line_search=1.0 / _opnorm(W) ** 2,
                maxiter=self.niter, tol=0.0, callback=callback)
        finally:
            if bar is not None:
                bar.pbar.close()
        return x


def shallow_network_inversion(f, w, b, c, activation, alpha, niter=1000,
                              u0=0.0):
    r"""Invert a shallow network ``f = sum_j c_j sigma(w_j u_0 + b_j)``.

    The seed's lifted scheme for a scalar input ``u_0`` and ``m`` hidden
    perceptrons: minimise over ``u = (u_0, u_1, ..., u_m)``

        1/2 |f - sum_j c_j u_j|^2 + sum_j B_Psi(u_j, w_j u_0 + b_j)
        + alpha/2 |u_0|^2

    by the seed's implicit/explicit coordinate descent: for ``l = 1..m``
    (Gauss-Seidel, exact minimisation in ``u_l``)

        u_l <- prox_{Psi/(1 + c_l^2)}((c_l (f - sum_{j != l} c_j u_j)
               + w_l u_0 + b_l) / (1 + c_l^2)),

    then a proximal gradient step in ``u_0`` with step ``1/||w||^2``,

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
