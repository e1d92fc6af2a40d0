"""Score models trained by the package: recipe, EMA, resume, shipped model.

Issue 8, item 1: a `ScoreUNet` trained by denoising score matching with the
package's training loop on ellipses and MNIST (tiny runs here), resumable,
recorded like the other priors, and the shipped ``ellipses-score-64``
loaded by name.
"""
import gzip
import json

import numpy as np
import odl
import pytest
import torch

from odl_genprior import data as _data
from odl_genprior.generators import recipes
from odl_genprior import models
from odl_genprior.diffusion.score_recipe import (complete_score_recipe,
                                                  make_sde, score_training)
from odl_genprior.diffusion.score_unet import EMAScore, ScoreUNet
from odl_genprior.diffusion.sde import VESDE, VPSDE, tweedie_denoiser

TINY = {'kind': 'score', 'dataset': 'ellipses', 'size': 16,
        'channels': [4, 8], 'embed_dim': 8}
SHIPPED = 'ellipses-score-64'
SHIPPED_DIR = models.FAMILIES['generator'].shipped


pytestmark = pytest.mark.usefixtures('one_torch_thread')


# --- recipe -------------------------------------------------------------------

def test_recipe_defaults_and_sdes():
    r = complete_score_recipe(dict(TINY, sde='ve', sigma_max=20))
    assert r['sigma_max'] == 20.0 and r['sigma_min'] == 0.01
    assert 'beta_min' not in r
    assert isinstance(make_sde(r), VESDE)
    m = recipes.build_model(r)
    assert isinstance(m, EMAScore) and isinstance(m.net, ScoreUNet)
    assert m.sde.sigma_max == 20.0
    r = recipes.complete_recipe(dict(TINY, dataset='mnist', size=None))
    assert r['size'] == 28 and isinstance(make_sde(r), VPSDE)


@pytest.mark.parametrize('bad, match', [
    ({'sde': 'subvp'}, "sde must be 'vp' or 've', got 'subvp'"),
    ({'dataset': 'signals'}, "dataset must be 'ellipses' or 'mnist'"),
    ({'channels': [4]}, 'channels must be two positive ints'),
    ({'size': 15}, 'image side must be even, got 15'),
    ({'sigma_max': 3.0}, "sigma_max belongs to the 've' SDE, not to 'vp'"),
])
def test_recipe_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        recipes.build_model(dict(TINY, **bad))


def test_score_training_needs_an_ema_model():
    with pytest.raises(TypeError, match='must be an EMAScore, got ScoreUNet'):
        score_training(ScoreUNet(VPSDE(), channels=(4, 8), embed_dim=8),
                       TINY)


# --- EMA ----------------------------------------------------------------------

def test_ema_follows_the_formula_and_switches_with_the_mode():
    torch.manual_seed(0)
    model = EMAScore(ScoreUNet(VPSDE(), channels=(4, 8), embed_dim=8),
                     decay=0.9)
    before = [p.detach().clone() for p in model.ema.parameters()]
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(torch.randn_like(p))
    model.update()  # first update: warm-up decay min(0.9, 1/10) = 0.1
    for b, pe, p in zip(before, model.ema.parameters(),
                        model.net.parameters()):
        assert torch.allclose(pe, 0.1 * b + 0.9 * p, atol=1e-6)
    x, t = torch.randn(3, 8, 8), torch.rand(3)
    model.train()
    assert torch.equal(model(x, t), model.net(x, t))
    model.eval()
    assert torch.equal(model(x, t), model.ema(x, t))
    assert not torch.allclose(model.net(x, t), model.ema(x, t))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(list(model.net.parameters()))


def test_ema_errors():
    net = ScoreUNet(VPSDE(), channels=(4, 8), embed_dim=8)
    with pytest.raises(ValueError, match=r'decay must lie in \[0, 1\), got 1'):
        EMAScore(net, decay=1.0)
    with pytest.raises(TypeError, match='with an `sde` attribute.*Linear'):
        EMAScore(torch.nn.Linear(2, 2))


# --- training through the package's loop ----------------------------------

def _fit(out, epochs, **kw):
    return recipes.fit(TINY, out, n_train=32, n_val=8, epochs=epochs,
                       batch_size=8, lr=2e-3, progress=False,
                       command='odl-genprior train score ...', **kw)


def test_tiny_run_is_recorded_and_reloads(tmp_path):
    model = _fit(tmp_path, 2)
    cfg = json.loads((tmp_path / 'config.json').read_text())
    assert cfg['user']['recipe'] == complete_score_recipe(TINY)
    assert cfg['user']['command'] == 'odl-genprior train score ...'
    assert cfg['clip_grad_norm'] == 1.0
    rows = (tmp_path / 'metrics.csv').read_text().splitlines()
    assert rows[0].split(',')[-1] == 'val_dsm' and len(rows) > 2
    assert int(model.num_updates) == 8  # one EMA update per step
    again = recipes.load_run(tmp_path)
    assert isinstance(again, EMAScore) and not again.training
    x = torch.rand(2, 16, 16)
    t = torch.rand(2)
    with torch.no_grad():
        assert torch.equal(model(x, t), again(x, t))
    # the loss went down from the untrained network's
    losses = [float(r.split(',')[3]) for r in rows[1:]]
    assert losses[-1] < losses[0]


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    whole = _fit(tmp_path / 'whole', 3)
    from odl_genprior.diffusion import score_recipe

    def interrupted(info):  # killed at step 6; last checkpoint: step 4
        info['model'].update()
        if info['step'] == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(score_recipe, '_ema_callback', interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / 'split', 3)
    monkeypatch.undo()
    ckpt = torch.load(tmp_path / 'split' / 'checkpoint.pt', weights_only=True)
    assert ckpt['step'] == 4
    resumed = _fit(tmp_path / 'split', 3)  # the same command again
    sd1, sd2 = whole.state_dict(), resumed.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    assert int(resumed.num_updates) == 12


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, 'big') + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_tiny_mnist_run_from_idx_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, n in (('train', 24), ('t10k', 8)):
        _write_idx(tmp_path / f'{split}-images-idx3-ubyte.gz',
                   rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(tmp_path / f'{split}-labels-idx1-ubyte.gz',
                   rng.integers(0, 10, n), 2049)
    monkeypatch.setenv(_data.MNIST_ENV, str(tmp_path))
    recipe = dict(TINY, dataset='mnist', size=None)
    model = recipes.fit(recipe, tmp_path / 'run', n_train=24, n_val=8,
                        epochs=1, batch_size=8, progress=False)
    with torch.no_grad():
        s = model(torch.rand(2, 1, 28, 28), torch.tensor([0.2, 0.7]))
    assert s.shape == (2, 1, 28, 28) and torch.isfinite(s).all()
    cfg = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert cfg['user']['recipe']['size'] == 28


# --- the shipped model ------------------------------------------------------

@pytest.fixture(scope='module')
def shipped():
    if SHIPPED not in models.list_pretrained('generator'):
        pytest.fail(f'{SHIPPED} is not shipped in {SHIPPED_DIR}')
    return models.pretrained(SHIPPED)


def test_shipped_model_is_recorded(shipped):
    cfg = json.loads((SHIPPED_DIR / SHIPPED /
                      'config.json').read_text())
    assert cfg['user']['command'].startswith((
        'odl-genprior train score ',
        'python -m odl_genprior.generators.score_recipe '))  # its old name
    assert '--out odl_genprior/generators/pretrained/' + SHIPPED in cfg[
        'user']['command']
    assert cfg['user']['recipe']['kind'] == 'score'
    assert isinstance(shipped, EMAScore) and not shipped.training
    size = sum((SHIPPED_DIR / SHIPPED / f).stat().st_size
               for f in ('weights.pt', 'config.json', 'metrics.csv'))
    assert size < 3e6


def test_shipped_scores_are_finite_and_denoise(shipped):
    space = odl.uniform_discr([-1, -1], [1, 1], (64, 64))
    x0 = torch.from_numpy(_data.ellipse_batch(space, 8, seed=12345))
    g = torch.Generator().manual_seed(0)
    sde = shipped.sde
    for t in (0.05, 0.2, 0.4):
        xt = sde.perturb(x0, t, torch.randn(x0.shape, generator=g))
        with torch.no_grad():
            s = shipped(xt, torch.full((8,), t))
            x_hat = tweedie_denoiser(shipped, sde, xt, t)
        assert s.shape == xt.shape and torch.isfinite(s).all()
        naive = xt / sde.mean_coeff(torch.tensor(t))  # unbiased, noisy
        err = (x_hat - x0).pow(2).mean()
        assert err < 0.5 * (naive - x0).pow(2).mean(), t


def test_shipped_model_rejects_wrong_shapes(shipped):
    with pytest.raises(ValueError, match=r'expected x of shape \(B, 1, H, '
                                         r'W\), got \(2, 3, 64, 64\)'):
        shipped(torch.rand(2, 3, 64, 64), 0.5)


def test_cli_records_and_resumes_score_runs(tmp_path, capsys):
    """odl-genprior train score records its command; the same command on a
    finished run does nothing, another configuration is refused."""
    from odl_genprior import cli
    opts = ['--size', '16', '--channels', '4', '8', '--embed-dim', '8',
            '--n-train', '16', '--n-val', '4', '--epochs', '2',
            '--batch-size', '8', '--out', str(tmp_path), '--quiet']
    assert cli.main(['train', 'score'] + opts) == 0
    cfg = json.loads((tmp_path / 'config.json').read_text())
    assert cfg['user']['command'].startswith(
        'odl-genprior train score --size 16')
    before = (tmp_path / 'weights.pt').read_bytes()
    assert cli.main(['train', 'score'] + opts) == 0  # finished: nothing to do
    assert (tmp_path / 'weights.pt').read_bytes() == before
    again = json.loads((tmp_path / 'config.json').read_text())
    assert again['user'] == cfg['user']
    # other options on the same folder are refused, naming the difference
    assert cli.main(['train', 'score', '--sde', 've'] + opts) == 2
    assert "'sde'" in capsys.readouterr().err


def test_diffusion_methods_refuse_other_image_sizes(shipped):
    from odl_genprior.problems import ct
    from odl_genprior.recon import DiffusionPosteriorSampling, ScoreProjection
    problem = ct(size=32, num_angles=8, seed=0)
    for cls in (DiffusionPosteriorSampling, ScoreProjection):
        method = cls(shipped, shipped.sde, niter=2, n_samples=1)
        with pytest.raises(ValueError, match=r'trained on 64x64 images but '
                                             r'the problem space .* has '
                                             r'shape \(32, 32\)'):
            method(problem, progress=False)
