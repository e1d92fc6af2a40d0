"""Proximal activations: the ODL operator, the torch module and
``psi.proximal(1.0)`` agree; every prox is checked against a brute-force 1D
minimisation, the conjugates against the Moreau identity and Fenchel-Young.
Gradients and derivatives against finite differences, and the adjoints:
tests/test_contracts.py."""
import math

import numpy as np
import odl
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from odl_genprior.bregman.activations import (
    ACTIVATIONS, HardTanh, Identity, LeakyReLU, LeakyReLUPsi, LeakyReLUPsiConvexConj,
    ProximalActivation, ReLU, SoftThreshold, Tanh, TanhPsi, TanhPsiConvexConj,
    get_activation)
from odl_genprior.bridge import to_numpy

ALPHA, SLOPE = 0.7, 0.2
ACTS = {'relu': {}, 'soft_threshold': {'alpha': ALPHA}, 'tanh': {},
        'hardtanh': {'bound': ALPHA}, 'leaky_relu': {'slope': SLOPE},
        'identity': {}}
# What each activation must be, as torch computes it.
REFERENCE = {'relu': torch.relu,
             'soft_threshold': lambda z: F.softshrink(z, ALPHA),
             'tanh': torch.tanh,
             'hardtanh': lambda z: F.hardtanh(z, -ALPHA, ALPHA),
             'leaky_relu': lambda z: F.leaky_relu(z, SLOPE),
             'identity': lambda z: z}
# Interval holding the minimiser of 1/2 (u - z)^2 + sigma psi(u), and of the
# conjugate's problem (B stands for |z| + 1).
DOMAIN = {'relu': (0, 'B'), 'soft_threshold': ('-B', 'B'), 'tanh': (-1, 1),
          'hardtanh': (-ALPHA, ALPHA), 'leaky_relu': ('-B', 'B'),
          'identity': ('-B', 'B')}
CONJ_DOMAIN = {'relu': ('-B', 0), 'soft_threshold': (-ALPHA, ALPHA),
               'tanh': ('-B', 'B'), 'hardtanh': ('-B', 'B'),
               'leaky_relu': ('-B', 0), 'identity': (0, 0)}
DTYPES = ('float32', 'float64')


def rtol(dtype):
    return 1e-5 if dtype == 'float32' else 1e-11


@pytest.fixture(params=sorted(ACTS))
def name(request):
    return request.param


@pytest.fixture
def act(name):
    return get_activation(name, **ACTS[name])


def make_space(impl, dtype='float64'):
    # A weighted space (cell volume 1/6) so that integrals are exercised.
    return odl.uniform_discr([0, 0], [1, 2], (3, 4), impl=impl, dtype=dtype)


def random_element(space, scale=2.0, seed=0):
    """Non-zero random values, away from 0 and from the kinks at 0, +-alpha."""
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(space.shape)
    x[np.abs(x) < 0.05] = 0.3
    return space.element(x.astype(space.dtype_identifier))


def bounds(spec, z):
    b = abs(z) + 1.0
    return tuple(b if s == 'B' else -b if s == '-B' else float(s)
                 for s in spec)


def brute_prox(fun, z, sigma, spec):
    """argmin_u 1/2 (u - z)^2 + sigma fun(u) on the interval ``spec``."""
    res = minimize_scalar(lambda u: 0.5 * (u - z) ** 2 + sigma * fun(u),
                          bounds=bounds(spec, z), method='bounded',
                          options={'xatol': 1e-11})
    return res.x


# --- one object: ODL operator == torch module == psi.proximal(1.0) ---------

@pytest.mark.parametrize('dtype', DTYPES)
def test_operator_module_and_prox_agree(act, name, impl, dtype):
    space = make_space(impl, dtype)
    z = random_element(space, scale=3.0)
    op = act.operator(space)
    prox1 = act.psi(space).proximal(1.0)
    t = torch.as_tensor(to_numpy(z))
    expected = REFERENCE[name](t).numpy()
    tol = dict(rtol=rtol(dtype), atol=rtol(dtype))
    np.testing.assert_allclose(to_numpy(op(z)), expected, **tol)
    np.testing.assert_allclose(to_numpy(prox1(z)), expected, **tol)
    np.testing.assert_allclose(act(t).numpy(), expected, **tol)
    np.testing.assert_allclose(act.prox(t, 1.0).numpy(), expected, **tol)
    # The module called on an ODL element runs the ODL operator.
    out = act(z)
    assert out in space
    np.testing.assert_allclose(to_numpy(out), expected, **tol)
    assert op.domain == space and op.range == space


def test_module_is_differentiable(act, name):
    z = torch.randn(2, 5, dtype=torch.float64) * 2
    z = z.requires_grad_(True)
    ref = z.detach().clone().requires_grad_(True)
    act(z).sum().backward()
    REFERENCE[name](ref).sum().backward()
    torch.testing.assert_close(z.grad, ref.grad)
    assert isinstance(act, torch.nn.Module)


@pytest.mark.parametrize('sigma', [0.3, 2.5])
def test_torch_prox_any_step_gradcheck(act, sigma):
    z = (torch.randn(6, dtype=torch.float64) * 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: act.prox(t, sigma), (z,))


# --- prox for any step against brute force ---------------------------------

@pytest.mark.parametrize('sigma', [0.3, 1.0, 2.5])
def test_prox_against_brute_force(act, name, sigma):
    zs = np.array([-3.1, -0.9, -0.25, 0.4, 1.3, 4.2])
    space = odl.rn(len(zs))
    odl_prox = to_numpy(act.psi(space).proximal(sigma)(space.element(zs)))
    torch_prox = act.prox(torch.as_tensor(zs), sigma).numpy()

    def psi(u):
        return act.psi_pointwise(torch.tensor(u, dtype=torch.float64)).item()

    brute = [brute_prox(psi, z, sigma, DOMAIN[name]) for z in zs]
    np.testing.assert_allclose(odl_prox, brute, atol=1e-6)
    np.testing.assert_allclose(torch_prox, odl_prox, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('sigma', [0.4, 1.0, 3.0])
def test_conj_prox_against_brute_force(act, name, sigma):
    zs = np.array([-2.7, -0.6, -0.2, 0.35, 1.1, 3.3])
    space = odl.rn(len(zs))
    conj = act.psi_conj(space)
    odl_prox = to_numpy(conj.proximal(sigma)(space.element(zs)))
    one = odl.rn(1)
    conj1 = act.psi_conj(one)
    brute = [brute_prox(lambda p: conj1(one.element([p])), z, sigma,
                        CONJ_DOMAIN[name]) for z in zs]
    np.testing.assert_allclose(odl_prox, brute, atol=1e-6)


# --- conjugates: Moreau identity and Fenchel-Young ---------------------------

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('sigma', [0.5, 1.0, 2.0])
def test_moreau_identity(act, impl, dtype, sigma):
    space = make_space(impl, dtype)
    z = random_element(space, scale=3.0, seed=1)
    psi, conj = act.psi(space), act.psi_conj(space)
    # z = prox_{sigma Psi}(z) + sigma prox_{Psi^*/sigma}(z / sigma)
    rebuilt = (psi.proximal(sigma)(z)
               + sigma * conj.proximal(1.0 / sigma)(z / sigma))
    tol = 1e-5 if dtype == 'float32' else 1e-12
    np.testing.assert_allclose(to_numpy(rebuilt), to_numpy(z), atol=tol,
                               rtol=tol)


@pytest.mark.parametrize('dtype', DTYPES)
def test_fenchel_young(act, impl, dtype):
    space = make_space(impl, dtype)
    psi, conj = act.psi(space), act.psi_conj(space)
    # For any w, u = prox_Psi(w) and p = prox_{Psi^*}(w) (= w - u) satisfy
    # p in dPsi(u), and both lie in their domains exactly (z1 - u may leave
    # dom Psi^* by one ulp in float32).
    z1 = random_element(space, scale=2.0, seed=2)
    z2 = random_element(space, scale=2.0, seed=3)
    u = psi.proximal(1.0)(z1)
    tol = 1e-5 if dtype == 'float32' else 1e-12
    p = conj.proximal(1.0)(z2)
    assert psi(u) + conj(p) - u.inner(p) >= -tol
    p = conj.proximal(1.0)(z1)
    gap = psi(u) + conj(p) - u.inner(p)
    assert abs(gap) <= tol * (1 + abs(u.inner(p)))


def test_fenchel_young_strict_and_gradient(act, impl):
    """Inequality strict for a p that is not a subgradient; equality for the
    gradient where Psi has one."""
    space = make_space(impl)
    psi, conj = act.psi(space), act.psi_conj(space)
    u = psi.proximal(1.0)(random_element(space, seed=4))
    p = random_element(space, scale=0.3, seed=5)
    p = conj.proximal(1.0)(p) if act.name in ('relu', 'soft_threshold',
                                              'leaky_relu') else p
    assert psi(u) + conj(p) - u.inner(p) > 1e-6
    if act.name in ('tanh', 'leaky_relu'):
        g = psi.gradient(u)
        assert abs(psi(u) + conj(g) - u.inner(g)) < 1e-12


# --- values, gradients and derivatives --------------------------------------

@pytest.mark.parametrize('dtype', DTYPES)
def test_psi_matches_pointwise_integral(act, impl, dtype):
    space = make_space(impl, dtype)
    u = act.psi(space).proximal(1.0)(random_element(space, seed=6))
    w = space.cell_volume
    expected = w * float(act.psi_pointwise(
        torch.as_tensor(to_numpy(u)).double()).sum())
    assert act.psi(space)(u) == pytest.approx(expected, rel=rtol(dtype) * 10,
                                              abs=1e-12)


@pytest.mark.parametrize('name_', ['relu', 'tanh', 'hardtanh'])
def test_psi_infinite_outside_domain(name_, impl):
    act = get_activation(name_)
    space = make_space(impl)
    x = space.element(np.full(space.shape, -1.5))
    assert act.psi(space)(x) == math.inf
    assert torch.isinf(act.psi_pointwise(torch.full((3,), -1.5))).all()


def test_tanh_psi_closure_and_float32_saturation(impl):
    space = odl.rn(3, impl=impl, dtype='float32')
    psi = TanhPsi(space)
    # tanh(12) rounds to 1 in float32: Psi there is the finite closure value.
    u = psi.proximal(1.0)(space.element([12.0, -12.0, 0.5]))
    assert to_numpy(u)[0] == 1.0
    expected = 2 * (math.log(2) - 0.5) + (
        math.tanh(0.5) * 0.5 + (math.log(1 - math.tanh(0.5) ** 2)
                                - math.tanh(0.5) ** 2) / 2)
    assert psi(u) == pytest.approx(expected, rel=1e-5)
    assert psi(space.element([1.0001, 0.0, 0.0])) == math.inf


def test_tanh_psi_series_and_closed_form_agree():
    u = torch.tensor([1e-4, 0.05, 0.0999999, 0.1, 0.1000001, 0.3, -0.7,
                      0.999], dtype=torch.float64)
    closed = u * torch.atanh(u) + (torch.log1p(-u * u) - u * u) / 2
    torch.testing.assert_close(Tanh().psi_pointwise(u), closed, rtol=1e-9,
                               atol=1e-20)


def test_tanh_prox_large_inputs_and_float32():
    z = torch.tensor([-40.0, -9.0, 1e-6, 3.0, 25.0], dtype=torch.float64)
    for sigma in (0.05, 0.5, 4.0):
        u64 = Tanh().prox(z, sigma)
        assert bool(torch.all(torch.abs(u64) <= 1))
        assert torch.equal(torch.sign(u64), torch.sign(z))
        u32 = Tanh().prox(z.float(), sigma)
        torch.testing.assert_close(u32.double(), u64, rtol=1e-6, atol=1e-7)
        mid = torch.abs(u64) < 0.999
        res = (1 - sigma) * u64 + sigma * torch.atanh(u64) - z
        assert float(res[mid].abs().max()) < 1e-10


def test_leaky_relu_conjugate_closed_form():
    space = odl.rn(4)
    conj = LeakyReLUPsiConvexConj(space, SLOPE)
    c = 1 / SLOPE - 1
    z = space.element([-2.0, -0.3, 0.5, 1.7])
    for sigma in (0.5, 2.0):
        expected = np.minimum(z.asarray(), 0) * c / (c + sigma)
        np.testing.assert_allclose(conj.proximal(sigma)(z).asarray(),
                                   expected, rtol=1e-12)
    p = space.element([-2.0, -0.3, -0.5, 0.0])
    assert conj(p) == pytest.approx(float((p.asarray() ** 2).sum()) / (2 * c))


def test_conjugates_round_trip():
    space = odl.rn(2)
    assert isinstance(TanhPsi(space).convex_conj, TanhPsiConvexConj)
    assert isinstance(TanhPsiConvexConj(space).convex_conj, TanhPsi)
    conj = LeakyReLUPsi(space, 0.3).convex_conj
    assert isinstance(conj, LeakyReLUPsiConvexConj) and conj.slope == 0.3
    assert isinstance(conj.convex_conj, LeakyReLUPsi)


def test_odl_functionals_reused():
    space = odl.rn(3)
    assert type(ReLU().psi(space)) is odl.functionals.IndicatorNonnegativity
    assert type(HardTanh().psi(space)) is odl.functionals.IndicatorBox
    soft = SoftThreshold(0.5).psi(space)
    assert isinstance(soft.functional, odl.functionals.L1Norm)
    assert soft.scalar == 0.5
    assert type(HardTanh().psi_conj(space)) is odl.functionals.L1Norm


# --- look-up and errors ------------------------------------------------------

def test_get_activation_names_and_aliases():
    assert set(ACTIVATIONS) == set(ACTS)
    for alias, cls in [('ReLU', ReLU), ('soft-thresholding', SoftThreshold),
                       ('softshrink', SoftThreshold), ('tanh', Tanh),
                       ('clip', HardTanh), ('hard_tanh', HardTanh),
                       ('LeakyReLU', LeakyReLU), ('linear', Identity)]:
        assert type(get_activation(alias)) is cls
    assert get_activation('soft_threshold', alpha=0.2).alpha == 0.2
    assert get_activation('leaky_relu', slope=0.3).slope == 0.3
    act = Tanh()
    assert get_activation(act) is act
    assert isinstance(act, ProximalActivation)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        get_activation('swish')
    with pytest.raises(TypeError):
        get_activation(act, alpha=1.0)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'cn\(2\)'):
        Tanh().psi(odl.cn(2))
    with pytest.raises(TypeError, match='ProductSpace|\\*\\* 2'):
        ReLU().operator(odl.rn(2) ** 2)
    with pytest.raises(ValueError, match='slope'):
        LeakyReLU(1.5)
    with pytest.raises(ValueError, match='alpha'):
        SoftThreshold(-1.0)
    with pytest.raises(ValueError, match='sigma'):
        TanhPsi(odl.rn(2)).proximal(-1.0)
