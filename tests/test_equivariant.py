"""Equivariant CNNs: exact C4/D4 equivariance, measured C8 error, bridge."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior.bridge import TorchOperator
from odl_genprior.nn.equivariant import (EquivariantBlock, EquivariantCNN,
                                      group_order, rotate,
                                      rotation_equivariance_error)


def smooth_images(batch, channels, size, seed=0):
    """Random images low-passed by a Gaussian (interpolation-friendly)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch * channels, 1, size, size, generator=g)
    t = torch.arange(-6, 7.)
    k = torch.exp(-t ** 2 / 8)
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    x = torch.nn.functional.conv2d(x, k[None, None], padding=6)
    return x.reshape(batch, channels, size, size)


def plain_cnn(hidden=32):
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, hidden, 5, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, hidden, 5, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, 1, 5, padding=2))


@pytest.mark.parametrize('group', ['C4', 'D4'])
@pytest.mark.parametrize('angle', [90, 180, 270])
def test_c4_and_d4_commute_with_quarter_turns(group, angle):
    net = EquivariantCNN(2, 3, hidden_channels=2 * group_order(group),
                         num_layers=3, group=group)
    x = torch.randn(2, 2, 17, 17)
    assert rotation_equivariance_error(net, x, angle) < 1e-5


def test_block_is_equivariant_and_export_matches():
    block = EquivariantBlock(7, 6, hidden_channels=16, group='C4')
    x = torch.randn(2, 7, 16, 16)
    assert rotation_equivariance_error(block, x, 90) < 1e-5
    block.eval()
    plain = block.export()
    assert not any('e2cnn' in type(m).__module__ for m in plain.modules())
    torch.testing.assert_close(plain(x), block(x), atol=1e-5, rtol=1e-5)
    # An ordinary random convolution is far from equivariant: the test can fail.
    assert rotation_equivariance_error(plain_cnn(), x[:, :1], 90) > 0.1


def test_d4_commutes_with_reflections():
    net = EquivariantCNN(1, 1, hidden_channels=16, group='D4')
    x = torch.randn(1, 1, 15, 15)
    fx = net(x)
    torch.testing.assert_close(net(x.flip(-1)), fx.flip(-1), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(net(x.flip(-2)), fx.flip(-2), atol=1e-5,
                               rtol=1e-5)


def test_c8_error_at_45_degrees_is_bounded_and_far_below_ordinary():
    # Measured on 64x64 smooth images (kernel 5): C8 ~0.07 at 45 degrees;
    # an ordinary CNN with the same channels ~1. The bound leaves 2x room.
    torch.manual_seed(1)
    x = smooth_images(2, 1, 64)
    c8 = EquivariantCNN(1, 1, hidden_channels=16, num_layers=3, group='C8',
                        kernel_size=5)
    err = rotation_equivariance_error(c8, x, 45)
    ordinary = rotation_equivariance_error(plain_cnn(16), x, 45)
    assert err < 0.15
    assert err < ordinary / 3


def test_as_odl_operator_through_the_bridge():
    # float64 so that the finite difference (ReLU kinks) is clean.
    space = odl.uniform_discr([-1, -1], [1, 1], (16, 16), dtype='float64')
    net = EquivariantCNN(1, 1, hidden_channels=8, group='C4').double()
    op = TorchOperator(net, space, space, in_shape=(1, 1, 16, 16))
    x = space.element(np.random.rand(16, 16))
    # Equivariance of the ODL operator, measured through OperatorLayer.
    xt = torch.from_numpy(x.asarray())[None]
    assert rotation_equivariance_error(op, xt, 90) < 1e-5
    # Derivative and adjoint: tests/test_contracts.py (equivariant_*).


def test_rotate_by_45_twice_matches_90_inside_the_disc():
    x = smooth_images(1, 1, 48)
    twice = rotate(rotate(x, 45), 45)
    once = rotate(x, 90)
    yy, xx = torch.meshgrid(torch.arange(48.) - 23.5, torch.arange(48.) - 23.5,
                            indexing='ij')
    disc = (yy ** 2 + xx ** 2) < 18 ** 2
    rel = (twice - once)[..., disc].norm() / once[..., disc].norm()
    assert rel < 0.1  # two bilinear resamplings smooth a little
    # ... and the direction agrees with rot90 (a clockwise turn gives ~1.4).
    near = rotate(x, 89.9999)[..., 8:40, 8:40]
    assert (near - once[..., 8:40, 8:40]).norm() < 1e-4 * once.norm()


@pytest.mark.parametrize('kwargs, match', [
    (dict(group='C5', hidden_channels=8), 'multiple of 5'),
    (dict(group='X4'), "'C<N>' or 'D<N>'"),
    (dict(group='C1'), 'N >= 2'),
    (dict(kernel_size=4), 'odd'),
])
def test_bad_configuration_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EquivariantCNN(1, 1, **kwargs)


def test_bad_input_shape_names_the_shape():
    net = EquivariantCNN(2, 1, hidden_channels=8, group='C4')
    with pytest.raises(ValueError, match=r'\(batch, 2, H, W\).*\(1, 3, 8, 8\)'):
        net(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match='square'):
        rotation_equivariance_error(net, torch.randn(1, 2, 8, 6), 90)


def test_state_dict_does_not_depend_on_the_mode():
    block = EquivariantBlock(3, 2, hidden_channels=8, group='C4')
    x = torch.randn(1, 3, 8, 8)
    block.eval()
    saved_eval = block.state_dict()
    block.train()
    assert sorted(saved_eval) == sorted(block.state_dict())
    assert not any(k.endswith('.filter') for k in saved_eval)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for mode in ('train', 'eval'):
        other = EquivariantBlock(3, 2, hidden_channels=8, group='C4')
        getattr(other, mode)()
        other.load_state_dict(block.state_dict())
        other.eval()
        block.eval()
        torch.testing.assert_close(other(x), block(x))
