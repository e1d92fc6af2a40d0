"""`odl-genprior reconstruct METHOD`: one sub-parser per method, --prior
and --model only on the methods that read them. Parsing and dispatch
only: nothing is reconstructed here."""
import re
import shlex
from pathlib import Path

import pytest

from odl_genprior import cli, recon

ROOT = Path(__file__).resolve().parents[1]

#: a documented command line of each method (docs/*.md, README.md, tests)
DOCUMENTED = {
    'fbp': 'reconstruct fbp --size 32 --angles 8 --set '
           'frequency_scaling=0.8 --quiet',
    'tv': 'reconstruct tv --size 32 --angles 20 --set niter=30 --quiet '
          '--out x.npy',
    'tikhonov': 'reconstruct tikhonov --problem deblur --size 32 --set '
                'alpha=1e-3',
    'lasso': 'reconstruct lasso --problem cs --measurements 100 --size 16 '
             '--noise 0.01',
    'wavelet-l1': 'reconstruct wavelet-l1 --problem fan-ct --phantom '
                  'shepp_logan --seed 2 --impl pytorch --device cpu',
    'latent-hard': "reconstruct latent-hard --size 32 --prior ellipses-64 "
                   "--set niter=10 --set restarts=1 --set solver='bfgs'",
    'latent-soft': 'reconstruct latent-soft --prior ellipses-vae-128 --size '
                   '64 --set lam=0.3 --set mu=1e-5 --set restarts=1',
    'latent-sparse': 'reconstruct latent-sparse --prior ellipses-64 --size '
                     '64 --problem inpaint',
    'learned': 'reconstruct learned --model dival-lpd-128 --seed 3',
    'dip': 'reconstruct dip --size 64 --angles 30 --set niter=3000 --set '
           'alpha_tv=3e-4',
    'learned-svd': 'reconstruct learned-svd --model runs/lsvd-64 --seed 3 '
                   '--noise 0.02 --phantom shepp_logan',
    'dps': 'reconstruct dps --size 64 --angles 23 --noise 0.02 --set '
           'n_samples=4 --prior ellipses-score-64',
    'score-projection': 'reconstruct score-projection --size 64 --angles 23 '
                        '--noise 0.02 --seed 3',
}


#: the command line's methods, and those that read --prior / --model, as
#: the registry says (recon.METHODS)
METHODS = {k for k, e in recon.METHODS.items() if e.cli}
PRIOR_METHODS = {k for k in METHODS if recon.METHODS[k].reads == 'prior'}
MODEL_METHODS = {k for k in METHODS if recon.METHODS[k].reads == 'model'}


def parse(line):
    return cli.build_parser().parse_args(shlex.split(line))


def test_every_method_has_a_sub_parser_and_a_help_line():
    assert set(DOCUMENTED) == METHODS == set(cli._cli_methods())
    assert all(len(recon.METHODS[k].help) > 20 for k in METHODS)
    assert PRIOR_METHODS and MODEL_METHODS


@pytest.mark.parametrize('method', sorted(DOCUMENTED))
def test_each_method_parses_its_documented_command(method):
    args = parse(DOCUMENTED[method])
    assert args.command == 'reconstruct' and args.method == method
    assert args.func is cli._reconstruct


def test_problem_defaults_are_those_of_the_flat_parser():
    for method in METHODS:
        a = parse(f'reconstruct {method}')
        assert (a.problem, a.size, a.angles, a.measurements, a.noise,
                a.phantom, a.seed, a.impl, a.device, a.set, a.out,
                a.quiet) == ('ct', 128, 30, 200, 0.05, 'ellipses', 0,
                             'numpy', 'cpu', None, None, False), method
        assert hasattr(a, 'prior') == (method in PRIOR_METHODS)
        assert hasattr(a, 'model') == (method in MODEL_METHODS)


@pytest.mark.parametrize('line, option, owners', [
    ('reconstruct fbp --prior ellipses-64', '--prior',
     ('latent-hard', 'latent-soft', 'latent-sparse', 'dps',
      'score-projection')),
    ('reconstruct tv --model dival-lpd-128', '--model',
     ('learned', 'learned-svd')),
    ('reconstruct learned --prior=ellipses-64', '--prior', ('dps',)),
    ('reconstruct dps --model x', '--model', ('learned',)),
])
def test_an_option_of_another_method_is_refused(line, option, owners,
                                                capsys):
    with pytest.raises(SystemExit) as exc:
        parse(line)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(
        'odl-genprior reconstruct: error: ' + option), err
    method = line.split()[1]
    assert f"method '{method}'" in err
    for owner in owners:
        assert owner in err, (owner, err)


def test_refused_option_through_main_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(['reconstruct', 'fbp', '--prior', 'ellipses-64'])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count('\n') == 1


def test_reconstruct_help_lists_methods_and_method_help_its_options(
        capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(['reconstruct', '--help'])
    out = capsys.readouterr().out
    for method in METHODS:
        assert re.search(rf'^\s+{re.escape(method)}\b', out,
                         flags=re.M), method
    for method in METHODS:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(['reconstruct', method, '--help'])
        out = capsys.readouterr().out
        assert '--problem' in out and '--set' in out and '--quiet' in out
        assert ('--prior' in out) == (method in PRIOR_METHODS), method
        assert ('--model' in out) == (method in MODEL_METHODS), method


def _documented_commands():
    for path in sorted(ROOT.glob('docs/*.md')) + [ROOT / 'README.md']:
        text = path.read_text().replace('\\\n', ' ')
        for line in text.splitlines():
            match = re.search(r'odl-genprior (reconstruct [^`#]*)',
                              line.split('#')[0])
            # synopses ([--opt], {a,b}, METHOD, ...) are not command lines
            if match and not re.search(r'[\[{]|\.\.\.|METHOD|--help',
                                       match.group(1)):
                yield pytest.param(match.group(1).strip(),
                                   id=f'{path.name}:{line.strip()[:40]}')


@pytest.mark.parametrize('line', list(_documented_commands()))
def test_documented_reconstruct_commands_parse(line):
    assert parse(line).method in METHODS


def test_documented_commands_are_found():
    assert len(list(_documented_commands())) >= 10


# --- dispatch: each method reaches its branch without AttributeError -------

class _Stop(ValueError):
    """Raised by the stubbed problem builder: dispatch got that far."""


@pytest.mark.parametrize('method', sorted(METHODS))
def test_each_method_dispatches_without_attribute_error(method, monkeypatch,
                                                        capsys):
    def stop(args):
        raise _Stop(f'problem of {args.method}')
    monkeypatch.setattr(cli, '_problem', stop)
    code = cli.main(['reconstruct', method, '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    if method.startswith('latent'):
        assert 'needs --prior' in err
    elif method in MODEL_METHODS:
        assert 'needs --model' in err
    else:
        assert f'problem of {method}' in err
