"""deepinv interoperability (odl_genprior.interop.deepinv).

Skipped where deepinv is absent (``pip install ".[deepinv]"``). deepinv's
own physics tests (``deepinv/tests/test_physics.py``, shipped in its wheel)
run on the adapter: their operator factories ``find_operator`` /
``find_nonlinear_operator`` are replaced by ones that return
``as_physics`` of an ODL operator, and the test functions are called as
deepinv wrote them.
"""
import subprocess
import sys
import warnings

import numpy as np
import odl
import pytest
import torch

import odl_genprior as og
from odl_genprior import diagnostics
from odl_genprior.bridge import operator_matrix, space_weight
from odl_genprior.interop import deepinv as interop

# deepinv imports torchvision; a CUDA torchvision wheel next to the CPU
# torch needs this before it imports (see the module's docstring).
interop.prepare_torchvision()
dinv = pytest.importorskip('deepinv')
try:  # deepinv's physics tests, shipped in its wheel
    from deepinv.tests import test_physics as dtp
except ImportError:  # pragma: no cover - a deepinv without its tests
    dtp = None

pytestmark = pytest.mark.usefixtures('one_torch_thread', '_private_cache')

GEOMETRIES = ('parallel', 'fan')
NAMES = {'odl_parallel': 'parallel', 'odl_fan': 'fan'}
_RAYS = {}


@pytest.fixture(scope='module')
def _private_cache(tmp_path_factory):
    """Matrices the layers assemble go to a temporary folder, not the
    user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv('ODL_GENPRIOR_CACHE', str(tmp_path_factory.mktemp('cache')))
    yield
    mp.undo()


def ray(geometry='parallel', size=16):
    """A small ASTRA ray transform (float32), made once per shape."""
    key = (geometry, size)
    if key not in _RAYS:
        from odl_genprior.problems.ellipse_ct import EllipseCT
        _RAYS[key] = EllipseCT(size=size, num_angles=8,
                               geometry=geometry).operator
    return _RAYS[key]


def euclidean_sqnorm(A):
    """``||A||_2^2`` of the arrays (the matrix's largest singular value)."""
    m = operator_matrix(A, cache=False).toarray().astype(np.float64)
    return float(np.linalg.norm(m, 2) ** 2)


def tanh_operator(dtype='float64', size=6):
    """A nonlinear ODL operator: a small convolutional tanh network."""
    torch.manual_seed(1)
    space = odl.uniform_discr([-1, -1], [1, 1], (size, size), dtype=dtype)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1),
                              torch.nn.Tanh()).to(getattr(torch, dtype))
    return og.TorchOperator(net, space, space), net


# --- deepinv's own physics tests on the adapter -----------------------------

def _find_operator(name, device, imsize=None, get_physics_param=False):
    size = 16 if imsize is None else imsize[-1]
    A = ray(NAMES[name], size)
    out = (interop.as_physics(A), (1, size, size), euclidean_sqnorm(A),
           torch.float32)
    return out + ([],) if get_physics_param else out


def _find_nonlinear_operator(name, device):
    G, _ = tanh_operator('float32')
    x = torch.randn((1, 1) + tuple(G.domain.shape))
    return interop.as_physics(G), x


@pytest.fixture
def deepinv_tests(monkeypatch):
    if dtp is None:
        pytest.skip('this deepinv ships no tests/test_physics.py')
    monkeypatch.setattr(dtp, 'find_operator', _find_operator)
    monkeypatch.setattr(dtp, 'find_nonlinear_operator',
                        _find_nonlinear_operator)
    monkeypatch.setattr(dtp, 'OPERATORS', list(dtp.OPERATORS) + list(NAMES))
    monkeypatch.setattr(dtp, 'NONLINEAR_OPERATORS',
                        list(dtp.NONLINEAR_OPERATORS) + ['odl_tanh'])
    return dtp


@pytest.mark.parametrize('name', sorted(NAMES))
def test_deepinv_physics_tests_on_ray_transforms(deepinv_tests, name):
    t = deepinv_tests
    rng = lambda: torch.Generator('cpu').manual_seed(0)  # noqa: E731
    t.test_operators_adjointness(name, 'cpu', rng())
    t.test_adjointness_test(name, 3, 'cpu', rng())
    t.test_operators_norm(name, False, 'cpu', rng())
    t.test_operators_differentiability(name, 'cpu')
    t.test_adjoint_autograd(name, 'cpu')
    t.test_device_consistency(name)
    t.test_clone(name, 'cpu')
    t.test_concatenation(name, 'cpu')
    for implicit in (True, False):
        t.test_pseudo_inverse(name, 'cpu', rng(), implicit)
    t.test_operator_cropper(name, 'cpu', rng())
    t.test_operator_multiscale_wrapper(name, 'cpu', rng())


def test_deepinv_physics_tests_on_nonlinear(deepinv_tests):
    deepinv_tests.test_nonlinear_operators('odl_tanh', 'cpu')
    deepinv_tests.test_clone('odl_tanh', 'cpu')
    deepinv_tests.test_device_consistency('odl_tanh')


# --- as_physics --------------------------------------------------------------

@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_physics_adjoint_is_euclidean(geometry):
    A = ray(geometry)
    physics = interop.as_physics(A)
    assert isinstance(physics, dinv.physics.LinearPhysics)
    x = torch.randn(3, 1, 16, 16)
    assert physics.adjointness_test(x, num_samples=3) < 1e-5
    assert physics.adjointness_test(num_samples=2) < 1e-5  # physics.img_size
    # A^T = W_dom A* W_ran^{-1}, by hand from ODL's own adjoint
    y = torch.randn(2, 1, *A.range.shape)
    ratio = space_weight(A.domain) / space_weight(A.range)
    assert ratio != 1.0  # a test of the conversion, not a no-op
    for b in range(2):
        odl_adj = A.adjoint(A.range.element(y[b, 0].numpy())).asarray()
        np.testing.assert_allclose(physics.A_adjoint(y)[b, 0].numpy(),
                                   ratio * odl_adj, rtol=1e-5,
                                   atol=1e-6 * np.abs(odl_adj).max())
    # the norm deepinv computes is the Euclidean one
    norm = physics.compute_sqnorm(x[:1], max_iter=500, tol=1e-7,
                                  verbose=False)
    assert abs(float(norm) / euclidean_sqnorm(A) - 1) < 1e-3


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_physics_back_to_odl_adjoint(geometry):
    """The other way: as_operator of the physics has ODL's (weighted)
    adjoint, and equals the ray transform."""
    A = ray(geometry)
    op = interop.as_operator(interop.as_physics(A), A.domain, A.range)
    diagnostics.check_adjoint(op, rtol=1e-5)
    x = diagnostics.random_element(A.domain, np.random.default_rng(3))
    np.testing.assert_allclose(op(x).asarray(), A(x).asarray(), rtol=1e-6,
                               atol=1e-6)
    back = A.adjoint(A(x)).asarray()
    np.testing.assert_allclose(op.adjoint(A(x)).asarray(), back, rtol=1e-4,
                               atol=1e-5 * np.abs(back).max())


def test_batched_shapes_and_channels():
    A = ray()
    physics = interop.as_physics(A)
    x = torch.randn(4, 2, 16, 16)
    y = physics.A(x)
    assert y.shape == (4, 2, 8, 25) and y.dtype == torch.float32
    assert physics.A_adjoint(y).shape == x.shape
    single = A(A.domain.element(x[2, 1].numpy())).asarray()
    np.testing.assert_allclose(y[2, 1].numpy(), single, rtol=1e-5, atol=1e-5)
    # one unbatched sample (C, H, W), as compute_sqnorm may pass
    assert physics.A(x[0]).shape == (2, 8, 25)
    assert physics(x).shape == y.shape  # forward with the (zero) noise
    noisy = interop.as_physics(A, noise_model=dinv.physics.GaussianNoise(
        sigma=0.1))
    assert 0 < float((noisy(x) - y).std()) < 0.2


def test_errors_name_shape_and_dtype():
    A = ray()
    physics = interop.as_physics(A)
    with pytest.raises(ValueError, match=r'\(B, C, 16, 16\)'):
        physics.A(torch.randn(2, 1, 15, 16))
    with pytest.raises(ValueError, match=r'\(B, C, 16, 16\)'):
        physics.A(torch.randn(16, 16))
    with pytest.raises(TypeError, match='float32'):
        physics.A(torch.randn(2, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match=r'\(B, C, 8, 25\)'):
        physics.A_adjoint(torch.randn(2, 1, 25, 8))
    with pytest.raises(TypeError, match='float32'):
        physics.A_adjoint(torch.randn(2, 1, 8, 25, dtype=torch.float64))
    with pytest.raises(TypeError, match='torch.Tensor'):
        physics.A(np.zeros((1, 1, 16, 16), np.float32))
    with pytest.raises(TypeError, match='odl.Operator'):
        interop.as_physics(lambda x: x)


def test_float64_power_space_and_gradients():
    """A float64 operator into a power space (``odl.Gradient``): exact
    adjointness, range layout ``(B, C, 2, H, W)``, autograd through A."""
    space = odl.uniform_discr([0, 0], [1, 2], (5, 6), dtype='float64')
    physics = interop.as_physics(odl.Gradient(space))
    x = torch.randn(3, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert physics.A(x).shape == (3, 1, 2, 5, 6)
    assert physics.adjointness_test(x.detach(), num_samples=4) < 1e-12
    y = torch.randn(3, 1, 2, 5, 6, dtype=torch.float64)
    (physics.A(x) * y).sum().backward()
    torch.testing.assert_close(x.grad, physics.A_adjoint(y))
    with pytest.raises(TypeError, match='float64'):
        physics.A(x.detach().float())


def test_nonlinear_operator_as_physics():
    G, net = tanh_operator()
    physics = interop.as_physics(G)
    assert type(physics).__name__ == 'OperatorPhysics'
    assert not isinstance(physics, dinv.physics.LinearPhysics)
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(physics.A(x), net(x))
    # A_vjp: the Euclidean vector-Jacobian product, as torch's own
    v = torch.randn_like(x)
    xr = x.clone().requires_grad_(True)
    ref = torch.autograd.grad(net(xr), xr, v)[0]
    torch.testing.assert_close(physics.A_vjp(x, v), ref)
    h = torch.randn_like(x)
    torch.testing.assert_close(
        physics.A_jvp(x, h), torch.func.jvp(net, (x,), (h,))[1])
    # deepinv's norm of the Jacobian at a point
    jac = torch.autograd.functional.jacobian(
        lambda t: net(t).flatten(), x[:1]).reshape(36, 36)
    norm = physics.compute_norm(x[:1], verbose=False)
    assert abs(float(norm) / float(torch.linalg.matrix_norm(jac, 2)) ** 2
               - 1) < 1e-3
    assert physics.A_dagger(physics.A(x)).shape == x.shape


# --- as_operator -------------------------------------------------------------

def test_as_operator_with_odl_solvers():
    """A native deepinv physics, an ODL solver and an ODL functional."""
    torch.manual_seed(0)
    space = odl.uniform_discr([-1, -1], [1, 1], (6, 6), dtype='float64')
    cs = dinv.physics.CompressedSensing(m=72, img_size=(1, 6, 6),
                                        dtype=torch.float64)
    data_space = odl.uniform_discr(0, 1, 72, dtype='float64')
    op = interop.as_operator(cs, space, data_space)
    assert op.is_linear and op.derivative(space.one()) is op
    diagnostics.check_adjoint(op, rtol=1e-10)
    diagnostics.check_derivative(op)
    x_true = diagnostics.random_element(space, np.random.default_rng(1))
    y = op(x_true)
    x = space.zero()
    odl.solvers.conjugate_gradient_normal(op, x, y, niter=60)
    assert (x - x_true).norm() / x_true.norm() < 1e-6
    f = odl.functionals.L2NormSquared(data_space).translated(y) * op
    assert f(x_true) == pytest.approx(0, abs=1e-20)
    grad = f.gradient(space.zero())
    expected = -2 * op.adjoint(y)
    assert (grad - expected).norm() < 1e-10 * expected.norm()


def test_as_operator_derivative():
    # a deepinv Physics without A_jvp: forward-mode autograd through A
    space = odl.uniform_discr([0, 0], [1, 1], (5, 5), dtype='float64')
    phys = dinv.physics.Physics(A=lambda x: x * torch.sin(x))
    op = interop.as_operator(phys, space, space)
    assert not op.is_linear
    diagnostics.check_derivative(op, rtol=1e-5)
    # a round trip of a nonlinear ODL operator (A_jvp and A_vjp of the
    # adapter)
    G, _ = tanh_operator()
    back = interop.as_operator(interop.as_physics(G), G.domain, G.range)
    diagnostics.check_derivative(back, rtol=1e-5)
    x = diagnostics.random_element(G.domain, np.random.default_rng(2))
    np.testing.assert_allclose(back(x).asarray(), G(x).asarray(),
                               rtol=1e-12)
    with pytest.raises(NotImplementedError, match='LinearPhysics'):
        back.adjoint


def test_as_operator_errors():
    space = odl.uniform_discr([0, 0], [1, 1], (4, 4), dtype='float64')
    cs = dinv.physics.CompressedSensing(m=10, img_size=(1, 4, 4),
                                        dtype=torch.float64)
    with pytest.raises(TypeError, match='deepinv Physics'):
        interop.as_operator(lambda x: x, space, space)
    with pytest.raises(ValueError, match='10 entries'):
        interop.as_operator(cs, space, odl.rn(11, dtype='float64'))
    with pytest.raises(ValueError, match='img_size'):
        interop.as_operator(cs, space, odl.rn(10), img_size=(1, 3, 4))
    cs32 = dinv.physics.CompressedSensing(m=10, img_size=(1, 4, 4))
    with pytest.raises(ValueError, match='float64'):
        interop.as_operator(cs32, space, odl.rn(10, dtype='float64'))


# --- protocol_dataset and as_solver ------------------------------------------

def test_protocol_dataset():
    from odl_genprior.problems.ellipse_ct import DivalEllipses
    bench = DivalEllipses.small()
    dataset, physics = interop.protocol_dataset(bench, 3, 'test')
    assert len(dataset) == 3 and dataset.physics is physics
    x, y = dataset[1]
    assert x.shape == (1, 16, 16)
    assert y.shape == (1, *bench.operator.range.shape)
    y_ref, x_ref = bench.pairs(3, 'test')
    torch.testing.assert_close(x[0], x_ref[1])
    torch.testing.assert_close(y[0], y_ref[1])
    assert physics.adjointness_test(x[None]) < 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # tuple format
        dinv.datasets.check_dataset(dataset)
    as_dicts, _ = interop.protocol_dataset({'protocol': 'dival', 'size': 16,
                                            'num_angles': 6, 'sim_size': 24},
                                           2, 'test', format='dict')
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        dinv.datasets.check_dataset(as_dicts)
    torch.testing.assert_close(as_dicts[0]['y'], dataset[0][1])
    # the data are the protocol's noisy measurements of x
    xb, yb = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    rel = (physics.A(xb) - yb).norm() / yb.norm()
    assert 0 < float(rel) < 0.2
    with pytest.raises(ValueError, match='n must be'):
        interop.protocol_dataset(bench, 0, 'test')


def test_solver_on_protocol_batch():
    from odl_genprior.problems.ellipse_ct import DivalEllipses
    from odl_genprior.recon import FBP, TV
    bench = DivalEllipses.small()
    dataset, physics = interop.protocol_dataset(bench, 3, 'test')
    xb, yb = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    fbp = interop.as_solver(FBP())
    x_hat = fbp(yb, physics)
    assert x_hat.shape == xb.shape and x_hat.dtype == torch.float32
    one = FBP()(bench.problem(2, 'test')).asarray()
    np.testing.assert_allclose(x_hat[2, 0].numpy(), one, rtol=1e-5,
                               atol=1e-6)
    tv = interop.as_solver(TV(niter=30))(yb[:1], physics)
    assert tv.shape == (1, 1, 16, 16) and torch.isfinite(tv).all()
    # deepinv's own evaluation loop takes the solver
    metrics = dinv.test(fbp, torch.utils.data.DataLoader(dataset,
                                                         batch_size=2),
                        physics, verbose=False, show_progress_bar=False,
                        compare_no_learning=False)
    assert np.isfinite(metrics['PSNR'])
    with pytest.raises(TypeError, match='as_physics'):
        fbp(yb, dinv.physics.Denoising())
    with pytest.raises(ValueError, match=r'\(B, C, 6, 25\)'):
        fbp(yb[:, 0], physics)
    with pytest.raises(TypeError, match='floating'):
        fbp(yb.to(torch.int32), physics)
    with pytest.raises(TypeError, match='Reconstructor'):
        interop.as_solver(lambda y: y)


def test_pretrained_learned_solver():
    """The shipped learned primal-dual network as a deepinv solver on
    DIVal's ellipses (its own protocol): better than FBP."""
    from odl_genprior.problems.ellipse_ct import DivalEllipses
    from odl_genprior.recon import FBP, LearnedReconstructor
    dataset, physics = interop.protocol_dataset(DivalEllipses(size=128), 2,
                                                'test')
    lpd = interop.as_solver(LearnedReconstructor.pretrained('dival-lpd-128'))
    mse = float(((lpd(dataset.y, physics) - dataset.x) ** 2).mean())
    mse_fbp = float(((interop.as_solver(FBP())(dataset.y, physics)
                      - dataset.x) ** 2).mean())
    assert mse < 0.5 * mse_fbp
    # one batched forward pass: the per-image reconstructions, to rounding
    net = LearnedReconstructor.pretrained('dival-lpd-128')
    one = net(DivalEllipses(size=128).problem(1, 'test')).asarray()
    np.testing.assert_allclose(lpd(dataset.y, physics)[1, 0].numpy(), one,
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='another operator'):
        other, phys = interop.protocol_dataset(DivalEllipses(size=64), 1,
                                               'test')
        lpd(other.y, phys)


def test_import_needs_no_deepinv():
    """``import odl_genprior`` and the interop module work without deepinv;
    the adapters then say how to install it."""
    code = (
        "import sys; sys.modules['deepinv'] = None\n"
        "import odl, odl_genprior, odl_genprior.interop.deepinv as m\n"
        "assert 'deepinv' not in [k for k, v in sys.modules.items() if v]\n"
        "try:\n"
        "    m.as_physics(odl.IdentityOperator(odl.rn(2)))\n"
        "except ImportError as e:\n"
        "    print('ImportError', e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'odl-genprior[deepinv]' in out.stdout
