"""The model registry: every family trains, reloads and ships the same way;
every shipped model is recognised by exactly one family and loads by name."""
import dataclasses
import tomllib
from pathlib import Path

import pytest
import torch

from odl_genprior import models
from odl_genprior.models import registry

pytestmark = pytest.mark.usefixtures('one_torch_thread')

#: the smallest run of each family: (config, fit options)
TINY = {
    'unrolled': ({'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 1,
                  'benchmark': {'size': 16, 'num_angles': 8}},
                 dict(n_train=4, n_val=2, steps=2, batch_size=2)),
    'limited_angle': ({'scheme': 'lfb', 'n_iter': 1, 'hidden_channels': 4,
                       'htc2022': {'size': 16, 'max_range': 6,
                                   'min_range': 2, 'angle_step': 2}},
                      dict(n_train=4, n_val=2, epochs=1, batch_size=2)),
    'learned_svd': ({'dataset': 'ellipses', 'size': 16, 'angles': 6,
                     'latent_dim': 4, 'hidden': [16]},
                    dict(n_train=16, n_val=4, epochs=1, batch_size=8)),
    'generator': ({'kind': 'ae', 'dataset': 'ellipses', 'size': 16,
                   'latent_dim': 4, 'arch': 'mlp', 'hidden': [32]},
                  dict(n_train=32, n_val=8, steps=3, batch_size=16)),
}


def test_every_family_is_registered_and_has_a_tiny_run():
    assert sorted(models.FAMILIES) == sorted(TINY)


@pytest.mark.parametrize('name', sorted(TINY))
def test_every_fit_takes_the_shared_options(name):
    import inspect
    params = inspect.signature(models.FAMILIES[name].fit).parameters
    first = list(params)[:2]
    assert len(first) == 2 and params[first[1]].name == 'out_dir'
    missing = [o for o in registry.FIT_OPTIONS if o not in params]
    assert not missing, missing
    assert all(params[o].kind is inspect.Parameter.KEYWORD_ONLY
               for o in registry.FIT_OPTIONS)


@pytest.mark.parametrize('name', sorted(TINY))
def test_fit_then_load_by_the_family_the_folder_records(tmp_path, name):
    family = models.FAMILIES[name]
    config, options = TINY[name]
    trained = family.fit(config, tmp_path / 'run', progress=False, **options)
    assert models.family_of(tmp_path / 'run') is family
    import json
    user = json.loads((tmp_path / 'run' / 'config.json').read_text())['user']
    assert user['provenance']['family'] == name  # recorded, not guessed
    session = json.loads((tmp_path / 'run' / 'config.json').read_text())[
        'sessions'][-1]
    assert {'odl', 'torch', 'commit'} <= set(session['versions'])
    again = models.load(tmp_path / 'run')
    ours, theirs = trained.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    changed = False
    fresh = family.build(config).state_dict()
    for k in ours:
        torch.testing.assert_close(theirs[k], ours[k])
        if ours[k].is_floating_point() and not torch.equal(ours[k],
                                                           fresh[k]):
            changed = True
    assert changed  # the run trained something


def test_every_shipped_model_is_one_familys_and_loads():
    names = models.list_pretrained()
    assert len(names) == len(set(names)) >= 10
    by_family = {f: models.list_pretrained(f) for f in models.FAMILIES}
    assert sorted(n for ns in by_family.values() for n in ns) == names
    assert 'dival-lpd-long-128' in by_family['unrolled']
    assert 'htc-lpd-128' in by_family['limited_angle']
    assert 'mnist-vae-20' in by_family['generator']
    for family, ns in by_family.items():
        if not ns:  # a family with nothing shipped (learned SVD)
            continue
        net = models.pretrained(ns[0])
        assert not net.training
        assert isinstance(net, torch.nn.Module), family
    with pytest.raises(KeyError, match='no shipped model'):
        models.pretrained('dival-lpd-129')
    with pytest.raises(ValueError, match='family must be one of'):
        models.list_pretrained('unrolleds')


def test_no_checkpoint_is_shipped_or_packaged():
    roots = {f.shipped for f in models.FAMILIES.values()}
    for root in roots:
        assert not list(root.glob('*/checkpoint.pt')), root
    repo = Path(__file__).resolve().parents[1]
    data = tomllib.loads((repo / 'pyproject.toml').read_text())[
        'tool']['setuptools']['package-data']
    globs = [g for gs in data.values() for g in gs]
    assert globs and not any('checkpoint' in g or g.endswith('*')
                             for g in globs)


def test_ship_exports_weights_only_and_refuses_other_families(
        tmp_path, monkeypatch):
    name = 'unrolled'
    config, options = TINY[name]
    family = models.FAMILIES[name]
    # an unfinished run: only its checkpoint holds weights
    family.fit(config, tmp_path / 'run', progress=False, checkpoint_every=1,
               **{**options, 'steps': 1})
    (tmp_path / 'run' / 'weights.pt').unlink()
    shipped = tmp_path / 'shipped'
    shipped.mkdir()
    monkeypatch.setitem(registry.FAMILIES, name,
                        dataclasses.replace(family, shipped=shipped))
    assert models.ship(tmp_path / 'run', 'tiny-lgd') == 1
    assert sorted(p.name for p in (shipped / 'tiny-lgd').iterdir()) == [
        'config.json', 'metrics.csv', 'weights.pt']
    assert 'tiny-lgd' in models.list_pretrained('unrolled')
    assert type(models.pretrained('tiny-lgd')).__name__ == \
        'LearnedGradientDescent'
    with pytest.raises(ValueError, match='another family'):
        models.ship(tmp_path / 'run', 'mnist-vae-20')
    with pytest.raises(ValueError, match='plain folder name'):
        models.ship(tmp_path / 'run', '../escape')


def test_unknown_folders_and_families_are_refused(tmp_path):
    (tmp_path / 'config.json').write_text('{"user": {"something": {}}}')
    with pytest.raises(ValueError, match='no registered family'):
        models.family_of(tmp_path)
    with pytest.raises(FileNotFoundError, match='not a training run'):
        models.family_of(tmp_path / 'nothing')
    with pytest.raises(TypeError, match='Family'):
        models.register('unrolled')
    other = dataclasses.replace(models.FAMILIES['unrolled'],
                                recognizes=lambda user: False)
    with pytest.raises(ValueError, match='registered already'):
        models.register(other)
