"""Lifted Bregman training: energy, closed-form gradients, prox, steps, resume."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior.bregman.activations import (
    Identity, LeakyReLU, ReLU, SoftThreshold, Tanh)
from odl_genprior.bregman import bregman_prox
from odl_genprior.bregman.lifted_training import (
    LiftedNetwork, LiftedStep, implicit_sgd_step, lifted_energy,
    lifted_prox, train_lifted, weight_gradients)
from odl_genprior.training import seed_all

torch.set_num_threads(1)
DT = torch.float64


def _net(sizes=(5, 6, 4, 6, 3), acts=('relu', SoftThreshold(0.3),
                                      Tanh(), 'identity')):
    return LiftedNetwork(list(sizes), list(acts)).double()


def _random_layers(net, s, gen):
    """Random layer variables inside each activation's domain."""
    xs = [torch.randn(s, net.sizes[0], dtype=DT, generator=gen)]
    for l, act in enumerate(net.activations):
        x = torch.randn(s, net.sizes[l + 1], dtype=DT, generator=gen)
        if isinstance(act, ReLU):
            x = x.abs()
        elif isinstance(act, Tanh):
            x = 0.9 * torch.tanh(x)
        xs.append(x)
    return xs


def _reference_energy(net, xs):
    """``B_Psi(y, z) = 1/2|y|^2 + Psi(y) + Phi^*(z) - <y, z>`` with
    ``Phi^*(z) = <u, z> - 1/2|u|^2 - Psi(u)``, ``u = sigma(z)`` kept in the
    autograd graph: an independent formula whose autograd gradient goes
    through the activations' derivatives."""
    total = 0
    for l, (lin, act) in enumerate(zip(net.affine, net.activations)):
        y, z = xs[l + 1], lin(xs[l])
        u = act(z)
        conj = (u * z).sum() - 0.5 * (u * u).sum() - act.psi_pointwise(
            u).sum()
        total = total + 0.5 * (y * y).sum() + act.psi_pointwise(y).sum() \
            + conj - (y * z).sum()
    return total / xs[0].shape[0]


def test_energy_nonnegative_and_zero_exactly_at_forward_pass():
    gen = torch.Generator().manual_seed(1)
    net = _net()
    for _ in range(5):
        xs = _random_layers(net, 7, gen)
        per_layer = lifted_energy(net, xs[0], xs[1:-1], xs[-1],
                                  reduction='layers')
        assert torch.all(per_layer >= 0) and per_layer.sum() > 0
        ref = _reference_energy(net, xs)
        assert torch.isclose(per_layer.sum(), ref, rtol=1e-10, atol=1e-12)
        fwd = net.forward_states(xs[0])
        assert lifted_energy(net, xs[0], fwd[1:-1], fwd[-1]).item() == 0.0
        # Moving one hidden layer off the forward pass makes it positive.
        moved = [f.clone() for f in fwd]
        moved[2] = 0.9 * torch.tanh(moved[2] + 0.1)
        assert lifted_energy(net, xs[0], moved[1:-1], moved[-1]) > 0


def test_weight_gradients_match_autograd_of_reference_energy():
    gen = torch.Generator().manual_seed(2)
    net = _net()
    xs = _random_layers(net, 9, gen)
    closed = weight_gradients(net, xs[0], xs[1:-1], xs[-1])
    net.zero_grad()
    _reference_energy(net, xs).backward()
    for (gw, gb), lin in zip(closed, net.affine):
        assert torch.allclose(gw, lin.weight.grad, rtol=1e-9, atol=1e-11)
        assert torch.allclose(gb, lin.bias.grad, rtol=1e-9, atol=1e-11)
    # and a finite difference of lifted_energy in one weight direction
    lin = net.affine[2]
    d = torch.randn(lin.weight.shape, dtype=DT, generator=gen)
    eps = 1e-6
    with torch.no_grad():
        lin.weight += eps * d
        ep = lifted_energy(net, xs[0], xs[1:-1], xs[-1])
        lin.weight -= 2 * eps * d
        em = lifted_energy(net, xs[0], xs[1:-1], xs[-1])
        lin.weight += eps * d
    fd = (ep - em) / (2 * eps)
    assert torch.isclose(fd, (closed[2][0] * d).sum(), rtol=1e-5)


@pytest.mark.parametrize('act', [ReLU(), SoftThreshold(0.4), Identity(),
                                 LeakyReLU(0.2), Tanh()],
                         ids=lambda a: a.name)
def test_lifted_prox_is_the_brute_force_minimiser(act):
    gen = torch.Generator().manual_seed(3)
    v = 3 * torch.randn(20, dtype=DT, generator=gen)
    mu = 0.1 + 2 * torch.rand(20, dtype=DT, generator=gen)
    grid = torch.linspace(-6, 6, 120001, dtype=DT)
    lo, hi = (-0.99999, 0.99999) if isinstance(act, Tanh) else (-6, 6)
    grid = grid[(grid >= lo) & (grid <= hi)]
    # 1/2 (u - v)^2 + mu (1/2 u^2 + psi(u)), elementwise over the grid
    obj = 0.5 * (grid[None] - v[:, None]) ** 2 + mu[:, None] * (
        0.5 * grid[None] ** 2 + act.psi_pointwise(grid)[None])
    brute = grid[obj.argmin(1)]
    closed = lifted_prox(v, mu, act)
    assert torch.allclose(closed, brute, atol=1e-4)
    # the same map as the prox of mu B_Psi(., z) at v - mu z
    z = torch.randn(20, dtype=DT, generator=gen)
    assert torch.allclose(bregman_prox(v - mu * z, z, mu, act), closed)


def test_identity_activation_odl_side():
    space = odl.rn(3)
    x = space.element([-1.0, 0.5, 2.0])
    act = Identity()
    assert np.array_equal(act.operator(space)(x).asarray(), x.asarray())
    assert act.psi(space)(x) == 0
    assert act.psi_conj(space)(space.zero()) == 0


@pytest.mark.parametrize('w_step', ['metric', 'lipschitz'])
def test_implicit_sgd_step_decreases_the_batch_objective(w_step):
    seed_all(4)
    net = _net(acts=('relu', SoftThreshold(0.05), 'relu', 'identity'))
    x = torch.rand(16, 5, dtype=DT)
    y = torch.randn(16, 3, dtype=DT)
    before = [p.clone() for p in net.parameters()]
    info = implicit_sgd_step(net, x, y, tau=0.5, inner_iters=6,
                             w_step=w_step, trace=True)
    objs = [info['energy_start']] + info['objectives']
    assert all(b <= a + 1e-12 for a, b in zip(objs, objs[1:])), objs
    assert info['objective'] < 0.95 * info['energy_start']
    assert info['energy'] <= info['objective']
    # the parameters moved, and the network's plain loss went down too
    assert any(not torch.equal(a, b) for a, b in zip(before,
                                                     net.parameters()))
    with torch.no_grad():
        fwd = net.forward_states(x)
        e_new = lifted_energy(net, x, fwd[1:-1], y)
    assert e_new < info['energy_start']


def _tiny_denoising(n, gen):
    """Clean signals: non-negative combinations of 3 of 4 smooth atoms."""
    t = torch.linspace(0, 1, 12, dtype=DT)
    atoms = torch.stack([torch.exp(-((t - c) / 0.15) ** 2)
                         for c in (0.2, 0.4, 0.6, 0.8)])
    coef = torch.rand(n, 4, dtype=DT, generator=gen)
    clean = coef @ atoms
    noisy = clean + 0.2 * torch.randn(clean.shape, dtype=DT, generator=gen)
    return noisy, clean


def _tiny_net():
    seed_all(0)
    return LiftedNetwork([12, 12, 12, 12],
                         ['relu', SoftThreshold(0.01), 'identity']).double()


def test_a_few_epochs_reduce_the_test_error():
    gen = torch.Generator().manual_seed(5)
    train_data = _tiny_denoising(100, gen)
    xt, yt = _tiny_denoising(200, gen)
    net = _tiny_net()
    with torch.no_grad():
        err0 = (net(xt) - yt).pow(2).mean().item()
    train_lifted(net, train_data, out_dir=None, epochs=4, batch_size=20,
                 tau=2.0, inner_iters=3, progress=False)
    with torch.no_grad():
        err = (net(xt) - yt).pow(2).mean().item()
    noise_err = (xt - yt).pow(2).mean().item()
    assert err < 0.1 * err0, (err0, err)
    assert err < 0.6 * noise_err, (noise_err, err)  # it denoises


class _Kill(Exception):
    """Raised by a callback to interrupt training mid-run."""


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    gen = torch.Generator().manual_seed(6)
    data = _tiny_denoising(60, gen)
    kw = dict(epochs=3, batch_size=20, tau=1.0, inner_iters=2,
              checkpoint_every=2, progress=False)
    full = _tiny_net()
    train_lifted(full, data, out_dir=tmp_path / 'full', **kw)

    def kill(info):
        if info['step'] == 5:  # after the checkpoint of step 4
            raise _Kill

    part = _tiny_net()
    with pytest.raises(_Kill):
        train_lifted(part, data, out_dir=tmp_path / 'part', callback=kill,
                     **kw)
    resumed = _tiny_net()  # a fresh process: fresh weights, then resume
    r = train_lifted(resumed, data, out_dir=tmp_path / 'part', **kw)
    assert r.resumed_from == 4 and r.step == 9
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    # a different lifted setting is refused, not silently mixed
    with pytest.raises(ValueError, match='another configuration'):
        train_lifted(_tiny_net(), data, out_dir=tmp_path / 'part',
                     **{**kw, 'tau': 2.0})


def test_bad_inputs_give_clear_errors():
    net = _net()
    x = torch.rand(4, 5, dtype=DT)
    with pytest.raises(ValueError, match=r'shape \(batch, 3\)'):
        LiftedStep()(net, x, torch.rand(4, 2, dtype=DT))
    with pytest.raises(ValueError, match='3 hidden layer'):
        lifted_energy(net, x, [], torch.rand(4, 3, dtype=DT))
    with pytest.raises(TypeError, match='dtype'):
        LiftedStep()(net, x.float(), torch.rand(4, 3))
    with pytest.raises(ValueError, match='w_step'):
        LiftedStep(w_step='adam')
    with pytest.raises(ValueError, match='4 activations'):
        LiftedNetwork([2, 2, 2, 2, 2], ['relu'])
