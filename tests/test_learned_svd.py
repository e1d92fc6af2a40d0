"""Learned SVD: shapes, the latent map, training, baselines, checks, files."""
import os
from pathlib import Path

import numpy as np
import odl
import pytest
import torch
from odl.applications import tomo

from odl_genprior import data, metrics, problems
from odl_genprior.bridge import to_numpy
from odl_genprior.problems import measurement_pairs
from odl_genprior.recon.learned_svd import LearnedSVD
from odl_genprior.models.learned_svd import (DiagonalMap, LearnedSVDNet,
                                             check_operator, describe_operator,
                                             learned_svd_losses,
                                             load_learned_svd,
                                             mnist_tomography_pairs,
                                             train_learned_svd)

torch.set_num_threads(1)

MNIST_DIR = os.environ.get(data.MNIST_ENV) or str(
    Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'mnist')
HAVE_MNIST = Path(MNIST_DIR, 't10k-images-idx3-ubyte.gz').is_file() or Path(
    MNIST_DIR, 't10k-images-idx3-ubyte').is_file()
SIZE, ANGLES = 28, 10
TINY = dict(latent_dim=32, hidden=(256,), epochs=8, batch_size=50, lr=3e-3,
            seed=0, weights={'x': 0.0, 'y': 0.0, 'inv': 1.0, 'code': 0.0})


def _operator(num_angles=ANGLES):
    return problems.ray_transform(problems.image_space(SIZE), num_angles)


def _images(n, split, start=0):
    """MNIST digits when the files are there, else random ellipses."""
    if HAVE_MNIST:
        return data.load_mnist(split, MNIST_DIR, limit=start + n)[0][start:]
    space = problems.image_space(SIZE)
    return data.ellipse_batch(space, n, seed=0 if split == 'train' else 1)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny L-SVD trained briefly into a run folder (shared by tests).

    With so little training the inversion term alone learns fastest (the
    autoencoder terms slow it down), so only it is weighted here.
    """
    A = _operator()
    y, x = measurement_pairs(A, _images(1000, 'train'), noise_level=0.05,
                             seed=0)
    run = tmp_path_factory.mktemp('lsvd') / 'run'
    net, result = train_learned_svd(A, x, y, run, **TINY, progress=False,
                                    log_every=1)
    return A, net, result, run, (x, y)


# --- shapes and the latent map ---------------------------------------------

def test_shapes_and_shape_errors():
    net = LearnedSVDNet((12, 12), (5, 17), latent_dim=7, hidden=(20, 10))
    x, y = torch.rand(3, 12, 12), torch.rand(3, 5, 17)
    assert net.encode_x(x).shape == (3, 7)
    assert net.encode_y(y).shape == (3, 7)
    assert net.decode_x(torch.randn(3, 7)).shape == (3, 12, 12)
    assert net.decode_y(torch.randn(3, 7)).shape == (3, 5, 17)
    assert net(y).shape == (3, 12, 12)
    with pytest.raises(ValueError, match=r'shape \(3, 5, 16\).*\(5, 17\)'):
        net(torch.rand(3, 5, 16))
    with pytest.raises(ValueError, match=r'shape \(12, 12\)'):
        net.encode_x(torch.rand(12, 12))  # no batch axis
    with pytest.raises(ValueError, match='latent_map'):
        LearnedSVDNet((4, 4), (3, 3), latent_map='mlp')


def test_diagonal_map_is_singular_values():
    net = LearnedSVDNet((6, 6), (4, 9), latent_dim=5, hidden=())
    assert isinstance(net.latent_map, DiagonalMap)
    sigma = torch.rand(5) + 0.5
    with torch.no_grad():
        net.latent_map.sigma.copy_(sigma)
    c = torch.randn(3, 5)
    assert torch.allclose(net.latent_map(c), c * sigma)
    assert torch.equal(net.singular_values, sigma)
    # hidden=() and no activation: every map linear, so the whole
    # reconstruction is x = D_x diag(sigma) E_y y (plus biases).
    lin = LearnedSVDNet((6, 6), (4, 9), latent_dim=5, hidden=(),
                        out_activation='none')
    y1, y2 = torch.randn(1, 4, 9), torch.randn(1, 4, 9)
    zero = lin(torch.zeros(1, 4, 9))
    lhs = lin(2 * y1 - y2) - zero
    rhs = 2 * (lin(y1) - zero) - (lin(y2) - zero)
    assert torch.allclose(lhs, rhs, atol=1e-5)
    full = LearnedSVDNet((6, 6), (4, 9), latent_dim=5, hidden=(),
                         latent_map='linear')
    assert torch.equal(full.latent_map.weight, torch.eye(5))
    with pytest.raises(ValueError, match='singular values'):
        full.singular_values


def test_loss_terms_match_their_definitions():
    net = LearnedSVDNet((6, 6), (4, 9), latent_dim=5, hidden=(16,),
                        data_scale=2.0)
    x, y = torch.rand(4, 6, 6), torch.rand(4, 4, 9) * 2
    out = learned_svd_losses(net, (x, y), weights={'x': 0.5, 'code': 2.0})
    cx, cy = net.encode_x(x), net.encode_y(y)
    mapped = net.latent_map(cy)
    expected = {
        'x': torch.mean((net.decode_x(cx) - x) ** 2),
        'y': torch.mean((net.decode_y(cy) - y) ** 2) / 4.0,
        'inv': torch.mean((net.decode_x(mapped) - x) ** 2),
        'code': torch.mean((mapped - cx) ** 2) / torch.mean(cx ** 2),
    }
    for k, v in expected.items():
        assert torch.isclose(out[f'loss_{k}'], v, rtol=1e-5), k
    total = (0.5 * expected['x'] + expected['y'] + expected['inv']
             + 2.0 * expected['code'])
    assert torch.isclose(out['loss'], total, rtol=1e-5)
    # The code target E_x x is fixed: the code term moves E_y and M only.
    net.zero_grad()
    out['loss_code'].backward()
    assert all(p.grad is None for p in net.encoder_x.parameters())
    assert net.latent_map.sigma.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='unknown loss weights'):
        learned_svd_losses(net, (x, y), weights={'xy': 1.0})
    with pytest.raises(ValueError, match='link the codes'):
        learned_svd_losses(net, (x, y), weights={'inv': 0, 'code': 0})


# --- data --------------------------------------------------------------------

def test_measurement_pairs_noise_convention_and_seed():
    A = _operator(6)
    imgs = np.random.default_rng(0).random((5, SIZE, SIZE))
    y_clean, x = measurement_pairs(A, imgs, noise_level=0.0)
    for i in (0, 4):
        ref = A(A.domain.element(imgs[i].astype('float32'))).asarray()
        assert np.allclose(y_clean[i].numpy(), ref, rtol=1e-5, atol=1e-5)
    y1, _ = measurement_pairs(A, imgs, noise_level=0.05, seed=3, batch_size=2)
    y2, _ = measurement_pairs(A, imgs, noise_level=0.05, seed=3)
    assert torch.equal(y1, y2)  # batching does not change the noise
    rel = ((y1 - y_clean).std(dim=(1, 2))
           / y_clean.abs().mean(dim=(1, 2)))
    assert torch.allclose(rel, torch.full((5,), 0.05), rtol=0.1)
    with pytest.raises(ValueError, match=r'\(5, 27, 27\)'):
        measurement_pairs(A, np.zeros((5, 27, 27)))


@pytest.mark.skipif(not HAVE_MNIST, reason='MNIST IDX files not found')
def test_mnist_tomography_pairs():
    A = _operator(6)
    x, y = mnist_tomography_pairs(A, n=4, split='test', start=2,
                                  directory=MNIST_DIR)
    digits = data.load_mnist('test', MNIST_DIR, limit=6)[0][2:]
    assert torch.equal(x, torch.from_numpy(digits))
    assert y.shape == (4,) + A.range.shape
    with pytest.raises(ValueError, match='28x28'):
        mnist_tomography_pairs(problems.ray_transform(
            problems.image_space(16), 4), n=1, directory=MNIST_DIR)


# --- training ----------------------------------------------------------------

def test_training_reduces_loss_and_is_seeded(trained):
    _, _, result, run, _ = trained
    losses = [row['loss'] for row in result.history]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:3])
    A = _operator(6)
    y, x = measurement_pairs(A, _images(64, 'train'), seed=0)
    kw = dict(latent_dim=8, hidden=(32,), epochs=2, batch_size=16,
              progress=False, seed=5)
    a, _ = train_learned_svd(A, x, y, None, **kw)
    b, _ = train_learned_svd(A, x, y, None, **kw)
    for (name, pa), pb in zip(a.state_dict().items(),
                              b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_beats_trivial_baselines_on_held_out_images(trained):
    A, net, _, _, _ = trained
    method = LearnedSVD(net)
    imgs = _images(6, 'test', start=100)
    err = {'lsvd': [], 'zero': [], 'backprojection': []}
    for i, img in enumerate(imgs):
        p = problems.ct(size=SIZE, num_angles=ANGLES, phantom=img,
                        noise_level=0.05, seed=i)
        truth = to_numpy(p.ground_truth)
        err['lsvd'].append(metrics.mse(method(p, progress=False), truth))
        err['zero'].append(metrics.mse(np.zeros_like(truth), truth))
        # Backprojection with the best scale for this image (an oracle).
        bp = to_numpy(p.operator.adjoint(p.data))
        c = float(np.sum(bp * truth) / np.sum(bp * bp))
        err['backprojection'].append(metrics.mse(c * bp, truth))
    mean = {k: float(np.mean(v)) for k, v in err.items()}
    assert mean['lsvd'] < 0.6 * mean['zero'], mean
    if HAVE_MNIST:
        # Random ellipses vary far more than digits: 1000 of them and a few
        # seconds of training do not beat the oracle-scaled backprojection.
        assert mean['lsvd'] < 0.75 * mean['backprojection'], mean


# --- operator checks ---------------------------------------------------------

def test_operator_mismatch_errors(trained):
    A, net, _, _, _ = trained
    method = LearnedSVD(net)
    other = problems.ct(size=SIZE, num_angles=ANGLES + 2, seed=0)
    with pytest.raises(ValueError, match=r'data of shape \(10, 41\) but the '
                       r"operator's range has shape \(12, 41\)"):
        method(other)
    small = problems.ct(size=16, num_angles=ANGLES, seed=0)
    with pytest.raises(ValueError, match=r'images of shape \(28, 28\).*'
                       r'\(16, 16\)'):
        method(small)
    # Same shapes, other angles (a limited-angle geometry): refused too.
    geom = tomo.Parallel2dGeometry(odl.uniform_partition(0, np.pi / 2,
                                                         ANGLES),
                                   A.geometry.det_partition)
    limited = tomo.RayTransform(A.domain, geom, impl='astra_cpu')
    assert limited.range.shape == A.range.shape
    with pytest.raises(ValueError, match='angles'):
        check_operator(net, limited)
    LearnedSVD(net, check_geometry=False).check(limited)  # shapes only


def test_learned_inverse_as_odl_operator(trained):
    A, net, _, _, _ = trained
    op = LearnedSVD(net).as_operator(A)
    p = problems.ct(size=SIZE, num_angles=ANGLES,
                    phantom=_images(1, 'test')[0], seed=0)
    assert np.allclose(op(p.data).asarray(),
                       LearnedSVD(net)(p).asarray(), atol=1e-6)
    # Derivative and adjoint: tests/test_contracts.py (learned_svd).


# --- files -------------------------------------------------------------------

def test_save_load_round_trip_and_resume(trained, tmp_path):
    A, net, result, run, (x, yy) = trained
    assert sorted(os.listdir(run)) == ['checkpoint.pt', 'config.json',
                                       'metrics.csv', 'weights.pt']
    loaded = load_learned_svd(run)
    assert loaded.config == net.config
    assert loaded.config['operator_info'] == describe_operator(A)
    y = torch.randn(3, *A.range.shape)
    with torch.no_grad():
        assert torch.equal(loaded(y), net(y))
    p = problems.ct(size=SIZE, num_angles=ANGLES, seed=2)
    assert np.array_equal(LearnedSVD(run)(p).asarray(),
                          LearnedSVD(net)(p).asarray())
    # The same call again finds the finished run and does not retrain.
    again, r2 = train_learned_svd(A, x, yy, run, **TINY, progress=False,
                                  log_every=1)
    assert r2.resumed_from == result.step and r2.step == result.step
    with torch.no_grad():
        assert torch.equal(again(y), net(y))
    with pytest.raises(ValueError, match='another configuration'):
        train_learned_svd(A, x, yy, run, **dict(TINY, latent_dim=12),
                          progress=False)
    with pytest.raises(FileNotFoundError, match='config.json'):
        LearnedSVD(tmp_path / 'nothing')
