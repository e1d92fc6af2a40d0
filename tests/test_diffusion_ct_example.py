"""examples/diffusion_ct.py runs end to end (tiny settings, a tiny model)."""
import importlib.util
import json
from pathlib import Path

import pytest

from odl_genprior.generators import recipes

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _example():
    spec = importlib.util.spec_from_file_location(
        'diffusion_ct', ROOT / 'examples' / 'diffusion_ct.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_writes_table_figure_and_results(tmp_path, capsys):
    run = tmp_path / 'score'
    recipes.fit({'kind': 'score', 'dataset': 'ellipses', 'size': 64,
                 'channels': [4, 8], 'embed_dim': 8}, run, n_train=8,
                n_val=4, epochs=1, batch_size=8, progress=False)
    out = tmp_path / 'out'
    _example().main(['--n-test', '2', '--score', str(run), '--samples', '2',
                     '--dps-steps', '3', '--proj-steps', '3', '--methods',
                     'fbp', 'dps', 'projection', '--unconditional', '2',
                     '--out', str(out),
                     '--quiet'])
    text = capsys.readouterr().out
    assert '| FBP |' in text and '| score projection (posterior mean) |' \
        in text
    assert (out / 'diffusion_ct.png').stat().st_size > 10000
    assert (out / 'unconditional.png').is_file()
    table = (out / 'table.md').read_text()
    assert table.count('\n') == 5  # header, rule, three methods
    res = json.loads((out / 'results.json').read_text())
    assert len(res['results']['dps']['psnr']) == 2
    assert res['args']['angles'] == 23
    # FBP of 23-angle data is far better than the zero image (~6 dB)
    assert min(res['results']['fbp']['psnr']) > 15


def test_example_rejects_unknown_methods():
    with pytest.raises(SystemExit):
        _example().build_parser().parse_args(['--methods', 'magic'])
