"""Fuzz the command line: every ``reconstruct`` method, every option, a
value of the wrong type. Each must end in exit code 2 and one line that
names the option, never a traceback or a run with the value replaced."""
import inspect

import pytest

from odl_genprior import cli, recon

pytestmark = pytest.mark.usefixtures('one_torch_thread')

#: what each method needs besides its options (a shipped prior or network)
NEEDS = {'latent-hard': ['--prior', 'ellipses-64'],
         'latent-soft': ['--prior', 'ellipses-64'],
         'latent-sparse': ['--prior', 'ellipses-64'],
         'dps': [], 'score-projection': [],
         'learned': ['--model', 'dival-lgd-128']}
#: positional parts the CLI gives itself (models, score, SDE)
GIVEN = {'generator', 'score', 'sde', 'model'}
#: free text, where any string is a value: the method's display name
FREE = {'name'}
BAD = 'not-a-value'


def _cases():
    for name, entry in sorted(recon.METHODS.items()):
        if not entry.cli or name == 'learned-svd':  # needs a trained run
            continue
        params = inspect.signature(entry.cls).parameters
        for option, p in params.items():
            if option in GIVEN | FREE or p.default is inspect.Parameter.empty:
                continue
            yield name, option


@pytest.mark.parametrize('method, option', list(_cases()))
def test_wrong_option_value_is_one_line_exit_2(method, option, capsys):
    size = ['--size', '64'] if method in ('dps', 'score-projection') or (
        method.startswith('latent')) else ['--size', '16', '--angles', '8']
    argv = (['reconstruct', method] + NEEDS.get(method, []) + size
            + ['--set', f'{option}={BAD}', '--quiet'])
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count('\n') == 1 and option in err, err
