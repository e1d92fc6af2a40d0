r"""Proximal activation functions: each the proximal map of an ODL functional.

Common activations are proximal maps (Moreau 1962),

    sigma(z) = prox_Psi(z) = argmin_u 1/2 ||u - z||^2 + Psi(u),

for a proper, convex, lower semi-continuous ``Psi`` (see
``docs/activations_bregman.md``). Each activation here is ONE object that is

* a ``torch.nn.Module``: ``act(z)`` is differentiable, ``act.prox(z, sigma)``
  is ``prox_{sigma Psi}`` for any step ``sigma > 0``;
* the source of ``Psi`` as an ODL functional, ``act.psi(space)``, whose
  ``proximal(1.0)`` is the activation as an ODL operator,
  ``act.operator(space)`` (any real tensor or ``uniform_discr`` space, NumPy
  or pytorch backed);
* the source of the convex conjugate ``Psi^*`` as an evaluable ODL
  functional, ``act.psi_conj(space)``.

ODL's functionals are reused where ODL has them: ReLU is the prox of
``IndicatorNonnegativity``, soft-thresholding of ``alpha * L1Norm``, the hard
tanh of ``IndicatorBox(-1, 1)``. New are `TanhPsi` and `LeakyReLUPsi` and
their conjugates. Their pointwise mathematics is written once, in torch; the
ODL operators call it on the element's tensor (NumPy data are shared with a
CPU tensor).
"""
import abc
import numbers

import numpy as np  # noqa: F401  (the doctests use it)
import odl
import torch
from odl.core.set.space import LinearSpaceElement
from odl.core.space.base_tensors import TensorSpace
from odl.functionals import (
    Functional, IndicatorBox, IndicatorNonnegativity, IndicatorZero, L1Norm,
    ZeroFunctional)
from odl.solvers.nonsmooth.proximal_operators import proximal_convex_conj

from odl_genprior.bridge import as_element, as_tensor

__all__ = ('ProximalActivation', 'ReLU', 'SoftThreshold', 'Tanh', 'HardTanh',
           'LeakyReLU', 'Identity', 'TanhPsi', 'TanhPsiConvexConj', 'LeakyReLUPsi',
           'LeakyReLUPsiConvexConj', 'ACTIVATIONS', 'get_activation')

_INF = float('inf')
_NEWTON_ITERS = 100


# --- checks ------------------------------------------------------------------

def _checked_space(space):
    """Return ``space`` if it is a real tensor/``uniform_discr`` space."""
    if not isinstance(space, TensorSpace):
        raise TypeError(f'expected a real ODL tensor space or uniform_discr '
                        f'space, got {space!r}')
    if not space.is_real:
        raise ValueError(f'{space!r} is not a real floating-point space; '
                         'proximal activations act on real spaces only')
    return space


def _checked_step(sigma):
    """A positive, finite Python-float step size (ODL wants plain floats)."""
    if isinstance(sigma, torch.Tensor) and sigma.numel() == 1:
        sigma = sigma.item()
    if not isinstance(sigma, numbers.Real) or not (
            0 < float(sigma) < _INF):
        raise ValueError(f'step size `sigma` must be a positive finite '
                         f'number, got {sigma!r}')
    return float(sigma)


def _positive(name, value):
    """A positive, finite parameter of an activation, as a float."""
    if not isinstance(value, numbers.Real) or not 0 < value < _INF:
        raise ValueError(f'`{name}` must be a positive number, got '
                         f'{value!r}')
    return float(value)


def _is_one(sigma):
    return isinstance(sigma, numbers.Real) and float(sigma) == 1.0


# --- pointwise mathematics, in torch (written once, used by both worlds) -----

def _newton_increasing(f, df, target, lo, hi, x0):
    """Solve ``f(x) = target`` elementwise for increasing ``f``, root in
    ``[lo, hi]``.

    Safeguarded Newton: a step that leaves the current bracket (or is NaN
    because ``df`` vanishes) is replaced by bisection, and the bracket shrinks
    with the sign of every residual, so it converges for every entry.
    """
    x = torch.minimum(torch.maximum(x0, lo), hi)
    tol = 4 * torch.finfo(x.dtype).eps
    for _ in range(_NEWTON_ITERS):
        r = f(x) - target
        lo = torch.where(r < 0, x, lo)
        hi = torch.where(r > 0, x, hi)
        xn = x - r / df(x)
        outside = ~((xn >= lo) & (xn <= hi))
        xn = torch.where(outside, 0.5 * (lo + hi), xn)
        xn = torch.where(r == 0, x, xn)
        done = bool(torch.all(torch.abs(xn - x) <= tol * (1 + torch.abs(x))))
        x = xn
        if done:
            break
    return x


def _sech2(v):
    return 1.0 / torch.cosh(v) ** 2  # cosh overflow gives 0, the limit


def _tanh_prox_v(z, sigma):
    """``v`` with ``(1 - sigma) tanh(v) + sigma v = z``; prox is ``tanh(v)``.

    Substituting ``u = tanh(v)`` in ``(1 - sigma) u + sigma artanh(u) = z``
    removes the singularity at ``|u| = 1``; ``h(v)`` has slope
    ``>= min(sigma, 1)``, so the root is unique and well conditioned. Solved
    in float64 for |z| and mirrored (``h`` is odd).
    """
    with torch.no_grad():
        z64 = z.detach().to(torch.float64)
        s = torch.as_tensor(sigma, dtype=torch.float64, device=z.device)
        a, s = torch.broadcast_tensors(torch.abs(z64), s)
        d = torch.abs(1 - s)
        # h' lies in [min(1, s), max(1, s)] and |tanh| < 1: a tight bracket.
        lo = torch.maximum(a / torch.clamp(s, min=1.0), (a - d) / s)
        hi = torch.minimum(a / torch.clamp(s, max=1.0), (a + d) / s)
        v = _newton_increasing(
            lambda v: (1 - s) * torch.tanh(v) + s * v,
            lambda v: (1 - s) * _sech2(v) + s, a, lo, hi, a)
        return torch.copysign(v, z64)


def _tanh_prox(z, sigma=1.0):
    """``prox_{sigma Psi_tanh}(z)`` (``tanh(z)`` for ``sigma = 1``)."""
    if _is_one(sigma):
        return torch.tanh(z)
    s = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    v = _tanh_prox_v(z, s).to(z.dtype)
    # One Newton step with the autograd graph: at the root it leaves the value
    # unchanged and gives the exact derivatives (implicit function theorem).
    v = v - ((1 - s) * torch.tanh(v) + s * v - z) / ((1 - s) * _sech2(v) + s)
    return torch.tanh(v)


def _tanh_prox_deriv(z, sigma=1.0):
    """``d prox / dz = sech^2(v) / ((1 - sigma) sech^2(v) + sigma)``."""
    v = _tanh_prox_v(z, sigma).to(z.dtype)
    e = _sech2(v)
    return e / ((1 - sigma) * e + sigma)


# Taylor coefficients of Psi_tanh(u) = sum_{k>=2} u^(2k) / (2k (2k - 1)).
_TANH_PSI_SERIES = tuple(1.0 / (2 * k * (2 * k - 1)) for k in range(2, 11))


def _tanh_psi(u):
    """``Psi(u) = u artanh(u) + (log(1 - u^2) - u^2) / 2``, +inf for |u| > 1.

    Written as ``((1+u) log(1+u) + (1-u) log(1-u) - u^2) / 2``, which is
    finite up to |u| = 1 (value ``log 2 - 1/2``, the lower semi-continuous
    closure, so saturated float32 ``tanh`` outputs stay in the domain). For
    |u| < 0.1 the closed form cancels to ``u^4 / 12``: use the series.
    """
    a = torch.abs(u)
    ac = torch.clamp(a, max=1.0)  # finite values/gradients in the branches
    s = ac * ac
    closed = 0.5 * ((1 + ac) * torch.log1p(ac)
                    + torch.xlogy(1 - ac, 1 - ac) - s)
    series = torch.zeros_like(s)
    for c in reversed(_TANH_PSI_SERIES):
        series = series * s + c
    series = series * s * s
    val = torch.where(ac < 0.1, series, closed)
    return torch.where(a > 1, torch.full_like(val, _INF), val)


def _tanh_psi_grad(u):
    """``Psi'(u) = artanh(u) - u`` (infinite at |u| = 1)."""
    return torch.atanh(u) - u


def _tanh_psi_hess(u):
    """``Psi''(u) = u^2 / (1 - u^2)``."""
    return u * u / (1 - u * u)


def _tanh_conj_v(p):
    """``v`` with ``v - tanh(v) = p``; then ``(Psi^*)'(p) = tanh(v)``.

    ``Psi'(u) = artanh(u) - u = p`` with ``u = tanh(v)``. ``k(v) = v - tanh v``
    is odd and increasing, ``k(v) <= v^3 / 3`` and ``k(v) > v - 1`` give the
    bracket ``[max(p, (3p)^(1/3)), p + 1]`` for ``p >= 0``.
    """
    with torch.no_grad():
        p64 = p.detach().to(torch.float64)
        a = torch.abs(p64)
        lo = torch.maximum(a, torch.pow(3 * a, 1.0 / 3))
        hi = a + 1
        v = _newton_increasing(lambda v: v - torch.tanh(v),
                               lambda v: torch.tanh(v) ** 2, a, lo, hi, lo)
        return torch.copysign(v, p64)


def _tanh_psi_conj(p):
    """``Psi^*(p) = p u - Psi(u)``, ``u = (Psi^*)'(p)`` (finite on R)."""
    u = torch.tanh(_tanh_conj_v(p))
    p64 = p.to(torch.float64)
    return (p64 * u - _tanh_psi(u)).to(p.dtype)


def _tanh_psi_conj_grad(p):
    """``(Psi^*)'(p) = tanh(v)`` with ``v - tanh(v) = p``."""
    return torch.tanh(_tanh_conj_v(p)).to(p.dtype)


def _tanh_psi_conj_hess(p):
    """``(Psi^*)''(p) = 1 / sinh(v)^2`` (infinite at p = 0)."""
    return (1.0 / torch.sinh(_tanh_conj_v(p)) ** 2).to(p.dtype)


def _leaky_coeff(slope):
    """``c = 1/a - 1`` of ``Psi(u) = c/2 min(u, 0)^2`` for slope ``a``."""
    if not isinstance(slope, numbers.Real) or not 0 < float(slope) < 1:
        raise ValueError(f'leaky ReLU `slope` must lie in (0, 1), got '
                         f'{slope!r}')
    return 1.0 / float(slope) - 1.0


def _leaky_prox(z, sigma, c):
    return torch.where(z >= 0, z, z / (1 + sigma * c))


def _leaky_prox_deriv(z, sigma, c):
    return torch.where(z >= 0, torch.ones_like(z),
                       torch.full_like(z, 1.0 / (1 + sigma * c)))


def _leaky_psi(u, c):
    return 0.5 * c * torch.clamp(u, max=0) ** 2


def _leaky_psi_grad(u, c):
    return c * torch.clamp(u, max=0)


def _leaky_psi_hess(u, c):
    return torch.where(u < 0, torch.full_like(u, c), torch.zeros_like(u))


def _leaky_psi_conj(p, c):
    """``Psi^*(p) = p^2 / (2c)`` for ``p <= 0``, +inf for ``p > 0``."""
    return torch.where(p <= 0, p * p / (2 * c), torch.full_like(p, _INF))


def _indicator(inside, like):
    """Pointwise indicator values: 0 where ``inside``, +inf elsewhere."""
    return torch.where(inside, torch.zeros_like(like),
                       torch.full_like(like, _INF))


# --- ODL side: pointwise operators and the new functionals ------------------

class _PointwiseOperator(odl.Operator):
    """``x -> fn(x)`` pointwise, ``fn`` a torch function; derivative
    ``h -> dfn(x) * h``."""

    def __init__(self, space, fn, dfn, name):
        super().__init__(space, space, linear=False)
        self._fn, self._dfn, self._name = fn, dfn, name

    def _call(self, x):
        with torch.no_grad():
            return as_element(self._fn(as_tensor(x)), self.range)

    def derivative(self, x):
        """Multiplication by the pointwise derivative at ``x``."""
        with torch.no_grad():
            d = as_element(self._dfn(as_tensor(x)), self.domain)
        return odl.MultiplyOperator(d, domain=self.domain, range=self.range)

    def __repr__(self):
        return f'{self._name}({self.domain!r})'

    __str__ = __repr__


def _integral(space, values):
    """``sum_i w_i values_i``: the integral (weighted sum) over ``space``."""
    if bool(torch.isinf(values).any()):
        return _INF  # values are +inf outside the domain, never -inf
    weighting = space.weighting
    if hasattr(weighting, 'const'):
        return float(values.sum()) * float(weighting.const)
    return as_element(values, space).inner(space.one())


def _prox_factory(space, prox, dprox, name):
    """A proximal factory ``sigma -> prox_{sigma Psi}`` of pointwise maps."""

    def factory(sigma=1.0):
        s = _checked_step(sigma)
        return _PointwiseOperator(space, lambda z: prox(z, s),
                                  lambda z: dprox(z, s),
                                  f'prox[{s} * {name}]')

    return factory


class TanhPsi(Functional):
    r"""The ``Psi`` whose proximal map is ``tanh``.

    ``Psi(u) = sum_i u_i artanh(u_i) + (log(1 - u_i^2) - u_i^2) / 2`` for
    ``|u_i| <= 1`` (integrated with the cell volume on ``uniform_discr``),
    ``+inf`` otherwise. At ``|u_i| = 1`` it takes its limit ``log 2 - 1/2``
    (the lower semi-continuous closure).

    * ``proximal(sigma)``: ``prox_{sigma Psi}(z) = u`` with
      ``(1 - sigma) u + sigma artanh(u) = z`` (safeguarded Newton, exact
      ``tanh`` for ``sigma = 1``);
    * ``gradient``: ``artanh(u) - u``;
    * ``convex_conj``: `TanhPsiConvexConj`.

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space, NumPy or pytorch backed.

    Examples
    --------
    >>> space = odl.rn(3)
    >>> psi = TanhPsi(space)
    >>> z = space.element([-2.0, 0.5, 3.0])
    >>> bool(np.allclose(psi.proximal(1.0)(z).asarray(), np.tanh(z.asarray())))
    True
    >>> psi(space.element([0.0, 0.0, 2.0]))
    inf
    """

    def __init__(self, space):
        super().__init__(_checked_space(space), linear=False,
                         grad_lipschitz=_INF)

    def _call(self, x):
        return _integral(self.domain, _tanh_psi(as_tensor(x)))

    @property
    def proximal(self):
        """Factory ``sigma -> prox_{sigma Psi}`` for any ``sigma > 0``."""
        return _prox_factory(self.domain, _tanh_prox, _tanh_prox_deriv,
                             'TanhPsi')

    @property
    def gradient(self):
        """``u -> artanh(u) - u`` (infinite at ``|u| = 1``)."""
        return _PointwiseOperator(self.domain, _tanh_psi_grad,
                                  _tanh_psi_hess, 'TanhPsi.gradient')

    @property
    def convex_conj(self):
        """The convex conjugate, `TanhPsiConvexConj`."""
        return TanhPsiConvexConj(self.domain)

    def __repr__(self):
        return f'TanhPsi({self.domain!r})'


class TanhPsiConvexConj(Functional):
    r"""Convex conjugate of `TanhPsi`, finite and differentiable on all R^n.

    ``Psi^*(p) = sum_i p_i u_i - Psi(u_i)`` with ``u_i = tanh(v_i)``,
    ``v_i - tanh(v_i) = p_i`` (``Psi'(u) = p`` inverted). The gradient is
    ``u``; the proximal map comes from the Moreau identity
    ``prox_{sigma Psi^*}(z) = z - sigma prox_{Psi/sigma}(z / sigma)``.

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space, NumPy or pytorch backed.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> psi, conj = TanhPsi(space), TanhPsiConvexConj(space)
    >>> u = space.element([0.3, -0.6])
    >>> p = psi.gradient(u)  # p in the subdifferential: Fenchel-Young equality
    >>> bool(np.isclose(psi(u) + conj(p), u.inner(p)))
    True
    """

    def __init__(self, space):
        super().__init__(_checked_space(space), linear=False,
                         grad_lipschitz=_INF)

    def _call(self, p):
        return _integral(self.domain, _tanh_psi_conj(as_tensor(p)))

    @property
    def gradient(self):
        """``p -> tanh(v)``, ``v - tanh(v) = p``: the inverse of ``Psi'``."""
        return _PointwiseOperator(self.domain, _tanh_psi_conj_grad,
                                  _tanh_psi_conj_hess,
                                  'TanhPsiConvexConj.gradient')

    @property
    def proximal(self):
        """Factory ``sigma -> prox_{sigma Psi^*}`` (Moreau identity)."""
        return proximal_convex_conj(TanhPsi(self.domain).proximal)

    @property
    def convex_conj(self):
        """`TanhPsi` (``Psi^** = Psi``)."""
        return TanhPsi(self.domain)

    def __repr__(self):
        return f'TanhPsiConvexConj({self.domain!r})'


class LeakyReLUPsi(Functional):
    r"""The ``Psi`` whose proximal map is the leaky ReLU of slope ``a``.

    ``Psi(u) = c/2 sum_i min(u_i, 0)^2`` with ``c = 1/a - 1``, so
    ``prox_{sigma Psi}(z) = z`` for ``z >= 0`` and ``z / (1 + sigma c)`` for
    ``z < 0`` (``a z`` for ``sigma = 1``). The gradient ``c min(u, 0)`` is
    ``c``-Lipschitz.

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space, NumPy or pytorch backed.
    slope : float in (0, 1)
        Slope ``a`` of the leaky ReLU for negative inputs.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> psi = LeakyReLUPsi(space, slope=0.5)
    >>> psi.proximal(1.0)(space.element([-2.0, 3.0]))
    rn(2).element([-1.,  3.])
    >>> psi(space.element([-2.0, 3.0]))  # c/2 * 4 with c = 1
    2.0
    """

    def __init__(self, space, slope=0.01):
        self.slope = float(slope)
        self.coeff = _leaky_coeff(slope)
        super().__init__(_checked_space(space), linear=False,
                         grad_lipschitz=self.coeff)

    def _call(self, x):
        return _integral(self.domain, _leaky_psi(as_tensor(x), self.coeff))

    @property
    def proximal(self):
        """Factory ``sigma -> prox_{sigma Psi}`` for any ``sigma > 0``."""
        c = self.coeff
        return _prox_factory(self.domain,
                             lambda z, s: _leaky_prox(z, s, c),
                             lambda z, s: _leaky_prox_deriv(z, s, c),
                             f'LeakyReLUPsi(slope={self.slope})')

    @property
    def gradient(self):
        """``u -> c min(u, 0)``."""
        c = self.coeff
        return _PointwiseOperator(self.domain,
                                  lambda u: _leaky_psi_grad(u, c),
                                  lambda u: _leaky_psi_hess(u, c),
                                  'LeakyReLUPsi.gradient')

    @property
    def convex_conj(self):
        """The convex conjugate, `LeakyReLUPsiConvexConj`."""
        return LeakyReLUPsiConvexConj(self.domain, self.slope)

    def __repr__(self):
        return f'LeakyReLUPsi({self.domain!r}, slope={self.slope})'


class LeakyReLUPsiConvexConj(Functional):
    r"""Convex conjugate of `LeakyReLUPsi`.

    ``Psi^*(p) = sum_i p_i^2 / (2c)`` if all ``p_i <= 0``, ``+inf``
    otherwise (``c = 1/a - 1``). Its proximal map comes from the Moreau
    identity; it equals ``min(z, 0) c / (c + sigma)``.

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space, NumPy or pytorch backed.
    slope : float in (0, 1)
        Slope ``a`` of the leaky ReLU.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> conj = LeakyReLUPsiConvexConj(space, slope=0.5)
    >>> conj(space.element([-2.0, 0.0])), conj(space.element([-2.0, 1.0]))
    (2.0, inf)
    """

    def __init__(self, space, slope=0.01):
        self.slope = float(slope)
        self.coeff = _leaky_coeff(slope)
        super().__init__(_checked_space(space), linear=False)

    def _call(self, p):
        return _integral(self.domain,
                         _leaky_psi_conj(as_tensor(p), self.coeff))

    @property
    def proximal(self):
        """Factory ``sigma -> prox_{sigma Psi^*}`` (Moreau identity)."""
        return proximal_convex_conj(
            LeakyReLUPsi(self.domain, self.slope).proximal)

    @property
    def convex_conj(self):
        """`LeakyReLUPsi` (``Psi^** = Psi``)."""
        return LeakyReLUPsi(self.domain, self.slope)

    def __repr__(self):
        return f'LeakyReLUPsiConvexConj({self.domain!r}, slope={self.slope})'


# --- the activations: torch modules that know their Psi ---------------------

class ProximalActivation(torch.nn.Module, metaclass=abc.ABCMeta):
    r"""An activation ``sigma = prox_Psi``, as torch module and ODL operator.

    Subclasses define the activation once:

    * ``prox(z, sigma)``: ``prox_{sigma Psi}(z)`` on tensors (differentiable);
      ``forward(z) = prox(z, 1.0)``. Called on an ODL element, the module
      applies ``operator(x.space)`` and returns an element.
    * ``psi_pointwise(u)``: the pointwise ``psi`` with
      ``Psi(u) = sum_i psi(u_i)`` (``+inf`` outside the domain), on tensors.
    * ``psi(space)``: ``Psi`` as an ODL functional on ``space``;
      ``operator(space)`` is ``psi(space).proximal(1.0)``.
    * ``psi_conj(space)``: the convex conjugate ``Psi^*`` as an evaluable ODL
      functional with a proximal map.

    Examples
    --------
    >>> act = get_activation('relu')
    >>> act(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    >>> space = odl.rn(2)
    >>> act.operator(space)(space.element([-1.0, 2.0]))
    rn(2).element([ 0.,  2.])
    """

    #: registry name (see `get_activation`)
    name = None

    def forward(self, z):
        """``prox_Psi(z)``: a tensor, or an ODL element via `operator`."""
        if isinstance(z, LinearSpaceElement):
            return self.operator(z.space)(z)
        return self.prox(z, 1.0)

    @abc.abstractmethod
    def prox(self, z, sigma=1.0):
        """``prox_{sigma Psi}(z)`` elementwise on a tensor, differentiable."""

    @abc.abstractmethod
    def psi_pointwise(self, u):
        """Pointwise ``psi(u)`` on a tensor, ``+inf`` outside the domain."""

    @abc.abstractmethod
    def psi(self, space):
        """``Psi`` as an ODL functional on ``space``."""

    @abc.abstractmethod
    def psi_conj(self, space):
        """``Psi^*`` as an evaluable ODL functional on ``space``."""

    def operator(self, space):
        """The activation as an ODL operator: ``psi(space).proximal(1.0)``."""
        return self.psi(space).proximal(1.0)


class ReLU(ProximalActivation):
    r"""``max(z, 0)``: the prox of ODL's ``IndicatorNonnegativity``.

    ``Psi^*`` is the indicator of the non-positive orthant
    (``IndicatorBox(space, None, 0)``). The prox is a projection and does not
    depend on the step.

    Examples
    --------
    >>> relu = ReLU()
    >>> relu(torch.tensor([-1.0, 0.5]))
    tensor([0.0000, 0.5000])
    >>> relu.psi(odl.rn(2))
    IndicatorNonnegativity(rn(2))
    """

    name = 'relu'

    def prox(self, z, sigma=1.0):
        return torch.relu(z)

    def psi_pointwise(self, u):
        return _indicator(u >= 0, u)

    def psi(self, space):
        return IndicatorNonnegativity(_checked_space(space))

    def psi_conj(self, space):
        return IndicatorBox(_checked_space(space), None, 0.0)


class SoftThreshold(ProximalActivation):
    r"""Soft-thresholding ``sign(z) max(|z| - alpha, 0)``: prox of
    ``alpha * L1Norm``.

    ``prox_{sigma Psi}`` thresholds at ``sigma * alpha``; ``Psi^*`` is the
    indicator of the box ``[-alpha, alpha]^n``.

    Parameters
    ----------
    alpha : positive float
        Threshold.

    Examples
    --------
    >>> soft = SoftThreshold(alpha=0.5)
    >>> soft(torch.tensor([-2.0, 0.2, 1.0]))
    tensor([-1.5000,  0.0000,  0.5000])
    """

    name = 'soft_threshold'

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = _positive('alpha', alpha)

    def prox(self, z, sigma=1.0):
        return torch.sign(z) * torch.relu(torch.abs(z) - sigma * self.alpha)

    def psi_pointwise(self, u):
        return self.alpha * torch.abs(u)

    def psi(self, space):
        return self.alpha * L1Norm(_checked_space(space))

    def psi_conj(self, space):
        return IndicatorBox(_checked_space(space), -self.alpha, self.alpha)

    def extra_repr(self):
        return f'alpha={self.alpha}'


class Tanh(ProximalActivation):
    r"""``tanh``: the prox of `TanhPsi`.

    ``prox(z, sigma)`` solves ``(1 - sigma) u + sigma artanh(u) = z`` by a
    vectorised safeguarded Newton method (float64 internally); its
    derivatives come from the implicit function theorem.

    Examples
    --------
    >>> th = Tanh()
    >>> z = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    >>> bool(torch.allclose(th(z), torch.tanh(z)))
    True
    >>> u = th.prox(z, 0.5)  # (1 - 0.5) u + 0.5 artanh(u) = z
    >>> bool(torch.allclose(0.5 * u + 0.5 * torch.atanh(u), z))
    True
    """

    name = 'tanh'

    def prox(self, z, sigma=1.0):
        return _tanh_prox(z, sigma)

    def psi_pointwise(self, u):
        return _tanh_psi(u)

    def psi(self, space):
        return TanhPsi(space)

    def psi_conj(self, space):
        return TanhPsiConvexConj(space)


class HardTanh(ProximalActivation):
    r"""Hard tanh ``clip(z, -bound, bound)``: the prox of
    ``IndicatorBox(-bound, bound)``.

    ``Psi^*`` is ``bound * L1Norm``. The prox is a projection and does not
    depend on the step. With ``bound = alpha`` it is the dual activation of
    a proximal neural network (`odl_genprior.bregman.pnn`): the prox of the
    conjugate of ``alpha ||.||_1``.

    Parameters
    ----------
    bound : positive float
        Half-width of the box.

    Examples
    --------
    >>> HardTanh()(torch.tensor([-3.0, 0.5, 2.0]))
    tensor([-1.0000,  0.5000,  1.0000])
    >>> HardTanh(bound=0.5)(torch.tensor([-3.0, 0.25, 2.0]))
    tensor([-0.5000,  0.2500,  0.5000])
    """

    name = 'hardtanh'

    def __init__(self, bound=1.0):
        super().__init__()
        self.bound = _positive('bound', bound)

    def prox(self, z, sigma=1.0):
        return torch.clamp(z, -self.bound, self.bound)

    def psi_pointwise(self, u):
        return _indicator(torch.abs(u) <= self.bound, u)

    def psi(self, space):
        return IndicatorBox(_checked_space(space), -self.bound, self.bound)

    def psi_conj(self, space):
        conj = L1Norm(_checked_space(space))
        return conj if self.bound == 1.0 else self.bound * conj

    def extra_repr(self):
        return '' if self.bound == 1.0 else f'bound={self.bound}'


class LeakyReLU(ProximalActivation):
    r"""Leaky ReLU ``max(z, a z)``, ``0 < a < 1``: the prox of `LeakyReLUPsi`.

    Parameters
    ----------
    slope : float in (0, 1)
        Slope ``a`` for negative inputs.

    Examples
    --------
    >>> LeakyReLU(0.1)(torch.tensor([-2.0, 3.0]))
    tensor([-0.2000,  3.0000])
    """

    name = 'leaky_relu'

    def __init__(self, slope=0.01):
        super().__init__()
        self.coeff = _leaky_coeff(slope)
        self.slope = float(slope)

    def prox(self, z, sigma=1.0):
        if _is_one(sigma):  # exactly a * z, as torch's leaky_relu
            return torch.nn.functional.leaky_relu(z, self.slope)
        return _leaky_prox(z, sigma, self.coeff)

    def psi_pointwise(self, u):
        return _leaky_psi(u, self.coeff)

    def psi(self, space):
        return LeakyReLUPsi(space, self.slope)

    def psi_conj(self, space):
        return LeakyReLUPsiConvexConj(space, self.slope)

    def extra_repr(self):
        return f'slope={self.slope}'


class Identity(ProximalActivation):
    r"""The identity ``sigma(z) = z``: the prox of ``Psi = 0``.

    ``B_Psi(y, z) = 1/2 ||y - z||^2`` (the squared error), ``Psi^*`` is the
    indicator of ``{0}``. The linear output layer of a network.

    Examples
    --------
    >>> Identity()(torch.tensor([-1.0, 2.0]))
    tensor([-1.,  2.])
    >>> Identity().psi_conj(odl.rn(2))
    IndicatorZero(rn(2), 0)
    """

    name = 'identity'

    def prox(self, z, sigma=1.0):
        return z

    def psi_pointwise(self, u):
        return torch.zeros_like(u)

    def psi(self, space):
        return ZeroFunctional(_checked_space(space))

    def psi_conj(self, space):
        return IndicatorZero(_checked_space(space))


#: name -> activation class; see `get_activation`.
ACTIVATIONS = {cls.name: cls for cls in (ReLU, SoftThreshold, Tanh, HardTanh,
                                         LeakyReLU, Identity)}

_ALIASES = {'soft_thresholding': 'soft_threshold', 'softshrink':
            'soft_threshold', 'shrink': 'soft_threshold',
            'hard_tanh': 'hardtanh', 'clip': 'hardtanh',
            'leakyrelu': 'leaky_relu', 'linear': 'identity'}


def get_activation(activation, **kwargs):
    """Return a `ProximalActivation` by name (or ``activation`` itself).

    Parameters
    ----------
    activation : str or ProximalActivation
        One of ``'relu'``, ``'soft_threshold'`` (aliases
        ``'soft_thresholding'``, ``'softshrink'``, ``'shrink'``), ``'tanh'``,
        ``'hardtanh'`` (``'hard_tanh'``, ``'clip'``), ``'leaky_relu'``
        (``'leakyrelu'``), ``'identity'`` (``'linear'``); case and ``-`` versus ``_`` do not matter.
    **kwargs
        Passed to the class: ``alpha`` (soft-thresholding), ``bound`` (hard
        tanh), ``slope`` (leaky ReLU).

    Examples
    --------
    >>> get_activation('tanh')
    Tanh()
    >>> get_activation('soft-threshold', alpha=0.1)
    SoftThreshold(alpha=0.1)
    """
    if isinstance(activation, ProximalActivation):
        if kwargs:
            raise TypeError(f'keyword arguments {sorted(kwargs)} given with '
                            f'an activation instance {activation!r}')
        return activation
    if not isinstance(activation, str):
        raise TypeError(f'`activation` must be a name or a '
                        f'ProximalActivation, got {type(activation).__name__}')
    key = activation.lower().replace('-', '_')
    key = _ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise ValueError(f'unknown activation {activation!r}; known: '
                         f'{sorted(ACTIVATIONS) + sorted(_ALIASES)}')
    return ACTIVATIONS[key](**kwargs)
