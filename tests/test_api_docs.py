"""The API reference (docs/api: Sphinx with autodoc, autosummary and
numpydoc) builds from the docstrings without a warning, and documents the
public names a user looks for."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('sphinx')
pytest.importorskip('numpydoc')

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_without_warnings(tmp_path):
    src = tmp_path / 'api'
    # a copy: autosummary writes its pages beside the sources
    shutil.copytree(ROOT / 'docs' / 'api', src,
                    ignore=shutil.ignore_patterns('generated', '_build'))
    out = tmp_path / 'html'
    res = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b',
         'html', str(src), str(out)], capture_output=True, text=True,
        cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    pages = {p.stem for p in (out / 'generated').glob('*.html')}
    for module in ('odl_genprior.bridge.layer', 'odl_genprior.models.registry',
                   'odl_genprior.recon.learned', 'odl_genprior.problems.protocol',
                   'odl_genprior.interop.deepinv', 'odl_genprior.diagnostics'):
        assert module in pages, module
    layer = (out / 'generated' / 'odl_genprior.bridge.layer.html').read_text()
    assert 'OperatorLayer' in layer and 'batching' in layer
