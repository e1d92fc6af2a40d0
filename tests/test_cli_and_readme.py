"""The README's commands and the console script."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / 'README.md').read_text()
    return re.findall(r'```bash\n(.*?)\n```', text, flags=re.S)


def test_readme_gives_install_and_test_commands_ci_runs():
    blocks = readme_commands()
    main_job = [b for b in blocks if 'odl-genprior demo' in b]
    tests = [b for b in blocks if 'python -m pytest' in b]
    assert main_job and tests
    ci = (ROOT / '.ci' / 'run').read_text()
    # .ci/run installs as the README says and runs its test command.
    for step in ('pip install torch==2.13.0', 'pip install ".[test,deepinv]"',
                 'python -m pytest'):
        assert step in tests[0] and step in ci


def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, '-m', 'odl_genprior', *args],
                          capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def test_help():
    out = run_cli('--help')
    assert out.returncode == 0
    assert 'demo' in out.stdout


def test_demo_small_prints_table_and_figure(tmp_path):
    png = tmp_path / 'demo.png'
    out = run_cli('demo', '--problem', 'ellipse', '--size', '48', '--angles',
                  '20', '--tv-iters', '60', '--quiet', '--out', str(png))
    assert out.returncode == 0, out.stderr
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(
                r'^(FBP|TV|GenPrior)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+$',
                out.stdout, flags=re.M)}
    assert set(rows) == {'FBP', 'TV', 'GenPrior'}
    assert rows['TV'][0] > rows['FBP'][0]
    # The zero image scores about 6 dB on these phantoms.
    assert rows['GenPrior'][0] > 12
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_ellipse_tv_and_prior_beat_fbp(tmp_path):
    out = run_cli('demo', '--problem', 'ellipse', '--quiet', '--out',
                  str(tmp_path / 'demo.png'))
    assert out.returncode == 0, out.stderr
    psnr = dict(re.findall(r'^(FBP|TV|GenPrior)\s+([\d.]+)', out.stdout,
                           flags=re.M))
    assert float(psnr['TV']) > float(psnr['FBP']) + 1.0
    # The shipped ellipses-vae-128 prior beats FBP on the default phantom.
    assert float(psnr['GenPrior']) > float(psnr['FBP'])


def test_bad_argument_is_reported():
    out = run_cli('demo', '--impl', 'jax')
    assert out.returncode != 0
    assert 'jax' in out.stderr
    # DIVal's protocol fixes its size: one line naming the option, exit 2.
    out = run_cli('demo', '--size', '32')
    assert out.returncode == 2
    assert out.stderr.count('\n') == 1 and '--size' in out.stderr


@pytest.mark.parametrize('args', [
    ('tv', '--size', '32', '--angles', '20', '--set', 'niter=30'),
    ('tikhonov', '--problem', 'deblur', '--size', '32', '--set', 'alpha=1e-3'),
    ('latent-hard', '--size', '32', '--prior', 'ellipses-64', '--set',
     'niter=10', '--set', 'restarts=1', '--set', "solver='bfgs'"),
    ('dip', '--size', '32', '--angles', '20', '--set', 'niter=150'),
])
def test_reconstruct_runs_a_method(tmp_path, args):
    out = tmp_path / 'x.npy'
    res = run_cli('reconstruct', *args, '--quiet', '--out', str(out))
    assert res.returncode == 0, res.stderr
    psnr = float(re.search(r'^\S+\s+([\d.]+)\s+[\d.]+\s+[\d.]+$', res.stdout,
                           flags=re.M).group(1))
    assert psnr > 12  # the zero image scores ~6 dB on these phantoms
    import numpy as np
    assert np.load(out).shape == (32, 32)


def test_reconstruct_latent_needs_a_prior():
    res = run_cli('reconstruct', 'latent-soft', '--size', '16')
    assert res.returncode != 0 and '--prior' in res.stderr


@pytest.mark.parametrize('prior, says', [
    ('dival-lpd-128', 'no shipped generator'),  # another family's model
    (str(ROOT / 'odl_genprior/models/pretrained/htc-lpd-128'),
     'not a generator')])
def test_prior_must_be_a_generator(prior, says):
    res = run_cli('reconstruct', 'latent-soft', '--size', '16', '--prior',
                  prior, '--quiet')
    assert res.returncode == 2 and says in res.stderr, res.stderr


def test_train_learned_svd_then_reconstruct(tmp_path):
    run = tmp_path / 'lsvd'
    res = run_cli('train', 'learned-svd', '--size', '32', '--angles', '10',
                  '--n-train', '200', '--n-val', '20', '--epochs', '4',
                  '--latent-dim', '16', '--hidden', '64', '--out', str(run),
                  '--quiet')
    assert res.returncode == 0, res.stderr
    import json
    cfg = json.loads((run / 'config.json').read_text())['user']
    assert cfg['data']['size'] == 32 and cfg['data']['angles'] == 10
    assert cfg['command'].startswith('odl-genprior train learned-svd')
    out = tmp_path / 'x.npy'
    res = run_cli('reconstruct', 'learned-svd', '--model', str(run),
                  '--quiet', '--out', str(out))
    assert res.returncode == 0, res.stderr
    psnr = float(re.search(r'^LearnedSVD\s+([\d.]+)', res.stdout,
                           flags=re.M).group(1))
    assert psnr > 8  # trained 4 epochs on 200 images; zero image ~6 dB
    import numpy as np
    assert np.load(out).shape == (32, 32)
    # Training again with other options on the same folder is refused.
    res = run_cli('train', 'learned-svd', '--size', '32', '--angles', '12',
                  '--n-train', '200', '--n-val', '20', '--epochs', '4',
                  '--latent-dim', '16', '--hidden', '64', '--out', str(run),
                  '--quiet')
    assert res.returncode != 0


def test_reconstruct_learned_svd_needs_a_model(tmp_path):
    res = run_cli('reconstruct', 'learned-svd', '--quiet')
    assert res.returncode != 0 and '--model' in res.stderr
    res = run_cli('reconstruct', 'learned-svd', '--model', str(tmp_path),
                  '--quiet')
    assert res.returncode != 0 and 'config.json' in res.stderr


def test_train_score_then_reconstruct_dps_and_projection(tmp_path):
    """odl-genprior train score (tiny) and the two diffusion methods."""
    import json

    import numpy as np
    run = tmp_path / 'score'
    res = run_cli('train', 'score', '--size', '16', '--channels', '4', '8',
                  '--embed-dim', '8', '--n-train', '16', '--n-val', '4',
                  '--epochs', '1', '--batch-size', '8', '--out', str(run),
                  '--quiet')
    assert res.returncode == 0, res.stderr
    cfg = json.loads((run / 'config.json').read_text())['user']
    assert cfg['command'].startswith('odl-genprior train score')
    assert cfg['recipe']['kind'] == 'score' and cfg['recipe']['size'] == 16
    for method in ('dps', 'score-projection'):
        out = tmp_path / f'{method}.npy'
        res = run_cli('reconstruct', method, '--size', '16', '--angles', '6',
                      '--prior', str(run), '--set', 'niter=3', '--set',
                      'n_samples=2', '--quiet', '--out', str(out))
        assert res.returncode == 0, res.stderr
        assert re.search(r'^(diffusion posterior sampling|score-based '
                         r'projection)\s+-?[\d.]+\s+', res.stdout, flags=re.M)
        x = np.load(out)
        assert x.shape == (16, 16) and np.isfinite(x).all()
    # A score model trained on 16x16 images refuses 32x32 problems.
    res = run_cli('reconstruct', 'dps', '--size', '32', '--prior', str(run),
                  '--quiet')
    assert res.returncode != 0 and 'pass --size 16' in res.stderr
    # Wrong recipe options are one error line.
    res = run_cli('train', 'score', '--channels', '4', '--out',
                  str(tmp_path / 'bad'), '--quiet')
    assert res.returncode == 2 and 'channels must be two' in res.stderr


def test_reconstruct_score_projection_with_the_shipped_model(tmp_path):
    """The default prior is the shipped ellipses-score-64 (64x64)."""
    res = run_cli('reconstruct', 'score-projection', '--size', '64',
                  '--angles', '23', '--set', 'niter=20', '--set',
                  'n_samples=2', '--quiet')
    assert res.returncode == 0, res.stderr
    assert 'EMAScore' in res.stdout
    psnr = float(re.search(r'^score-based projection\s+([\d.]+)', res.stdout,
                           flags=re.M).group(1))
    assert psnr > 15  # FBP scores ~20 dB here, the zero image ~6 dB
    res = run_cli('reconstruct', 'dps', '--size', '64', '--prior',
                  'ellipses-64', '--quiet')
    assert res.returncode != 0 and 'needs a score model' in res.stderr


@pytest.mark.parametrize('args, named', [
    (('reconstruct', 'fbp', '--size', '32', '--angles', '8', '--set',
      'frequency_scaling=0'), 'frequency_scaling'),
    (('reconstruct', 'dip', '--size', '16', '--angles', '8', '--set',
      'niter=10', '--set', 'learning_rate=1e6'), 'learning_rate'),
])
def test_bad_option_or_diverged_result_is_one_line(args, named):
    out = run_cli(*args, '--quiet')
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count('\n') == 1 and named in out.stderr
    assert 'PSNR' not in out.stdout


@pytest.mark.parametrize('args, named', [
    (('train', 'vae', '--latent-dim', '0', '--out', 'x'), '--latent-dim'),
    (('reconstruct', 'fbp', '--noise', '-0.5'), '--noise'),
    (('reconstruct', 'fbp', '--problem', 'cs', '--measurements', '0'),
     '--measurements'),
    (('train', 'vae', '--dataset', 'mnist', '--size', '64', '--out', 'x'),
     '--size 64'),
    (('train', 'unrolled', '--lr', '0', '--out', 'x'), '--lr'),
])
def test_options_that_cannot_be_honoured_are_refused(args, named, tmp_path):
    args = tuple(str(tmp_path / 'run') if a == 'x' else a for a in args)
    out = run_cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert named in out.stderr and 'Traceback' not in out.stderr
    assert not (tmp_path / 'run').exists()


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    run = tmp_path / 'run'
    res = run_cli('train', 'unrolled', '--size', '16', '--angles', '4',
                  '--width', '4', '--iterations', '1', '--n-train', '4',
                  '--n-val', '2', '--epochs', '1', '--quiet', '--out',
                  str(run))
    assert res.returncode == 0, res.stderr
    (run / 'weights.pt').write_bytes((run / 'weights.pt').read_bytes()[:100])
    cases = [
        (('reconstruct', 'tv', '--size', '16', '--set', 'foo=1'),
         "--set foo: TV has no option 'foo'"),
        (('reconstruct', 'latent-soft', '--size', '16', '--prior',
          'no-such-prior'), '--prior no-such-prior'),
        (('reconstruct', 'learned', '--model', str(run)),
         'weights.pt is not a readable'),
        (('reconstruct', 'learned'), '--model RUN_OR_NAME'),
    ]
    for args, message in cases:
        res = run_cli(*args, '--quiet')
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and res.stderr.count('\n') == 1, (
            args, res.stderr)
        assert 'weights_only=False' not in res.stderr


def test_damaged_run_folders_and_bad_out_are_one_line(tmp_path):
    run = tmp_path / 'run'
    args = ('train', 'unrolled', '--size', '16', '--angles', '4', '--width',
            '4', '--iterations', '1', '--n-train', '4', '--n-val', '2',
            '--epochs', '1', '--quiet')
    assert run_cli(*args, '--out', str(run)).returncode == 0
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    res = run_cli(*args, '--out', str(a_file))
    assert res.returncode == 2 and res.stderr.count('\n') == 1, res.stderr
    res = run_cli(*args, '--out', str(run), '--no-resume')
    assert res.returncode == 2 and 'already holds' in res.stderr
    config = run / 'config.json'
    text = config.read_text()
    for damaged, message in ((text[:len(text) // 2], 'is not valid JSON'),
                             ('[1, 2]', 'holds a list')):
        config.write_text(damaged)
        res = run_cli('reconstruct', 'learned', '--model', str(run))
        assert res.returncode == 2, res.stderr
        assert 'config.json' in res.stderr and message in res.stderr
        assert res.stderr.count('\n') == 1


def test_demo_default_dival_learned_rows_beat_tv(tmp_path):
    png = tmp_path / 'demo.png'
    out = run_cli('demo', '--quiet', '--out', str(png))
    assert out.returncode == 0, out.stderr
    assert "DIVal's ellipses (test image 0)" in out.stdout
    psnr = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^(FBP|TV|learned PD|learned FB C4)(?: \([\w-]+\))?\s+([\d.]+)\s',
        out.stdout,
        flags=re.M)}
    assert set(psnr) == {'FBP', 'TV', 'learned PD', 'learned FB C4'}
    assert psnr['TV'] > psnr['FBP'] + 3
    assert psnr['learned PD'] > psnr['TV'] and psnr['learned FB C4'] > psnr[
        'TV']
    # the best network on validation, averaged over the 8 symmetries
    averaged = re.search(r'^learned PD \(dival-lpd-long-128\), symmetry-'
                         r'averaged\s+([\d.]+)\s', out.stdout, flags=re.M)
    alone = re.search(r'^learned PD \(dival-lpd-long-128\)\s+([\d.]+)\s',
                      out.stdout, flags=re.M)
    assert float(averaged.group(1)) > float(alone.group(1))
    assert png.stat().st_size > 10_000
