"""1D signal models, `train cgnn`, the 1D blur and latent deblurring."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator
from odl_genprior.generators import recipes
from odl_genprior.generators.cgnn import CGNN
from odl_genprior.generators.signals1d import (CGNNDecoder, ConvDecoder1d,
                                               ConvEncoder1d, GaussianBlur1d,
                                               blur_operator,
                                               parameter_count, signal_space)
from odl_genprior.recon.latent import latent_deblur

ROOT = Path(__file__).resolve().parents[1]
TINY = {'kind': 'cgnn', 'dataset': 'signals', 'size': 64, 'latent_dim': 3,
        'levels': [2, 3, 4], 'channels': [4, 2, 1], 'width': 8}


# --- models ------------------------------------------------------------------

@pytest.mark.parametrize('size', [64, 100, 4096])
def test_encoder_shapes(size):
    enc = ConvEncoder1d(out_dim=6, size=size, width=16)
    assert enc(torch.rand(2, 1, size)).shape == (2, 6)
    with pytest.raises(ValueError, match=r'\(B, 1, %d\)' % size):
        enc(torch.rand(2, size))


def test_decoders_shapes_and_parameter_counts():
    z = torch.randn(2, 15)
    cg = CGNNDecoder(CGNN(15), 4096)
    dc = ConvDecoder1d(15, 4096, width=32)
    assert cg(z).shape == dc(z).shape == (2, 1, 4096)
    # "Comparable parameter count": within 10 percent.
    p_cg, p_dc = parameter_count(cg), parameter_count(dc)
    assert abs(p_cg - p_dc) < 0.1 * p_cg, (p_cg, p_dc)
    # The rendering holds no weights: one CGNN, any resolution.
    assert [k for k in cg.state_dict()] == [
        'cgnn.' + k for k in cg.cgnn.state_dict()]
    assert cg.at_resolution(1000)(z).shape == (2, 1, 1000)
    with pytest.raises(ValueError, match='expected'):
        dc(torch.randn(2, 14))
    with pytest.raises(TypeError, match='1D CGNN'):
        CGNNDecoder(CGNN(4, dim=2, channels=(2, 1), levels=(1, 2)), 16)


@pytest.mark.parametrize('recipe, decoder', [
    ({'kind': 'cgnn'}, CGNNDecoder),
    ({'kind': 'vae', 'arch': 'conv1d'}, ConvDecoder1d),
    ({'kind': 'ae', 'arch': 'conv1d'}, ConvDecoder1d),
    ({'kind': 'vae', 'arch': 'mlp', 'hidden': [16]}, torch.nn.Module),
])
def test_build_signal_models(recipe, decoder):
    model = recipes.build_model(dict(recipe, dataset='signals', size=256,
                                     latent_dim=5))
    assert isinstance(model.decoder, decoder)
    x = torch.rand(3, 1, 256)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (3, 1, 256)
    assert recipes.generator_of(model)(torch.zeros(2, 5)).shape == (2, 1, 256)


def test_signal_recipe_errors():
    with pytest.raises(ValueError, match="needs dataset 'signals'"):
        recipes.build_model({'kind': 'cgnn', 'dataset': 'ellipses',
                             'size': 16})
    with pytest.raises(ValueError, match="'gan' is not available"):
        recipes.build_model({'kind': 'gan', 'dataset': 'signals'})
    with pytest.raises(ValueError, match="'conv1d' or 'mlp'"):
        recipes.build_model({'kind': 'vae', 'dataset': 'signals',
                             'arch': 'conv'})
    # Image recipes are left exactly as given (their config.json unchanged).
    rec = {'kind': 'vae', 'dataset': 'ellipses', 'size': 16}
    assert recipes.complete_recipe(rec) == rec


def test_cgnn_vae_fits_and_reloads(tmp_path):
    model = recipes.fit(TINY, tmp_path, n_train=128, n_val=16, epochs=3,
                        batch_size=16, lr=3e-3, progress=False)
    again = recipes.load_run(tmp_path)
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert isinstance(again.decoder, CGNNDecoder)
    recipe = json.loads((tmp_path / 'config.json').read_text())['user'][
        'recipe']
    # The completed recipe is stored: defaults can change, the run cannot.
    assert recipe['beta'] == recipes.SIGNAL_DEFAULTS['beta']
    assert recipe['wavelet'] == 'db2' and recipe['boundary'] == 'zero'
    metrics = (tmp_path / 'metrics.csv').read_text()
    assert 'val_mse' in metrics
    # The trained loss went down (it is a real training run).
    from odl_genprior.training import read_metrics
    losses = [r['val_loss'] for r in read_metrics(tmp_path / 'metrics.csv')
              if r.get('val_loss') not in (None, '')]
    assert losses[-1] < losses[0]


# --- blur --------------------------------------------------------------------

def test_blur_kernel_and_linear_convolution():
    n = 400
    blur = GaussianBlur1d(n, dtype=torch.float64)
    k = blur.kernel.numpy()
    assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k[::-1])
    # Std 1/4 of the domain, cut at 2 std (|offset| <= half the domain): the
    # std of the cut Gaussian is 0.25 * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
    m = np.arange(k.size) - k.size // 2
    assert np.all(np.abs(m) <= n / 2) and k.size == n + 1
    cut = 0.25 * np.sqrt(1 - 4 * np.exp(-2) / np.sqrt(2 * np.pi) / 0.9544997)
    assert abs(np.sqrt(np.sum(k * m ** 2)) / n - cut) < 1e-3  # O(1/n)
    x = np.random.default_rng(0).standard_normal((2, 1, n))
    ref = np.stack([np.convolve(v[0], k)[k.size // 2: k.size // 2 + n]
                    for v in x])[:, None]
    out = blur(torch.from_numpy(x)).numpy()
    assert np.allclose(out, ref, atol=1e-13)
    with pytest.raises(ValueError, match='400 samples'):
        blur(torch.zeros(1, 1, 49))


# --- latent deblurring -------------------------------------------------------

def test_latent_deblurring_reduces_misfit():
    torch.manual_seed(0)
    g = CGNN(latent_dim=3, channels=(4, 2, 1), levels=(2, 3, 4),
             dtype=torch.float64)
    space = signal_space(64, dtype='float64')
    G = TorchOperator(CGNNDecoder(g, 64).eval(), odl.rn(3, dtype='float64'),
                      space)
    A = blur_operator(space)
    z_true = G.domain.element([0.8, -0.5, 1.2])
    y = A(G(z_true))
    # From z0 = 0 (the problem is not convex: only a large decrease).
    fit = latent_deblur(G, A, y, niter=20)
    assert fit.misfit_start > 0.1
    assert fit.misfit < 1e-3 * fit.misfit_start, fit
    assert (fit.x - G(fit.z)).norm() == 0
    assert np.isclose(fit.misfit, (A(fit.x) - y).norm() ** 2)
    # Near the truth BFGS converges to it (wrong gradients would not).
    z0 = z_true + G.domain.element([0.2, -0.2, 0.2])
    fit = latent_deblur(G, A, y, z0=z0, niter=40)
    assert fit.misfit < 1e-12 * fit.misfit_start, fit
    assert np.abs(fit.z.asarray() - z_true.asarray()).max() < 1e-6
    assert (z0 - z_true).norm() > 0.3  # z0 was not updated in place
    fit = latent_deblur(G, A, y, z0=z0, niter=40, num_store=5)  # L-BFGS
    assert fit.misfit < 1e-5 * fit.misfit_start, fit
    # Plain steepest descent and Adam also decrease the misfit.
    for method in ('steepest_descent', 'adam'):
        fit = latent_deblur(G, A, y, z0=z0, niter=20, method=method)
        assert fit.misfit < 0.5 * fit.misfit_start, (method, fit)
    with pytest.raises(ValueError, match='method'):
        latent_deblur(G, A, y, method='newton')
    with pytest.raises(ValueError, match=r'z0 has 2 entries.*rn\(3'):
        latent_deblur(G, A, y, z0=[0.0, 1.0])
    with pytest.raises(ValueError, match='z0 must be a latent code'):
        latent_deblur(G, A, y, z0=[0.0, float('nan'), 1.0])
    # one place: recon.latent (the old signals1d name is gone)
    from odl_genprior.generators import signals1d
    assert not hasattr(signals1d, 'latent_deblur')


# --- the command line --------------------------------------------------------

def test_cli_train_cgnn(tmp_path):
    out = tmp_path / 'run'
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    args = ['train', 'cgnn', '--size', '64', '--levels', '2', '3', '4',
            '--channels', '4', '2', '1', '--latent-dim', '3', '--width', '8',
            '--n-train', '32', '--n-val', '8', '--epochs', '1',
            '--batch-size', '16', '--quiet', '--out', str(out)]
    res = subprocess.run([sys.executable, '-m', 'odl_genprior', *args],
                         capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert {'config.json', 'weights.pt', 'metrics.csv'} <= {
        p.name for p in out.iterdir()}
    cfg = json.loads((out / 'config.json').read_text())['user']
    assert cfg['command'].startswith('odl-genprior train cgnn')
    assert cfg['recipe']['kind'] == 'cgnn'
    assert cfg['recipe']['dataset'] == 'signals'
    assert cfg['recipe']['levels'] == [2, 3, 4]
    G = recipes.generator_of(recipes.load_run(out))
    assert G(torch.zeros(1, 3)).shape == (1, 1, 64)
    # A CGNN on images is refused with a message, not a traceback.
    bad = subprocess.run([sys.executable, '-m', 'odl_genprior', 'train',
                          'cgnn', '--dataset', 'ellipses', '--out',
                          str(tmp_path / 'bad')], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and '--dataset signals' in bad.stderr
