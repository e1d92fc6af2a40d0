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
    if method == 'learned':  # its problem is its own benchmark's
        size = []
    argv = (['reconstruct', method] + NEEDS.get(method, []) + size
            + ['--set', f'{option}={BAD}', '--quiet'])
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count('\n') == 1 and option in err, err


# --- issue 25: caches and bounded assembly ---
# An empty batch is a batch: every mode gives an empty result of the right
# shape, forward and backward; a wrong batch_safe is named.

def _empty_batch_case(case):
    import odl
    import torch

    from odl_genprior import TorchOperator
    space = odl.uniform_discr([0, 0], [1, 1], (6, 7), dtype='float32')
    conv = TorchOperator(torch.nn.Conv2d(1, 1, 3, padding=1, bias=False),
                         space, space, in_shape=(1, 1, 6, 7), linear=True)
    grad = odl.Gradient(space)
    return {'loop': (grad, 'loop'), 'matrix': (grad, 'matrix'),
            'module': (conv, 'module'), 'auto': (grad, 'auto'),
            'auto-module': (conv, 'auto'),
            'nonlinear': (odl.PowerOperator(odl.rn(5, dtype='float32'), 2),
                          'auto')}[case]


@pytest.mark.parametrize('case', ['loop', 'matrix', 'module', 'auto',
                                  'auto-module', 'nonlinear'])
def test_empty_batch_in_every_mode(case, tmp_path, monkeypatch):
    import torch

    from odl_genprior import OperatorLayer
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    op, mode = _empty_batch_case(case)
    layer = OperatorLayer(op, batching=mode)
    dom, ran = tuple(op.domain.shape), tuple(op.range.shape)
    for batch in ((0,), (2, 0)):
        x = torch.randn(batch + dom, requires_grad=True)
        y = layer(x)
        assert y.shape == batch + ran and y.dtype == torch.float32
        y.sum().backward()
        assert x.grad.shape == x.shape
        if op.is_linear:
            assert layer.transpose(torch.randn((0,) + ran)).shape == (0,) + dom
    # the layer still works (and matches the loop) on a real batch
    x = torch.randn((3,) + dom)
    torch.testing.assert_close(layer(x), OperatorLayer(
        op, batching='loop')(x))


def test_batch_safe_must_be_a_flag():
    import odl
    import torch

    from odl_genprior import TorchOperator
    space = odl.rn(3, dtype='float32')
    with pytest.raises(TypeError, match='batch_safe.*yes'):
        TorchOperator(torch.nn.Linear(3, 3, bias=False), space, space,
                      batch_safe='yes')
