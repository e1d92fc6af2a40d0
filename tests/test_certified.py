"""certified: nonexpansive conv blocks, the certified learned gradient
scheme, its Lipschitz bound against random and adversarial perturbations."""
import math

import numpy as np
import pytest
import torch

from odl_genprior.nn.certified import (
    CertifiedLearnedGradient, ConvexPotentialLayer, NonexpansiveBlock,
    as_operator, conv_norm_bound, lipschitz_bound, train_certified)
from odl_genprior.problems.ellipse_ct import EllipseCT
from odl_genprior.nn.odenets import lipschitz_estimate
from odl_genprior.recon.learned import LearnedReconstructor

F64 = torch.float64


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def bench():
    return EllipseCT(size=16, num_angles=8)


def _randomize(module, seed, logit_scale=3.0):
    """Random parameters (not the initial ones): weights scaled, biases and
    offsets random, step logits anywhere in [-logit_scale, logit_scale]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if 'step_logit' in name:
                p.copy_(logit_scale * (2 * torch.rand(
                    p.shape, generator=gen, dtype=p.dtype) - 1))
            elif name.endswith('weight'):
                p.mul_(1 + torch.rand((), generator=gen, dtype=p.dtype) * 3)
            else:
                p.copy_(0.5 * r)
    return module


def _pair_ratios(f, x, scales, seed):
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        fx = f(x)
        for s in scales:
            d = s * torch.randn(x.shape, generator=gen, dtype=x.dtype)
            out.append(((f(x + d) - fx).flatten(1).norm(dim=1)
                        / d.flatten(1).norm(dim=1)).max().item())
    return max(out)


# --- the convolution norm bound ---

@pytest.mark.parametrize('cin,cout', [(2, 3), (3, 2)])
def test_conv_norm_bound_upper_and_tight(cin, cout):
    w = torch.randn(cout, cin, 3, 3, dtype=F64)
    shape = (10, 9)
    # the zero-padded convolution as a dense matrix
    mat = torch.autograd.functional.jacobian(
        lambda x: torch.nn.functional.conv2d(x, w, padding=1),
        torch.zeros((1, cin) + shape, dtype=F64)).reshape(
            cout * 90, cin * 90)
    exact = float(torch.linalg.matrix_norm(mat, ord=2))
    bound = float(conv_norm_bound(w, shape))
    assert exact <= bound * (1 + 1e-12)
    assert bound <= 1.2 * exact
    # the FFT of the padded kernel gives the same value
    spec = torch.fft.fft2(w, s=(12, 11)).permute(2, 3, 0, 1)
    assert bound == pytest.approx(
        float(torch.linalg.matrix_norm(spec, ord=2).max()), rel=1e-12)


def test_conv_norm_bound_gradient_and_errors():
    w = torch.randn(4, 2, 3, 3, dtype=F64, requires_grad=True)
    b = conv_norm_bound(w, (8, 8))
    (g,) = torch.autograd.grad(b, w)
    w2 = w.detach().clone().requires_grad_(True)
    ref = torch.linalg.matrix_norm(torch.fft.fft2(w2, s=(10, 10)).permute(
        2, 3, 0, 1), ord=2).max()
    (g2,) = torch.autograd.grad(ref, w2)
    assert torch.allclose(g, g2, atol=1e-10)
    with pytest.raises(ValueError, match='odd'):
        conv_norm_bound(torch.randn(2, 2, 2, 2), (8, 8))
    with pytest.raises(ValueError, match=r'\(C_out, C_in, k_h, k_w\)'):
        conv_norm_bound(torch.randn(2, 3, 3), (8, 8))


# --- nonexpansive layers and blocks ---

@pytest.mark.parametrize('activation', ['relu', 'tanh', 'sigmoid'])
def test_layer_nonexpansive(activation):
    layer = ConvexPotentialLayer(3, hidden=5, activation=activation).double()
    _randomize(layer, 1, logit_scale=8.0)  # steps up to ~ the bound
    x = torch.randn(6, 3, 8, 8, dtype=F64)
    assert _pair_ratios(layer, x, (1e-3, 0.1, 1.0, 10.0), 0) <= 1 + 1e-10
    est = lipschitz_estimate(layer, x, iters=30, search_steps=30, lr=0.05)
    assert est <= 1 + 1e-10
    assert est > 0.9  # and the constant 1 is nearly attained
    with torch.no_grad():
        assert float(layer.step((8, 8))) <= float(layer.max_step((8, 8)))


def test_uncapped_layer_is_caught():
    # the same tests detect a layer whose step exceeds 2 / ||W||^2
    layer = ConvexPotentialLayer(2, hidden=4).double()
    _randomize(layer, 2)
    with torch.no_grad():
        layer.step_logit.fill_(20.0)
        layer.bias.fill_(1.0)  # ReLU active: the layer is I - h W^T W
    cap = layer.max_step
    layer.max_step = lambda shape: 2.0 * cap(shape)
    x = torch.randn(4, 2, 8, 8, dtype=F64)
    assert lipschitz_estimate(layer, x, iters=30, search_steps=0) > 1.5


def test_block_nonexpansive_float32():
    block = _randomize(NonexpansiveBlock(4, hidden=6, n_layers=3), 3,
                       logit_scale=8.0)
    x = torch.randn(4, 4, 12, 12)
    assert block.lipschitz() == 1.0
    assert _pair_ratios(block, x, (1e-2, 1.0, 10.0), 1) <= 1 + 1e-5
    assert lipschitz_estimate(block, x, iters=20, search_steps=20,
                              lr=0.05) <= 1 + 1e-5


def test_layer_errors():
    layer = ConvexPotentialLayer(3, hidden=4)
    with pytest.raises(ValueError,
                       match=r'\(batch, 3, H, W\).*\(2, 2, 8, 8\)'):
        layer(torch.randn(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r'\(batch, 3, H, W\)'):
        layer(torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match='float64'):
        layer(torch.randn(2, 3, 8, 8, dtype=F64))
    with pytest.raises(TypeError, match='torch.Tensor'):
        layer(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match='odd'):
        ConvexPotentialLayer(3, kernel_size=4)
    with pytest.raises(ValueError, match='step_fraction'):
        ConvexPotentialLayer(3, step_fraction=1.0)


def test_norm_cache_follows_the_weights():
    layer = ConvexPotentialLayer(2, hidden=3)
    with torch.no_grad():
        a = float(layer.norm_bound((8, 8)))
        layer.weight.mul_(2.0)
        b = float(layer.norm_bound((8, 8)))
    assert b == pytest.approx(2 * a, rel=1e-6)


# --- the certified learned gradient scheme on CT ---

def _net(bench, seed, **kw):
    torch.manual_seed(seed)
    kw = {'n_iter': 3, 'memory': 2, 'hidden_channels': 6, **kw}
    return _randomize(CertifiedLearnedGradient(bench.operator, **kw), seed)


def test_power_norms_are_upper_bounds(bench):
    # The ray transform has nonnegative entries, so A^* A is a nonnegative
    # symmetric matrix and Collatz-Wielandt gives a certified upper bound
    # max_i (N v)_i / v_i of its norm for any positive v.
    net = CertifiedLearnedGradient(bench.operator, n_iter=1, memory=0,
                                   hidden_channels=2)
    v = torch.ones((1,) + net.image_shape)
    with torch.no_grad():
        for _ in range(300):
            w = net.gradient(v[:, None], 0.0)[:, 0]
            v = w / w.norm()
        w = net.gradient(v[:, None], 0.0)[:, 0]
    assert float(v.min()) > 0
    cw = float((w / v).max())
    assert cw <= float(net.normal_norm)
    assert cw >= float(net.normal_norm) / (1 + net.margin) * (1 - 1e-4)
    # ||y -> A^* y|| = sqrt(w_R / w_D) ||A|| in the arrays' norms
    c = (bench.operator.range.weighting.const
         / bench.operator.domain.weighting.const)
    assert float(net.data_norm) >= math.sqrt(c * cw) / net.opnorm


def _check_map_bound(bench, seed):
    """Random pairs and the adversarial estimate against the bound."""
    net = _net(bench, seed)
    bound = lipschitz_bound(net)
    assert bound == pytest.approx(
        float(net.data_norm) * float(net.step_sizes().detach().sum()),
        rel=1e-5)
    y, _ = bench.pairs(3, 'train', start=seed)
    assert _pair_ratios(net, y, (1e-3, 1e-1, 1.0, 30.0), seed) <= bound
    est = lipschitz_estimate(net, y, iters=15, search_steps=15, lr=0.05,
                             seed=seed)
    assert est <= bound * (1 + 1e-4)
    assert bound <= 10 * est, (bound, est)  # not vacuous
    return bound, est


def test_map_ratio_never_exceeds_bound(bench):
    _check_map_bound(bench, 0)


@pytest.mark.slow
@pytest.mark.parametrize('seed', range(1, 6))
def test_map_ratio_never_exceeds_bound_more_seeds(bench, seed):
    _check_map_bound(bench, seed)


def test_bound_attained_without_blocks(bench):
    # One step, blocks reduced to the identity: y -> tau A^*(y) is linear
    # with norm tau ||A^*|| = bound / (1 + margin): the bound is sharp.
    net = CertifiedLearnedGradient(bench.operator, n_iter=1, memory=0,
                                   hidden_channels=2)
    with torch.no_grad():
        net.step_logits.fill_(1.3)
        for layer in net.blocks[0].layers:
            layer.step_logit.fill_(-60.0)  # h = 0
    y, _ = bench.pairs(2, 'test')
    est = lipschitz_estimate(net, y, iters=40, search_steps=0)
    bound = lipschitz_bound(net)
    assert bound / (1 + net.margin) * (1 - 1e-3) <= est <= bound


def test_steps_stay_in_range_after_optimizer_steps(bench):
    net = _net(bench, 0)
    tau_max = 2 / float(net.normal_norm)
    opt = torch.optim.SGD(net.parameters(), lr=1e3)
    y, x = bench.pairs(2, 'train')
    for sign in (-1.0, 1.0, -1.0):
        loss = sign * (net.step_sizes().sum() + sum(
            layer.step((16, 16)) for b in net.blocks for layer in b.layers))
        loss = loss + ((net(y) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tau = net.step_sizes().detach()
        assert bool(((tau >= 0) & (tau <= tau_max)).all()), tau
        with torch.no_grad():
            for layer in (la for b in net.blocks for la in b.layers):
                assert 0 <= float(layer.step((16, 16))) <= float(
                    layer.max_step((16, 16)))
    # and the bound still holds after those extreme steps
    bound = lipschitz_bound(net)
    assert bound <= float(net.data_norm) * tau_max * net.n_iter * (1 + 1e-6)
    assert _pair_ratios(net, y, (1e-2, 1.0), 0) <= bound


def test_space_norm_bound_through_odl_operator(bench):
    net = _net(bench, 4)
    op = as_operator(net)
    ran, dom = bench.operator.range, bench.operator.domain
    assert op.domain == ran and op.range == dom
    y = bench.problem(0).data
    rng = np.random.default_rng(0)
    bound = lipschitz_bound(net, 'space')
    assert bound == pytest.approx(lipschitz_bound(net) * math.sqrt(
        dom.weighting.const / ran.weighting.const))
    x0 = op(y)
    for s in (1e-2, 1.0, 10.0):
        d = ran.element(s * rng.standard_normal(ran.shape).astype('float32'))
        assert (op(y + d) - x0).norm() / d.norm() <= bound


def test_data_errors_name_shape_and_dtype(bench):
    net = CertifiedLearnedGradient(bench.operator, n_iter=1, memory=1,
                                   hidden_channels=2)
    with pytest.raises(ValueError,
                       match=r'(?s)\(batch, 8, 25\).*got \(2, 8, 22\)'):
        net(torch.zeros(2, 8, 22))
    with pytest.raises(TypeError, match='float64'):
        net(torch.zeros(2, 8, 25, dtype=F64))
    with pytest.raises(TypeError, match='linear ODL operator'):
        CertifiedLearnedGradient(np.eye(3))
    with pytest.raises(ValueError, match='margin'):
        CertifiedLearnedGradient(bench.operator, margin=-1.0)
    with pytest.raises(TypeError, match='CertifiedLearnedGradient'):
        lipschitz_bound(torch.nn.Linear(2, 2))


def test_train_and_reconstruct(bench, tmp_path):
    torch.manual_seed(0)
    net = CertifiedLearnedGradient(bench.operator, n_iter=2, memory=1,
                                   hidden_channels=4)
    pairs = bench.pairs(4, 'train')
    with torch.no_grad():
        before = float(((net(pairs[0]) - pairs[1]) ** 2).mean())
    net = train_certified(net, pairs, out_dir=tmp_path, val_data=pairs,
                          epochs=3, batch_size=2, lr=1e-2, progress=False)
    with torch.no_grad():
        after = float(((net(pairs[0]) - pairs[1]) ** 2).mean())
    assert after < before
    assert (tmp_path / 'weights.pt').is_file()
    x = LearnedReconstructor(net)(bench.problem(0), progress=False)
    assert x.shape == (16, 16)
    with pytest.raises(ValueError, match='batch_size'):
        train_certified(net, pairs, batch_size=8)


def test_certified_scheme_of_train_unrolled(tmp_path):
    """`odl-genprior train unrolled --scheme certified` builds, trains and
    reloads the certified net; its bound still holds after loading."""
    from odl_genprior.models.unrolled import (build_unrolled, load_unrolled,
                                              train_unrolled)
    config = {'scheme': 'certified', 'n_iter': 2, 'hidden_channels': 4,
              'memory': 1, 'benchmark': {'size': 16, 'num_angles': 8}}
    train_unrolled(config, tmp_path, n_train=4, n_val=2, epochs=2,
                   batch_size=2, progress=False)
    net = load_unrolled(tmp_path)
    assert isinstance(net, CertifiedLearnedGradient)
    bound = lipschitz_bound(net)
    y = torch.randn((3,) + tuple(net.operator.range.shape))
    dy = 1e-2 * torch.randn_like(y)
    with torch.no_grad():
        dx = net(y + dy) - net(y)
    ratios = dx.flatten(1).norm(dim=1) / dy.flatten(1).norm(dim=1)
    assert 0 < float(ratios.max()) <= bound
    with pytest.raises(ValueError, match='no equivariant blocks'):
        build_unrolled(dict(config, group='C4'))


@pytest.mark.slow
def test_example_script_runs(tmp_path):
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, 'examples/certified_learned_gradient.py', '--size',
         '16', '--angles', '8', '--n-train', '4', '--n-test', '2',
         '--steps', '2', '--n-lip', '1', '--lip-iters', '2', '--lip-search',
         '2', '--certified', '2:1:4:0.5', '--landweber', '2', '--runs',
         str(tmp_path), '--quiet'], capture_output=True, text=True,
        check=True, timeout=600).stdout
    assert '| certified K=2 L=1 H=4 f=0.5 |' in out
    assert '| Landweber K=2 | 0 |' in out
