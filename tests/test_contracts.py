"""Contract tests over a registry of every operator and functional the
package defines or wraps (in the style of deepinv's tests/test_physics.py).

`OPERATORS` maps a name to an `Entry`: a factory ``make(impl)`` returning a
small ODL `Operator` (or `Functional`) on a NumPy or pytorch space, whether it
is linear, and the tolerances it meets (float32 entries, e.g. ASTRA's ray
transform, get looser ones). Every entry goes through the same checks:

(a) the adjoint of the derivative, ``<D(x) h, w>_range = <h, D(x)^* w>_dom``
    in ODL's (weighted) inner products; for linear operators ``op.adjoint``;
(b) central finite differences against ``D(x) h``, with second-order error
    decay between ``eps`` and ``eps / 10``;
(c) the output is an element of ``op.range``, with its dtype and device;
(d) functionals: the gradient against finite differences, and the proximal
    map against its optimality condition.

A new operator gets all of them by one line in `OPERATORS`.
"""
import dataclasses
import functools
import math
from typing import Callable, Optional

import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator, diagnostics, problems
from odl_genprior.problems import htc2022
from odl_genprior.bregman.activations import (LeakyReLUPsi, LeakyReLUPsiConvexConj,
                                      TanhPsi, TanhPsiConvexConj,
                                      get_activation)
from odl_genprior.bregman import BregmanLoss, BregmanLossY, BregmanLossZ
from odl_genprior.bridge import OperatorLayer, to_numpy

IMPLS = ('numpy', 'pytorch')
# The device axis: 'cuda' is a pytorch space on the GPU, for the entries
# whose factories build on `img`, `rn` or `act_space` and move their
# modules with `dev` (present only where CUDA is).
CUDA = ('cuda',) if torch.cuda.is_available() else ()
WITH_CUDA = IMPLS + CUDA
NUMPY = ('numpy',)
F64 = torch.float64

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registry entry.

    make : impl -> Operator (seed torch inside for random weights)
    linear : the operator is linear (then ``op.adjoint`` is checked too)
    rtol : relative tolerance of the adjoint identity
    fd_rtol : relative error of the central difference at the smaller eps
    order2 : require second-order decay (False: float32, or kinks)
    eps : the two central-difference steps
    impls : the backends the entry supports
    point : (op, rng) -> x, where it is evaluated (default: Gaussian)
    direction : (op, rng) -> h (default: Gaussian)
    differentiable : False for functionals without gradient (prox only)
    functional : a `Functional` (then check (d) applies)
    """
    make: Callable
    linear: bool = False
    rtol: float = 1e-10
    fd_rtol: float = 1e-4
    order2: bool = True
    eps: tuple = (1e-2, 1e-3)
    impls: tuple = IMPLS
    point: Optional[Callable] = None
    direction: Optional[Callable] = None
    differentiable: bool = True
    functional: bool = False


# --- random elements ---------------------------------------------------------

def noise(space, rng, scale=1.0):
    """A seeded Gaussian element of ``space`` (a float for a field)."""
    if isinstance(space, odl.Field):
        return float(scale * rng.standard_normal())
    if isinstance(space, odl.ProductSpace):
        return space.element([noise(s, rng, scale) for s in space])
    arr = scale * rng.standard_normal(space.shape)
    return space.element(arr.astype(space.dtype_identifier))


def away_from_kinks(space, rng, scale=2.0):
    """Gaussian values with ``|x| >= 0.3`` (kinks of activations at 0)."""
    arr = scale * rng.standard_normal(space.shape)
    arr = np.sign(arr) * (0.3 + np.abs(arr))
    return space.element(arr.astype(space.dtype_identifier))


def inside_unit_interval(space, rng):
    """Values in ``(-0.8, 0.8)``, inside the domain of the tanh ``Psi``."""
    arr = 0.8 * np.tanh(to_numpy(away_from_kinks(space, rng)))
    return space.element(arr.astype(space.dtype_identifier))


def _point(op, rng):
    return noise(op.domain, rng)


def _direction(op, rng):
    return noise(op.domain, rng)


# --- factories ---------------------------------------------------------------

def on(impl):
    """The space options of ``impl`` ('cuda': pytorch on the GPU)."""
    if impl == 'cuda':
        return {'impl': 'pytorch', 'device': 'cuda:0'}
    return {'impl': impl}


def dev(impl):
    """Where a module of ``impl``'s spaces must live."""
    return 'cuda:0' if impl == 'cuda' else 'cpu'


def img(impl, n=16, dtype='float64'):
    return odl.uniform_discr([0, 0], [1, 1], (n, n), dtype=dtype, **on(impl))


def rn(impl, n, dtype='float64'):
    return odl.rn(n, dtype=dtype, **on(impl))


def conv_decoder(impl):
    from odl_genprior.generators import ConvDecoder
    torch.manual_seed(1)
    dec = ConvDecoder(latent_dim=6, size=16, width=16).double().eval()
    # Perturbed BatchNorm statistics: eval mode is then not the identity.
    for m in dec.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return TorchOperator(dec.to(dev(impl)), rn(impl, 6), img(impl))


def mlp_decoder(impl):
    from odl_genprior.generators import MLPDecoder
    from odl_genprior.recon.latent import generator_operator
    torch.manual_seed(1)
    dec = MLPDecoder(6, (16, 16), hidden=(32,)).double().to(dev(impl))
    return generator_operator(dec, img(impl), latent_dim=6)


def cgnn(impl, dim):
    from odl_genprior.generators.cgnn import CGNN
    torch.manual_seed(0)
    kw = (dict(channels=(4, 2, 1), levels=(2, 3, 4)) if dim == 1
          else dict(channels=(4, 1), levels=(1, 2)))
    g = CGNN(latent_dim=3, wavelet='db2', dim=dim, dtype=F64,
             nonlinearity='elu', **kw)
    shape = (40,) if dim == 1 else (12, 12)
    return g.render_operator(odl.uniform_discr(
        [0] * dim, [1] * dim, shape, dtype='float64', impl=impl))


def signal_decoder(impl, which):
    from odl_genprior.generators.cgnn import CGNN
    from odl_genprior.generators.signals1d import (CGNNDecoder, ConvDecoder1d,
                                                   signal_space)
    torch.manual_seed(0)
    if which == 'cgnn':
        dec = CGNNDecoder(CGNN(latent_dim=3, channels=(4, 2, 1),
                               levels=(2, 3, 4), dtype=F64), 64)
    else:
        dec = ConvDecoder1d(latent_dim=3, size=64, width=8).double()
    return TorchOperator(dec, rn(impl, 3),
                         signal_space(64, dtype='float64', impl=impl))


def blur1d(impl):
    from odl_genprior.generators.signals1d import blur_operator, signal_space
    return blur_operator(signal_space(37, dtype='float64', impl=impl))


def operator_layer_round_trip(impl):
    """ODL's ray transform through `OperatorLayer` and back: the adjoint of
    the result is the layer's backward, rescaled for both weightings (which
    differ). (Not a MatrixOperator: ODL's ignores a weighted domain.)"""
    A = problems.ct(size=16, num_angles=8, impl=impl).operator
    return TorchOperator(OperatorLayer(A), A.domain, A.range,
                         in_shape=A.domain.shape, linear=True)


def wavelet(impl, discretized, pad_mode, nlevels):
    from odl_genprior.recon import WaveletL1
    space = (odl.uniform_discr([-1, -1], [1, 1], (28, 28), dtype='float64',
                               impl=impl) if discretized else
             odl.tensor_space((28, 28), dtype='float64', impl=impl))
    return WaveletL1(pad_mode=pad_mode, nlevels=nlevels).wavelet_operator(
        space)


@functools.lru_cache(maxsize=None)
def _ct_bench():
    from odl_genprior.problems.ellipse_ct import EllipseCT
    return EllipseCT(size=16, num_angles=8)


def certified(impl):
    from odl_genprior.nn.certified import CertifiedLearnedGradient, as_operator
    torch.manual_seed(5)
    net = CertifiedLearnedGradient(_ct_bench().operator, n_iter=3, memory=2,
                                   hidden_channels=6)
    with torch.no_grad():  # away from the initial (near-zero) parameters
        for name, p in net.named_parameters():
            if 'step_logit' in name:
                p.uniform_(-3.0, 3.0)
            elif not name.endswith('weight'):
                p.normal_(0.0, 0.5)
    return as_operator(net)


def odenet(impl, which, dtype='float64'):
    from odl_genprior.nn.odenets import (FeedForwardNet, HamiltonianNet, RKNet,
                                      as_operator)
    torch.manual_seed(3)
    dt = getattr(torch, dtype)
    net = {'rk4': lambda: RKNet(3, 4, method='rk4', steps='free', dtype=dt),
           'antisymmetric': lambda: RKNet(3, 4, field='antisymmetric',
                                          method='heun', dtype=F64),
           'gradient': lambda: RKNet(3, 4, field='gradient', hidden=5,
                                     dtype=F64),
           'hamiltonian': lambda: HamiltonianNet(2, 4, dtype=F64),
           'feedforward': lambda: FeedForwardNet(3, 3, dtype=F64)}[which]()
    d = 4 if which == 'hamiltonian' else 3
    return as_operator(net.to(dev(impl)), rn(impl, d, dtype))


def unrolled(impl, cls):
    from odl_genprior.nn import unrolled as u
    space = img(impl, 8)
    torch.manual_seed(0)
    net = getattr(u, cls)(odl.IdentityOperator(space), n_iter=2,
                          hidden_channels=4, opnorm=1.0).double()
    return TorchOperator(net.to(dev(impl)), space, space)


def pnn(impl):
    from odl_genprior.bregman.pnn import ProximalNeuralNetwork, pnn_operator
    torch.manual_seed(0)
    net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=2,
                                     alpha=0.2).double()
    return pnn_operator(net.to(dev(impl)), img(impl, 8))


def equivariant(impl, cls):
    from odl_genprior.nn import equivariant as eq
    torch.manual_seed(0)
    net = getattr(eq, cls)(1, 1, hidden_channels=4, group='C4').double()
    space = odl.uniform_discr([-1, -1], [1, 1], (12, 12), dtype='float64',
                              impl=impl)
    return TorchOperator(net, space, space, in_shape=(1, 1, 12, 12))


def learned_svd(impl):
    from odl_genprior.recon.learned_svd import LearnedSVD
    from odl_genprior.models.learned_svd import LearnedSVDNet
    A = problems.ray_transform(problems.image_space(8), 4)
    torch.manual_seed(0)
    net = LearnedSVDNet((8, 8), A.range.shape, latent_dim=4, hidden=(16,))
    return LearnedSVD(net).as_operator(A)


def bregman_inversion_net(impl, multilayer):
    from odl_genprior.recon.bregman_inversion import multilayer_problem
    from odl_genprior.bregman.networks import network_operator
    if multilayer:
        return multilayer_problem([4, 6, 5], activations='tanh',
                                  seed=1).operator
    W = odl.MatrixOperator(np.random.default_rng(2).standard_normal((5, 4)))
    return network_operator(W, np.full(5, 0.1), 'tanh')


def lifted_network_operator(impl):
    """A dense LiftedNetwork (the lifted training type) as ODL layers."""
    from odl_genprior.bregman.lifted import LiftedNetwork
    from odl_genprior.bregman.networks import (multilayer_network_operator,
                                               network_layers)
    torch.manual_seed(5)
    net = LiftedNetwork([4, 6, 3], ['tanh', 'leaky_relu'])
    return multilayer_network_operator(network_layers(net))


def least_squares_fit(impl):
    """NetworkLeastSquares' objective: 1/2 ||sigma(W u + b) - f||^2."""
    from odl_genprior.bregman.networks import NetworkLayer
    rng = np.random.default_rng(3)
    W = odl.MatrixOperator(rng.standard_normal((6, 4)))
    N = NetworkLayer(W, W.range.element(0.1 * rng.standard_normal(6)),
                     'tanh').operator()
    f = W.range.element(0.5 * rng.standard_normal(6))
    return (0.5 * odl.functionals.L2NormSquared(W.range).translated(f)) * N


def phase_retrieval(impl, complex_matrix):
    return problems.phase_retrieval(30, size=12, seed=3, impl=impl,
                                    complex_matrix=complex_matrix).operator


def wirtinger_loss(impl):
    from odl_genprior.recon.phase_retrieval import _WirtingerLoss
    p = problems.phase_retrieval(30, size=12, seed=3, impl=impl)
    return _WirtingerLoss(p.operator, p.data, 1 / math.sqrt(30), None)


def htc_ray_transform(impl):
    space = htc2022.htc2022_space(16)
    return htc2022.htc2022_ray_transform(space, np.arange(0, 90.5, 15.0),
                                         det_binning=8)


def act_space(impl):
    # A weighted space (cell volume 1/6): integrals carry the weight.
    return odl.uniform_discr([0, 0], [1, 2], (3, 4), dtype='float64',
                             **on(impl))


ACTS = {'relu': {}, 'soft_threshold': {'alpha': 0.7}, 'tanh': {},
        'hardtanh': {}, 'leaky_relu': {'slope': 0.2}}
PSI = {'tanh': lambda s: TanhPsi(s),
       'leaky_relu': lambda s: LeakyReLUPsi(s, 0.2)}


def _act(name):
    return get_activation(name, **ACTS[name])


def _bregman_y_point(act):
    """A point ``y`` in dom Psi (a prox output), away from its boundary."""
    def point(op, rng):
        y = _act(act).operator(op.domain)(noise(op.domain, rng))
        if act == 'tanh':
            y = 0.8 * y
        return y
    return point


def _bregman_pair_point(act):
    def point(op, rng):
        space = op.domain[0]
        return op.domain.element([_bregman_y_point(act)(
            BregmanLossZ(space, _act(act), space.zero()), rng),
            away_from_kinks(space, rng, 2.5)])
    return point


def _bregman_pair_direction(op, rng):
    # Keeps y + t d in the interior of dom Psi.
    return op.domain.element([noise(op.domain[0], rng, 0.1),
                              noise(op.domain[1], rng)])


def bregman_z(impl, act):
    space = act_space(impl)
    y = _bregman_y_point(act)(BregmanLossZ(space, _act(act), space.zero()),
                              np.random.default_rng(5))
    return BregmanLossZ(space, _act(act), y)


def bregman_y(impl, act):
    space = act_space(impl)
    return BregmanLossY(space, _act(act), away_from_kinks(
        space, np.random.default_rng(6)))


# --- the registry ------------------------------------------------------------

# float32 (ASTRA, float32 networks); measured adjoint errors ~1e-7.
LOOSE32 = dict(rtol=1e-4, fd_rtol=1e-3, order2=False)
KINKS = dict(eps=(1e-5, 1e-6), order2=False, fd_rtol=1e-5)  # ReLU, clip
ACT_POINT = dict(point=lambda op, rng: away_from_kinks(op.domain, rng),
                 direction=lambda op, rng: noise(op.domain, rng, 0.5))
TANH_POINT = dict(point=lambda op, rng: inside_unit_interval(op.domain, rng),
                  direction=lambda op, rng: noise(op.domain, rng, 0.5))

OPERATORS = {
    # generators (TorchOperator on each family)
    'conv_decoder': Entry(conv_decoder, impls=WITH_CUDA, **KINKS),  # ReLU
    'mlp_decoder': Entry(mlp_decoder, impls=WITH_CUDA),
    'cgnn_1d': Entry(functools.partial(cgnn, dim=1)),
    'cgnn_2d': Entry(functools.partial(cgnn, dim=2)),
    'cgnn_decoder_1d': Entry(functools.partial(signal_decoder,
                                               which='cgnn')),
    'conv_decoder_1d': Entry(functools.partial(signal_decoder,
                                               which='conv')),
    'blur_1d': Entry(blur1d, linear=True, rtol=1e-12),
    'operator_layer_round_trip': Entry(operator_layer_round_trip,
                                       linear=True, **LOOSE32),
    # problems.py forward operators
    'ct_parallel': Entry(lambda impl: problems.ct(
        size=16, num_angles=8, impl=impl).operator, linear=True, **LOOSE32),
    'ct_fan': Entry(lambda impl: problems.ct(
        size=16, num_angles=8, impl=impl, geometry='fan').operator,
        linear=True, **LOOSE32),
    'compressed_sensing': Entry(lambda impl: problems.compressed_sensing(
        30, size=8, impl=impl, dtype='float64').operator, linear=True),
    'deblurring': Entry(lambda impl: problems.deblurring(
        size=16, impl=impl).operator, linear=True, **LOOSE32),
    'inpainting': Entry(lambda impl: problems.inpainting(
        size=16, impl=impl).operator, linear=True, **LOOSE32),
    'denoising': Entry(lambda impl: problems.denoising(
        size=16, impl=impl).operator, linear=True, **LOOSE32),
    'phase_retrieval_real': Entry(functools.partial(
        phase_retrieval, complex_matrix=False)),
    'phase_retrieval_complex': Entry(functools.partial(
        phase_retrieval, complex_matrix=True)),
    'htc2022_ray_transform': Entry(htc_ray_transform, linear=True,
                                   impls=NUMPY, **LOOSE32),
    # recon/classical.py
    **{f'wavelet_{"disc" if d else "tensor"}_{pad}': Entry(
        functools.partial(wavelet, discretized=d, pad_mode=pad,
                          nlevels=lev), linear=True)
       for d in (True, False)
       for pad, lev in (('constant', None), ('pywt_periodic', 2))},
    # learned reconstruction networks as operators
    'certified_as_operator': Entry(certified, impls=NUMPY, rtol=1e-4,
                                   fd_rtol=2e-2, order2=False),
    **{f'odenet_{w}': Entry(functools.partial(odenet, which=w),
                            impls=WITH_CUDA)
       for w in ('rk4', 'antisymmetric', 'gradient', 'hamiltonian',
                 'feedforward')},
    'unrolled_lfb': Entry(functools.partial(
        unrolled, cls='LearnedForwardBackward'), impls=WITH_CUDA, **KINKS),
    'unrolled_lgd': Entry(functools.partial(
        unrolled, cls='LearnedGradientDescent'), impls=WITH_CUDA, **KINKS),
    'unrolled_lpd': Entry(functools.partial(
        unrolled, cls='LearnedPrimalDual'), impls=WITH_CUDA, **KINKS),
    # A float32 network (the dtype networks train in): smooth, so the
    # central difference is checkable above float32 round-off.
    'odenet_rk4_float32': Entry(functools.partial(
        odenet, which='rk4', dtype='float32'), impls=WITH_CUDA, rtol=1e-4,
        fd_rtol=1e-3, order2=False, eps=(3e-2, 1e-2)),
    'pnn': Entry(pnn, impls=WITH_CUDA, **KINKS),
    'equivariant_cnn': Entry(functools.partial(
        equivariant, cls='EquivariantCNN'), **KINKS),
    'equivariant_block': Entry(functools.partial(
        equivariant, cls='EquivariantBlock'), **KINKS),
    'learned_svd': Entry(learned_svd, impls=NUMPY, rtol=1e-4, fd_rtol=2e-2,
                         order2=False),
    # recon/bregman_inversion.py
    'network_operator': Entry(functools.partial(
        bregman_inversion_net, multilayer=False), impls=NUMPY),
    'multilayer_network_operator': Entry(functools.partial(
        bregman_inversion_net, multilayer=True), impls=NUMPY),
    'lifted_network_operator': Entry(lifted_network_operator, impls=NUMPY),
    'network_least_squares_fit': Entry(least_squares_fit, impls=NUMPY,
                                       functional=True),
    'wirtinger_loss': Entry(wirtinger_loss, functional=True),
    # activations.py: functionals, proximal and gradient operators
    'tanh_psi': Entry(lambda impl: TanhPsi(act_space(impl)), functional=True,
                      impls=WITH_CUDA, **TANH_POINT),
    'tanh_psi_conj': Entry(lambda impl: TanhPsiConvexConj(act_space(impl)),
                           functional=True, impls=WITH_CUDA, **ACT_POINT),
    'leaky_relu_psi': Entry(lambda impl: LeakyReLUPsi(act_space(impl), 0.2),
                            functional=True, impls=WITH_CUDA, **ACT_POINT),
    'leaky_relu_psi_conj': Entry(
        lambda impl: LeakyReLUPsiConvexConj(act_space(impl), 0.2),
        differentiable=False, functional=True,
        point=lambda op, rng: op.domain.element(
            -0.3 - np.abs(rng.standard_normal(op.domain.shape)))),
    **{f'{a}_psi_prox_{s}': Entry(
        lambda impl, a=a, s=s: PSI[a](act_space(impl)).proximal(s),
        **ACT_POINT)
       for a in PSI for s in (0.5, 1.0, 2.0)},
    'tanh_psi_gradient': Entry(
        lambda impl: TanhPsi(act_space(impl)).gradient, **TANH_POINT),
    'tanh_psi_conj_gradient': Entry(
        lambda impl: TanhPsiConvexConj(act_space(impl)).gradient,
        **ACT_POINT),
    'leaky_relu_psi_gradient': Entry(
        lambda impl: LeakyReLUPsi(act_space(impl), 0.2).gradient,
        **ACT_POINT),
    # bregman.py
    **{f'bregman_z_{a}': Entry(functools.partial(bregman_z, act=a),
                               functional=True, **ACT_POINT)
       for a in ACTS},
    **{f'bregman_y_{a}': Entry(functools.partial(bregman_y, act=a),
                               point=_bregman_y_point(a), functional=True,
                               direction=lambda op, rng: noise(
                                   op.domain, rng, 0.1))
       for a in PSI},
    **{f'bregman_{a}': Entry(lambda impl, a=a: BregmanLoss(act_space(impl),
                                                           _act(a)),
                             point=_bregman_pair_point(a), functional=True,
                             direction=_bregman_pair_direction)
       for a in ('tanh', 'leaky_relu', 'soft_threshold')},
}


# --- helpers -----------------------------------------------------------------

def cases(pred=lambda e: True):
    """``pytest.param(name, impl)`` for the entries satisfying ``pred``."""
    return [pytest.param(name, impl, id=f'{name}-{impl}')
            for name, e in OPERATORS.items() if pred(e)
            for impl in e.impls]


def build(name, impl, seed=0):
    entry = OPERATORS[name]
    op = entry.make(impl)
    rng = np.random.default_rng(seed)
    x = (entry.point or _point)(op, rng)
    h = (entry.direction or _direction)(op, rng)
    return entry, op, x, h, rng


def is_functional(op):
    return isinstance(op, odl.functionals.Functional)


def has_proximal(op):
    try:
        op.proximal
    except NotImplementedError:
        return False
    return True


def has_gradient(op):
    try:
        op.gradient
    except NotImplementedError:
        return False
    return True


def assert_element_of(y, space):
    """``y`` is an element of ``space``, with its dtype (and device)."""
    diagnostics.check_element_of(y, space)


def assert_adjoint(A, h, w, rtol, what):
    diagnostics.check_adjoint(A, rtol=rtol, h=h, w=w, what=what)


# --- the contracts -----------------------------------------------------------

@pytest.mark.parametrize('name, impl',
                         cases(lambda e: e.differentiable))
def test_adjoint_of_derivative(name, impl):
    """<D(x) h, w>_range = <h, D(x)^* w>_domain, weighted inner products."""
    entry, op, x, h, rng = build(name, impl)
    w = noise(op.range, rng)
    d = op.derivative(x)
    assert d.is_linear
    assert_adjoint(d, h, w, entry.rtol, f'{name}: derivative')
    assert_element_of(d.adjoint(w), op.domain)


@pytest.mark.parametrize('name, impl', cases(lambda e: e.linear))
def test_adjoint_of_linear_operator(name, impl):
    entry, op, x, h, rng = build(name, impl)
    assert op.is_linear
    assert_adjoint(op, h, noise(op.range, rng), entry.rtol, name)


@pytest.mark.parametrize('name, impl',
                         cases(lambda e: e.differentiable))
def test_derivative_central_finite_difference(name, impl):
    entry, op, x, h, _ = build(name, impl)
    errors = diagnostics.derivative_errors(op, x, h, entry.eps)
    assert errors[1] < entry.fd_rtol, (name, errors)
    if entry.order2 and not entry.linear:
        # Second order: the error falls like eps^2 (down to round-off).
        assert errors[1] < max(errors[0] / 30, 1e-10), (name, errors)


@pytest.mark.parametrize('name, impl', cases())
def test_output_in_range_with_dtype_and_device(name, impl):
    entry, op, x, h, _ = build(name, impl)
    assert_element_of(op(x), op.range)
    if entry.differentiable:
        assert_element_of(op.derivative(x)(h), op.range)


@pytest.mark.parametrize('name, impl', cases(lambda e: e.functional))
def test_functional_gradient_and_proximal(name, impl):
    """Functionals: grad f(x).h against central differences of f, and
    p = prox_{sigma f}(x) optimal: (x - p) / sigma = grad f(p), else no
    nearby point does better."""
    entry, f, x, h, rng = build(name, impl)
    assert is_functional(f)
    if entry.differentiable:
        g = f.gradient(x)
        assert_element_of(g, f.domain)
        exact = g.inner(h)
        eps = entry.eps[1]
        fd = (f(x + eps * h) - f(x - eps * h)) / (2 * eps)
        assert abs(fd - exact) <= entry.fd_rtol * max(abs(exact), 1e-3), (
            name, fd, exact)
    if not has_proximal(f):
        return
    for sigma in (0.5, 2.0):
        z = noise(f.domain, rng, 2.0)
        p = f.proximal(sigma)(z)
        assert_element_of(p, f.domain)
        if has_gradient(f) and entry.differentiable:
            r = (z - p) / sigma - f.gradient(p)
            assert r.norm() <= 1e-8 * max(1.0, float(z.norm())), name
        obj = lambda v: 0.5 * (v - z).inner(v - z) + sigma * f(v)  # noqa
        for _ in range(3):
            v = p + 1e-3 * noise(f.domain, rng)
            assert obj(p) <= obj(v) + 1e-12, name
