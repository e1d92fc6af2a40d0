"""CGNN: phi-integral filters, continuous convolution, rendering, ODL
operator, injectivity certificate, stability estimate."""
import numpy as np
import odl
import pytest
import torch
from scipy.integrate import cumulative_trapezoid
from scipy.signal import fftconvolve

from odl_genprior import TorchOperator
from odl_genprior._compat.odl_fixes import LineSearchStall
from odl_genprior.bridge import as_tensor
from odl_genprior.generators.cgnn import (
    CGNN, CellAverage, ContinuousConv, injectivity_certificate,
    nonlinearity_injectivity, render, stability_constant)
from odl_genprior.generators.mra import DaubechiesMRA, haar_conv_filter

WAVELETS = ('db1', 'db2', 'db6', 'db10')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def small_cgnn(wavelet='db2', dim=1, dtype=torch.float64, **kw):
    kw.setdefault('latent_dim', 3)
    if dim == 1:
        kw.setdefault('channels', (4, 2, 1))
        kw.setdefault('levels', (2, 3, 4))
    else:
        kw.setdefault('channels', (4, 1))
        kw.setdefault('levels', (1, 2))
    return CGNN(wavelet=wavelet, dim=dim, dtype=dtype, **kw)


# --- the filters derived from phi --------------------------------------------

@pytest.mark.parametrize('method', ['refinement', 'quadrature'])
@pytest.mark.parametrize('d', [1, 2])
def test_haar_conv_filter_closed_form(method, d):
    """beta_d for db1 against its closed form (trapezoid integrals)."""
    first, beta = DaubechiesMRA('db1').conv_filter(d, method=method,
                                                   level=12)
    cf_first, cf = haar_conv_filter(d)
    assert first == cf_first == 0
    assert len(beta) == len(cf) == 2 ** d + 1
    tol = 1e-13 if method == 'refinement' else 2e-3
    assert np.abs(beta - cf).max() < tol
    assert cf.tolist() == ([0.25, 0.5, 0.25] if d == 1 else
                           [0.125, 0.25, 0.25, 0.25, 0.125])


@pytest.mark.parametrize('wavelet', WAVELETS[1:])
def test_conv_filter_refinement_matches_quadrature(wavelet):
    """The exact (refinement) beta agrees with wavefun quadrature, O(h)."""
    mra = DaubechiesMRA(wavelet)
    first, beta = mra.conv_filter(1)
    q_first, q = mra.conv_filter(1, method='quadrature', level=10)
    assert first == q_first
    n = min(len(beta), len(q))
    assert np.abs(beta[:n] - q[:n]).max() < 2e-3
    assert np.abs(q[n:]).max(initial=0) < 1e-6
    assert abs(beta.sum() - 1) < 1e-12  # int Theta_d = 1
    assert abs(q.sum() - 1) < 2e-3       # independently, by quadrature


@pytest.mark.parametrize('wavelet', WAVELETS)
def test_antiderivative_exact_vs_wavefun(wavelet):
    """P = int phi from the refinement equation vs cumulative trapezoid."""
    mra = DaubechiesMRA(wavelet)
    x, phi = mra.scaling_function(level=11)
    cum = cumulative_trapezoid(phi, x, initial=0.0)
    P = mra.antiderivative(x)
    assert np.abs(P - cum).max() < 2e-3
    # Orthonormality of the samples, <phi(. - k), phi> = delta_k.
    h = x[1] - x[0]
    step = int(round(1 / h))
    for k in range(0, min(3, mra.support)):
        ip = h * np.dot(phi[k * step:], phi[:len(phi) - k * step])
        assert abs(ip - (k == 0)) < 5e-3


@pytest.mark.parametrize('wavelet', WAVELETS)
@pytest.mark.parametrize('boundary', ['periodic', 'zero'])
def test_cell_averages_partition_of_unity(wavelet, boundary):
    """sum_k 2^{-J/2} phi_{J,k} = 1: renders as ones at any resolution."""
    mra = DaubechiesMRA(wavelet)
    J = 3
    for M in (4, 8, 13, 64):
        R = mra.cell_average_matrix(J, M, boundary)
        ones = R @ np.full(2 ** J, 2 ** (-J / 2))
        if boundary == 'periodic':
            assert np.abs(ones - 1).max() < 1e-11
        else:
            # Truncated translates: exact only where all of them reach.
            assert ones.min() > 0 and abs(ones[M // 2] - 1) < 0.5


def test_haar_cell_averages_closed_form():
    R = DaubechiesMRA('db1').cell_average_matrix(2, 8, 'zero')
    # phi_{2,k} = 2 on [k/4, (k+1)/4): two cells of 1/8 each.
    expected = np.kron(np.eye(4), np.ones((2, 1))) * 2.0
    assert np.abs(R - expected).max() < 1e-12


# --- continuous convolution against brute force ------------------------------

def _basis(mra, j, k, x, periodic, xs, phi):
    out = np.zeros_like(x)
    L = mra.support
    for r in (range(-L - 2, L + 3) if periodic else [0]):
        out += np.interp(2 ** j * (x + r) - k, xs, phi, left=0.0, right=0.0)
    return 2 ** (j / 2) * out


@pytest.mark.parametrize('wavelet,boundary', [('db1', 'periodic'),
                                              ('db2', 'periodic'),
                                              ('db2', 'zero')])
def test_conv_layer_is_projected_continuous_convolution(wavelet, boundary):
    """Layer coefficients = <(f * g), phi_{J,n}> by quadrature on a grid."""
    mra = DaubechiesMRA(wavelet)
    xs, phi = mra.scaling_function(level=12)
    j, d, s = 2, 1, mra.shift
    J = j + d
    conv = ContinuousConv(1, 1, j, d, mra, boundary=boundary, bias=False,
                          dtype=torch.float64)
    a = torch.randn(1, 1, 2 ** j, dtype=torch.float64)
    with torch.no_grad():
        c = conv.linear(a)[0, 0].numpy()
    t = conv.weight[0, 0].detach().numpy()
    periodic = boundary == 'periodic'
    G = 12
    h = 2.0 ** -G
    x = (np.arange(2 ** G) if periodic else
         np.arange(-3 * 2 ** G, 4 * 2 ** G)) * h
    f = sum(float(a[0, 0, i]) * _basis(mra, j, i - s, x, periodic, xs, phi)
            for i in range(2 ** j))
    g = sum(t[q] * _basis(mra, J, conv.filter_first + q, x, periodic, xs,
                          phi) for q in range(len(t)))
    if periodic:
        fg = h * np.real(np.fft.ifft(np.fft.fft(f) * np.fft.fft(g)))
    else:
        full = h * fftconvolve(f, g)  # sample i <-> 2 x[0] + i h
        idx = np.round((x - 2 * x[0]) / h).astype(int)
        fg = full[idx]
    brute = np.array([h * fg @ _basis(mra, J, n - s, x, periodic, xs, phi)
                      for n in range(2 ** J)])
    assert np.abs(c - brute).max() < 3e-3 * np.abs(c).max()
    # The check can fail: a wrong beta offset is far off.
    assert np.abs(np.roll(c, 1) - brute).max() > 0.05 * np.abs(c).max()


def test_2d_layer_is_tensor_product():
    """Rank-one input and filter: the 2D layer is the outer product."""
    conv2 = ContinuousConv(1, 1, 2, 1, 'db2', dim=2, bias=False,
                           dtype=torch.float64)
    conv1 = ContinuousConv(1, 1, 2, 1, 'db2', dim=1, bias=False,
                           dtype=torch.float64)
    a1, a2 = torch.randn(4, dtype=torch.float64), torch.randn(
        4, dtype=torch.float64)
    t1, t2 = torch.randn(4, dtype=torch.float64), torch.randn(
        4, dtype=torch.float64)
    with torch.no_grad():
        conv2.weight.copy_(torch.outer(t1, t2)[None, None])
        out2 = conv2.linear(torch.outer(a1, a2)[None, None])[0, 0]
        conv1.weight.copy_(t1[None, None])
        y1 = conv1.linear(a1[None, None])[0, 0]
        conv1.weight.copy_(t2[None, None])
        y2 = conv1.linear(a2[None, None])[0, 0]
    assert torch.allclose(out2, torch.outer(y1, y2), atol=1e-13)


def test_bias_is_projected_constant():
    """In the periodic MRA a bias b renders as the constant function b."""
    conv = ContinuousConv(2, 1, 2, 1, 'db2', boundary='periodic',
                          dtype=torch.float64)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(0.7)
    c = conv(torch.randn(1, 2, 4, dtype=torch.float64))
    ren = CellAverage('db2', 3, 16, 'periodic', dtype=torch.float64)
    assert torch.allclose(ren(c), torch.full((1, 16), 0.7,
                                             dtype=torch.float64))


# --- building and rendering --------------------------------------------------

@pytest.mark.parametrize('wavelet', WAVELETS)
@pytest.mark.parametrize('dim', [1, 2])
def test_builds_and_renders(wavelet, dim):
    g = small_cgnn(wavelet, dim, dtype=torch.float32)
    z = torch.randn(2, 3)
    c = g(z)
    n = 2 ** g.levels[-1]
    assert c.shape == (2, 1) + (n,) * dim and c.dtype == torch.float32
    assert torch.isfinite(c).all() and c.abs().max() > 0
    img = g.render_module(48)(z)
    assert img.shape == (2,) + (48,) * dim and torch.isfinite(img).all()


@pytest.mark.parametrize('wavelet', ['db1', 'db2', 'db10'])
@pytest.mark.parametrize('dim', [1, 2])
@pytest.mark.parametrize('boundary', ['zero', 'periodic'])
def test_render_64_vs_256(wavelet, dim, boundary):
    """One code at 256 averaged over 4 (4x4) blocks equals it at 64."""
    g = small_cgnn(wavelet, dim, boundary=boundary)
    z = torch.randn(1, 3, dtype=torch.float64)
    with torch.no_grad():
        fine = g.render_module(256)(z)[0].numpy()
        coarse = g.render_module(64)(z)[0].numpy()
    if dim == 1:
        avg = fine.reshape(64, 4).mean(1)
    else:
        avg = fine.reshape(64, 4, 64, 4).mean((1, 3))
    assert np.abs(avg - coarse).max() < 1e-12 * np.abs(coarse).max()
    assert np.abs(coarse).max() > 0
    # Finer than 2^jL really resolves the function: not piecewise constant.
    if wavelet != 'db1':
        assert np.abs(np.diff(fine.reshape(-1)[:16])).min() > 0


def test_render_matches_pointwise_evaluation():
    """Cell averages at high resolution approach the sampled function."""
    g = small_cgnn('db2', boundary='periodic')
    mra = g.mra
    xs, phi = mra.scaling_function(level=12)
    z = torch.randn(1, 3, dtype=torch.float64)
    with torch.no_grad():
        c = g(z)[0, 0].numpy()
        img = g.render_module(1024)(z)[0].numpy()
    J = g.levels[-1]
    x = (np.arange(1024) + 0.5) / 1024
    f = sum(c[i] * _basis(mra, J, i - mra.shift, x, True, xs, phi)
            for i in range(2 ** J))
    assert np.abs(img - f).max() < 0.02 * np.abs(f).max()


def test_render_function_and_coarse_resolution():
    g = small_cgnn('db6', boundary='periodic')
    z = torch.randn(1, 3, dtype=torch.float64)
    with torch.no_grad():
        c = g(z)[0, 0]
        mod = g.render_module(8)(z)[0].numpy()
    for impl in ('numpy', 'pytorch'):
        space = odl.uniform_discr(0, 1, 8, dtype='float64', impl=impl)
        el = render(c, space, 'db6', 'periodic')
        assert el in space
        assert np.abs(np.asarray(el.asarray()) - mod).max() < 1e-13
    # The mean over [0, 1] is preserved at every resolution (periodic).
    assert abs(mod.mean() - g.render_module(3)(z)[0].mean().item()) < 1e-12
    with pytest.raises(ValueError, match='unit'):
        render(c, odl.uniform_discr(0, 2, 8), 'db6')


def test_dtype_device_and_double():
    g = small_cgnn('db6', dtype=torch.float32, device='cpu')
    assert all(p.dtype == torch.float32 for p in g.parameters())
    assert g.convs[0].beta.dtype == torch.float32
    z = torch.randn(3, 3)
    y32 = g(z)
    g.double()
    assert g.convs[0].beta.dtype == torch.float64
    # Fixed filters rebuilt from float64, not upcast from float32.
    first, beta = g.mra.conv_filter(1)
    assert torch.equal(g.convs[0].beta, torch.tensor(beta))
    y64 = g(z.double())
    assert (y64.float() - y32).abs().max() < 1e-4 * y64.abs().max()
    assert g.renderer(16).matrix0.dtype == torch.float64


def test_constructor_defaults_and_errors():
    g = CGNN()
    assert g.latent_dim == 15 and g.levels == (2, 3, 4, 5, 6, 7)
    assert g.channels == (32, 16, 8, 4, 2, 1) and g.out_shape == (1, 128)
    g2 = CGNN(dim=2, latent_dim=4)
    assert g2.levels == (2, 3, 4, 5) and g2.channels == (64, 16, 4, 1)
    with pytest.raises(ValueError, match='increasing'):
        CGNN(channels=(2, 1), levels=(3, 3))
    with pytest.raises(ValueError, match='orthogonal'):
        CGNN(wavelet='bior2.2')
    with pytest.raises(ValueError, match=r'expected \(B, 15\)'):
        g(torch.randn(2, 3))
    with pytest.raises(ValueError, match='2 axes'):
        small_cgnn().render_operator(odl.uniform_discr([0, 0], [1, 1],
                                                       (4, 4)))


# --- ODL operator ------------------------------------------------------------

def _operator(impl, dim, boundary='zero'):
    g = small_cgnn('db2', dim, boundary=boundary, nonlinearity='elu')
    shape = (40,) if dim == 1 else (12, 12)
    space = odl.uniform_discr([0] * dim, [1] * dim, shape, dtype='float64',
                              impl=impl)
    return g, g.render_operator(space)


@pytest.mark.parametrize('dim', [1, 2])
def test_operator_value(impl, dim):
    """The value; adjoint and derivative: tests/test_contracts.py."""
    g, G = _operator(impl, dim)
    assert isinstance(G, TorchOperator)
    rng = np.random.default_rng(1)
    z = G.domain.element(rng.standard_normal(3))
    with torch.no_grad():
        ref = g.render_module(G.range.shape)(as_tensor(z)[None])[0]
    assert torch.allclose(as_tensor(G(z)), ref, atol=1e-13)


def test_operator_with_odl_solver():
    """Latent fit of a rendered CGNN with ODL's BFGS reaches the data."""
    g, G = _operator('numpy', 1, boundary='periodic')
    rng = np.random.default_rng(2)
    y = G(G.domain.element(rng.standard_normal(3)))
    f = odl.functionals.L2NormSquared(G.range).translated(y) * G
    z = G.domain.zero()
    f0 = f(z)
    # At the exact solution ODL's line search raises (a float-precision
    # stall); the iterate then holds the last accepted point.
    with LineSearchStall():
        odl.solvers.bfgs_method(
            f, z, maxiter=60, line_search=odl.solvers.BacktrackingLineSearch(f))
    assert f(z) < 1e-6 * f0


# --- injectivity certificate -------------------------------------------------

def test_certificate_leaky_relu_random_filters():
    g = small_cgnn('db2', channels=(8, 4, 2, 1), levels=(1, 2, 3, 4),
                   latent_dim=4)
    cert = injectivity_certificate(g, n_points=2, seed=1)
    assert cert.verdict == 'certified' and cert.certified, str(cert)
    assert cert.fc_rank == 4 and cert.fc_min_sv > 0
    assert cert.nonlinearity_injective
    assert len(cert.layers) == 3
    for r in cert.layers:
        assert r.injective and r.filters_independent
        assert r.operator_min_sv > 1e-9 * r.operator_max_sv
    assert cert.jacobian_ranks == [4, 4]
    assert 'certified' in str(cert)


@pytest.mark.parametrize('dim', [1, 2])
def test_certificate_relu_not_certified(dim):
    g = small_cgnn('db1', dim, nonlinearity='relu')
    cert = injectivity_certificate(g, n_points=1)
    assert cert.verdict == 'not certified'
    assert not cert.nonlinearity_injective
    assert any('ReLU' in r for r in cert.reasons)
    assert 'not certified' in str(cert)


def test_certificate_duplicated_filters_not_certified():
    g = small_cgnn('db2', channels=(4, 2, 1), levels=(2, 3, 4))
    assert injectivity_certificate(g, n_points=1).certified
    with torch.no_grad():  # input channel 1 gets the filters of channel 0
        g.convs[0].weight[1] = g.convs[0].weight[0]
    cert = injectivity_certificate(g, n_points=1)
    assert cert.verdict == 'not certified'
    r = cert.layers[0]
    assert not r.filters_independent and not r.injective
    assert r.filter_min_sv < 1e-12 and r.operator_min_sv < 1e-10
    assert any('convolution 0' in s for s in cert.reasons)


class _Wiggle(torch.nn.Module):
    def __init__(self, amp):
        super().__init__()
        self.amp = amp

    def forward(self, x):
        return x + self.amp * torch.sin(x)


@pytest.mark.parametrize('act,ok', [
    (_Wiggle(0.5), True), (_Wiggle(2.0), False), (torch.nn.GELU(), False),
    (torch.nn.LeakyReLU(0.0), False), (torch.nn.Tanh(), True)])
def test_nonlinearity_injectivity(act, ok):
    assert nonlinearity_injectivity(act)[1] is ok
    g = small_cgnn('db2', nonlinearity=act, final_nonlinearity=False)
    cert = injectivity_certificate(g, n_points=1)
    assert cert.nonlinearity_injective is ok
    if not ok:
        assert cert.verdict == 'not certified'


def test_final_nonlinearity_flag():
    g = small_cgnn('db2', nonlinearity='relu', final_nonlinearity=False)
    z = torch.randn(64, 3, dtype=torch.float64)
    assert (g(z) < 0).any()  # no ReLU after the last layer
    g.final_nonlinearity = True
    assert (g(z) >= 0).all()


def test_certificate_fc_rank_and_periodic_constants():
    # Latent larger than the first layer: F cannot be injective.
    g = small_cgnn('db2', latent_dim=20, channels=(2, 1), levels=(2, 3))
    cert = injectivity_certificate(g, n_points=1)
    assert not cert.fc_injective and cert.fc_rank == 8
    assert max(cert.jacobian_ranks) <= 8 and not cert.certified
    # Periodic, decreasing channels: the constants are in the kernel.
    g = small_cgnn('db2', boundary='periodic')
    cert = injectivity_certificate(g, n_points=1)
    assert not cert.certified
    assert 'constant' in cert.layers[0].note
    # Periodic, non-decreasing channels: certified.
    g = small_cgnn('db2', boundary='periodic', channels=(1, 1, 1))
    assert injectivity_certificate(g, n_points=1).certified


# --- stability ---------------------------------------------------------------

def _heat(n, s):
    """exp(-s * periodic Laplacian): a smoothing operator of strength s."""
    lap = 2 * torch.eye(n, dtype=torch.float64) - torch.roll(
        torch.eye(n, dtype=torch.float64), 1, 0) - torch.roll(
        torch.eye(n, dtype=torch.float64), -1, 0)
    return torch.linalg.matrix_exp(-s * lap)


def test_stability_identity_and_smoothing_strength():
    g = small_cgnn('db2')
    n = g.out_shape[-1]
    est_id = stability_constant(g, None, n_pairs=32, n_local=2, steps=10)
    assert abs(est_id.constant - 1) < 1e-12
    consts = []
    for s in (0.2, 1.0):
        B = _heat(n, s)
        est = stability_constant(g, lambda x: x @ B.T, n_pairs=64,
                                 n_local=2, steps=30)
        assert est.optimised_max >= est.sampled_max
        assert est.constant >= est.ratios.max() and est.constant > 1
        assert np.isfinite(est.constant)
        # The reported pair realises the constant.
        assert abs(est.x_distance / est.y_distance - est.constant) < 1e-9 * \
            est.constant
        consts.append(est.constant)
    assert consts[1] > consts[0]
    assert 'stability constant' in str(est)
    # F constant on the range: no stability at all.
    est = stability_constant(g, lambda x: 0 * x, n_pairs=8, steps=3)
    assert est.constant == np.inf


def test_stability_linear_generator_reaches_exact_supremum():
    """G affine: C = 1 / sigma_min(F Q), Q an orthonormal basis of Im A."""
    g = small_cgnn('db2', nonlinearity='identity')
    n = g.out_shape[-1]
    B = _heat(n, 0.5)
    A = torch.autograd.functional.jacobian(
        lambda v: g(v[None]).reshape(-1), torch.zeros(3, dtype=torch.float64))
    Q, _ = torch.linalg.qr(A)
    exact = 1 / torch.linalg.svdvals(B @ Q).min().item()
    est = stability_constant(g, lambda x: x.reshape(x.shape[0], -1) @ B.T,
                             n_pairs=64, n_local=3, steps=150, lr=0.1)
    assert est.constant <= exact * (1 + 1e-9)
    assert est.constant >= 0.99 * exact
    assert est.optimised_max >= est.sampled_max


def test_stability_with_odl_operators(impl):
    """TorchOperator generator + ODL forward operator = torch equivalent."""
    g = small_cgnn('db2', boundary='periodic')
    space = odl.uniform_discr(0, 1, 32, dtype='float64', impl=impl)
    G = g.render_operator(space)
    B = _heat(32, 0.5)
    F = odl.MatrixOperator(B.numpy(), domain=space, range=space)
    est_odl = stability_constant(G, F, n_pairs=16, n_local=1, steps=5,
                                 seed=3)
    est_torch = stability_constant(G, lambda x: x @ B.T, n_pairs=16,
                                   n_local=1, steps=5, seed=3,
                                   data_weight=1 / 32)
    assert est_odl.ratios == pytest.approx(est_torch.ratios, rel=1e-10)
    assert est_odl.constant == pytest.approx(est_torch.constant, rel=1e-8)
