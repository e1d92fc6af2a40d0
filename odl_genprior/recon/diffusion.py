"""Score-based diffusion priors for linear inverse problems ``y = A x + e``.

The forward operator ``A`` is any linear ODL operator of a
`odl_genprior.problems.ForwardProblem`; the samplers apply it and its
Euclidean transpose ``A^T`` to whole batches of samples through
`odl_genprior.bridge.OperatorLayer` (per-sample ODL calls, the ODL adjoint
rescaled for the spaces' weights), or, for a linear
`odl_genprior.bridge.TorchOperator` whose module takes batches (the
matrices, blurs and masks of `odl_genprior.problems`), by calling the module
on the batch and its vector-Jacobian product. The noise ``e ~ N(0, sigma^2
I)`` is Euclidean in the data array.

Two methods, both `Reconstructor` subclasses that draw ``n_samples``
posterior samples with one of the samplers of `odl_genprior.diffusion.samplers` and
return their mean (the posterior-mean estimate); ``method.samples`` keeps the
samples and ``method.std`` their pixelwise standard deviation.

`DiffusionPosteriorSampling` (Chung, Kim, Mccann, Klasky, Ye, ICLR 2023)
replaces the prior score by an approximate posterior score
``score(x_t) + grad_{x_t} log p(y | x_t)`` with Tweedie's denoiser
``x0_hat(x_t) = (x_t + std^2 score(x_t)) / alpha``:

* ``prior_std=None``: Chung et al.'s normalised step, the guidance term
  ``-zeta grad_{x_t} ||y - A x0_hat(x_t)||`` (``zeta`` = ``guidance_scale``);
* ``prior_std=s``: the Gaussian likelihood ``N(A x0_hat, r_t^2 A A^T +
  sigma^2 I)`` with ``r_t^2 = s^2 q^2 / (s^2 + q^2)``, ``q = std / alpha``
  (the pseudo-inverse-guided covariance of Song, Vahdat, Mardani, Kautz
  2023, for data of variance ``s^2``); its gradient is ``J^T A^T (r_t^2 A
  A^T + sigma^2 I)^{-1} (y - A x0_hat)``, ``J`` the Jacobian of ``x0_hat``,
  the linear solve by conjugate gradients on the normal operator. For a
  Gaussian prior ``N(m, s^2 I)`` this is the exact score of ``p_t(x_t | y)``
  (``Cov(x_0 | x_t) = r_t^2 I`` exactly), so the samples are exact posterior
  samples up to the time discretisation.

`ScoreProjection` (Song, Shen, Xing, Ermon, ICLR 2022) keeps the
unconditional sampler and, after every step at time ``t``, draws the noised
measurement ``y_t = alpha(t) y + std(t) A z`` (``z ~ N(0, I)``, the image
noise seen through ``A``) and moves the sample towards ``{x : A x = y_t}``::

    x <- x + lambda A^T (A A^T + delta I)^{-1} (y_t - A x),

the orthogonal projection for ``lambda = 1, delta = 0`` (for Song's
``A = P(Lambda) T`` with orthogonal ``T`` it is their mixing step).
"""
import numbers

import numpy as np
import odl  # noqa: F401  (the doctests use it)
import torch

from odl_genprior.diffusion import samplers as _samplers
from odl_genprior.bridge import (OperatorLayer, as_element,
                                 as_tensor, module_device, space_device,
                                 space_dtype)
from odl_genprior.recon.base import (Reconstructor, check_choice,
                                     check_flag, check_option)
from odl_genprior.diffusion.sde import SDE, tweedie_denoiser

__all__ = ('DiffusionPosteriorSampling', 'ScoreProjection',
           'batched_operator', 'batched_cg')

_SAMPLERS = {'em': _samplers.euler_maruyama,
             'pc': _samplers.predictor_corrector,
             'ode': _samplers.probability_flow}


def batched_operator(operator, batched_module=True, matrix=False):
    """The linear forward operator of a diffusion method on tensor batches:
    an `odl_genprior.bridge.OperatorLayer`.

    ``layer(x)`` maps ``(B, *domain.shape)`` to ``(B, *range.shape)``;
    ``layer.transpose(y)`` is ``A^T y`` in the plain Euclidean inner
    products of the arrays (``W_dom A*(W_ran^{-1} y)``).

    Parameters
    ----------
    operator : odl.Operator
        Linear, real.
    batched_module : bool
        Let the layer batch where it can (``batching='auto'``: the module of
        a batch-capable linear `TorchOperator`, ASTRA on CUDA, the matrix
        once it pays); False: one ODL call per sample (``'loop'``).
    matrix : bool
        Apply the operator's exact sparse matrix (``batching='matrix'``,
        assembled once and cached).

    Examples
    --------
    >>> A = odl.MatrixOperator(np.array([[1.0, 2.0], [0.0, 1.0]]))
    >>> x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    >>> op = batched_operator(A, matrix=True)
    >>> op(x).tolist(), op.transpose(x).tolist(), op.batching
    ([[3.0, 1.0]], [[1.0, 3.0]], 'matrix')
    """
    if not getattr(operator, 'is_linear', False):
        raise ValueError(f'the forward operator must be a linear ODL '
                         f'operator, got {operator!r}')
    batching = ('matrix' if matrix else 'auto' if batched_module
                else 'loop')
    return OperatorLayer(operator, batching=batching)


def batched_cg(apply, b, niter=50, tol=1e-6):
    """Conjugate gradients for ``M v = b``, ``M`` SPD, on every sample.

    Each sample of the batch ``b`` (shape ``(B, ...)``) is its own system
    with its own step sizes; iterations stop when every relative residual
    is below ``tol`` or after ``niter``.

    Parameters
    ----------
    apply : callable
        ``apply(v)``: ``M v`` for a batch ``v`` shaped like ``b``.
    b : torch.Tensor
    niter : int
    tol : float

    Examples
    --------
    >>> M = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> b = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    >>> v = batched_cg(lambda v: v @ M, b)
    >>> bool(torch.allclose(v @ M, b))
    True
    """
    batch = b.shape[0]

    def dot(u, v):
        return (u * v).reshape(batch, -1).sum(1).reshape(
            (-1,) + (1,) * (b.ndim - 1))

    v = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = dot(r, r)
    stop = (tol ** 2) * rs
    for _ in range(niter):
        if bool(torch.all(rs <= stop)):
            break
        mp = apply(p)
        pmp = dot(p, mp)
        alpha = torch.where(pmp > 0, rs / torch.where(pmp > 0, pmp, 1), 0)
        v = v + alpha * p
        r = r - alpha * mp
        rs_new = dot(r, r)
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, 1), 0)
        p = r + beta * p
        rs = rs_new
    return v


class _DiffusionSampling(Reconstructor):
    """Shared options and bookkeeping of the conditional samplers."""

    _repr_exclude = ('samples', 'mean', 'std', 'last_result')

    def __init__(self, score, sde, niter=500, sampler='em', n_samples=8,
                 seed=0, eps=1e-3, sampler_options=None, batched_module=True,
                 matrix=False, callback=None):
        if not callable(score):
            raise TypeError(f'score must be a callable score(x, t) or a '
                            f'torch.nn.Module, got {type(score).__name__}')
        if not isinstance(sde, SDE):
            raise TypeError(f'sde must be an odl_genprior.diffusion.sde.SDE, got '
                            f'{type(sde).__name__}')
        check_choice(type(self).__name__, 'sampler', sampler,
                     sorted(_SAMPLERS))
        if isinstance(n_samples, bool) or not isinstance(
                n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f'n_samples must be a positive int, got '
                             f'{n_samples!r}')
        own = type(self).__name__
        seed = check_option(own, 'seed', seed, minimum=0, integer=True)
        eps = check_option(own, 'eps', eps, minimum=0, maximum=1,
                           open_minimum=True)
        if sampler_options is not None and not isinstance(sampler_options,
                                                          dict):
            raise ValueError(f'{own}: sampler_options must be a dict, got '
                             f'{sampler_options!r}')
        try:
            _samplers.time_grid(niter, eps)
        except ValueError as err:
            raise ValueError(f'{self.name}: {err}'.replace(
                'steps', 'niter')) from None
        self.score = score
        self.sde = sde
        self.niter = niter
        self.callback = callback
        self.sampler = sampler
        self.n_samples = int(n_samples)
        self.seed = seed
        self.eps = eps
        self.sampler_options = dict(sampler_options or {})
        self.batched_module = check_flag(own, 'batched_module',
                                         batched_module)
        self.matrix = check_flag(own, 'matrix', matrix)
        self._op_cache = None
        self.samples = None
        self.mean = None
        self.std = None

    def _setup(self, problem):
        space = problem.space
        size = getattr(self.score, 'image_size', None)
        if size is not None and tuple(space.shape) != (size, size):
            raise ValueError(
                f'{self.name}: the score model was trained on {size}x{size} '
                f'images but the problem space {space!r} has shape '
                f'{tuple(space.shape)}')
        if isinstance(self.score, torch.nn.Module):
            device = module_device(self.score, space_device(space))
        else:
            device = space_device(space)
        dtype = space_dtype(space)
        cache = self._op_cache
        if cache is not None and cache[0] is problem.operator and cache[1] == (
                self.batched_module, self.matrix):
            op = cache[2]  # e.g. the assembled matrix of the same operator
        else:
            op = batched_operator(problem.operator, self.batched_module,
                                  self.matrix)
            self._op_cache = (problem.operator,
                              (self.batched_module, self.matrix), op)
        y = as_tensor(problem.data, device=device, dtype=dtype)[None]
        return op, y, device, dtype

    def _reconstruct(self, problem, progress):
        training = None
        if isinstance(self.score, torch.nn.Module):
            training = self.score.training
            self.score.eval()  # restored below
        try:
            return self._sample(problem, progress)
        finally:
            if training is not None:
                self.score.train(training)

    def _sample(self, problem, progress):
        op, y, device, dtype = self._setup(problem)
        shape = (self.n_samples,) + tuple(problem.space.shape)
        score = self._conditional_score(problem, op, y)
        hook = self._with_callback(self._hook(problem, op, y), problem.space)
        x = _SAMPLERS[self.sampler](
            score, self.sde, shape, self.niter, eps=self.eps,
            generator=self.seed, device=device, dtype=dtype, hook=hook,
            progress=progress, **self.sampler_options)
        self.samples = x.detach().cpu().numpy()
        self.mean = self.samples.mean(0)
        self.std = self.samples.std(0, ddof=1) if self.n_samples > 1 else (
            np.zeros_like(self.mean))
        return as_element(x.mean(0), problem.space)

    def _with_callback(self, hook, space):
        """``hook``, then ``callback`` on the current sample mean."""
        if self.callback is None:
            return hook

        def hook_and_callback(x, t):
            if hook is not None:
                x = hook(x, t)
            self.callback(as_element(x.mean(0), space))
            return x

        return hook_and_callback

    def _extras(self):
        return {'samples': self.samples, 'mean': self.mean, 'std': self.std}

    def _conditional_score(self, problem, op, y):
        return self.score

    def _hook(self, problem, op, y):
        return None


def _noise_std(problem, noise_std):
    if noise_std is not None:
        return float(noise_std)
    info = getattr(problem, 'info', {}) or {}
    if info.get('noise') is None and 'noise' in info:
        return 0.0
    if info.get('noise_std') is not None:
        return float(info['noise_std'])
    raise ValueError('noise_std is unknown: give it to the constructor (the '
                     "problem's info has no 'noise_std')")


class DiffusionPosteriorSampling(_DiffusionSampling):
    """Diffusion posterior sampling with a score prior and an ODL operator.

    See the module docstring for the guidance term. After a call,
    ``samples`` (``(n_samples, *space.shape)`` array), ``mean`` and
    ``std`` (pixelwise, ``ddof=1``) hold the posterior samples and their
    statistics; the returned element is ``mean``.

    Parameters
    ----------
    score : callable or torch.nn.Module
        ``score(x, t)`` of the prior on batches ``(B, *space.shape)``
        (e.g. a trained `odl_genprior.diffusion.score_unet.ScoreUNet`, or
        `odl_genprior.diffusion.sde.gaussian_score`). It must be differentiable in
        ``x`` (torch autograd) for the guidance.
    sde : odl_genprior.diffusion.sde.SDE
    niter : int
        Time steps of the sampler.
    sampler : {'em', 'pc', 'ode'}
        Reverse SDE (Euler-Maruyama), predictor-corrector or probability
        flow (`odl_genprior.diffusion.samplers`).
    n_samples : int
        ``K``, the number of posterior samples.
    seed : int
        Seeds the prior draw and the sampler's noise.
    eps : float
        Final time.
    guidance_scale : float
        ``zeta`` of Chung et al.'s normalised step (``prior_std=None``).
    guidance_per_step : bool
        With ``prior_std=None``: divide the guidance term by ``g(t)^2
        |dt|`` (``dt`` the step of the time grid), so that one
        Euler-Maruyama step moves the sample by ``zeta J^T A^T r / ||r||``
        whatever ``t`` is, as Chung et al.'s Algorithm 1 does (their step
        ``zeta_i = zeta / ||r||`` on the gradient of ``||r||^2`` is this
        with ``2 zeta``). Without it the move is ``zeta g(t)^2 |dt|``, a
        factor ``beta_max / beta_min`` larger at ``t = 1`` than at ``t = 0``
        for the VP SDE.
    prior_std : float, optional
        ``s``: use the covariance-corrected Gaussian likelihood with
        ``r_t^2 = s^2 q^2 / (s^2 + q^2)`` (exact for the prior ``N(m, s^2
        I)``).
    noise_std : float, optional
        ``sigma`` of the data noise; default ``problem.info['noise_std']``
        (0 for noise-free problems).
    cg_niter, cg_tol : int, float
        Conjugate gradients for ``(r_t^2 A A^T + sigma^2 I) v = y - A
        x0_hat``.
    sampler_options : dict, optional
        Passed on to the sampler (``snr``, ``n_corrector``, ``method``).
    batched_module, matrix : bool
        See `batched_operator` (``matrix=True``: assemble ``A`` once
        as a sparse matrix, kept for later calls with the same operator).
    callback : callable, optional
        ``callback(x)`` after every time step, ``x`` the current sample
        mean as an element of the problem space.

    Examples
    --------
    Gaussian prior ``N(0, I)`` on ``R^4``, observing the first two entries:

    >>> from odl_genprior.problems import ForwardProblem
    >>> from odl_genprior.diffusion.sde import VPSDE, gaussian_score
    >>> space = odl.rn(4, dtype='float32')
    >>> A = odl.MatrixOperator(np.eye(4, dtype='float32')[:2], domain=space,
    ...                        range=odl.rn(2, dtype='float32'))
    >>> problem = ForwardProblem(A, A.range.element([1.0, -1.0]),
    ...                          info={'noise_std': 0.1})
    >>> sde = VPSDE()
    >>> dps = DiffusionPosteriorSampling(
    ...     gaussian_score(sde, 0.0, 1.0), sde, niter=50, n_samples=4,
    ...     prior_std=1.0)
    >>> x = dps(problem, progress=False)
    >>> np.round(x.asarray()[:2], 1)
    array([ 1., -1.], dtype=float32)
    >>> dps.samples.shape, dps.std.shape
    ((4, 4), (4,))
    """

    #: Options chosen on validation phantoms of 64x64 ellipse CT
    #: (docs/diffusion.md): what ``odl-genprior reconstruct dps`` uses
    #: unless ``--set`` says otherwise.
    TUNED = {'niter': 200, 'sampler': 'em', 'n_samples': 8,
             'guidance_scale': 2.0, 'guidance_per_step': True,
             'matrix': True}

    name = 'diffusion posterior sampling'

    def __init__(self, score, sde, niter=500, sampler='em', n_samples=8,
                 seed=0, eps=1e-3, guidance_scale=1.0, prior_std=None,
                 guidance_per_step=False, noise_std=None, cg_niter=50,
                 cg_tol=1e-6, sampler_options=None, batched_module=True,
                 matrix=False, callback=None):
        super().__init__(score, sde, niter, sampler, n_samples, seed, eps,
                         sampler_options, batched_module, matrix, callback)
        own = type(self).__name__
        self.prior_std = None if prior_std is None else check_option(
            own, 'prior_std', prior_std, minimum=0, open_minimum=True)
        self.noise_std = None if noise_std is None else check_option(
            own, 'noise_std', noise_std, minimum=0)
        self.guidance_scale = check_option(own, 'guidance_scale',
                                           guidance_scale, minimum=0)
        self.guidance_per_step = check_flag(own, 'guidance_per_step',
                                            guidance_per_step)
        self.cg_niter = check_option(own, 'cg_niter', cg_niter, minimum=1,
                                     integer=True)
        self.cg_tol = check_option(own, 'cg_tol', cg_tol, minimum=0)

    def _conditional_score(self, problem, op, y):
        sde, prior_score = self.sde, self.score
        sigma2 = _noise_std(problem, self.noise_std) ** 2
        covariance = self.prior_std is not None
        if covariance:
            s2 = float(self.prior_std) ** 2
        zeta = self.guidance_scale
        per_step = self.guidance_per_step
        dt = (1 - self.eps) / self.niter  # |t_{i+1} - t_i| of the grid

        def score(x, t):
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                s = prior_score(xg, t)
                x0 = tweedie_denoiser(lambda *_: s, sde, xg, t)
            with torch.no_grad():
                res = y - op(x0.detach())
                b = res.shape[0]
                if covariance:
                    q2 = (sde.marginal_std(t) / sde.mean_coeff(t)) ** 2
                    r2 = (s2 * q2 / (s2 + q2)).reshape(
                        (-1,) + (1,) * (res.ndim - 1))
                    w = batched_cg(
                        lambda v: r2 * op(op.transpose(v))
                        + sigma2 * v, res, self.cg_niter, self.cg_tol)
                else:
                    norm = res.reshape(b, -1).norm(dim=1).clamp_min(1e-12)
                    if per_step:  # a move of zeta per Euler step
                        norm = norm * sde.diffusion(t) ** 2 * dt
                    w = zeta * res / norm.reshape(
                        (-1,) + (1,) * (res.ndim - 1))
                u = op.transpose(w)
            (guide,) = torch.autograd.grad(x0, xg, grad_outputs=u)
            return s.detach() + guide

        return score


class ScoreProjection(_DiffusionSampling):
    """Unconditional score sampling with Song et al. (2022)'s data projection.

    After every sampler step at time ``t``: ``x <- x + lambda A^T (A A^T +
    delta I)^{-1} (y_t - A x)`` with the noised data ``y_t = alpha(t) y +
    std(t) A z`` (module docstring). ``samples``, ``mean`` and ``std`` as
    in `DiffusionPosteriorSampling`.

    Parameters
    ----------
    score, sde, niter, sampler, n_samples, seed, eps, sampler_options, \
batched_module, matrix, callback
        As in `DiffusionPosteriorSampling` (``score`` need not be
        differentiable here).
    weight : float
        ``lambda`` in ``[0, 1]``: 1 projects, 0 ignores the data.
    delta : float
        ``delta >= 0``; 0 with
        ``cg_niter`` small is Landweber-like early stopping of the
        projection, useful for ill-conditioned ``A``.
    cg_niter, cg_tol : int, float
        Conjugate gradients for ``(A A^T + delta I) v = y_t - A x``.

    Examples
    --------
    >>> from odl_genprior.problems import ForwardProblem
    >>> from odl_genprior.diffusion.sde import VESDE, gaussian_score
    >>> space = odl.rn(3, dtype='float32')
    >>> A = odl.MatrixOperator(np.array([[1.0, 1.0, 0.0]], dtype='float32'),
    ...                        domain=space, range=odl.rn(1, dtype='float32'))
    >>> problem = ForwardProblem(A, A.range.element([2.0]))
    >>> sde = VESDE(0.01, 10.0)
    >>> method = ScoreProjection(gaussian_score(sde, 0.0, 1.0), sde,
    ...                          niter=20, n_samples=3)
    >>> x = method(problem, progress=False)
    >>> round(float(A(x)[0]), 2)
    2.0
    """

    #: As `DiffusionPosteriorSampling.TUNED` (``odl-genprior reconstruct
    #: score-projection``).
    TUNED = {'niter': 200, 'sampler': 'em', 'n_samples': 8, 'cg_niter': 5,
             'weight': 0.5, 'matrix': True}

    name = 'score-based projection'

    def __init__(self, score, sde, niter=500, sampler='pc', n_samples=8,
                 seed=0, eps=1e-3, weight=1.0, delta=0.0,
                 cg_niter=20, cg_tol=1e-6, sampler_options=None,
                 batched_module=True, matrix=False, callback=None):
        super().__init__(score, sde, niter, sampler, n_samples, seed, eps,
                         sampler_options, batched_module, matrix, callback)
        own = type(self).__name__
        self.weight = check_option(own, 'weight', weight, minimum=0,
                                   maximum=1)
        self.delta = check_option(own, 'delta', delta, minimum=0)
        self.cg_niter = check_option(own, 'cg_niter', cg_niter, minimum=1,
                                     integer=True)
        self.cg_tol = check_option(own, 'cg_tol', cg_tol, minimum=0)

    def _hook(self, problem, op, y):
        sde, lam, delta = self.sde, self.weight, self.delta
        state = {}

        def project(x, t):
            if 'gen' not in state:  # a stream of its own, from the seed
                state['gen'] = _samplers.make_generator(
                    int(self.seed) + 1, x.device)
            tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
            a = sde.mean_coeff(tt).reshape((-1,) + (1,) * (y.ndim - 1))
            sd = sde.marginal_std(tt).reshape((-1,) + (1,) * (y.ndim - 1))
            z = torch.randn(x.shape, generator=state['gen'], device=x.device,
                            dtype=x.dtype)
            y_t = a * y + sd * op(z)
            res = y_t - op(x)
            v = batched_cg(lambda w: op(op.transpose(w)) + delta * w,
                           res, self.cg_niter, self.cg_tol)
            return x + lam * op.transpose(v)

        return project
