"""The Bora et al. and Duff et al. reproduction scripts run end to end.

Tiny settings (one test digit, one restart, a few iterations): these check
that the scripts run and print their tables and goals, not the numbers
(those are in docs/reproductions_latent.md). Skipped without the MNIST
files or the pretrained VAE.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from odl_genprior import data
from odl_genprior.generators import recipes
from odl_genprior import models

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / 'shared' / 'data' / 'mnist'


def mnist_directory():
    env = os.environ.get(data.MNIST_ENV)
    if env and Path(env).is_dir():
        return env
    return str(SHARED_MNIST) if SHARED_MNIST.is_dir() else None


@pytest.fixture
def script_env(monkeypatch):
    """MNIST folder in the environment; skip without MNIST or the VAE."""
    directory = mnist_directory()
    if directory is None:
        pytest.skip(f'MNIST files not found (set {data.MNIST_ENV})')
    if 'mnist-vae-20' not in models.list_pretrained('generator'):
        pytest.skip('pretrained mnist-vae-20 not installed')
    monkeypatch.setenv(data.MNIST_ENV, directory)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # the scripts set one thread


def load_script(name):
    """Import ``examples/<name>.py`` as a module (not run as __main__)."""
    # As under `python examples/<name>.py`: its folder is importable.
    if str(ROOT / 'examples') not in sys.path:
        sys.path.insert(0, str(ROOT / 'examples'))
    spec = importlib.util.spec_from_file_location(
        name, ROOT / 'examples' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bora_script_tiny(script_env, capsys):
    bora = load_script('reproduce_bora_cs')
    bora.main(['--digits', '2', '--val-digits', '1', '--measurements', '25',
               '100', '--restarts', '1', '--vae-iter', '3', '--lasso-iter',
               '10', '--alphas', '0.1', '1.0'])
    out = capsys.readouterr().out
    assert 'per-pixel MSE, mean +- standard error over 2 MNIST test' in out
    rows = [line.split() for line in out.splitlines()
            if line.strip().startswith(('25 ', '100 '))]
    assert [r[0] for r in rows] == ['25', '100']
    assert all(float(r[1]) >= 0 and float(r[4]) >= 0 for r in rows)
    assert 'VAE MSE <= 0.5 x Lasso MSE at m <= 100' in out
    assert 'Lasso better than VAE at m = 100' in out


def test_bora_goal_checks():
    bora = load_script('reproduce_bora_cs')
    ms = [50, 200, 400, 750]
    vae = {50: 0.02, 200: 0.010, 400: 0.009, 750: 0.008}
    lasso = {50: 0.10, 200: 0.05, 400: 0.02, 750: 0.006}
    goals = bora.check_goals(ms, vae, lasso, flat_factor=1.5)
    assert [ok for _, ok in goals] == [True, True, True]
    vae[750] = 0.0062  # still above Lasso, but 0.010 / 0.0062 > 1.5
    goals = bora.check_goals(ms, vae, lasso, flat_factor=1.5)
    assert [ok for _, ok in goals] == [True, True, False]


def test_duff_script_tiny(script_env, capsys):
    duff = load_script('reproduce_duff_cs')
    duff.main(['--digits', '1', '--val-digits', '1', '--measurements', '100',
               '--restarts', '1', '--latent-iter', '2', '--tv-iter', '5',
               '--cg-iter', '5', '--grid-size', '1', '--shift', '2'])
    out = capsys.readouterr().out
    assert 'PSNR in dB, mean +- standard error over 1 digits (m = 100)' in out
    for name in duff.METHODS:
        assert any(line.startswith(name) and line.count('+-') == 2
                   for line in out.splitlines()), name
    assert 'shifted 2 px (goal)' in out


def test_shift_moves_digits():
    duff = load_script('reproduce_duff_cs')
    images = torch.rand(2, 28, 28).numpy()
    out = duff.shifted(images, 3)
    assert out.shape == images.shape
    assert (out[:, :3] == 0).all() and (out[:, :, :3] == 0).all()
    assert (out[:, 3:, 3:] == images[:, :25, :25]).all()
