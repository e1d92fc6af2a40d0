"""The one lifted network type and objective (odl_genprior.bregman.lifted),
shared by lifted training, the PNN and lifted inversion."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior.bregman import BregmanLossY, bregman_loss
from odl_genprior.bregman.activations import HardTanh
from odl_genprior.bregman.lifted import LiftedNetwork, lifted_objective
from odl_genprior.bregman.lifted_training import (
    implicit_sgd_step, lifted_energy)
from odl_genprior.bregman.pnn import ProximalNeuralNetwork
from odl_genprior.bregman import pnn
from odl_genprior.problems import ForwardProblem
from odl_genprior.bregman import networks as bn
from odl_genprior.recon import bregman_inversion as bi

DT = torch.float64


def _moved(states, scale=0.05, seed=0):
    """Hidden and output variables moved off the forward pass, kept in the
    activations' domains by passing them through the activation."""
    g = torch.Generator().manual_seed(seed)
    return [s + scale * torch.randn(s.shape, generator=g, dtype=s.dtype)
            for s in states]


def test_dense_objective_reductions_and_zero_at_forward_pass():
    torch.manual_seed(0)
    net = LiftedNetwork([5, 7, 3], ['relu', 'soft_threshold']).double()
    x = torch.randn(6, 5, dtype=DT)
    xs = net.forward_states(x)
    assert lifted_objective(net, xs).item() == 0.0
    moved = [xs[0]] + [torch.relu(v) for v in _moved(xs[1:2])] + \
        _moved(xs[2:], seed=1)
    mean = lifted_objective(net, moved)
    assert mean > 0
    per_sample = lifted_objective(net, moved, reduction='sample')
    assert per_sample.shape == (6,) and torch.all(per_sample >= 0)
    assert torch.allclose(per_sample.mean(), mean)
    assert torch.allclose(lifted_objective(net, moved, reduction='sum'),
                          6 * mean)
    layers = lifted_objective(net, moved, reduction='layers')
    assert torch.allclose(layers.sum(), mean)
    # by hand: the Bregman loss of each layer
    by_hand = sum(bregman_loss(moved[l + 1], lin(moved[l]), act,
                               reduction='sum')
                  for l, (lin, act) in enumerate(zip(net.affine,
                                                     net.activations))) / 6
    assert torch.allclose(mean, by_hand)
    # lifted training's energy is this objective
    assert torch.allclose(lifted_energy(net, x, moved[1:-1], moved[-1]), mean)
    # per-layer weights scale each term
    w = lifted_objective(net, moved, reduction='layers', weights=[2.0, 0.5])
    assert torch.allclose(w, layers * torch.tensor([2.0, 0.5], dtype=DT))


def test_module_layers_and_gradient_is_closed_form():
    """Any torch modules as affine maps; the gradient in a layer's
    pre-activation is prox(z) - x (no activation derivative)."""
    torch.manual_seed(1)
    net = LiftedNetwork([torch.nn.Conv1d(1, 2, 3, padding=1),
                         torch.nn.Conv1d(2, 1, 3, padding=1)],
                        ['leaky_relu', 'identity']).double()
    x = torch.randn(4, 1, 9, dtype=DT)
    xs = [v.detach() for v in net.forward_states(x)]
    assert xs[1].shape == (4, 2, 9) and xs[2].shape == (4, 1, 9)
    assert lifted_objective(net, xs).item() == 0.0
    target = xs[2] + 0.1 * torch.randn_like(xs[2])
    obj = lifted_objective(net, xs[:2] + [target], reduction='sum')
    obj.backward()
    # only the last layer is off; d obj / d bias_2 = sum (z_2 - target)
    expected = (net.affine[1](xs[1]) - target).sum().detach()
    assert torch.allclose(net.affine[1].bias.grad.sum(), expected)


def test_bad_states_are_refused():
    net = LiftedNetwork([3, 2], ['relu'])
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match='needs 2 layer variables'):
        lifted_objective(net, [x])
    with pytest.raises(ValueError, match=r'x_1 has shape \(2, 5\)'):
        lifted_objective(net, [x, torch.zeros(2, 5)])
    with pytest.raises(ValueError, match='1 layers need 1 weights'):
        lifted_objective(net, net.forward_states(x), weights=[1.0, 2.0])
    with pytest.raises(TypeError, match='LiftedNetwork'):
        lifted_objective(torch.nn.Linear(3, 2), [x, x])
    with pytest.raises(ValueError, match='2 affine maps need as many'):
        LiftedNetwork([torch.nn.Linear(3, 3)] * 2, ['relu'])
    with pytest.raises(TypeError, match=r'layers\[0\] must be a size'):
        LiftedNetwork(['a'], ['relu'])


def test_checkpoints_from_before_the_rename_load():
    """State dicts saved as ``linears.*`` load into ``affine``."""
    torch.manual_seed(2)
    net = LiftedNetwork([3, 4, 2], ['relu', 'identity'])
    old = {k.replace('affine.', 'linears.'): v.clone()
           for k, v in net.state_dict().items()}
    other = LiftedNetwork([3, 4, 2], ['relu', 'identity'])
    other.load_state_dict(old)
    x = torch.randn(5, 3)
    assert torch.equal(other(x), net(x))
    assert not hasattr(other, 'linears')  # one name: affine


def test_pnn_is_a_lifted_network_with_the_one_objective():
    torch.manual_seed(3)
    net = ProximalNeuralNetwork.conv(num_layers=3, features=2, dim=1,
                                     alpha=0.3).double()
    assert isinstance(net, LiftedNetwork) and len(net) == 3
    assert all(isinstance(a, HardTanh) and a.bound == 0.3
               for a in net.activations)
    z = torch.randn(2, 1, 10, dtype=DT)
    xbar = torch.randn(2, 1, 10, dtype=DT)
    us = net.dual_variables(z)
    assert lifted_objective(net, us, context=z).item() == 0.0
    us2 = [us[0]] + [pnn.box_prox(u + 0.05 * torch.randn_like(u), 0.3)
                     for u in us[1:]]
    total, loss, breg = pnn.lifted_objective(net, z, xbar, us2,
                                             per_term=True)
    assert torch.allclose(breg, lifted_objective(net, us2, context=z))
    # the seed's terms: alpha^2 B_box(u / alpha, a / alpha), unit box
    taus = net.steps()
    seed = sum(0.09 * bregman_loss(
        us2[k + 1] / 0.3, net.pre_activation(k, us2[k], z, taus[k]) / 0.3,
        'hardtanh', reduction='sample').mean() for k in range(3))
    assert torch.allclose(breg, seed)
    assert breg > 0
    with pytest.raises(ValueError, match='context'):
        net.pre_activation(0, us[0])


def _layer_space_problem():
    """Two layers whose first range is a uniform_discr of cell volume
    1/16 (not 1): the weights matter."""
    space = odl.uniform_discr([0, 0], [1, 1], (4, 4))
    flat = odl.FlatteningOperator(space)
    rng = np.random.default_rng(0)
    W1 = odl.ScalingOperator(space, 0.8)
    W2 = odl.MatrixOperator(rng.standard_normal((5, 16)) / 4,
                            domain=flat.range, range=odl.rn(5)) * flat
    layers = [bn.NetworkLayer(W1, space.element(rng.standard_normal((4, 4))),
                              'tanh'),
              bn.NetworkLayer(W2, 0.1 * rng.standard_normal(5), 'relu')]
    return layers, space, rng


def test_odl_objective_is_the_sum_of_odl_bregman_losses():
    layers, space, rng = _layer_space_problem()
    u = space.element(rng.standard_normal((4, 4)))
    xs = bn.network_forward(layers, u)
    assert abs(bn.lifted_objective(layers, xs)) < 1e-12
    x1 = space.element(np.tanh(np.arctanh(xs[1].asarray() * 0.99)
                               + 0.2 * rng.standard_normal((4, 4))))
    x2 = xs[2].space.element(np.abs(xs[2].asarray()
                                    + 0.1 * rng.standard_normal(5)))
    ref = sum(BregmanLossY(layer.W.range, layer.activation,
                           layer.pre_activation(prev))(cur)
              for layer, prev, cur in zip(layers, [u, x1], [x1, x2]))
    got = bn.lifted_objective(layers, [u, x1, x2])
    assert got > 0 and np.isclose(got, ref, rtol=1e-10)


def test_a_network_from_lifted_training_is_inverted():
    """Train a dense LiftedNetwork by implicit SGD steps, then invert it
    with MultilayerBregmanInversion (the network itself as ``layers``)."""
    torch.manual_seed(4)
    net = LiftedNetwork([4, 8, 12], ['tanh', 'tanh']).double()
    with torch.no_grad():
        for lin in net.affine:  # expansive and well conditioned
            lin.weight.mul_(2.0)
    data = torch.rand(32, 4, dtype=DT) - 0.5
    target = torch.tanh(data @ torch.randn(4, 12, dtype=DT) / 2)
    before = [lin.weight.clone() for lin in net.affine]
    for _ in range(3):
        implicit_sgd_step(net, data, target, tau=0.5, inner_iters=2)
    assert not torch.equal(before[0], net.affine[0].weight)
    layers = bn.network_layers(net)
    N = bn.multilayer_network_operator(layers)
    u = N.domain.element(np.random.default_rng(5).uniform(-0.5, 0.5, 4))
    f = N(u)
    assert np.allclose(f.asarray(), net(torch.from_numpy(
        u.asarray())[None]).detach().numpy()[0])
    problem = ForwardProblem(N, f, u, 0.0, 'trained network')
    rec = bi.MultilayerBregmanInversion(alpha=1e-8, regulariser='l2',
                                        inner=3, niter=150, layers=net)
    x = rec(problem, progress=False)
    err = float((x - u).norm() / u.norm())
    assert err < 5e-2, err
    with pytest.raises(TypeError, match='dense LiftedNetwork'):
        bn.network_layers(LiftedNetwork(
            [torch.nn.Conv1d(1, 1, 3)], ['relu']))


def test_lifted_training_refuses_a_network_of_modules():
    net = LiftedNetwork([torch.nn.Conv1d(1, 1, 3, padding=1)], ['relu'])
    x = torch.randn(2, 1, 5)
    with pytest.raises(TypeError, match='dense LiftedNetwork'):
        implicit_sgd_step(net, x, x)
