r"""Phase retrieval ``b = |A x|``: a generative prior and Wirtinger flow.

* `GenerativePhaseRetrieval` (Hand, Leong, Voroninski 2018, "Phase
  retrieval under a generative prior"): ``min_z || |A G(z)| - b ||^2`` over
  the latent code of a generator, by ODL's ``adam`` or ``bfgs_method`` on the
  ODL functional ``L2NormSquared(A.range).translated(b) * (A * G)``, with
  their negation check: every few iterations the objective at ``z`` and at
  ``-z`` is compared and the iterate moves to the better one.
* `WirtingerFlow` (Candes, Li, Soltanolkotabi 2015; truncated variant after
  Chen and Candes 2015): spectral initialisation, then gradient steps on
  ``(1/4m) sum_i (|a_i^T x|^2 - b_i^2)^2`` run by ODL's
  ``steepest_descent``; the gradient is ``(1/m) P'(x)^* (P(x) (P(x)^2 -
  b^2))`` with ``P = problem.operator``, i.e. the derivative adjoint of the
  ODL operator ``x -> |A x|``.

For a real signal, ``x`` and ``-x`` give the same data; compare with
`relative_error_up_to_sign`. The forward problems come from
`odl_genprior.problems.phase_retrieval`, whose operator is a `TorchOperator`
of `AbsMatrixMultiply`.
"""
import math

import numpy as np
import odl
import torch

from odl_genprior._compat.odl_fixes import LineSearchStall
from odl_genprior.bridge import as_element, to_numpy
from odl_genprior.recon.base import (Reconstructor, check_option,
                                     combine_callbacks, progress_bar)
from odl_genprior.problems.forward import AbsMatrixMultiply
from odl_genprior.recon.latent import _LatentReconstructor

__all__ = ('AbsMatrixMultiply', 'GenerativePhaseRetrieval', 'WirtingerFlow',
           'relative_error_up_to_sign')



def relative_error_up_to_sign(x, reference):
    r"""``min(||x - x*||, ||x + x*||) / ||x*||`` (Euclidean, float64).

    Examples
    --------
    >>> relative_error_up_to_sign(-np.ones(4), np.ones(4))
    0.0
    >>> relative_error_up_to_sign(np.zeros(4), np.ones(4))
    1.0
    """
    x = np.asarray(to_numpy(x), dtype=np.float64)
    ref = np.asarray(to_numpy(reference), dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f'shapes differ: reconstruction {x.shape}, '
                         f'reference {ref.shape}')
    norm = np.linalg.norm(ref)
    if not norm > 0:
        raise ValueError('the reference is zero: relative error undefined')
    return float(min(np.linalg.norm(x - ref), np.linalg.norm(x + ref))
                 / norm)


def _abs_module(problem, who):
    """The `AbsMatrixMultiply` behind ``problem.operator`` (or an error)."""
    module = getattr(problem.operator, 'module', None)
    if not isinstance(module, AbsMatrixMultiply):
        raise ValueError(
            f'{who} needs a phase-retrieval operator (a TorchOperator of '
            f'AbsMatrixMultiply, see problems.phase_retrieval), got '
            f'{problem.operator!r}')
    return module


class GenerativePhaseRetrieval(_LatentReconstructor):
    r"""Phase retrieval in the range of a generator (Hand et al. 2018).

    Solves

    .. math::
        \min_z \big\| |A G(z)| - b \big\|^2 + \lambda \|z\|^2

    with ODL's ``adam`` (or ``bfgs_method`` with backtracking) on the ODL
    functional ``L2NormSquared(A.range).translated(b) * (A * G) + lam *
    L2NormSquared(Z)``, ``A`` the problem's nonlinear operator ``x -> |A
    x|`` (any ODL operator with a derivative works). Negation check: at the
    start of each restart, every ``negation_every`` iterations and at the
    end, the objective at ``z`` is compared with that at ``-z`` and the
    iterate is replaced by ``-z`` when that is lower (the landscape of Hand
    et al. has a spurious basin near a negative multiple of the solution).
    The solver is restarted after each check (adam's moments, BFGS's
    memory). ``restarts`` seeded random starts ``z0 ~ N(0, init_std^2 I)``;
    the restart with the lowest data fit is kept and ``G(z)`` returned.
    ``method.result`` is a `odl_genprior.recon.LatentResult`;
    ``method.flips`` counts the negations per restart.

    Parameters
    ----------
    generator : torch.nn.Module or odl.Operator
        The generator; a module is wrapped by
        `odl_genprior.recon.latent.generator_operator`.
    latent_dim : int, optional
        Latent dimension of a module (default ``generator.latent_dim``).
    niter : int
        Solver iterations per restart.
    restarts : int
        Random restarts; the best data fit is kept.
    seed : int
        Seed of the starting points.
    lam : float
        Weight of ``||z||^2`` (0: Hand et al.'s objective).
    negation : bool
        Apply the negation check.
    negation_every : int
        Iterations between negation checks.
    solver : {'adam', 'bfgs'}
    learning_rate : float
        Adam's step length (ignored by BFGS).
    init_std : float
        Standard deviation of the random starts.
    start : array-like, optional
        Latent starting point of the first restart instead of a random one.
    select : {'data_fit', 'objective'}
    callback : callable, optional
        ODL callback, called with the latent iterate.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> _ = torch.manual_seed(0)
    >>> gen = torch.nn.Sequential(torch.nn.Linear(3, 20), torch.nn.Tanh(),
    ...                           torch.nn.Linear(20, 20)).double()
    >>> x_true = gen(torch.randn(1, 3, dtype=torch.float64)).detach()
    >>> p = problems.phase_retrieval(24, phantom=x_true.reshape(20).numpy())
    >>> method = GenerativePhaseRetrieval(gen, latent_dim=3, niter=150,
    ...                                   restarts=3, solver='bfgs')
    >>> x = method(p, progress=False)
    >>> x in p.space, relative_error_up_to_sign(x, p.ground_truth) < 0.05
    (True, True)
    """

    name = 'generative-phase-retrieval'

    def __init__(self, generator, latent_dim=None, niter=300, restarts=5,
                 seed=0, lam=0.0, negation=True, negation_every=50,
                 solver='adam', learning_rate=0.05, init_std=1.0, start=None,
                 select='data_fit', callback=None):
        super().__init__(generator, latent_dim, restarts, seed, init_std,
                         solver, learning_rate, select, callback)
        self._set_iterations(niter, lam=lam)
        self.negation = bool(negation)
        self.negation_every = check_option(
            type(self).__name__, 'negation_every', negation_every, minimum=1,
            integer=True)
        self.start = None if start is None else np.asarray(start, float)
        self._flips = []

    @property
    def flips(self):
        """Negations made per restart in the last call (list of int)."""
        return list(self._flips)

    def _extras(self):
        return dict(super()._extras(), flips=list(self._flips))

    def _prepare(self, problem, G):
        if self.start is not None and self.start.size != G.domain.size:
            raise ValueError(f'start has {self.start.size} entries, the '
                             f'latent space {G.domain!r} has '
                             f'{G.domain.size}')
        self._flips = []
        return {'restart': 0}

    def _negate_if_better(self, f, z):
        if f(-z) < f(z):
            z.assign(-z)
            return 1
        return 0

    def _run(self, problem, G, z, state, bar):
        A, b = problem.operator, problem.data
        Z = G.domain
        if state['restart'] == 0 and self.start is not None:
            z.assign(as_element(self.start, Z))
        state['restart'] += 1
        f = odl.functionals.L2NormSquared(A.range).translated(b) * (A * G)
        if self.lam:
            f = f + self.lam * odl.functionals.L2NormSquared(Z)
        flips, done = 0, 0
        step = self.negation_every if self.negation else self.niter
        while done < self.niter:
            if self.negation:
                flips += self._negate_if_better(f, z)
            seg = min(step, self.niter - done)
            self._minimize_z(f, z, seg, bar)
            done += seg
        if self.negation:
            flips += self._negate_if_better(f, z)
        self._flips.append(flips)
        return G(z), z, None, f(z)


class _WirtingerLoss(odl.functionals.Functional):
    """``(1 / (4 m s^4)) || P(x)^2 - b^2 ||^2`` with a (truncated) gradient.

    ``P`` is the operator ``x -> |A x|`` and ``s^2`` the variance of the
    entries of ``A``, so that in units of a standard Gaussian matrix this is
    Candes et al.'s loss. Internal to `WirtingerFlow`.
    """

    def __init__(self, P, b, sigma, truncation):
        super().__init__(P.domain, linear=False)
        self.P, self.sigma, self.truncation = P, float(sigma), truncation
        self.b2 = b * b
        self.m = P.range.size
        self.scale = 1.0 / (self.m * self.sigma ** 4)

    def _call(self, x):
        r = self.P(x) ** 2 - self.b2
        return 0.25 * self.scale * float(r.inner(r))

    @property
    def gradient(self):
        return _WirtingerGradient(self)


class _WirtingerGradient(odl.Operator):

    def __init__(self, loss):
        super().__init__(loss.domain, loss.domain)
        self.loss = loss

    def _call(self, x):
        loss = self.loss
        px = loss.P(x)
        resid = px * px - loss.b2
        w = px * resid
        if loss.truncation is not None:
            w = w * self._mask(x, px, resid)
        return loss.scale * loss.P.derivative(x).adjoint(w)

    def _mask(self, x, px, resid):
        """TWF's rules (Chen, Candes 2015) in units of a standard matrix."""
        alpha_lb, alpha_ub, alpha_h = self.loss.truncation
        norm = float(x.norm())
        t_px, t_res = to_numpy(px), to_numpy(resid)
        if not norm > 0:
            return px.space.one()
        ratio = t_px / (self.loss.sigma * norm)
        k_t = float(np.mean(np.abs(t_res)))
        keep = ((ratio >= alpha_lb) & (ratio <= alpha_ub)
                & (np.abs(t_res) <= alpha_h * k_t * ratio))
        return as_element(keep, px.space)


class WirtingerFlow(Reconstructor):
    r"""Wirtinger flow for ``b = |A x|`` (Candes, Li, Soltanolkotabi 2015).

    Spectral initialisation: ``x0`` is the top eigenvector of ``Y = (1/m)
    sum_i b_i^2 a_i a_i^T`` (for a complex ``A``, ``Re(a_i conj(a_i)^T)``;
    rows scaled to unit-variance entries), found by ``power_iter`` power
    iterations from a seeded random start, scaled to the norm estimate
    ``sqrt(mean(b^2)) / s`` (``s^2`` the variance of the entries of ``A``).
    ``truncated=True`` keeps only ``b_i^2 <= alpha_y^2 mean(b^2)`` in ``Y``
    (Chen and Candes's truncated spectral method).

    Iteration: ODL's ``steepest_descent`` with the step ``mu / ||x0||^2``
    (halved by ODL's backtracking line search where it does not decrease
    the loss) on ``f(x) = (1/4m) sum_i (|a_i^T x|^2 - b_i^2)^2``; the
    gradient is ``(1/m) P'(x)^*(P(x) (P(x)^2 - b^2))`` through the
    derivative adjoint of the ODL operator ``P = problem.operator``.
    ``truncated=True`` multiplies the terms of the gradient by the
    truncation rules of truncated Wirtinger flow (keep ``i`` where
    ``alpha_lb <= r_i <= alpha_ub`` and ``|P_i^2 - b_i^2| <= alpha_h
    mean_j |P_j^2 - b_j^2| r_i``, ``r_i = P_i(x) / (s ||x||)``); the
    gradient stays that of the quadratic loss (Chen and Candes truncate the
    Poisson-likelihood gradient). The real-signal case: ``x`` is found up
    to sign.

    Parameters
    ----------
    niter : int
        Gradient steps.
    truncated : bool
        Truncated spectral initialisation and gradient.
    step_size : float
        Step size relative to ``1 / ||x0||^2`` (Candes et al.'s ``mu``).
    power_iter : int
        Power iterations of the spectral initialisation.
    alpha_y, alpha_lb, alpha_ub, alpha_h : float
        Truncation thresholds (Chen and Candes's defaults 3, 0.3, 5, 5).
    seed : int
        Seed of the power method's start.
    callback : callable, optional
        ``callback(x)`` on every iterate, as ODL's solvers call theirs.

    After a call, ``last_result.stalled`` says whether the line search
    found no decrease left before ``niter`` steps (convergence to float
    precision; the bar shows it too).

    Examples
    --------
    >>> from odl_genprior import problems
    >>> p = problems.phase_retrieval(160, size=20, seed=1)
    >>> x = WirtingerFlow(niter=300)(p, progress=False)
    >>> relative_error_up_to_sign(x, p.ground_truth) < 1e-3
    True
    """

    name = 'wirtinger-flow'

    def __init__(self, niter=500, truncated=False, step_size=0.2,
                 power_iter=100, alpha_y=3.0, alpha_lb=0.3, alpha_ub=5.0,
                 alpha_h=5.0, seed=0, callback=None):
        self.niter = check_option(self.name, 'niter', niter, minimum=0,
                                  integer=True)
        self.step_size = check_option(self.name, 'step_size', step_size,
                                      minimum=0, open_minimum=True)
        self.truncated = bool(truncated)
        self.callback = callback
        self._stalled = False
        self.power_iter = int(power_iter)
        self.alpha_y = float(alpha_y)
        self.alpha_lb = float(alpha_lb)
        self.alpha_ub = float(alpha_ub)
        self.alpha_h = float(alpha_h)
        self.seed = int(seed)

    def spectral_init(self, problem):
        """The (truncated) spectral initialisation, in ``problem.space``."""
        module = _abs_module(problem, 'WirtingerFlow')
        mats = [module.matrix.detach().to('cpu', torch.float64)]
        if module.is_complex:
            mats.append(module.matrix_imag.detach().to('cpu', torch.float64))
        m, n = mats[0].shape
        if n != problem.space.size or m != problem.operator.range.size:
            raise ValueError(f'matrix of shape {(m, n)} does not map '
                             f'{problem.space!r} to '
                             f'{problem.operator.range!r}')
        var = sum(float((a ** 2).sum()) for a in mats) / (m * n)
        b2 = torch.from_numpy(
            np.asarray(to_numpy(problem.data), np.float64).reshape(-1) ** 2)
        mean_b2 = float(b2.mean())
        weights = b2 / var
        if self.truncated:
            weights = weights * (b2 <= self.alpha_y ** 2 * mean_b2)
        gen = torch.Generator().manual_seed(self.seed)
        v = torch.randn(n, generator=gen, dtype=torch.float64)
        v /= v.norm()
        for _ in range(self.power_iter):
            v_new = sum(a.T @ (weights * (a @ v)) for a in mats) / (m * var)
            nrm = v_new.norm()
            if not nrm > 0:
                break
            v = v_new / nrm
        x0 = math.sqrt(mean_b2 / var) * v
        return as_element(x0.reshape(problem.space.shape).to(
            getattr(torch, problem.space.dtype_identifier)), problem.space)

    def _reconstruct(self, problem, progress):
        module = _abs_module(problem, 'WirtingerFlow')
        x = self.spectral_init(problem)
        m, n = module.matrix.shape
        mats = [module.matrix] + ([module.matrix_imag] if module.is_complex
                                  else [])
        sigma = math.sqrt(sum(float((a.double() ** 2).sum()) for a in mats)
                          / (m * n))
        truncation = ((self.alpha_lb, self.alpha_ub, self.alpha_h)
                      if self.truncated else None)
        loss = _WirtingerLoss(problem.operator, problem.data, sigma,
                              truncation)
        norm0 = float(x.norm())
        self._stalled = False
        if self.niter == 0 or not norm0 > 0:
            return x
        # Scaled by step_size / ||x0||^2 so that the unit step of the line search is
        # WF's step; it is halved only where it would not decrease the loss
        # (the constant step diverges from poor starts, e.g. at m = n).
        scaled = (self.step_size / norm0 ** 2) * loss
        line_search = odl.solvers.BacktrackingLineSearch(
            scaled, tau=0.5, discount=1e-4, max_num_iter=40)
        with progress_bar(progress, self.niter, self.name) as bar:
            with LineSearchStall() as run:
                odl.solvers.steepest_descent(
                    scaled, x, line_search=line_search, maxiter=self.niter,
                    tol=0.0, callback=combine_callbacks(bar, self.callback))
            self._stalled = run.stalled
            if run.stalled and bar is not None:
                bar.pbar.set_postfix_str('line search stalled (converged)')
        return x

    def _extras(self):
        return {'stalled': self._stalled}
