"""Recipes, `odl-genprior train`, run folders and the shipped priors."""
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
from odl_genprior import models
from odl_genprior.training import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, '-m', 'odl_genprior', *args],
                          capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


@pytest.mark.parametrize('kind', ['vae', 'ae', 'gan'])
def test_fit_and_reload_each_kind(tmp_path, kind):
    recipe = {'kind': kind, 'dataset': 'ellipses', 'size': 16,
              'latent_dim': 4, 'arch': 'conv', 'width': 8}
    model = recipes.fit(recipe, tmp_path, n_train=64, n_val=16, epochs=2,
                        batch_size=16, progress=False)
    again = recipes.load_run(tmp_path)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    z = torch.randn(3, 4)
    with torch.no_grad():
        out = recipes.generator_of(again)(z)
    assert out.shape == (3, 1, 16, 16) and torch.isfinite(out).all()
    cfg = json.loads((tmp_path / 'config.json').read_text())
    assert cfg['user']['recipe']['kind'] == kind
    # More epochs continue the finished run (every trainer).
    more = recipes.fit(recipe, tmp_path, n_train=64, n_val=16, epochs=3,
                       batch_size=16, progress=False)
    steps = [r['step'] for r in read_metrics(tmp_path)]
    assert steps[-1] == 12 and 8 in steps  # the first 2 epochs' rows kept
    assert not torch.equal(next(more.parameters()),
                           next(again.parameters()))


def test_cli_train_writes_run_and_resumes(tmp_path):
    out = tmp_path / 'run'
    args = ('train', 'ae', '--dataset', 'ellipses', '--size', '16',
            '--latent-dim', '4', '--width', '8', '--n-train', '64',
            '--n-val', '16', '--epochs', '2', '--batch-size', '16',
            '--quiet', '--out', str(out))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ['checkpoint.pt', 'config.json', 'metrics.csv',
                     'weights.pt']
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['user']['command'].startswith('odl-genprior train ae')
    weights = (out / 'weights.pt').read_bytes()
    # Same command again: the finished run is recognised, nothing retrained.
    second = run_cli(*args, '--resume')
    assert second.returncode == 0, second.stderr
    assert (out / 'weights.pt').read_bytes() == weights
    # Another configuration in the same folder is refused by name.
    third = run_cli(*args[:-2], '--lr', '0.01', '--out', str(out))
    assert third.returncode != 0 and 'lr' in third.stderr


def test_recipe_errors():
    with pytest.raises(ValueError, match='kind'):
        recipes.build_model({'kind': 'flow', 'dataset': 'mnist'})
    with pytest.raises(ValueError, match='dataset'):
        recipes.build_model({'kind': 'vae', 'dataset': 'cifar'})
    with pytest.raises(KeyError, match='available'):
        models.pretrained('no-such-model')
    with pytest.raises(FileNotFoundError, match='config.json'):
        recipes.load_run('/no/such/run')


def _recorded(name):
    folder = models.FAMILIES['generator'].shipped / name
    return json.loads((folder / 'config.json').read_text())['user']


def test_every_shipped_model_records_a_package_command():
    for name in models.list_pretrained('generator'):
        command = _recorded(name)['command']
        # the shipped score model: `python -m
        # odl_genprior.generators.score_recipe`, the old spelling of
        # `odl-genprior train score` (tests/test_score_training)
        assert command.startswith(('odl-genprior train ',
                                   'python -m odl_genprior.')), command
        assert '--seed' in command and '--out' in command


# Score models are tested in tests/test_score_training.py.
@pytest.mark.parametrize('name', [n for n in models.list_pretrained('generator')
                                  if _recorded(n)['recipe']['kind']
                                  != 'score'])
def test_pretrained_loads_by_name_and_generates(name):
    model = models.pretrained(name)
    cfg = _recorded(name)
    size = (models.FAMILIES['generator'].shipped / name / 'weights.pt').stat().st_size
    assert size < 5e6
    G = recipes.generator_of(model)
    n = cfg['recipe']['latent_dim']
    with torch.no_grad():
        x = G(torch.randn(4, n, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(x).all() and 0 <= float(x.min())
    assert float(x.std()) > 0.01  # images, not a constant
    # As an ODL operator on the latent space.
    shape = tuple(x.shape[-2:])
    op = TorchOperator(G, odl.rn(n, dtype='float32'),
                       odl.uniform_discr([-1, -1], [1, 1], shape,
                                         dtype='float32'))
    img = op(op.domain.element(np.zeros(n, dtype='float32')))
    assert np.isfinite(img.asarray()).all()


def test_some_priors_are_shipped():
    assert {'mnist-vae-20', 'ellipses-64', 'ellipses-vae-128'} <= set(
        models.list_pretrained('generator'))
    assert type(models.pretrained('ellipses-64')).__name__ == 'VAE'


def test_sharper_ellipse_prior_reconstructs_ellipses_better():
    """ellipses-vae-128 (KL weight 0.1) encodes-decodes held-out ellipses
    with a smaller error than ellipses-64 (KL weight 1)."""
    from odl_genprior import data
    space = odl.uniform_discr([-1, -1], [1, 1], (64, 64), dtype='float32')
    x = torch.as_tensor(data.ellipse_batch(space, 16, seed=4321))[:, None]
    errors = {}
    for name in ('ellipses-64', 'ellipses-vae-128'):
        vae = models.pretrained(name)
        with torch.no_grad():
            x_hat, mu, _ = vae(x)  # eval mode: decoded at the posterior mean
        errors[name] = float(((x_hat - x) ** 2).mean())
        assert mu.shape == (16, vae.latent_dim)
    assert models.pretrained('ellipses-vae-128').latent_dim == 128
    assert errors['ellipses-vae-128'] < 0.9 * errors['ellipses-64'], errors
