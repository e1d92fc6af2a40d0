"""OperatorLayer: ODL operators as torch layers (ray transform, gradcheck)."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import OperatorLayer, TorchOperator, problems


def small_ray_transform(impl):
    return problems.ray_transform(problems.image_space(24, impl=impl),
                                  num_angles=12)


def test_ray_transform_layer_matches_odl(impl):
    A = small_ray_transform(impl)
    layer = OperatorLayer(A)
    x = torch.rand(3, 24, 24)
    y = layer(x)
    assert y.shape == (3,) + A.range.shape
    for i in range(3):
        ref = np.asarray(A(A.domain.element(
            x[i].numpy() if impl == 'numpy' else x[i])).asarray())
        np.testing.assert_allclose(y[i].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_ray_transform_layer_gradient_is_euclidean_adjoint(impl):
    """torch's gradient of <A x, g> is the plain (unweighted) A^T g."""
    A = small_ray_transform(impl)
    layer = OperatorLayer(A)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 24, 24, generator=gen, requires_grad=True)
    g = torch.randn((2,) + A.range.shape, generator=gen)
    (layer(x) * g).sum().backward()
    # Dot-product test in Euclidean inner products, float32 tolerance.
    h = torch.randn(2, 24, 24, generator=gen)
    lhs = (layer(h) * g).sum()
    rhs = (h * x.grad).sum()
    assert abs(lhs - rhs) < 1e-4 * abs(lhs)


def test_batch_axes_free(impl):
    A = small_ray_transform(impl)
    layer = OperatorLayer(A)
    x = torch.rand(2, 3, 24, 24)
    assert layer(x).shape == (2, 3) + A.range.shape
    assert layer(x[0, 0]).shape == A.range.shape


def test_gradcheck_linear_float64(impl):
    space = odl.uniform_discr([0, 0], [1, 1], (5, 6), dtype='float64',
                              impl=impl)
    layer = OperatorLayer(odl.Gradient(space))
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    # Double backward through the adjoint layer.
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_gradcheck_nonlinear_round_trip(impl):
    """A module -> ODL operator -> torch layer: gradients survive."""
    dom = odl.rn(4, dtype='float64', impl=impl)
    ran = odl.uniform_discr([0, 0], [1, 1], (3, 3), dtype='float64',
                            impl=impl)
    net = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.Tanh()).double()
    layer = OperatorLayer(TorchOperator(net, dom, ran))
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    with torch.no_grad():
        expected = net(x).reshape(3, 3, 3)
    assert torch.allclose(layer(x), expected)


def test_layer_trains_a_network_through_ray_transform():
    """A torch optimiser fits an image through A (data-consistency)."""
    A = small_ray_transform('pytorch')
    layer = OperatorLayer(A)
    x_true = torch.rand(24, 24)
    y = layer(x_true)
    x = torch.zeros(24, 24, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    loss0 = ((layer(x) - y) ** 2).sum().item()
    for _ in range(60):
        opt.zero_grad()
        loss = ((layer(x) - y) ** 2).sum()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * loss0


def test_errors_name_shape_and_dtype():
    A = small_ray_transform('numpy')
    layer = OperatorLayer(A)
    with pytest.raises(ValueError, match=r'\(24, 23\).*\(24, 24\)'):
        layer(torch.zeros(24, 23))
    with pytest.raises(TypeError, match='float64.*float32'):
        layer(torch.zeros(24, 24, dtype=torch.float64))
    with pytest.raises(TypeError, match='odl.Operator'):
        OperatorLayer(torch.nn.Identity())


def test_forward_mode_jvp_through_operator_layer():
    # Forward-mode AD (torch.autograd.forward_ad) runs the layer's jvp:
    # TorchOperator's derivative of a module that contains an ODL operator.
    import torch.autograd.forward_ad as fwad
    space = odl.uniform_discr([0, 0], [1, 1], (5, 5), dtype='float64')
    for op in (odl.Gradient(space),
               odl.PointwiseNorm(odl.ProductSpace(space, 2))):
        layer = OperatorLayer(op)
        shape = (3,) + tuple(op.domain.shape)
        x = torch.rand(shape, dtype=torch.float64) + 0.5
        v = torch.randn(shape, dtype=torch.float64)
        with fwad.dual_level():
            t = fwad.unpack_dual(layer(fwad.make_dual(x, v))).tangent
        fd = (layer(x + 1e-6 * v) - layer(x - 1e-6 * v)) / 2e-6
        torch.testing.assert_close(t, fd, rtol=1e-6, atol=1e-6)
