"""`odl-genprior train KIND`: one sub-parser per kind, and --resume /
--no-resume. Parsing and dispatch only: the trainers are replaced by
recorders, nothing is trained here."""
import json
import re
import shlex
from pathlib import Path

import pytest

from odl_genprior import cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'odl_genprior'

#: a documented command line of each kind (docs/*.md, shipped configs)
DOCUMENTED = {
    'vae': 'train vae --dataset mnist --data-dir ../shared/data/mnist '
           '--arch mlp --hidden 400 400 --latent-dim 20 --n-train 60000 '
           '--n-val 1000 --epochs 20 --batch-size 100 --lr 1e-3 --seed 0 '
           '--out runs/mnist-vae --quiet',
    'ae': 'train ae --dataset ellipses --size 16 --latent-dim 4 --width 8 '
          '--n-train 64 --n-val 16 --epochs 2 --batch-size 16 --quiet '
          '--out runs/ae --resume',
    'gan': 'train gan --dataset ellipses --size 64 --out runs/ellipses-gan',
    'cgnn': 'train cgnn --size 64 --levels 2 3 4 --channels 4 2 1 '
            '--latent-dim 3 --width 8 --modes 2 --beta 0.01 --wavelet db2 '
            '--boundary zero --out runs/cgnn',
    'unrolled': 'train unrolled --protocol dival --scheme lpd --start fbp '
                '--autocast bfloat16 --n-train 4000 --n-val 20 --epochs 4 '
                '--batch-size 4 --checkpoint-every 200 --quiet '
                '--out runs/x',
    'learned-svd': 'train learned-svd --dataset mnist --data-dir d '
                   '--size 28 --angles 30 --noise 0.05 --latent-dim 16 '
                   '--hidden 64 --out runs/lsvd --no-resume',
    'score': 'train score --dataset ellipses --size 64 --sde vp --channels '
             '32 64 --ema 0.995 --embed-dim 64 --beta-min 0.1 --beta-max 20 '
             '--n-train 6000 --epochs 6 --batch-size 32 --lr 2e-3 '
             '--out runs/score',
}


def parse(line):
    return cli.build_parser().parse_args(shlex.split(line))


@pytest.mark.parametrize('kind', sorted(DOCUMENTED))
def test_each_kind_parses_its_documented_command(kind):
    args = parse(DOCUMENTED[kind])
    assert args.command == 'train' and args.kind == kind
    assert args.func is cli._train


def test_each_kind_has_its_own_defaults():
    def defaults(kind):
        return parse(f'train {kind} --out r')
    assert defaults('cgnn').dataset == 'signals'
    assert defaults('vae').dataset == 'ellipses'
    assert defaults('vae').hidden == [500, 500]
    assert defaults('learned-svd').hidden == [512]
    assert defaults('learned-svd').noise == 0.05
    small = defaults('unrolled')  # a CT network: few, costly samples
    assert (small.n_train, small.n_val, small.batch_size) == (100, 10, 4)
    for kind in ('vae', 'ae', 'gan', 'cgnn', 'learned-svd', 'score'):
        a = defaults(kind)
        assert (a.n_train, a.n_val, a.batch_size) == (10000, 500, 64), kind
        assert not a.resume and not a.no_resume and a.epochs == 10


@pytest.mark.parametrize('line, option', [
    ('train vae --scheme lpd --out r', '--scheme'),
    ('train score --hidden 64 --out r', '--hidden'),
    ('train unrolled --dataset mnist --out r', '--dataset'),
    ('train gan --arch mlp --out r', '--arch'),
    ('train ae --beta 0.5 --out r', '--beta'),
    ('train learned-svd --init dival-lpd-128 --out r', '--init'),
    ('train cgnn --data-dir d --out r', '--data-dir'),
    ('train vae --autocast=bfloat16 --out r', '--autocast'),
])
def test_an_option_of_another_kind_is_refused(line, option, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(line)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(
        'odl-genprior train: error: ' + option), err
    kind = line.split()[1]
    assert f"kind '{kind}'" in err


def test_train_kinds_are_the_registry_families_commands():
    from odl_genprior import models
    sub = cli.build_parser()._subparsers._group_actions[0].choices[
        'train']._subparsers._group_actions[0].choices
    kinds = cli._train_kinds()
    assert set(sub) == set(kinds)
    assert set(models.FAMILIES['generator'].commands) == {
        'vae', 'ae', 'gan', 'cgnn', 'score'}
    assert 'unrolled' in kinds and 'learned-svd' in kinds


def test_train_help_lists_kinds_and_kind_help_only_its_options(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(['train', '--help'])
    out = capsys.readouterr().out
    for kind in cli._train_kinds():
        assert re.search(rf'^\s+{kind}\b', out, flags=re.M), kind
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(['train', 'gan', '--help'])
    out = capsys.readouterr().out
    assert '--width' in out and '--no-resume' in out
    for foreign in ('--scheme', '--arch', '--sde', '--levels', '--hidden'):
        assert foreign not in out


def test_cgnn_on_images_is_refused_with_the_reason(capsys):
    with pytest.raises(SystemExit) as exc:
        parse('train cgnn --dataset ellipses --out r')
    err = capsys.readouterr().err
    assert exc.value.code == 2 and '--dataset signals' in err
    assert err.count('\n') == 1


def _shipped_argvs():
    for path in sorted(PACKAGE.glob('*/pretrained*/*/config.json')):
        argv = json.loads(path.read_text())['argv']
        yield pytest.param(argv, id=path.parent.name)


@pytest.mark.parametrize('argv', list(_shipped_argvs()))
def test_recorded_argv_of_every_shipped_run_parses(argv):
    args = argv[1:]  # argv[0]: the executable
    if Path(argv[0]).name == 'score_recipe.py':
        # the older spelling of `odl-genprior train score` (docs/cli.md)
        args = ['train', 'score'] + args
    parsed = cli.build_parser().parse_args(args)
    assert parsed.kind == args[1]


def _documented_commands():
    for path in sorted(ROOT.glob('docs/*.md')) + [ROOT / 'README.md']:
        text = path.read_text().replace('\\\n', ' ')
        for line in text.splitlines():
            # a command line of a code block (fenced or indented), not a
            # mention in the text (`odl-genprior train score`)
            match = re.match(r'\s*(?:\w+=\S+\s+)*odl-genprior (train .*)',
                             line.split('#')[0])
            # synopses ([--opt], {a,b}, DIR, ...) are not command lines
            if match and not re.search(r'[\[{`]|\.\.\.|DIR\b', line):
                yield pytest.param(match.group(1).strip(),
                                   id=f'{path.name}:{line.strip()[:40]}')


@pytest.mark.parametrize('line', list(_documented_commands()))
def test_documented_train_commands_parse(line):
    assert parse(line).command == 'train'


# --- dispatch: each kind reaches its trainer without AttributeError --------

@pytest.fixture
def trainers(monkeypatch):
    """Replace every trainer by a recorder of its keyword arguments."""
    from odl_genprior.generators import recipes
    from odl_genprior.models import learned_svd, limited_angle
    from odl_genprior.models import unrolled as learned
    calls = {}

    def record(name):
        def trainer(*args, **kwargs):
            calls[name] = kwargs
        return trainer
    monkeypatch.setattr(recipes, 'fit', record('fit'))
    monkeypatch.setattr(learned, 'train_unrolled', record('unrolled'))
    monkeypatch.setattr(learned, 'build_unrolled', lambda config: None)
    monkeypatch.setattr(limited_angle, 'train_limited_angle',
                        record('htc2022'))
    monkeypatch.setattr(limited_angle, 'build_limited_angle',
                        lambda config: None)
    monkeypatch.setattr(learned_svd, 'fit_learned_svd',
                        record('learned-svd'))
    return calls


@pytest.mark.parametrize('line, trainer', [
    ('train vae --size 16 --width 4 --latent-dim 2', 'fit'),
    ('train ae --dataset signals --size 64 --width 4', 'fit'),
    ('train gan --size 16 --width 4', 'fit'),
    ('train cgnn --size 64 --levels 2 3 --channels 2 1', 'fit'),
    ('train score --size 16 --channels 4 8 --embed-dim 8', 'fit'),
    ('train unrolled --size 16 --angles 4', 'unrolled'),
    ('train unrolled --protocol dival --start fbp', 'unrolled'),
    ('train unrolled --protocol htc2022 --scheme lpd --angle-step 2',
     'htc2022'),
    ('train learned-svd --size 8 --angles 4 --n-train 2 --n-val 1',
     'learned-svd'),
])
def test_each_kind_reaches_its_trainer(line, trainer, trainers, tmp_path):
    argv = shlex.split(line) + ['--quiet', '--out', str(tmp_path / 'run')]
    assert cli.main(argv) == 0
    assert trainer in trainers and trainers[trainer].get('resume', True)


@pytest.mark.parametrize('option', ['--angles', '--noise', '--start',
                                    '--init'])
def test_htc2022_refuses_options_it_would_ignore(option, trainers, capsys,
                                                 tmp_path):
    value = {'--start': 'fbp', '--init': 'x'}.get(option, '3')
    code = cli.main(['train', 'unrolled', '--protocol', 'htc2022',
                     '--scheme', 'lpd', option, value, '--out',
                     str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and option in err
    assert not trainers


# --- --resume / --no-resume -------------------------------------------------

def _files(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.iterdir()}


@pytest.mark.parametrize('kind', ['vae', 'unrolled', 'learned-svd',
                                  'score'])
def test_resume_needs_a_run(kind, trainers, capsys, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('mine')
    before = _files(empty)
    code = cli.main(['train', kind, '--resume', '--out', str(empty)])
    err = capsys.readouterr().err
    assert code == 2 and err == (f'odl-genprior train: error: --resume: no '
                                 f'run to continue in {empty}\n')
    assert _files(empty) == before and not trainers
    # a folder that does not exist: the same
    code = cli.main(['train', kind, '--resume', '--out',
                     str(tmp_path / 'none')])
    assert code == 2 and not (tmp_path / 'none').exists()
    assert capsys.readouterr().err.count('\n') == 1


@pytest.mark.parametrize('kind', ['gan', 'unrolled', 'learned-svd',
                                  'cgnn'])
def test_no_resume_leaves_a_run_alone(kind, trainers, capsys, tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'config.json').write_text('{"user": {}}')
    (run / 'weights.pt').write_bytes(b'weeks of training')
    before = _files(run)
    code = cli.main(['train', kind, '--no-resume', '--out', str(run)])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    assert err.startswith('odl-genprior train: error: --no-resume: ')
    assert 'already holds' in err and 'choose another --out' in err
    assert _files(run) == before and not trainers


def test_resume_and_no_resume_start_or_continue(trainers, tmp_path):
    run = tmp_path / 'run'
    small = ['train', 'vae', '--size', '16', '--width', '4', '--out',
             str(run)]
    assert cli.main(small + ['--no-resume']) == 0  # no run there: fresh
    assert 'fit' in trainers
    trainers.clear()
    run.mkdir()
    (run / 'config.json').write_text('{}')
    assert cli.main(small + ['--resume']) == 0  # a run there: continue it
    assert cli.main(small) == 0  # neither: continue it too
    assert 'fit' in trainers


def test_resume_and_no_resume_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        parse('train vae --resume --no-resume --out r')
    assert exc.value.code == 2
    assert capsys.readouterr().err.count('\n') == 1
