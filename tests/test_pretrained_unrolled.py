"""The trained unrolled networks shipped with the package."""
import json

import pytest

from odl_genprior.problems.ellipse_ct import DivalEllipses, evaluate
from odl_genprior.recon import FBP, TV
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.models.unrolled import (PRETRAINED_DIR,
                                          list_pretrained_unrolled,
                                          load_unrolled, pretrained_for,
                                          pretrained_unrolled)
from odl_genprior.training import read_metrics

SHIPPED = list_pretrained_unrolled()


def test_the_dival_learned_pd_ships():
    assert 'dival-lpd-128' in SHIPPED


@pytest.fixture(scope='module')
def dival_test():
    # Test images 0-2 of DIVal's ellipses (never seen in training).
    return DivalEllipses().problems(3, 'test')


@pytest.fixture(scope='module')
def baselines(dival_test):
    return {'FBP': evaluate(FBP(), dival_test)['psnr'],
            'TV': evaluate(TV(), dival_test)['psnr']}


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_network_is_small_documented_and_loads(name):
    folder = PRETRAINED_DIR / name
    assert (folder / 'weights.pt').stat().st_size <= 5 * 2 ** 20
    cfg = json.loads((folder / 'config.json').read_text())
    # How it was made: the package's command with its seed, the steps and
    # the wall time of the log.
    assert cfg['user']['command'].startswith('odl-genprior train unrolled')
    assert 'seed' in cfg['user']['options']
    rows = read_metrics(folder)
    assert rows[-1]['step'] > 0 and rows[-1]['time'] > 0
    assert any('val_psnr' in r for r in rows)
    net = pretrained_unrolled(name)
    assert not net.training
    assert load_unrolled(name).config == net.config


@pytest.mark.parametrize('name', pretrained_for('dival'))
def test_shipped_dival_network_beats_tv(name, dival_test, baselines):
    learned = evaluate(LearnedReconstructor.pretrained(name), dival_test)
    assert learned['psnr'] > baselines['FBP'] + 2
    assert learned['psnr'] > baselines['TV']


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(KeyError, match='dival-lpd-128'):
        pretrained_unrolled('dival-unet-128')


def test_example_script_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / 'examples' / (
        'dival_shipped_networks.py')
    spec = importlib.util.spec_from_file_location('dival_shipped', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(['--n', '1', '--cg-iter', '1'])
    out = capsys.readouterr().out
    for row in ('FBP', 'TV', 'learned PD'):
        assert any(line.startswith(row) for line in out.splitlines())
    assert '+ 1 CG steps' in out
