"""The Fenchel-Bregman loss B_Psi: its properties from the seed (B >= 1/2
||y - prox(z)||^2 >= 0, zero iff y = prox(z), grad_z B = prox(z) - y,
B = E_z(y) - E_z(prox(z))), the ODL functionals against brute force, and
the torch loss against the ODL one (finite differences and proximal
optimality of the ODL functionals: tests/test_contracts.py)."""
import math

import numpy as np
import odl
import pytest
import torch
from scipy.optimize import minimize_scalar

from odl_genprior.bregman.activations import get_activation
from odl_genprior.bregman import (
    BregmanLoss, BregmanLossY, BregmanLossZ, bregman_loss, bregman_prox)
from odl_genprior.bridge import to_numpy

ACTS = {'relu': {}, 'soft_threshold': {'alpha': 0.7}, 'tanh': {},
        'hardtanh': {}, 'leaky_relu': {'slope': 0.2}}
SMOOTH_PSI = ('tanh', 'leaky_relu', 'soft_threshold')  # ODL has grad Psi


@pytest.fixture(params=sorted(ACTS))
def act(request):
    return get_activation(request.param, **ACTS[request.param])


def make_space(impl, dtype='float64'):
    return odl.uniform_discr([0, 0], [1, 2], (3, 4), impl=impl, dtype=dtype)


def random_element(space, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(space.shape)
    x[np.abs(x) < 0.05] = 0.3
    return space.element(x.astype(space.dtype_identifier))


def random_pair(act, space, seed=0):
    """``y`` in dom Psi (a prox output), ``z`` random, ``y != prox(z)``."""
    prox = act.operator(space)
    y = prox(random_element(space, seed=seed))
    z = random_element(space, scale=2.5, seed=seed + 100)
    return y, z


def tensor(x):
    return torch.as_tensor(to_numpy(x)).clone()


def energy(psi, z, u):
    """E_z(u) = 1/2 ||u - z||^2 + Psi(u)."""
    return 0.5 * (u - z).inner(u - z) + psi(u)


# --- properties of B_Psi -----------------------------------------------------

@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_lower_bound_and_zero_at_prox(act, impl, dtype):
    space = make_space(impl, dtype)
    loss = BregmanLoss(space, act)
    prox = act.operator(space)
    tol = 1e-5 if dtype == 'float32' else 1e-12
    for seed in range(3):
        y, z = random_pair(act, space, seed)
        u = prox(z)
        b = loss(loss.domain.element([y, z]))
        gap = 0.5 * (y - u).inner(y - u)
        assert b >= gap - tol * (1 + abs(b))
        assert gap > 1e-3  # y != prox(z): strictly positive
        assert abs(loss(loss.domain.element([u, z]))) <= tol


def test_identity_with_energy(act, impl):
    """B_Psi(y, z) = E_z(y) - E_z(prox_Psi(z))."""
    space = make_space(impl)
    loss = BregmanLoss(space, act)
    psi, prox = act.psi(space), act.operator(space)
    for seed in range(3):
        y, z = random_pair(act, space, seed)
        expected = energy(psi, z, y) - energy(psi, z, prox(z))
        assert loss(loss.domain.element([y, z])) == pytest.approx(
            expected, rel=1e-10, abs=1e-12)


def test_definition_with_brute_force_conjugate(act):
    """The closed form of (1/2 |.|^2 + Psi)^*(z) through the prox, checked by
    computing the sup in the definition of B numerically (1D)."""
    space = odl.rn(1)
    loss = BregmanLoss(space, act)

    def psi(u):
        return act.psi_pointwise(torch.tensor(u, dtype=torch.float64)).item()

    for z in (-2.3, -0.4, 0.6, 1.9):
        # The maximiser prox(z) lies in dom Psi and |prox(z)| <= |z| + 1.
        lo, hi = -abs(z) - 1, abs(z) + 1
        lo, hi = {'relu': (0, hi), 'hardtanh': (-1, 1),
                  'tanh': (-1, 1)}.get(act.name, (lo, hi))
        res = minimize_scalar(lambda x: -(x * z - 0.5 * x * x - psi(x)),
                              bounds=(lo, hi),
                              method='bounded', options={'xatol': 1e-10})
        phi_conj = -res.fun
        y = float(act(torch.tensor(0.8, dtype=torch.float64)))
        expected = 0.5 * y * y + psi(y) + phi_conj - y * z
        value = loss(loss.domain.element([[y], [z]]))
        assert value == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('name', ['relu', 'hardtanh', 'tanh'])
def test_infinite_outside_domain(name, impl):
    act = get_activation(name)
    space = make_space(impl)
    y = space.element(np.full(space.shape, -1.5))
    z = random_element(space)
    loss = BregmanLoss(space, act)
    assert loss(loss.domain.element([y, z])) == math.inf
    assert BregmanLossZ(space, act, y)(z) == math.inf
    assert BregmanLossY(space, act, z)(y) == math.inf
    assert torch.isinf(bregman_loss(tensor(y), tensor(z), act))


# --- gradients ---------------------------------------------------------------

def test_z_gradient_closed_form(act, impl):
    """Finite differences: tests/test_contracts.py (bregman_z_*)."""
    space = make_space(impl)
    y, z = random_pair(act, space, seed=5)
    f = BregmanLossZ(space, act, y)
    grad = f.gradient(z)
    np.testing.assert_allclose(to_numpy(grad),
                               to_numpy(act.operator(space)(z) - y),
                               rtol=1e-14, atol=1e-14)
    assert f.grad_lipschitz == 1.0


def test_product_gradient_closed_form(act, impl):
    """Finite differences: tests/test_contracts.py (bregman_*)."""
    space = make_space(impl)
    loss = BregmanLoss(space, act)
    y, z = random_pair(act, space, seed=7)
    x = loss.domain.element([y, z])
    if act.name not in SMOOTH_PSI:
        with pytest.raises(NotImplementedError):
            loss.gradient(x)
        return
    grad = loss.gradient(x)
    np.testing.assert_allclose(to_numpy(grad[1]),
                               to_numpy(act.operator(space)(z) - y))


def test_torch_gradients_match_closed_forms(act):
    z = (2 * torch.randn(4, 6, dtype=torch.float64)).requires_grad_(True)
    y = act(2 * torch.randn(4, 6, dtype=torch.float64)).detach()
    if act.name == 'tanh':
        y = 0.9 * y  # keep Psi'(y) moderate
    y.requires_grad_(True)
    bregman_loss(y, z, act).backward()
    torch.testing.assert_close(z.grad, act(z).detach() - y.detach(),
                               rtol=1e-13, atol=1e-13)
    if act.name in SMOOTH_PSI:
        space = odl.rn(y.shape, dtype='float64')
        grad_psi = act.psi(space).gradient(space.element(y.detach().numpy()))
        expected = y.detach() - z.detach() + torch.as_tensor(
            to_numpy(grad_psi))
        torch.testing.assert_close(y.grad, expected, rtol=1e-12, atol=1e-12)


def test_odl_gradients_equal_torch_autograd(act, impl):
    """ODL's gradients (Riesz representers in the weighted inner product)
    equal torch's autograd of the unweighted sum."""
    space = make_space(impl)
    y, z = random_pair(act, space, seed=17)
    if act.name == 'tanh':
        y = 0.9 * y
    yt = tensor(y).requires_grad_(True)
    zt = tensor(z).requires_grad_(True)
    bregman_loss(yt, zt, act).backward()
    grad_z = BregmanLossZ(space, act, y).gradient(z)
    np.testing.assert_allclose(to_numpy(grad_z), zt.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    if act.name in SMOOTH_PSI:
        loss = BregmanLoss(space, act)
        grad = loss.gradient(loss.domain.element([y, z]))
        np.testing.assert_allclose(to_numpy(grad[0]), yt.grad.numpy(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(grad[1]), zt.grad.numpy(),
                                   rtol=1e-12, atol=1e-12)


def test_torch_gradient_against_finite_differences(act):
    z = (2 * torch.randn(5, dtype=torch.float64)).requires_grad_(True)
    y = act(2 * torch.randn(5, dtype=torch.float64)).detach()
    assert torch.autograd.gradcheck(lambda t: bregman_loss(y, t, act), (z,))


# --- torch == ODL ------------------------------------------------------------

@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_torch_equals_odl(act, impl, dtype):
    space = make_space(impl, dtype)
    loss = BregmanLoss(space, act)
    y, z = random_pair(act, space, seed=11)
    odl_value = loss(loss.domain.element([y, z]))
    torch_value = space.cell_volume * float(
        bregman_loss(tensor(y), tensor(z), act))
    tol = 1e-5 if dtype == 'float32' else 1e-12
    assert torch_value == pytest.approx(odl_value, rel=tol, abs=tol)
    assert BregmanLossZ(space, act, y)(z) == pytest.approx(odl_value,
                                                           rel=tol, abs=tol)
    assert BregmanLossY(space, act, z)(y) == pytest.approx(odl_value,
                                                           rel=tol, abs=tol)


def test_numpy_and_pytorch_spaces_agree(act):
    values = []
    for impl in ('numpy', 'pytorch'):
        space = make_space(impl)
        loss = BregmanLoss(space, act)
        y, z = random_pair(act, space, seed=12)
        values.append(loss(loss.domain.element([y, z])))
    assert values[0] == pytest.approx(values[1], rel=1e-13)


def test_reductions(act):
    y = act(torch.randn(3, 2, 4, dtype=torch.float64))
    z = 2 * torch.randn(3, 2, 4, dtype=torch.float64)
    elem = bregman_loss(y, z, act, reduction='none')
    assert elem.shape == y.shape and bool((elem >= -1e-14).all())
    per_sample = bregman_loss(y, z, act, reduction='sample')
    torch.testing.assert_close(per_sample, elem.sum(dim=(1, 2)))
    torch.testing.assert_close(bregman_loss(y, z, act, reduction='mean'),
                               per_sample.mean())
    torch.testing.assert_close(bregman_loss(y, z, act), elem.sum())
    assert float(bregman_loss(act(z), z, act)) == pytest.approx(0, abs=1e-13)


def test_torch_float32_saturated_tanh():
    """tanh(z) rounds to +-1 in float32 for large z: the loss still vanishes
    at y = tanh(z) and stays finite."""
    z = torch.tensor([-30.0, -12.0, 0.3, 15.0])
    loss = bregman_loss(torch.tanh(z), z, 'tanh', reduction='none')
    assert bool(torch.isfinite(loss).all())
    assert float(loss.abs().max()) < 1e-6


# --- proximal maps -----------------------------------------------------------

@pytest.mark.parametrize('tau', [0.5, 2.0])
def test_prox_in_y(act, impl, tau):
    space = make_space(impl)
    x, z = random_element(space, seed=13), random_element(space, seed=14)
    f = BregmanLossY(space, act, z)
    p = f.proximal(tau)(x)
    expected = act.psi(space).proximal(tau / (1 + tau))((x + tau * z)
                                                         / (1 + tau))
    np.testing.assert_allclose(to_numpy(p), to_numpy(expected), rtol=1e-12,
                               atol=1e-12)
    torch_p = bregman_prox(tensor(x), tensor(z), tau, act)
    np.testing.assert_allclose(torch_p.numpy(), to_numpy(p), rtol=1e-12,
                               atol=1e-12)
    # p minimises 1/2 ||v - x||^2 + tau B(v, z): no random v in dom Psi does
    # better.
    obj = lambda v: 0.5 * (v - x).inner(v - x) + tau * f(v)  # noqa: E731
    for seed in range(3):
        v = p + 0.05 * random_element(space, seed=20 + seed)
        v = act.operator(space)(v) if act.name in ('relu', 'hardtanh') else v
        if act.name == 'tanh':
            v = space.element(np.clip(to_numpy(v), -0.999, 0.999))
        assert obj(p) <= obj(v) + 1e-12


@pytest.mark.parametrize('tau', [0.5, 2.0])
def test_prox_in_z(act, impl, tau):
    space = make_space(impl)
    y, _ = random_pair(act, space, seed=15)
    x = random_element(space, seed=16)
    f = BregmanLossZ(space, act, y)
    p = f.proximal(tau)(x)
    # Optimality: (x - p) / tau = grad f(p) = prox_Psi(p) - y.
    np.testing.assert_allclose(to_numpy((x - p) / tau),
                               to_numpy(f.gradient(p)), rtol=1e-10,
                               atol=1e-10)
    w = x + tau * y
    closed = w - tau * act.psi(space).proximal(1 / (1 + tau))(w / (1 + tau))
    np.testing.assert_allclose(to_numpy(p), to_numpy(closed), rtol=1e-10,
                               atol=1e-10)


def test_fixed_y_fixed_z_and_composition():
    """Lifted inversion objective B(y, W x + b) composed in ODL."""
    space = odl.rn(3)
    loss = BregmanLoss(space ** 2, 'relu')
    assert loss.domain == space ** 2
    y = space.element([0.0, 1.0, 2.0])
    f = loss.fixed_y(y)
    assert isinstance(f, BregmanLossZ) and isinstance(
        loss.fixed_z(y), BregmanLossY)
    W = odl.MatrixOperator(np.diag([1.0, 2.0, 3.0]))
    objective = f * W
    x = space.element([-1.0, 0.5, 1.0])
    grad = objective.gradient(x)
    np.testing.assert_allclose(grad.asarray(),
                               np.diag([1.0, 2.0, 3.0]) @ (
                                   np.maximum(W(x).asarray(), 0)
                                   - y.asarray()))


# --- errors ------------------------------------------------------------------

def test_errors_name_the_problem():
    space = odl.rn(3)
    with pytest.raises(odl.OpDomainError, match=r'rn\(3\).*rn\(2\)'):
        BregmanLossZ(space, 'tanh', odl.rn(2).zero())
    with pytest.raises(ValueError, match='product space'):
        BregmanLoss(odl.ProductSpace(space, odl.rn(2)), 'tanh')
    with pytest.raises(ValueError, match=r'\(2, 3\).*\(3, 2\)'):
        bregman_loss(torch.zeros(2, 3), torch.zeros(3, 2), 'relu')
    with pytest.raises(ValueError, match='reduction'):
        bregman_loss(torch.zeros(2), torch.zeros(2), 'relu', reduction='avg')
    with pytest.raises(ValueError, match='tau'):
        bregman_prox(torch.zeros(2), torch.zeros(2), -1.0, 'relu')
