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


# --- batching modes ---------------------------------------------------------

def _batching_operators():
    space = problems.image_space(16)
    ray = problems.ray_transform(space, num_angles=7)  # weights differ
    mat = np.random.default_rng(3).standard_normal((5, 6)).astype('float32')
    matrix = odl.MatrixOperator(mat, domain=odl.rn(6, dtype='float32'),
                                range=odl.rn(5, dtype='float32'))
    grad = odl.Gradient(odl.uniform_discr([0, 0], [2, 3], (5, 6),
                                          dtype='float32'))
    return {'ray': ray, 'matrix': matrix, 'gradient': grad}


@pytest.mark.parametrize('name', ['ray', 'matrix', 'gradient'])
def test_matrix_mode_agrees_with_loop(name, tmp_path, monkeypatch):
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    op = _batching_operators()[name]
    g = torch.Generator().manual_seed(0)
    x = torch.randn((4,) + op.domain.shape, generator=g)
    y = torch.randn((4,) + op.range.shape, generator=g)
    loop = OperatorLayer(op, batching='loop')
    mat = OperatorLayer(op, batching='matrix')
    torch.testing.assert_close(mat(x), loop(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mat.transpose(y), loop.transpose(y),
                               rtol=1e-5, atol=1e-5)
    assert mat.batching == 'matrix' and mat.adjoint_layer().batching == \
        'matrix'
    # Euclidean adjoint test on the batch: <A x, y> = <x, A^T y>.
    lhs = (mat(x) * y).sum()
    rhs = (x * mat.transpose(y)).sum()
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)
    # gradient through the layer is the transpose
    xr = x.clone().requires_grad_(True)
    (mat(xr) * y).sum().backward()
    torch.testing.assert_close(xr.grad, loop.transpose(y), rtol=1e-5,
                               atol=1e-5)


def test_matrix_mode_gradcheck_and_gradgradcheck_float64():
    space = odl.uniform_discr([0, 0], [1, 2], (4, 5), dtype='float64')
    layer = OperatorLayer(odl.Gradient(space), batching='matrix')
    x = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_matrix_mode_jvp_matches_forward():
    import torch.autograd.forward_ad as fwad
    op = _batching_operators()['ray']
    layer = OperatorLayer(op, batching='matrix')
    x = torch.rand((2,) + op.domain.shape)
    v = torch.randn((2,) + op.domain.shape)
    with fwad.dual_level():
        t = fwad.unpack_dual(layer(fwad.make_dual(x, v))).tangent
    torch.testing.assert_close(t, layer(v))


def test_ray_transform_matrix_is_cached_on_disk(tmp_path, monkeypatch):
    """The next process (a new operator, same geometry) reads the file."""
    from odl_genprior import bridge
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    space = problems.image_space(12)
    a1 = problems.ray_transform(space, num_angles=5)
    m1 = bridge.operator_matrix(a1)
    files = list((tmp_path / 'operators').glob('*.npz'))
    assert len(files) == 1
    a2 = problems.ray_transform(problems.image_space(12), num_angles=5)
    calls = []
    monkeypatch.setattr(bridge, '_apply_per_sample',
                        lambda *a: calls.append(1) / 0)
    m2 = bridge.operator_matrix(a2)  # no ODL call: from disk
    assert not calls and (m1 != m2).nnz == 0
    # another geometry is another file; a cut file is assembled again
    monkeypatch.undo()
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    bridge.operator_matrix(problems.ray_transform(space, num_angles=6))
    assert len(list((tmp_path / 'operators').glob('*.npz'))) == 2
    files[0].write_bytes(files[0].read_bytes()[:50])
    a3 = problems.ray_transform(problems.image_space(12), num_angles=5)
    assert (bridge.operator_matrix(a3) != m1).nnz == 0


def test_auto_switches_to_matrix_once_it_pays(tmp_path, monkeypatch):
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    op = _batching_operators()['matrix']  # 5 x 6: assembly costs 5 samples
    layer = OperatorLayer(op)
    assert layer.batching == 'auto-matrix'
    x = torch.randn(2, 6)
    ref = OperatorLayer(op, batching='loop')(x)
    torch.testing.assert_close(layer(x), ref)
    assert layer.batching == 'auto-matrix'  # 2 samples: loop still
    layer(x), layer(x)
    assert layer.batching == 'matrix'
    torch.testing.assert_close(layer(x), ref)


def test_auto_modes_and_refusals():
    from odl_genprior.problems import MatrixMultiply
    rn = odl.rn(3, dtype='float32')
    lin = TorchOperator(MatrixMultiply(torch.eye(3)), rn, rn, linear=True)
    assert OperatorLayer(lin).batching == 'module'
    x = torch.randn(4, 3)
    torch.testing.assert_close(OperatorLayer(lin)(x), x)
    torch.testing.assert_close(OperatorLayer(lin).transpose(x), x)
    assert OperatorLayer(odl.PowerOperator(odl.rn(3), 2)).batching == 'loop'
    with pytest.raises(ValueError, match='batching must be one of'):
        OperatorLayer(lin, batching='fast')
    with pytest.raises(ValueError, match='linear'):
        OperatorLayer(odl.PowerOperator(odl.rn(3), 2), batching='matrix')
    with pytest.raises(ValueError, match='astra_cuda'):
        OperatorLayer(_batching_operators()['ray'], batching='astra3d')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_astra3d_mode_agrees_with_loop_on_cuda():
    space = problems.image_space(64, impl='pytorch', device='cuda:0')
    A = problems.ray_transform(space, num_angles=30)
    loop = OperatorLayer(A, batching='loop')
    fast = OperatorLayer(A, batching='astra3d')
    x = torch.rand(5, 64, 64, device='cuda:0')
    y = torch.randn((5,) + A.range.shape, device='cuda:0')
    torch.testing.assert_close(fast(x), loop(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.transpose(y), loop.transpose(y),
                               rtol=1e-4, atol=1e-4)
    lhs = (fast(x) * y).sum()
    assert abs(lhs - (x * fast.transpose(y)).sum()) <= 1e-3 * abs(lhs)


def test_adjoint_layer_reuses_the_assembled_matrix(monkeypatch):
    from odl_genprior import bridge
    op = _batching_operators()['ray']
    layer = OperatorLayer(op)
    layer.matrix()
    calls = []
    real = bridge._apply_per_sample
    monkeypatch.setattr(bridge, '_apply_per_sample',
                        lambda *a: calls.append(1) or real(*a))
    x = torch.rand((3,) + op.domain.shape, requires_grad=True)
    layer(x).sum().backward()  # backward: the adjoint layer, no ODL call
    assert not calls and layer.adjoint_layer().batching == 'matrix'


@pytest.mark.parametrize('batching', ['loop', 'matrix'])
def test_operator_runs_in_its_own_dtype_under_autocast(batching):
    # bfloat16 activations (a conv under autocast) reach the operator as
    # float32; the result and its gradient are those of float32.
    A = small_ray_transform('numpy')
    layer = OperatorLayer(A, batching=batching, cache=False)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 24, 24, generator=gen, requires_grad=True)
    g = torch.randn((2,) + A.range.shape, generator=gen)
    (layer(x) * g).sum().backward()
    want, want_grad = layer(x.detach()), x.grad.clone()
    x.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.to(torch.bfloat16))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, layer(x.detach().to(torch.bfloat16)
                                        .float()))
    (y * g).sum().backward()
    assert x.grad.dtype == torch.float32
    # The only differences: x and its gradient pass a bfloat16 cast.
    torch.testing.assert_close(x.grad, want_grad, rtol=1e-2, atol=1e-2 * float(
        want_grad.abs().max()))
    assert float((y - want).abs().max()) < 1e-2 * float(want.abs().max())
    # Outside autocast a wrong dtype is still an error.
    with pytest.raises(TypeError, match='dtype'):
        layer(x.detach().to(torch.bfloat16))
