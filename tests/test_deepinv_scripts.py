"""The deepinv example scripts and benchmark run end to end.

Tiny settings (16-32 pixels, a couple of steps): these check that the
scripts run and print their tables (and the benchmark its ``ratio:`` last
line), not the numbers (docs/interop.md, docs/benchmarks.md). Skipped
without deepinv.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

from odl_genprior.interop.deepinv import prepare_torchvision

prepare_torchvision()  # before torchvision's import (see docs/interop.md)
pytest.importorskip('deepinv')

pytestmark = pytest.mark.usefixtures('one_torch_thread')

ROOT = Path(__file__).resolve().parents[1]


def load(relpath):
    """The script at ``relpath`` as a module (not run as __main__)."""
    path = ROOT / relpath
    name = '_script_' + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def lines(capsys):
    return capsys.readouterr().out.strip().splitlines()


def test_lpd_trainer(capsys):
    rows = load('examples/deepinv_lpd_trainer.py').main(
        ['--size', '16', '--steps', '2', '--n-train', '4', '--n-test', '2',
         '--batch', '2', '--n-iter', '2'])
    out = lines(capsys)
    assert out[0].startswith('learned PD from deepinv PDNet blocks')
    assert out[1].split()[:2] == ['physics', 'data']
    assert out[2].startswith('odl (as_physics)')
    assert out[3].startswith('deepinv Tomography')
    assert [r[0] for r in rows] == ['odl (as_physics)', 'deepinv Tomography']
    assert rows[0][6] == rows[1][6]  # the same network on both


def test_pnp_htc2022(capsys):
    rows = load('examples/deepinv_pnp_htc2022.py').main(
        ['--size', '16', '--level', '30', '--iters', '3'])
    out = lines(capsys)
    assert out[0].startswith('simulated HTC2022, 30 degrees, 16x16')
    assert out[1].split() == ['method', 'PSNR', 'dB', 'MCC', 'time', 's']
    assert out[2].startswith('FBP (as_solver)')
    assert out[3].startswith('PnP-PGD + tv (3 it)')
    for _, _, psnr, mcc in rows:
        assert -1 <= mcc <= 1 and psnr == psnr


def test_pnp_untrained_drunet_runs(capsys):
    load('examples/deepinv_pnp_htc2022.py').main(
        ['--size', '16', '--level', '30', '--iters', '1', '--denoiser',
         'dncnn'])
    assert lines(capsys)[3].startswith('PnP-PGD + dncnn (1 it)')


def test_metrics_shipped(capsys):
    from odl_genprior.models.unrolled import list_pretrained_unrolled
    if 'dival-lpd-128' not in list_pretrained_unrolled():
        pytest.skip('dival-lpd-128 not shipped')
    rows = load('examples/deepinv_metrics_shipped.py').main(
        ['--n', '1', '--deepinv-test'])
    out = lines(capsys)
    assert out[1].split()[:3] == ['method', 'PSNR', 'dB']
    assert [r[0] for r in rows] == ['FBP', 'dival-lpd-128']
    assert rows[1][1] > rows[0][1]  # the network beats FBP
    assert any(s.startswith('deepinv.test(dival-lpd-128): PSNR')
               for s in out)


def test_benchmark(capsys):
    ratio = load('benchmarks/deepinv.py').main(
        ['--rounds', '1', '--size', '16', '--batch', '2', '--n-iter', '2'])
    out = lines(capsys)
    assert out[1].startswith('operator fwd+bwd')
    assert any(s.startswith('one Adam step') for s in out)
    assert out[-1] == f'ratio: {ratio:.3f}'
    assert ratio > 0
