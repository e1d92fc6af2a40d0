"""Latent-space reconstruction under a generative prior ``x = G(z)``.

Three formulations, each a `Reconstructor` (options in the constructor,
``method(problem)`` returns an element of ``problem.space``):

* `LatentHard` (Bora et al. 2017): ``min_z ||A G(z) - y||^2 + lam ||z||^2``,
  returns ``G(z)``.
* `LatentSparseDeviation` (Dhar et al. 2018): ``x = G(z) + u`` with ``u``
  sparse, ``min_{z,u} ||A (G(z) + u) - y||^2 + lam ||z||^2 + mu ||u||_1``.
* `LatentSoft` (Duff, Campbell, Ehrhardt 2022): a free image ``x`` near the
  range, ``min_{x,z} ||A x - y||^2 + lam ||G(z) - x||^2 + mu ||z||^2``.
* `latent_deblur`: `LatentHard` as a function of ``(G, A, y)`` from one
  start ``z0`` (the 1D deblurring experiment of the CGNN seed), returning a
  `LatentFit`.

The generator ``G`` is an ODL operator from a latent space to
``problem.space``: a `TorchOperator` built here from a torch module (or any
ODL operator with a derivative). Every objective is an ODL functional
composed with ODL operators, and every step is one of ODL's solvers
(``adam``, ``bfgs_method`` or ``steepest_descent`` in ``z``,
``proximal_gradient`` in ``u``, ``conjugate_gradient`` in ``x``); nothing
here is a new optimiser. Norms are ODL's norms on the operator's spaces
(weighted by the cell volume on ``uniform_discr`` spaces). All three run
several seeded random restarts and keep the one with the best data fit
``||A x - y||^2``.
"""
import dataclasses

import numpy as np
import odl
import torch

from odl_genprior.metrics import operator_norm
from odl_genprior._compat.odl_fixes import LineSearchStall
from odl_genprior.bridge import (TorchOperator, as_element, as_tensor,
                                 to_numpy)
from odl_genprior.problems import ForwardProblem
from odl_genprior.recon.base import (NonFiniteResultError, Reconstructor,
                                     check_choice, check_option,
                                     combine_callbacks, progress_bar)

__all__ = ('LatentResult', 'LatentHard', 'LatentSparseDeviation',
           'LatentSoft', 'generator_operator', 'latent_deblur', 'LatentFit')

_SOLVERS = ('adam', 'bfgs', 'steepest_descent')
_SELECT = ('data_fit', 'objective')


def generator_operator(generator, space, latent_dim=None):
    """The generator as an ODL operator ``R^latent_dim -> space``.

    Parameters
    ----------
    generator : torch.nn.Module or odl.Operator
        A module mapping a batch ``(1, latent_dim)`` to ``space.size``
        values (e.g. a decoder with output ``(1, 1, 28, 28)``), or an ODL
        operator whose range is ``space`` (e.g. a `TorchOperator`).
    space : odl.TensorSpace or odl.DiscretizedSpace
        The image space (``problem.space``).
    latent_dim : int, optional
        Latent dimension of a module; default ``generator.latent_dim``.

    Returns
    -------
    G : odl.Operator
        For a module: a `TorchOperator` on ``odl.rn(latent_dim)`` with the
        dtype, backend and device of ``space``.

    Examples
    --------
    >>> dec = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Sigmoid())
    >>> space = odl.uniform_discr([-1, -1], [1, 1], (4, 4), dtype='float32')
    >>> G = generator_operator(dec, space, latent_dim=3)
    >>> G.domain, G.range == space
    (rn(3, 'float32'), True)
    """
    if isinstance(generator, odl.Operator):
        if generator.range != space:
            raise ValueError(
                f'generator range {generator.range!r} is not the problem '
                f'space {space!r}; build the generator on problem.space (or '
                'pass the torch module and latent_dim)')
        if latent_dim is not None and generator.domain.size != int(latent_dim):
            raise ValueError(f'latent_dim={latent_dim} but the generator '
                             f'domain is {generator.domain!r}')
        return generator
    if not isinstance(generator, torch.nn.Module):
        raise TypeError(f'generator must be a torch.nn.Module or an '
                        f'odl.Operator, got {type(generator).__name__}')
    if latent_dim is None:
        latent_dim = getattr(generator, 'latent_dim', None)
        if latent_dim is None:
            raise ValueError(f'{type(generator).__name__} has no attribute '
                             '`latent_dim`: pass latent_dim=...')
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f'latent_dim must be positive, got {latent_dim}')
    latent = odl.rn(latent_dim, dtype=space.dtype_identifier, impl=space.impl,
                    device=getattr(space, 'device', 'cpu'))
    return TorchOperator(generator, latent, space, in_shape=(1, latent_dim))


@dataclasses.dataclass
class LatentResult:
    """What the last latent reconstruction found (``method.result``).

    Attributes
    ----------
    x : ``problem.space`` element
        The returned reconstruction.
    z : latent element
        The latent code of the kept restart.
    u : ``problem.space`` element or None
        The sparse deviation (`LatentSparseDeviation` only).
    data_fit : float
        ``||A x - y||^2`` of the kept restart.
    objective : float
        The method's objective at the kept restart.
    data_fits, objectives : list of float
        Per restart, in order.
    stalls : int
        How many BFGS runs ended early at a line-search stall (no decrease
        left to find at float precision), over all restarts.
    best : int
        Index of the kept restart.

    Examples
    --------
    >>> r = LatentResult(x=None, z=None, u=None, data_fit=1.0, objective=1.5,
    ...                  data_fits=[2.0, 1.0], objectives=[2.1, 1.5], best=1)
    >>> r.data_fits[r.best] == r.data_fit
    True
    """

    x: object
    z: object
    u: object
    data_fit: float
    objective: float
    data_fits: list
    objectives: list
    best: int
    stalls: int = 0


class _LatentReconstructor(Reconstructor):
    """Shared machinery: generator, restarts, z-solver, progress."""

    divergence_hint = 'learning_rate (or init_std)'

    def __init__(self, generator, latent_dim, restarts, seed, init_std,
                 solver, learning_rate, select, callback, z0=None,
                 num_store=10, tol=1e-15):
        if not isinstance(generator, (torch.nn.Module, odl.Operator)):
            raise TypeError(f'generator must be a torch.nn.Module or an '
                            f'odl.Operator, got {type(generator).__name__}')
        name = type(self).__name__
        check_choice(name, 'solver', solver, _SOLVERS)
        check_choice(name, 'select', select, _SELECT)
        self.generator = generator
        self.latent_dim = None if latent_dim is None else check_option(
            name, 'latent_dim', latent_dim, minimum=1, integer=True)
        self.restarts = check_option(name, 'restarts', restarts, minimum=1,
                                     integer=True)
        self.seed = check_option(name, 'seed', seed, minimum=0, integer=True)
        self.init_std = check_option(name, 'init_std', init_std, minimum=0)
        self.solver = solver
        self.learning_rate = check_option(name, 'learning_rate',
                                          learning_rate, minimum=0,
                                          open_minimum=True)
        self.select = select
        self.callback = callback
        if z0 is not None:
            code = to_numpy(z0)
            if not np.issubdtype(code.dtype, np.number) or not np.all(
                    np.isfinite(code)):
                raise ValueError(f'{name}: z0 must be a latent code (finite '
                                 f'numbers), got {z0!r}')
        self.z0 = z0
        self.num_store = None if num_store is None else check_option(
            name, 'num_store', num_store, minimum=1, integer=True)
        self.tol = check_option(name, 'tol', tol, minimum=0)
        self._result = None
        self._stalls = 0

    @property
    def result(self):
        """`LatentResult` of the last call (None before the first)."""
        return self._result

    def generator_operator(self, space):
        """The generator as an ODL operator into ``space``."""
        return generator_operator(self.generator, space, self.latent_dim)

    def _set_iterations(self, niter, **weights):
        """Check and set ``niter`` (latent steps per restart) and the
        nonnegative weights (``lam``, ``mu``)."""
        owner = type(self).__name__
        for key, value in weights.items():
            setattr(self, key, check_option(owner, key, value, minimum=0))
        self.niter = check_option(owner, 'niter', niter, minimum=1,
                                  integer=True)

    def _units_per_restart(self):
        """Progress-bar units of one restart."""
        return self.niter

    # -- pieces used by the subclasses --
    def _minimize_z(self, f, z, niter, bar):
        """Run ODL's adam, BFGS or steepest descent on the latent
        functional ``f`` from ``z``."""
        user = self.callback
        if user is not None:  # the contract: called with the image G(z)
            G = self._generator_op

            def user(z, callback=self.callback):
                callback(G(z))
        callback = combine_callbacks(bar, user)
        if self.solver == 'adam':
            odl.solvers.adam(f, z, learning_rate=self.learning_rate,
                             maxiter=niter, callback=callback)
            return
        line_search = odl.solvers.BacktrackingLineSearch(f)
        with LineSearchStall() as run:
            if self.solver == 'bfgs':
                odl.solvers.bfgs_method(f, z, line_search=line_search,
                                        maxiter=niter, tol=self.tol,
                                        num_store=self.num_store,
                                        callback=callback)
            else:
                odl.solvers.steepest_descent(f, z, line_search=line_search,
                                             maxiter=niter, tol=self.tol,
                                             callback=callback)
        if run.stalled:
            self._stalls += 1
            if bar is not None:
                bar.pbar.set_postfix_str(
                    f'line search stalled x{self._stalls} (converged)')

    @staticmethod
    def _linear_operator(problem, who):
        A = problem.operator
        if not A.is_linear:
            raise ValueError(f'{who} needs a linear forward operator, got '
                             f'{A!r}; LatentHard accepts nonlinear ones')
        return A

    def _reconstruct(self, problem, progress):
        A, y = problem.operator, problem.data
        G = self.generator_operator(problem.space)
        self._generator_op = G
        data = odl.functionals.L2NormSquared(A.range).translated(y)
        state = self._prepare(problem, G)
        rng = np.random.default_rng(self.seed)
        runs, fits, objectives = [], [], []
        self._stalls = 0
        with progress_bar(progress, self.restarts * self._units_per_restart(),
                          self.name) as bar:
            for k in range(self.restarts):
                # Drawn in sequence: restart k starts from the same point
                # whatever the number of restarts (and whether z0 is given).
                start = self.init_std * rng.standard_normal(G.domain.size)
                if k == 0 and self.z0 is not None:
                    start = self.z0
                    size = to_numpy(start).size
                    if size != G.domain.size:
                        raise ValueError(
                            f'{self.name}: z0 has {size} entries, the '
                            f'latent space {G.domain!r} {G.domain.size}')
                # a copy: the solvers update z in place, z0 is the user's
                z = as_element(start, G.domain).copy()
                run = self._run(problem, G, z, state, bar)
                fit = float(data(A(run[0])))
                runs.append(run)
                fits.append(fit)
                objectives.append(float(run[3]))
                if bar is not None:
                    bar.pbar.set_postfix(best_data_fit=f'{min(fits):.4g}')
        scores = np.array(fits if self.select == 'data_fit' else objectives)
        finite = np.isfinite(scores)
        if not finite.any():
            raise NonFiniteResultError(
                f'{self.name}: every one of the {self.restarts} restarts '
                f'ended in NaN or inf; check {self.divergence_hint}')
        # A diverged restart never wins over a finite one.
        best = int(np.argmin(np.where(finite, scores, np.inf)))
        x, z, u, _ = runs[best]
        self._result = LatentResult(x=x, z=z, u=u, data_fit=fits[best],
                                    objective=objectives[best],
                                    data_fits=fits, objectives=objectives,
                                    best=best, stalls=self._stalls)
        return x

    def _extras(self):
        return {f.name: getattr(self._result, f.name)
                for f in dataclasses.fields(self._result) if f.name != 'x'}

    def _prepare(self, problem, G):
        """Per-problem constants (e.g. ``||A||``), shared by all restarts."""
        return None


class LatentHard(_LatentReconstructor):
    r"""Reconstruction in the range of a generator (Bora et al. 2017).

    Solves

    .. math::
        \min_z \|A G(z) - y\|^2 + \lambda \|z\|^2

    with ODL's ``adam`` (or ``bfgs_method`` with backtracking) on the ODL
    functional ``L2NormSquared(A.range).translated(y) * (A * G) + lam *
    L2NormSquared(Z)``, from ``restarts`` random starts ``z0 ~ N(0,
    init_std^2 I)`` drawn from ``seed``; the restart with the smallest data
    fit ``||A G(z) - y||^2`` is kept and ``G(z)`` returned. ``A`` may be
    nonlinear (it needs a derivative), e.g. phase retrieval's ``|F x|``.

    Parameters
    ----------
    generator : torch.nn.Module or odl.Operator
        The generator; a module is wrapped by `generator_operator` on
        ``problem.space`` (put it in ``eval()`` mode first).
    latent_dim : int, optional
        Latent dimension of a module (default ``generator.latent_dim``).
    lam : float
        Weight of ``||z||^2`` (Bora et al. use 0.1 with a VAE).
    niter : int
        Solver iterations per restart.
    solver : {'adam', 'bfgs', 'steepest_descent'}
        ODL's ``adam``, ``bfgs_method`` or ``steepest_descent`` (the last
        two with ODL's backtracking line search).
    learning_rate : float
        Adam's step length (ignored by the others).
    restarts : int
        Random restarts; the best data fit is kept.
    seed : int
        Seed of the starting points.
    init_std : float
        Standard deviation of the starting points.
    select : {'data_fit', 'objective'}
        Criterion that picks the restart.
    callback : callable, optional
        Called after every latent step with the image ``G(z)`` of the
        latent iterate (an element of the problem space).
    z0 : array-like or latent element, optional
        Start of the first restart (e.g. an encoder's code); the later
        restarts stay random. It is copied, never updated in place.
    num_store : int or None
        BFGS memory (limited-memory BFGS); None for full BFGS.
    tol : float
        Tolerance of BFGS and steepest descent. BFGS resets its Hessian
        estimate whenever ``|<grad change, step>|`` falls below it, so keep
        it tiny (it is not scale-free).

    Examples
    --------
    >>> from odl_genprior import problems
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> dec = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh())
    >>> x_true = dec(torch.randn(1, 4)).detach().reshape(8, 8)
    >>> p = problems.compressed_sensing(40, phantom=x_true.numpy(), noise=None)
    >>> method = LatentHard(dec, latent_dim=4, lam=0.0, niter=200, restarts=2)
    >>> x = method(p, progress=False)
    >>> x in p.space, method.result.data_fit < 1e-3
    (True, True)
    """

    name = 'latent-hard'

    def __init__(self, generator, latent_dim=None, lam=0.1, niter=500,
                 solver='adam', learning_rate=0.05, restarts=10, seed=0,
                 init_std=1.0, select='data_fit', callback=None, z0=None,
                 num_store=10, tol=1e-15):
        super().__init__(generator, latent_dim, restarts, seed, init_std,
                         solver, learning_rate, select, callback, z0=z0,
                         num_store=num_store, tol=tol)
        self._set_iterations(niter, lam=lam)

    def objective(self, problem, G):
        """``||A G(.) - y||^2 + lam ||.||^2`` as an ODL functional on the
        latent space of ``G``."""
        A, y = problem.operator, problem.data
        return (odl.functionals.L2NormSquared(A.range).translated(y)
                * (A * G) + self.lam * odl.functionals.L2NormSquared(
                    G.domain))

    def _run(self, problem, G, z, state, bar):
        f = self.objective(problem, G)
        self._minimize_z(f, z, self.niter, bar)
        return G(z), z, None, f(z)


class LatentFit:
    """Result of `latent_deblur`.

    Attributes
    ----------
    z : odl element of the latent space
    x : odl element of the signal space
        ``G(z)``.
    objective_start, objective : float
        The objective at ``z0`` and at ``z``.
    misfit_start, misfit : float
        ``||A G(z) - y||^2`` at ``z0`` and at ``z``.
    stalled : bool
        The line search found no decrease and the solver stopped early (at
        the last accepted iterate; typically at rounding level near a
        minimiser).

    Examples
    --------
    >>> LatentFit(None, None, 2.0, 1.0, 2.0, 0.5)
    LatentFit(misfit 2 -> 0.5, objective 2 -> 1)
    """

    def __init__(self, z, x, objective_start, objective, misfit_start,
                 misfit, stalled=False):
        self.z, self.x = z, x
        self.objective_start, self.objective = objective_start, objective
        self.misfit_start, self.misfit = misfit_start, misfit
        self.stalled = bool(stalled)

    def __repr__(self):
        return (f'LatentFit(misfit {self.misfit_start:.4g} -> '
                f'{self.misfit:.4g}, objective {self.objective_start:.4g} -> '
                f'{self.objective:.4g})')


def latent_deblur(G, A, y, z0=None, lam=0.0, niter=100, method='bfgs',
                  step=0.05, tol=1e-15, num_store=None):
    r"""``min_z ||A G(z) - y||^2 + lam ||z||^2`` from one start: `LatentHard`
    with ``restarts=1`` on the problem ``(A, y)``.

    The objective is ODL's ``L2NormSquared(A.range).translated(y) * (A *
    G) + lam * L2NormSquared(G.domain)``; its gradient comes from the
    operators' derivatives (autograd for `TorchOperator`). Norms are those
    of the spaces (the data norm on a ``uniform_discr`` space is the
    ``L^2`` norm).

    Parameters
    ----------
    G : odl.Operator
        Generator, latent space to signal space (e.g. a `TorchOperator` of
        a decoder).
    A : odl.Operator
        Forward operator on ``G.range``.
    y : array-like or odl element of ``A.range``
        Data.
    z0 : array-like or odl element of ``G.domain``, optional
        Start (default zero); copied, never updated in place.
    lam : float
    niter : int
        Iterations of the solver.
    method : {'bfgs', 'steepest_descent', 'adam'}
        `LatentHard`'s ``solver``.
    step : float
        Adam's learning rate.
    tol, num_store
        As in `LatentHard` (``num_store=None``: full BFGS).

    Returns
    -------
    LatentFit

    Examples
    --------
    >>> latent = odl.rn(2)
    >>> space = odl.uniform_discr(0, 1, 32)
    >>> basis = torch.stack([torch.ones(32), torch.linspace(0, 1, 32)])
    >>> lin = torch.nn.Linear(2, 32, bias=False).double()
    >>> _ = lin.weight.data.copy_(basis.T)
    >>> G = TorchOperator(lin, latent, space)
    >>> A = odl.ScalingOperator(space, 0.5)
    >>> fit = latent_deblur(G, A, A(G(latent.element([1.0, 2.0]))), niter=50)
    >>> bool(np.allclose(fit.z.asarray(), [1.0, 2.0], atol=1e-4))
    True
    """
    check_choice('latent_deblur', 'method', method, _SOLVERS)
    if A.domain != G.range:
        raise ValueError(f'the forward operator acts on {A.domain!r} but the'
                         f' generator maps into {G.range!r}')
    y = y if y in A.range else as_element(y, A.range)
    problem = ForwardProblem(A, y, name='latent deblurring')
    method = LatentHard(G, lam=lam, niter=niter, solver=method,
                        learning_rate=step, restarts=1, init_std=0.0, z0=z0,
                        num_store=num_store, tol=tol)
    method(problem, progress=False)  # checks z0 against the latent space
    r = method.result
    start = G.domain.zero() if z0 is None else as_element(z0, G.domain)
    objective_start = float(method.objective(problem, G)(start))
    misfit_start = float(odl.functionals.L2NormSquared(A.range).translated(
        y)(A(G(start))))
    return LatentFit(r.z, r.x, objective_start, r.objective, misfit_start,
                     r.data_fit, r.stalls > 0)


class _PartialMinimum(odl.functionals.Functional):
    """``phi(g) = min_w Phi(g, w)`` on the image space (internal).

    The inner variable ``w`` is kept between calls and the inner problem
    re-solved from it (warm start) by an ODL solver whenever ``g`` changes;
    value and gradient at one ``g`` share one inner solve. By the envelope
    theorem the gradient is ``d/dg Phi(g, w*(g))``, so an outer solver on
    ``phi o G`` alternates one ``z``-step with one inner solve while keeping
    its own state (adam's moments, BFGS's memory).
    """

    def __init__(self, space, inner_start, niter):
        super().__init__(space, linear=False)
        self.inner = inner_start
        self.niter = check_option(type(self).__name__, 'niter', niter,
                                  minimum=1, integer=True)
        self._key = None

    def solve(self, g, niter=None):
        """Return ``w*(g)`` (approximately; the stored inner variable)."""
        t = as_tensor(g)
        if niter is not None or self._key is None or not torch.equal(
                self._key, t):
            self._minimize_inner(g, self.niter if niter is None else niter)
            self._key = t.detach().clone()
        return self.inner

    def _call(self, g):
        return self._value(g, self.solve(g))

    @property
    def gradient(self):
        return _PartialMinimumGradient(self)


class _PartialMinimumGradient(odl.Operator):

    def __init__(self, functional):
        self.functional = functional
        super().__init__(functional.domain, functional.domain)

    def _call(self, g):
        return self.functional._grad(g, self.functional.solve(g))


class _SparseDeviationFit(_PartialMinimum):
    """``min_u ||A (g + u) - y||^2 + mu ||u||_1`` by ODL's ISTA (internal)."""

    def __init__(self, A, y, mu, niter, step):
        super().__init__(A.domain, A.domain.zero(), niter)
        self.A, self.y, self.step = A, y, float(step)
        self.l1 = float(mu) * odl.functionals.L1Norm(A.domain)
        self.data = odl.functionals.L2NormSquared(A.range).translated(y)

    def _minimize_inner(self, g, niter):
        smooth = (odl.functionals.L2NormSquared(self.A.range).translated(
            self.y - self.A(g)) * self.A)
        odl.solvers.proximal_gradient(self.inner, self.l1, smooth,
                                      gamma=self.step, niter=niter)

    def _value(self, g, u):
        return self.data(self.A(g + u)) + self.l1(u)

    def _grad(self, g, u):
        return 2.0 * self.A.adjoint(self.A(g + u) - self.y)


class _SoftCoupling(_PartialMinimum):
    """``min_x ||A x - y||^2 + lam ||g - x||^2`` by ODL's CG (internal).

    This is the Moreau envelope of the data fit with ``sigma = 1 / (2
    lam)``; ODL's ``MoreauEnvelope`` has the same gradient, ``2 lam (g -
    x*)``, but no value (which BFGS's line search needs) and no warm start.
    """

    def __init__(self, A, y, lam, niter):
        X = A.domain
        super().__init__(X, X.zero(), niter)
        self.A, self.lam = A, float(lam)
        self.normal = A.adjoint * A + self.lam * odl.IdentityOperator(X)
        self.aty = A.adjoint(y)
        self.data = odl.functionals.L2NormSquared(A.range).translated(y)

    def _minimize_inner(self, g, niter):
        try:
            odl.solvers.conjugate_gradient(self.normal, self.inner,
                                           self.aty + self.lam * g,
                                           niter=niter)
        except ZeroDivisionError:
            # ODL's CG divides by the squared residual norm of the previous
            # step, which is 0.0 once the residual vanishes (the solution
            # is exact to float precision); the iterate is already updated.
            pass

    def _value(self, g, x):
        return self.data(self.A(x)) + self.lam * (g - x).norm() ** 2

    def _grad(self, g, x):
        return (2.0 * self.lam) * (g - x)


class LatentSparseDeviation(_LatentReconstructor):
    r"""Generator plus a sparse deviation (Dhar, Grover, Ermon 2018).

    Solves

    .. math::
        \min_{z, u} \|A (G(z) + u) - y\|^2 + \lambda \|z\|^2
        + \mu \|u\|_1

    and returns ``x = G(z) + u``: images close to, but not in, the range of
    the generator, with the deviation sparse in the pixel basis.

    Solver: alternating minimisation with ``u`` eliminated. For ``g =
    G(z)`` let ``phi(g) = min_u ||A (g + u) - y||^2 + mu ||u||_1`` (a
    convex Lasso in ``u``); by the envelope theorem ``grad phi(g) = 2 A^*
    (A (g + u*) - y)``. ODL's ``adam`` (or ``bfgs_method``) minimises
    ``phi o G + lam ||z||^2`` (ODL's chain rule through the generator);
    every evaluation at a new ``z`` first runs ``u_iter`` steps of ODL's
    ``proximal_gradient`` (ISTA, the prox of ODL's ``L1Norm``, step ``0.9 /
    ||A||^2`` below the bound ``1 / ||A||^2``) from the previous ``u``. So
    each ``z``-step is followed by a warm-started ``u``-step while the
    ``z``-solver keeps its state; ``u`` starts at 0 (a `LatentHard`
    start) and gets ``10 u_iter`` more steps at the final ``z``. A joint
    proximal gradient on the product space ``(z, u)`` was not chosen: one
    step size would have to suit the generator's unknown, point-dependent
    Lipschitz constant and ``2 ||A||^2`` at once.

    Parameters
    ----------
    generator, latent_dim, solver, learning_rate, restarts, seed, init_std,
    select, callback
        As in `LatentHard`.
    lam : float
        Weight of ``||z||^2``.
    mu : float
        Weight of ``||u||_1`` (ODL's L1 norm of ``problem.space``).
    niter : int
        ``z``-iterations per restart.
    u_iter : int
        ISTA steps per ``z``-iteration.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> dec = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh())
    >>> x_true = dec(torch.randn(1, 4)).detach().reshape(8, 8)
    >>> p = problems.compressed_sensing(48, phantom=x_true.numpy(), noise=None)
    >>> method = LatentSparseDeviation(dec, latent_dim=4, lam=0.0, mu=0.01,
    ...                                niter=100, restarts=1)
    >>> x = method(p, progress=False)
    >>> x in p.space, method.result.u in p.space
    (True, True)
    """

    name = 'latent-sparse-deviation'

    def __init__(self, generator, latent_dim=None, lam=0.1, mu=0.5, niter=500,
                 u_iter=5, solver='adam', learning_rate=0.05, restarts=10,
                 seed=0, init_std=1.0, select='data_fit', callback=None):
        super().__init__(generator, latent_dim, restarts, seed, init_std,
                         solver, learning_rate, select, callback)
        self._set_iterations(niter, lam=lam, mu=mu)
        self.u_iter = check_option(type(self).__name__, 'u_iter', u_iter,
                                   minimum=1, integer=True)

    def _prepare(self, problem, G):
        A = self._linear_operator(problem, 'LatentSparseDeviation')
        # 1.05: the power method approaches ||A|| from below.
        return {'step': 0.9 / (1.05 * operator_norm(A)) ** 2}

    def _run(self, problem, G, z, state, bar):
        A, y = problem.operator, problem.data
        phi = _SparseDeviationFit(A, y, self.mu, self.u_iter, state['step'])
        l2z = self.lam * odl.functionals.L2NormSquared(G.domain)
        self._minimize_z(phi * G + l2z, z, self.niter, bar)
        gz = G(z)
        u = phi.solve(gz, niter=10 * self.u_iter).copy()
        return gz + u, z, u, phi._value(gz, u) + l2z(z)


class LatentSoft(_LatentReconstructor):
    r"""Soft generative prior: a free image near the range (Duff et al. 2022).

    Solves

    .. math::
        \min_{x, z} \|A x - y\|^2 + \lambda \|G(z) - x\|^2 + \mu \|z\|^2

    and returns the free image ``x``. Large ``lam`` approaches `LatentHard`;
    smaller ``lam`` lets the data pull ``x`` off the range of ``G``.

    Solver: alternating minimisation with ``x`` eliminated (variable
    projection). The ``x``-step is linear least squares, ``(A^* A + lam I)
    x = A^* y + lam G(z)``, solved by ODL's ``conjugate_gradient``
    (``x_iter`` steps, warm-started from the previous ``x``); its value
    ``h(g) = min_x ||A x - y||^2 + lam ||g - x||^2`` is the Moreau envelope
    of the data fit, with gradient ``2 lam (g - x*(g))``. ODL's ``adam``
    (or ``bfgs_method``) minimises ``h o G + mu ||z||^2`` through ODL's
    chain rule, so every ``z``-step is followed by an ``x``-step while the
    ``z``-solver keeps its state. (Plain block alternation, many
    ``z``-steps per ``x``-step, was tried and stalls: with strong coupling
    each block barely moves the other.) The final ``x`` gets ``10 x_iter``
    more CG steps. ``A^*`` is ODL's adjoint, so both norms are ODL's norms
    on the operator's spaces.

    Parameters
    ----------
    generator, latent_dim, solver, learning_rate, restarts, seed, init_std,
    select, callback
        As in `LatentHard`.
    lam : float
        Coupling weight of ``||G(z) - x||^2`` (positive).
    mu : float
        Weight of ``||z||^2``.
    niter : int
        ``z``-iterations per restart.
    x_iter : int
        CG steps per ``z``-iteration.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> dec = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh())
    >>> x_true = dec(torch.randn(1, 4)).detach().reshape(8, 8)
    >>> p = problems.compressed_sensing(48, phantom=x_true.numpy(), noise=None)
    >>> method = LatentSoft(dec, latent_dim=4, lam=1.0, mu=0.0, niter=100,
    ...                     restarts=1)
    >>> method(p, progress=False) in p.space
    True
    """

    name = 'latent-soft'

    def __init__(self, generator, latent_dim=None, lam=10.0, mu=0.1,
                 niter=500, x_iter=5, solver='adam', learning_rate=0.05,
                 restarts=10, seed=0, init_std=1.0, select='data_fit',
                 callback=None):
        super().__init__(generator, latent_dim, restarts, seed, init_std,
                         solver, learning_rate, select, callback)
        # lam > 0: it couples x to G(z)
        check_option(type(self).__name__, 'lam', lam, minimum=0,
                     open_minimum=True)
        self._set_iterations(niter, lam=lam, mu=mu)
        self.x_iter = check_option(type(self).__name__, 'x_iter', x_iter,
                                   minimum=1, integer=True)

    def _prepare(self, problem, G):
        self._linear_operator(problem, 'LatentSoft')

    def _run(self, problem, G, z, state, bar):
        A, y = problem.operator, problem.data
        h = _SoftCoupling(A, y, self.lam, self.x_iter)
        l2z = self.mu * odl.functionals.L2NormSquared(G.domain)
        self._minimize_z(h * G + l2z, z, self.niter, bar)
        gz = G(z)
        x = h.solve(gz, niter=10 * self.x_iter).copy()
        return x, z, None, h._value(gz, x) + l2z(z)
