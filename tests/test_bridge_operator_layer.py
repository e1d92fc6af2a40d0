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
    monkeypatch.setattr(bridge.per_sample, 'apply_per_sample',
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


@pytest.mark.parametrize('size, b', [(64, 5), (128, 2), (128, 7)])
def test_astra3d_stack_puts_each_slice_on_its_own_detector_row(size, b):
    # ODL's own one-slice astra_cuda geometries (made without a GPU): the
    # slices are 2 thick, the one row a detector pixel high. Stacked, row k
    # must sit at the centre of slice k (on an H200 the rows were left a
    # pixel high and every row read the middle slice).
    from odl.applications.tomo.backends.astra_setup import (
        astra_projection_geometry, astra_volume_geometry)
    from odl_genprior.bridge.layer import _stack_geometries
    space = problems.image_space(size)
    A = problems.ray_transform(space, num_angles=30)
    one_vol = astra_volume_geometry(space, 'cuda')
    one_proj = astra_projection_geometry(A.geometry, 'cuda')
    vol, proj = _stack_geometries(one_vol, one_proj, b)
    z0, z1 = vol['option']['WindowMinZ'], vol['option']['WindowMaxZ']
    dz = (z1 - z0) / vol['GridSliceCount']
    assert vol['GridSliceCount'] == proj['DetectorRowCount'] == b
    assert dz == one_vol['option']['WindowMaxZ'] - one_vol['option'][
        'WindowMinZ']
    vec = proj['Vectors']
    centre_z = vec[:, 5]  # detector centre, ASTRA's z
    for k in range(b):
        row = centre_z + (k - (b - 1) / 2) * vec[:, 11]
        np.testing.assert_allclose(row, z0 + (k + 0.5) * dz, atol=1e-12)
    # everything else is ODL's geometry: rays, centres, detector pixels
    np.testing.assert_array_equal(vec[:, :9], one_proj['Vectors'][:, :9])
    np.testing.assert_allclose(vec[:, 9:11], 0)
    for key in ('GridRowCount', 'GridColCount'):
        assert vol[key] == one_vol[key]


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
    real = bridge.per_sample.apply_per_sample
    monkeypatch.setattr(bridge.per_sample, 'apply_per_sample',
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


# --- issue 25: caches and bounded assembly ---
# Every test of this file gets a fresh cache folder: the user's own cache
# (whose files of an older format would be made again) is never touched.

@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv('ODL_GENPRIOR_CACHE',
                       str(tmp_path_factory.mktemp('cache')))


def _count_batches(monkeypatch):
    """Record the batch size of every ODL per-sample application."""
    from odl_genprior import bridge
    sizes, real = [], bridge.per_sample.apply_per_sample
    monkeypatch.setattr(bridge.per_sample, 'apply_per_sample',
                        lambda op, x: sizes.append(len(x)) or real(op, x))
    return sizes


@pytest.mark.parametrize('block_bytes', [1, 4096])
def test_assembly_blocks_stay_under_the_memory_bound(block_bytes,
                                                     monkeypatch):
    from odl_genprior import bridge
    grad = odl.Gradient(odl.uniform_discr([0, 0], [1, 1], (8, 9),
                                          dtype='float32'))
    full = bridge.operator_matrix(grad, cache=False)  # one chunk of 72
    x = torch.randn(3, 8, 9)
    dense = OperatorLayer(grad, batching='loop')(x).reshape(3, -1)
    torch.testing.assert_close(
        torch.from_numpy(full @ x.reshape(3, -1).numpy().T).T, dense)
    monkeypatch.setattr(bridge.matrix, 'MATRIX_BLOCK_BYTES', block_bytes)
    sizes = _count_batches(monkeypatch)
    grad2 = odl.Gradient(odl.uniform_discr([0, 0], [1, 1], (8, 9),
                                           dtype='float32'))
    m = bridge.operator_matrix(grad2, cache=False)
    # 72 columns of 72 + 144 float32: 864 bytes a vector
    chunk = max(1, block_bytes // 864)
    assert max(sizes) == chunk and sum(sizes) == 72
    assert (m != full).nnz == 0 and m.has_sorted_indices


def test_assembly_of_rows_in_chunks_is_exact(monkeypatch):
    """Rows (A^T e_i) spread over the chunks come back in their order."""
    from odl_genprior import bridge
    ray = _batching_operators()['ray']
    full = bridge.operator_matrix(ray, cache=False)
    sizes = _count_batches(monkeypatch)
    ray2 = _batching_operators()['ray']
    m = bridge.operator_matrix(ray2, cache=False, chunk=10)
    assert max(sizes) == 10 and sum(sizes) == ray.range.size
    assert (m != full).nnz == 0
    g = torch.Generator().manual_seed(5)
    x = torch.randn((2,) + ray.domain.shape, generator=g)
    want = OperatorLayer(ray, batching='loop')(x).reshape(2, -1)
    got = torch.from_numpy(m @ x.reshape(2, -1).numpy().T).T
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_assembly_refused_up_front_by_the_nonzero_estimate(monkeypatch):
    from odl_genprior import bridge
    ray = _batching_operators()['ray']
    nnz = bridge.operator_matrix(ray, cache=False).nnz
    monkeypatch.setattr(bridge.matrix, 'MATRIX_MAX_NNZ', nnz // 2)
    sizes = _count_batches(monkeypatch)
    with pytest.raises(MemoryError) as err:
        bridge.operator_matrix(_batching_operators()['ray'], cache=False,
                               chunk=8)
    msg = str(err.value)
    assert len(sizes) == 1  # refused after the first chunk
    assert '\n' not in msg and 'RayTransform' in msg
    assert f'domain shape {ray.domain.shape}' in msg
    assert f'range shape {ray.range.shape}' in msg
    assert f'MATRIX_MAX_NNZ = {nnz // 2}' in msg and 'GB' in msg
    assert "batching='loop'" in msg
    estimate = float(msg.split('about ')[1].split(' nonzeros')[0])
    assert 0.7 * nnz < estimate < 1.3 * nnz  # the first chunk is fair
    # 'auto' falls back to the loop, with the right result
    layer = OperatorLayer(_batching_operators()['ray'])
    x = torch.randn(ray.range.size + 1, *ray.domain.shape)
    torch.testing.assert_close(layer(x), OperatorLayer(
        ray, batching='loop')(x))
    assert layer.batching == 'loop'


def test_assembly_refused_up_front_by_the_time_estimate(monkeypatch):
    from odl_genprior import bridge
    monkeypatch.setattr(bridge.matrix, 'MATRIX_MAX_SECONDS', 1e-9)
    sizes = _count_batches(monkeypatch)
    grad = odl.Gradient(odl.uniform_discr([0, 0], [1, 1], (8, 9),
                                          dtype='float32'))
    with pytest.raises(bridge.MatrixAssemblyTooSlow) as err:
        bridge.operator_matrix(grad, cache=False, chunk=4)
    msg = str(err.value)
    assert len(sizes) == 1 and '\n' not in msg
    assert 'domain shape (8, 9)' in msg and 'range shape (2, 8, 9)' in msg
    assert 'MATRIX_MAX_SECONDS' in msg and "batching='loop'" in msg
    monkeypatch.setattr(bridge.matrix, 'MATRIX_BLOCK_BYTES', 4096)  # 4 a chunk
    with pytest.raises(bridge.MatrixAssemblyTooSlow):
        OperatorLayer(grad, batching='matrix')(torch.randn(2, 8, 9))


def test_assembly_shows_progress_only_when_slow(monkeypatch, capsys):
    from odl_genprior import bridge
    bridge.operator_matrix(_batching_operators()['ray'], cache=False,
                           chunk=8)
    assert 'matrix of RayTransform' not in capsys.readouterr().err
    monkeypatch.setattr(bridge.matrix, 'MATRIX_PROGRESS_SECONDS', 0.0)
    bridge.operator_matrix(_batching_operators()['ray'], cache=False,
                           chunk=8)
    err = capsys.readouterr().err
    assert 'matrix of RayTransform' in err and 'rows' in err


def test_identity_matrix_is_written_down_not_assembled(monkeypatch):
    from odl_genprior import bridge
    sizes = _count_batches(monkeypatch)
    space = odl.uniform_discr([0, 0], [1, 1], (2048, 2048), dtype='float32')
    layer = OperatorLayer(odl.IdentityOperator(space), batching='matrix')
    x = torch.rand(1, 2048, 2048, requires_grad=True)
    y = layer(x)
    torch.testing.assert_close(y, x.detach())
    g = torch.randn(1, 2048, 2048)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, g)
    assert not sizes and layer.matrix().nnz == 2048 * 2048
    small = odl.uniform_discr([0, 0], [2, 1], (4, 3), dtype='float64')
    scale = odl.ScalingOperator(small, -2.5)
    monkeypatch.undo()
    generic = bridge._assemble(scale, chunk=5)
    assert (bridge.operator_matrix(scale) != generic).nnz == 0
    assert bridge.operator_matrix(scale).dtype == np.float64


def _conv(in_shape, **kw):
    space = odl.uniform_discr([0, 0], [1, 1], (6, 7), dtype='float32')
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    return TorchOperator(conv, space, space, in_shape=in_shape, linear=True,
                         **kw)


class _MixBatch(torch.nn.Module):
    """Linear, but mixes the samples of a batch."""

    def forward(self, x):
        return x - x.mean(0)


def test_auto_picks_module_only_where_it_is_exact():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, 7, generator=g)
    # in_shape (1, H, W): a batch of 3 would be 3 channels of a Conv2d
    op = _conv(None)
    layer = OperatorLayer(op)
    assert layer.batching != 'module'
    torch.testing.assert_close(layer(x), OperatorLayer(
        op, batching='loop')(x))
    with pytest.raises(ValueError, match='fails on a batch'):
        OperatorLayer(op, batching='module')
    # in_shape (1, 1, H, W): the first axis is a batch axis
    op = _conv((1, 1, 6, 7))
    layer = OperatorLayer(op)
    assert layer.batching == 'module'
    torch.testing.assert_close(layer(x), OperatorLayer(
        op, batching='loop')(x))
    # a module that mixes the samples: found, and looped
    space = odl.uniform_discr([0, 0], [1, 1], (6, 7), dtype='float32')
    mix = TorchOperator(_MixBatch(), space, space, linear=True)
    layer = OperatorLayer(mix)
    assert layer.batching != 'module'
    torch.testing.assert_close(layer(x), OperatorLayer(
        mix, batching='loop')(x))  # was 0.57 off in 'module' mode
    with pytest.raises(ValueError, match='mixes the samples'):
        OperatorLayer(mix, batching='module')


def test_batch_safe_declaration():
    op = _conv((1, 1, 6, 7), batch_safe=True)
    calls = []
    op.module.register_forward_hook(lambda *a: calls.append(1))
    layer = OperatorLayer(op)
    assert layer.batching == 'module' and not calls  # taken at its word
    x = torch.randn(4, 6, 7)
    torch.testing.assert_close(layer(x), OperatorLayer(
        op, batching='loop')(x))
    assert len(calls) == 1 + 4  # one batched call; the loop's four
    op = _conv((1, 1, 6, 7), batch_safe=False)
    assert OperatorLayer(op).batching != 'module'
    with pytest.raises(ValueError, match='batch_safe=False'):
        OperatorLayer(op, batching='module')
