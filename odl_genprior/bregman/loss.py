r"""The Fenchel-Bregman loss of a proximal activation, in ODL and in torch.

For an activation ``sigma = prox_Psi`` (`odl_genprior.bregman.activations`),

    B_Psi(y, z) = 1/2 ||y||^2 + Psi(y) + (1/2 ||.||^2 + Psi)^*(z) - <y, z>.

With ``u = prox_Psi(z)`` the conjugate has the closed form
``(1/2 ||.||^2 + Psi)^*(z) = <u, z> - 1/2 ||u||^2 - Psi(u)``, hence

    B_Psi(y, z) = 1/2 ||y - u||^2 + Psi(y) - Psi(u) - <y - u, z - u>,

the form evaluated here (no cancellation of large ``<y, z>`` terms). Since
``z - u`` is a subgradient of ``Psi`` at ``u``, ``B_Psi(y, z) >= 1/2 ||y -
u||^2 >= 0``, with equality iff ``y = prox_Psi(z)``; ``grad_z B_Psi(y, z) =
prox_Psi(z) - y``; and ``B_Psi(y, z) = E_z(y) - E_z(u)`` with
``E_z(v) = 1/2 ||v - z||^2 + Psi(v)``.

* ODL: `BregmanLoss` on ``space ** 2`` (pairs ``(y, z)``), `BregmanLossZ`
  (``y`` fixed; a smooth convex functional of ``z`` with the closed-form
  gradient ``prox_Psi(z) - y``) and `BregmanLossY` (``z`` fixed; a convex
  functional of ``y`` with a closed-form proximal map).
* torch: `bregman_loss` (differentiable in ``y`` and ``z``) and
  `bregman_prox` (the proximal map in ``y``), for lifted training.
"""
import numbers

import odl
import torch
from odl.core.set.space import LinearSpaceElement
from odl.functionals import Functional
from odl.solvers.nonsmooth.proximal_operators import (
    proximal_convex_conj, proximal_quadratic_perturbation)

from odl_genprior.bregman.activations import _checked_space, get_activation

__all__ = ('BregmanLoss', 'BregmanLossZ', 'BregmanLossY', 'bregman_loss',
           'bregman_prox')

_INF = float('inf')


def _base_space(space):
    """``space`` itself, or ``X`` for ``space = X ** 2``."""
    if isinstance(space, odl.ProductSpace):
        if len(space) != 2 or not space.is_power_space:
            raise ValueError(f'expected a space X or the product space X ** 2 '
                             f'of pairs (y, z), got {space!r}')
        space = space[0]
    return _checked_space(space)


def _element(space, x, role):
    """``x`` as an element of ``space``; an element of another space is an
    error that names both."""
    if isinstance(x, LinearSpaceElement):
        if x.space != space:
            raise odl.OpDomainError(f'`{role}` must be an element of '
                                    f'{space!r}, got an element of '
                                    f'{x.space!r}')
        return x
    return space.element(x)


def _value(psi, prox, y, z, psi_y=None):
    """``B_Psi(y, z)`` through ``u = prox_Psi(z)``; +inf off ``dom Psi``."""
    if psi_y is None:
        psi_y = psi(y)
    if psi_y == _INF:
        return _INF
    u = prox(z)
    d = y - u
    return float(0.5 * d.inner(d) + psi_y - psi(u) - d.inner(z - u))


class BregmanLoss(Functional):
    r"""``B_Psi(y, z)`` as an ODL functional on pairs ``(y, z)``.

    Parameters
    ----------
    space : TensorSpace, DiscretizedSpace or ProductSpace
        The space ``X`` of ``y`` and ``z`` (real, NumPy or pytorch), or
        ``X ** 2``. The functional's domain is ``X ** 2``; on
        ``uniform_discr`` all norms, inner products and ``Psi`` carry the
        cell volume.
    activation : str or ProximalActivation
        The activation ``prox_Psi`` (see `get_activation`).

    Notes
    -----
    The value is ``+inf`` when ``y`` lies outside the domain of ``Psi``
    (ReLU: ``y < 0`` somewhere; hard tanh: ``|y| > 1``; tanh: ``|y| > 1``).
    The gradient ``(y - z + grad Psi(y), prox_Psi(z) - y)`` exists where
    ``Psi`` has a gradient in ODL (tanh, leaky ReLU, soft-thresholding
    with ``sign(0) = 0``); for the indicators ODL raises. Use `fixed_y` for
    the smooth functional of ``z``, `fixed_z` for the proximable functional
    of ``y``.

    Examples
    --------
    >>> space = odl.rn(3)
    >>> loss = BregmanLoss(space, 'tanh')
    >>> z = space.element([-1.0, 0.2, 2.0])
    >>> y = space.element(np.tanh(z.asarray()))
    >>> abs(loss(loss.domain.element([y, z]))) < 1e-12  # zero at y = tanh(z)
    True
    >>> loss(loss.domain.element([space.zero(), z])) > 0
    True
    """

    def __init__(self, space, activation):
        self.space = _base_space(space)
        self.activation = get_activation(activation)
        self.psi = self.activation.psi(self.space)
        super().__init__(self.space ** 2, linear=False)

    def _call(self, x):
        return _value(self.psi, self.psi.proximal(1.0), x[0], x[1])

    @property
    def gradient(self):
        """``(y, z) -> (y - z + grad Psi(y), prox_Psi(z) - y)``."""
        proj_y = odl.ComponentProjection(self.domain, 0)
        proj_z = odl.ComponentProjection(self.domain, 1)
        grad_y = proj_y - proj_z + self.psi.gradient @ proj_y
        grad_z = self.psi.proximal(1.0) @ proj_z - proj_y
        return odl.BroadcastOperator(grad_y, grad_z)

    def fixed_y(self, y):
        """``z -> B_Psi(y, z)``, a `BregmanLossZ`."""
        return BregmanLossZ(self.space, self.activation, y)

    def fixed_z(self, z):
        """``y -> B_Psi(y, z)``, a `BregmanLossY`."""
        return BregmanLossY(self.space, self.activation, z)

    def __repr__(self):
        return f'BregmanLoss({self.space!r}, {self.activation!r})'


class BregmanLossZ(Functional):
    r"""``z -> B_Psi(y, z)`` for fixed ``y``: convex, with a 1-Lipschitz
    gradient ``prox_Psi(z) - y`` in closed form.

    This is the data term of lifted network inversion,
    ``min_x B_Psi(y, W x + b) + alpha R(x)``: compose it with an affine ODL
    operator and hand it to ODL's smooth or proximal solvers.

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space of ``y`` and ``z``, NumPy or pytorch backed.
    activation : str or ProximalActivation
        The activation ``prox_Psi``.
    y : ``space`` element-like
        The fixed first argument. If it lies outside the domain of ``Psi``
        the functional is ``+inf`` everywhere.

    Notes
    -----
    ``B_Psi(y, .) = (1/2 ||.||^2 + Psi)^* - <y, .> + const``; its proximal
    map ``prox_{tau B}(x) = prox_{tau Phi^*}(x + tau y)``, ``Phi = 1/2 ||.||^2
    + Psi``, is assembled from ODL's ``proximal_quadratic_perturbation`` and
    ``proximal_convex_conj`` (Moreau identity); it equals
    ``w - tau prox_{Psi/(1+tau)}(w / (1 + tau))`` with ``w = x + tau y``.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> y = space.element([0.0, 1.0])
    >>> f = BregmanLossZ(space, 'relu', y)
    >>> z = space.element([-1.0, 3.0])
    >>> f.gradient(z)  # relu(z) - y
    rn(2).element([ 0.,  2.])
    >>> f(space.element([-5.0, 1.0]))  # y = relu(z): zero
    0.0
    """

    def __init__(self, space, activation, y):
        space = _checked_space(space)
        self.activation = get_activation(activation)
        self.psi = self.activation.psi(space)
        self.y = _element(space, y, 'y')
        self._psi_y = self.psi(self.y)  # constant in z: evaluate once
        super().__init__(space, linear=False, grad_lipschitz=1.0)

    def _call(self, z):
        return _value(self.psi, self.psi.proximal(1.0), self.y, z,
                      psi_y=self._psi_y)

    @property
    def gradient(self):
        """``z -> prox_Psi(z) - y`` (prox is 1-Lipschitz)."""
        return self.psi.proximal(1.0) - odl.ConstantOperator(self.y)

    @property
    def proximal(self):
        """Factory ``tau -> prox_{tau B_Psi(y, .)}``."""
        phi = proximal_quadratic_perturbation(self.psi.proximal, a=0.5)
        return proximal_quadratic_perturbation(proximal_convex_conj(phi),
                                               a=0.0, u=-self.y)

    def __repr__(self):
        return (f'BregmanLossZ({self.domain!r}, {self.activation!r}, '
                f'y={self.y!r})')


class BregmanLossY(Functional):
    r"""``y -> B_Psi(y, z)`` for fixed ``z``: convex, with a closed-form
    proximal map.

    ``B_Psi(., z) = Psi + 1/2 ||.||^2 - <z, .> + const``, so

        prox_{tau B(., z)}(x) = prox_{tau/(1+tau) Psi}((x + tau z) / (1+tau)),

    which is ODL's ``proximal_quadratic_perturbation`` of ``Psi``'s proximal
    factory: the lifted-training update of the hidden variables (see
    `bregman_prox` for tensors).

    Parameters
    ----------
    space : TensorSpace or DiscretizedSpace
        Real space of ``y`` and ``z``, NumPy or pytorch backed.
    activation : str or ProximalActivation
        The activation ``prox_Psi``.
    z : ``space`` element-like
        The fixed second argument.

    Examples
    --------
    >>> space = odl.rn(2)
    >>> z = space.element([-1.0, 3.0])
    >>> f = BregmanLossY(space, 'relu', z)
    >>> f(space.element([0.0, 3.0])), f(space.element([-1.0, 3.0]))
    (0.0, inf)
    >>> f.proximal(1.0)(space.element([1.0, 1.0]))  # relu((x + z) / 2)
    rn(2).element([ 0.,  2.])
    """

    def __init__(self, space, activation, z):
        space = _checked_space(space)
        self.activation = get_activation(activation)
        self.psi = self.activation.psi(space)
        self.z = _element(space, z, 'z')
        super().__init__(space, linear=False)

    def _call(self, y):
        return _value(self.psi, self.psi.proximal(1.0), y, self.z)

    @property
    def gradient(self):
        """``y -> y - z + grad Psi(y)`` where ODL has ``Psi.gradient``."""
        return (odl.IdentityOperator(self.domain) + self.psi.gradient
                - odl.ConstantOperator(self.z))

    @property
    def proximal(self):
        """Factory ``tau -> prox_{tau B_Psi(., z)}``."""
        return proximal_quadratic_perturbation(self.psi.proximal, a=0.5,
                                               u=-self.z)

    def __repr__(self):
        return (f'BregmanLossY({self.domain!r}, {self.activation!r}, '
                f'z={self.z!r})')


_REDUCTIONS = ('sum', 'mean', 'sample', 'none')


def bregman_loss(y, z, activation, reduction='sum'):
    r"""``B_Psi(y, z)`` on tensors, for training; plain Euclidean sums.

    Differentiable in both arguments with the exact gradients
    ``grad_z B = prox_Psi(z) - y`` and ``grad_y B = y - z + Psi'(y)``:
    ``u = prox_Psi(z)`` enters detached, which is exact because the
    derivative of ``B`` in ``u`` vanishes at the prox. (Second derivatives
    through ``u`` are therefore not available.)

    Parameters
    ----------
    y, z : torch.Tensor
        Same shape; a leading batch axis for ``reduction='sample'`` or
        ``'mean'``.
    activation : str or ProximalActivation
        The activation ``prox_Psi``.
    reduction : {'sum', 'mean', 'sample', 'none'}
        ``'sum'``: a scalar; ``'sample'``: one value per sample (sum over all
        but the first axis); ``'mean'``: the mean over samples of the
        per-sample sums; ``'none'``: elementwise values.

    Returns
    -------
    torch.Tensor

    Notes
    -----
    Entries of ``y`` outside the domain of ``Psi`` give ``+inf`` (ReLU:
    ``y < 0``; hard tanh, tanh: ``|y| > 1``), and their ``y``-gradient is not
    meaningful. In lifted training the ``y`` are outputs of a prox and lie in
    the domain. For saturated tanh (``|y| = 1`` in float32), ``Psi(y)`` is
    finite but ``Psi'(y)`` infinite. On a ``uniform_discr`` space multiply
    by the cell volume to match the ODL functional.

    Examples
    --------
    >>> z = torch.tensor([[-1.0, 0.5, 2.0]], dtype=torch.float64,
    ...                  requires_grad=True)
    >>> y = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> bregman_loss(torch.relu(z).detach(), z, 'relu').item()
    0.0
    >>> loss = bregman_loss(y, z, 'relu')
    >>> loss.backward()
    >>> bool(torch.equal(z.grad, torch.relu(z) - y))  # prox(z) - y
    True
    """
    act = get_activation(activation)
    if not isinstance(y, torch.Tensor) or not isinstance(z, torch.Tensor):
        raise TypeError(f'`y` and `z` must be torch tensors, got '
                        f'{type(y).__name__} and {type(z).__name__}')
    if y.shape != z.shape:
        raise ValueError(f'`y` has shape {tuple(y.shape)} but `z` has shape '
                         f'{tuple(z.shape)}')
    if reduction not in _REDUCTIONS:
        raise ValueError(f'`reduction` must be one of {_REDUCTIONS}, got '
                         f'{reduction!r}')
    u = act(z).detach()
    d = y - u
    elem = (0.5 * d * d + act.psi_pointwise(y) - act.psi_pointwise(u)
            - d * (z - u))
    if reduction == 'none':
        return elem
    if reduction == 'sum':
        return elem.sum()
    if elem.ndim == 0:
        raise ValueError(f'reduction {reduction!r} needs a leading batch '
                         'axis, got a 0-dimensional tensor')
    per_sample = elem.reshape(elem.shape[0], -1).sum(dim=1)
    return per_sample if reduction == 'sample' else per_sample.mean()


def bregman_prox(x, z, tau, activation):
    r"""The proximal map of ``tau B_Psi(., z)``, on tensors.

    ``prox_{tau B(., z)}(x) = prox_{tau/(1+tau) Psi}((x + tau z)/(1+tau))``:
    the proximal step in the hidden variables of lifted Bregman training, the
    tensor counterpart of ``BregmanLossY(space, act, z).proximal(tau)``;
    differentiable.

    Parameters
    ----------
    x, z : torch.Tensor
        Same shape (broadcastable).
    tau : positive float or torch.Tensor
        Step size (a tensor broadcasts, e.g. one step per sample).
    activation : str or ProximalActivation
        The activation ``prox_Psi``.

    Examples
    --------
    >>> x = torch.tensor([1.0, 1.0])
    >>> z = torch.tensor([-1.0, 3.0])
    >>> bregman_prox(x, z, 1.0, 'relu')
    tensor([0., 2.])
    """
    act = get_activation(activation)
    if isinstance(tau, numbers.Real) and not tau > 0:
        raise ValueError(f'step size `tau` must be positive, got {tau!r}')
    return act.prox((x + tau * z) / (1 + tau), tau / (1 + tau))
