"""The growth axes of docs/architecture.md ("Adding things"), checked: a new
unrolled scheme is one class in the scheme registry, a new protocol is one
class and its registration, a new shipped model is one folder. Each is added
here at run time and then built, trained, reloaded and listed by the code
that already exists."""
import dataclasses

import odl
import pytest
import torch

from odl_genprior import cli, models
from odl_genprior.models import registry
from odl_genprior.models import unrolled as family
from odl_genprior.nn.unrolled import LearnedGradientDescent
from odl_genprior.problems import protocol as protocols
from odl_genprior.problems.ellipse_ct import EllipseCT

pytestmark = pytest.mark.usefixtures('one_torch_thread')


class DampedGradientDescent(LearnedGradientDescent):
    """A new scheme: learned gradient descent under another name."""

    display_name = 'damped GD'


@dataclasses.dataclass
class TinyBlur(protocols.Protocol):
    """A new protocol: 1D-free, 8x8 images blurred by a fixed operator."""

    name = 'tiny-blur'
    summary = '8x8 ellipses blurred by a fixed operator'
    size: int = 8
    protocol: str = 'tiny-blur'

    def __post_init__(self):
        self._check_protocol_field()
        self._ellipses = EllipseCT(size=self.size, num_angles=4)

    @property
    def operator(self):
        space = odl.uniform_discr([0, 0], [1, 1], (self.size,) * 2,
                                  dtype='float32')
        return odl.ScalingOperator(space, 0.5)

    def config(self):
        return dataclasses.asdict(self)

    def problem(self, index, split='test'):
        return self._ellipses.problem(index, split)

    def pairs(self, n, split='train', start=0, progress=False):
        _, x = self._ellipses.pairs(n, split, start)
        return 0.5 * x, x


def test_a_scheme_is_one_class(tmp_path, monkeypatch):
    monkeypatch.setitem(family.NETWORKS, 'dgd', DampedGradientDescent)
    # the command line offers it, with its display name
    parser = cli.build_parser()._subparsers._group_actions[0].choices[
        'train']._subparsers._group_actions[0].choices['unrolled']
    (scheme,) = [a for a in parser._actions if a.dest == 'scheme']
    assert 'dgd' in scheme.choices and 'dgd (damped GD)' in scheme.help
    cfg = {'scheme': 'dgd', 'hidden_channels': 4, 'n_iter': 1,
           'benchmark': {'size': 16, 'num_angles': 8}}
    net = family.train_unrolled(cfg, tmp_path, n_train=4, n_val=2, steps=2,
                                batch_size=2, progress=False)
    again = family.load_unrolled(tmp_path)
    assert type(again) is DampedGradientDescent
    y, _ = EllipseCT(size=16, num_angles=8).pairs(2, 'test')
    with torch.no_grad():
        torch.testing.assert_close(again(y), net(y))


def test_a_protocol_is_one_class_and_its_registration(tmp_path,
                                                       monkeypatch):
    monkeypatch.setitem(protocols.PROTOCOLS, 'tiny-blur', TinyBlur)
    # the command line offers it, with its summary as help
    parser = cli.build_parser()._subparsers._group_actions[0].choices[
        'train']._subparsers._group_actions[0].choices['unrolled']
    (option,) = [a for a in parser._actions if a.dest == 'protocol']
    assert 'tiny-blur' in option.choices
    assert 'tiny-blur: 8x8 ellipses blurred by a fixed operator' in option.help
    bench = protocols.make_protocol({'protocol': 'tiny-blur'})
    y, x = protocols.parallel_pairs(bench, 4, workers=1)
    torch.testing.assert_close(y, 0.5 * x)
    cfg = {'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 1,
           'benchmark': {'protocol': 'tiny-blur'}}
    family.train_unrolled(cfg, tmp_path, n_train=4, n_val=2, steps=2,
                          batch_size=2, progress=False)
    net = family.load_unrolled(tmp_path)
    assert family.protocol_of(net.config) == 'tiny-blur'
    assert net.operator.domain.shape == (8, 8)
    # the command line trains on it, and refuses options it has no field for
    args = ['train', 'unrolled', '--protocol', 'tiny-blur', '--scheme',
            'lgd', '--width', '4', '--iterations', '1', '--n-train', '4',
            '--n-val', '2', '--steps', '2', '--batch-size', '2', '--quiet']
    assert cli.main(args + ['--out', str(tmp_path / 'cli')]) == 0
    assert family.load_unrolled(tmp_path / 'cli').operator.domain.shape == (
        8, 8)
    assert cli.main(args + ['--angles', '8', '--out',
                            str(tmp_path / 'no')]) == 2


def test_a_shipped_model_is_one_folder(tmp_path, monkeypatch):
    cfg = {'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 1,
           'benchmark': {'size': 16, 'num_angles': 8}}
    family.train_unrolled(cfg, tmp_path / 'run', n_train=4, n_val=2,
                          steps=2, batch_size=2, progress=False)
    root = tmp_path / 'shipped'
    root.mkdir()
    monkeypatch.setitem(registry.FAMILIES, 'unrolled', dataclasses.replace(
        registry.FAMILIES['unrolled'], shipped=root))
    models.ship(tmp_path / 'run', 'my-lgd-16')
    assert [p.name for p in root.iterdir()] == ['my-lgd-16']
    assert 'my-lgd-16' in models.list_pretrained('unrolled')
    assert type(models.pretrained('my-lgd-16')) is LearnedGradientDescent
