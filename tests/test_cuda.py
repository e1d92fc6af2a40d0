"""What runs on a GPU: training an unrolled network on CUDA (and resuming
it on the CPU), the operator as a sparse matrix on the GPU, and a trained
network reconstructing on a CUDA space. Skipped where CUDA is absent (CI);
the contract registry's device axis is in test_contracts.py."""
import json

import numpy as np
import pytest
import torch

from odl_genprior.bridge import OperatorLayer, to_numpy
from odl_genprior.problems.ellipse_ct import DivalEllipses, EllipseCT
from odl_genprior.models.unrolled import load_unrolled, train_unrolled

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs CUDA')

SMALL = {'size': 16, 'num_angles': 8}


def test_train_on_cuda_then_resume_on_the_cpu(tmp_path):
    cfg = {'scheme': 'lpd', 'hidden_channels': 4, 'n_iter': 2,
           'benchmark': SMALL}
    train_unrolled(cfg, tmp_path, n_train=8, n_val=2, steps=3, batch_size=4,
                   progress=False, device='cuda', checkpoint_every=3)
    run = json.loads((tmp_path / 'config.json').read_text())
    assert run['sessions'][-1]['device'].startswith('cuda')
    assert ' + ' in run['sessions'][-1]['machine']  # CPU + GPU names
    net = train_unrolled(cfg, tmp_path, n_train=8, n_val=2, steps=5,
                         batch_size=4, progress=False, device='cpu',
                         checkpoint_every=3)
    run = json.loads((tmp_path / 'config.json').read_text())
    assert run['steps_done'] == 5
    assert [s['device'] for s in run['sessions']][-1] == 'cpu'
    y, x = EllipseCT(**SMALL).pairs(2, 'test')
    with torch.no_grad():
        out = net(y)
    assert torch.isfinite(out).all()
    again = load_unrolled(tmp_path, device='cuda')
    with torch.no_grad():
        torch.testing.assert_close(again(y.cuda()).cpu(), out, rtol=1e-4,
                                   atol=1e-4)


def test_matrix_mode_on_cuda_tensors_is_the_cpu_operator():
    dtype = torch.float32  # the operator's
    A = DivalEllipses(size=32, num_angles=8, sim_size=48).operator
    layer = OperatorLayer(A, batching='matrix')
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 32, 32, generator=gen, dtype=dtype)
    y = torch.randn((3,) + A.range.shape, generator=gen, dtype=dtype)
    on_gpu = layer(x.cuda())
    assert on_gpu.device.type == 'cuda' and on_gpu.dtype == dtype
    torch.testing.assert_close(on_gpu.cpu(), layer(x), rtol=1e-5, atol=1e-5)
    xg = x.cuda().requires_grad_()
    (layer(xg) * y.cuda()).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), layer.transpose(y),
                               rtol=1e-5, atol=1e-5)
    lhs = float((layer(x) * y).sum())
    assert abs(lhs - float((x * xg.grad.cpu()).sum())) <= 1e-4 * abs(lhs)


def test_a_shipped_network_reconstructs_on_cuda():
    from odl_genprior.recon.learned import LearnedReconstructor
    bench = DivalEllipses()
    problem = bench.problem(0)
    cpu = LearnedReconstructor.pretrained('dival-lpd-128')
    gpu = LearnedReconstructor.pretrained('dival-lpd-128', device='cuda')
    a = to_numpy(cpu.reconstruct(problem))
    b = to_numpy(gpu.reconstruct(problem))
    assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max()


def test_symmetry_averaged_network_on_cuda():
    """The sinogram and image maps run on the data's device; the averaged
    CUDA network gives the CPU one's result, on CUDA."""
    from odl_genprior.nn.unrolled import LearnedPrimalDual
    from odl_genprior.recon import LearnedReconstructor, SymmetryAveraged
    bench = EllipseCT(**SMALL)
    A = bench.operator
    torch.manual_seed(0)
    net = LearnedPrimalDual(A, n_iter=2, hidden_channels=4)
    y = torch.rand(3, *A.range.shape)
    cpu = SymmetryAveraged(LearnedReconstructor(net)).reconstruct_batch(A, y)
    gpu = SymmetryAveraged(LearnedReconstructor(net.to('cuda'))
                           ).reconstruct_batch(A, y.to('cuda'))
    assert gpu.device.type == 'cuda'
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
