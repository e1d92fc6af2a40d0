"""Trained networks refuse what they were not trained for; the command line
checks what it can before the work (issue 25, groups 1, 3 and 6).

Each case is a reproduction of a probe: it must give the right result or
one clear line (exit code 2 on the command line), never a silent wrong
image or a traceback after minutes of work.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from odl_genprior import cli, problems
from odl_genprior.bridge import to_numpy
from odl_genprior.problems import htc2022
from odl_genprior.problems.ellipse_ct import EllipseCT
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.models.unrolled import (PRETRAINED_DIR, build_unrolled,
                                          load_unrolled)
from odl_genprior.recon.limited_angle import LimitedAngleCT
from odl_genprior.models.limited_angle import (HTC_PRETRAINED_DIR,
                                               build_limited_angle,
                                               load_limited_angle)

pytestmark = pytest.mark.usefixtures('one_torch_thread')

_DEFAULT = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'
DATA = Path(os.environ.get(htc2022.HTC2022_ENV) or _DEFAULT)
needs_data = pytest.mark.skipif(
    not (DATA / 'htc2022_ta_full.mat').is_file(),
    reason=f'HTC2022 data not found in {DATA} (set {htc2022.HTC2022_ENV})')


def one_line_exit_2(argv, capsys, *needles):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --- group 1: a network knows its operator, protocol and range ---------------

def test_a_network_refuses_another_operator_by_name():
    bench = EllipseCT(size=16, num_angles=8)
    torch.manual_seed(0)
    net = build_unrolled({'scheme': 'lgd', 'n_iter': 2, 'hidden_channels': 4,
                          'benchmark': bench.config()}, bench.operator)
    same = problems.ct(size=16, num_angles=8, seed=3)  # the same operator
    assert np.isfinite(to_numpy(LearnedReconstructor(net)(
        same, progress=False))).all()
    fan = problems.ct(size=16, num_angles=8, geometry='fan', seed=3)
    with pytest.raises(ValueError, match='trained for another operator: '
                                         'range shape.*geometry: Parallel2d'):
        LearnedReconstructor(net)(fan, progress=False)
    # Allowed: the same weights over the problem's operator.
    x = to_numpy(LearnedReconstructor(net, allow_other_operator=True)(
        fan, progress=False))
    other = build_unrolled(net.config, fan.operator)
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        ref = other(torch.as_tensor(to_numpy(fan.data))[None])[0]
    np.testing.assert_allclose(x, ref.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='allow_other_operator must be'):
        LearnedReconstructor(net, allow_other_operator='yes')


def test_shipped_dival_network_refuses_the_unit_square_problem():
    method = LearnedReconstructor.pretrained('dival-lgd-128')
    p = problems.ct(size=128, num_angles=30, noise_level=0.025)
    with pytest.raises(ValueError, match=r'domain: \[-64, 64\] x \[-64, 64\] '
                                         r'on 128x128 pixels \(trained\) '
                                         r'against \[-1, 1\]'):
        method(p, progress=False)


def test_loaders_refuse_a_network_of_another_protocol():
    with pytest.raises(ValueError, match="trained on the 'htc2022' protocol"):
        load_unrolled(HTC_PRETRAINED_DIR / 'htc-lpd-128')
    with pytest.raises(ValueError, match="trained on the 'dival' protocol"):
        load_limited_angle(PRETRAINED_DIR / 'dival-lpd-128')
    with pytest.raises(ValueError, match="'dival' protocol"):
        LimitedAngleCT(str(PRETRAINED_DIR / 'dival-lpd-128'))


@pytest.mark.parametrize('edit, key', [
    (lambda u: u.update(hidden_channels=100000), 'hidden_channels'),
    (lambda u: u['benchmark'].update(size=20000), 'size'),
    (lambda u: u.update(n_iter=-3), 'n_iter')])
def test_a_run_config_out_of_bounds_is_refused_before_building(
        tmp_path, edit, key):
    run = tmp_path / 'run'
    shutil.copytree(PRETRAINED_DIR / 'dival-lgd-128', run)
    cfg = json.loads((run / 'config.json').read_text())
    edit(cfg['user']['unrolled'])
    (run / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=f'{key} = .* is not a size this '
                                         'package trains'):
        load_unrolled(run)


def test_a_limited_angle_network_refuses_too_short_a_range():
    net = build_limited_angle({'scheme': 'lfb', 'n_iter': 1,
                               'hidden_channels': 4,
                               'htc2022': {'size': 16, 'max_range': 20,
                                           'min_range': 6}})
    space = htc2022.htc2022_space(16)
    A = htc2022.htc2022_ray_transform(space, np.arange(10, 13, 1.0),
                                      det_binning=4)
    p = problems.ForwardProblem(A, A.range.one(), name='3 degrees')
    with pytest.raises(ValueError, match='trained for 6-20 degrees of data; '
                                         'these cover 2 degrees'):
        LimitedAngleCT(net)(p, progress=False)
    x = LimitedAngleCT(net, allow_other_range=True)(p, progress=False)
    assert np.isfinite(to_numpy(x)).all()


# --- the command line: options it would ignore, sizes, outputs ---------------

@pytest.mark.parametrize('extra, option', [
    (['--noise', '0.25'], '--noise'), (['--problem', 'deblur'], '--problem'),
    (['--size', '64', '--angles', '10'], '--size, --angles')])
def test_reconstruct_learned_refuses_options_it_ignores(extra, option,
                                                        capsys):
    one_line_exit_2(['reconstruct', 'learned', '--model', 'dival-lgd-128',
                     *extra, '--quiet'], capsys, option, 'not used by learned')


def test_reconstruct_learned_refuses_an_htc2022_network(capsys):
    one_line_exit_2(['reconstruct', 'learned', '--model',
                     str(HTC_PRETRAINED_DIR / 'htc-lpd-128'), '--quiet'],
                    capsys, "'htc2022' protocol", 'odl-genprior htc2022')


@pytest.mark.parametrize('argv, needle', [
    (['--size', '3'], 'at least 8x8'),
    (['--angles', '100000000'], '--angles 100000000: the data would take'),
    (['--size', '100000'], '--size 100000: the image would take'),
    (['--problem', 'cs', '--size', '4096', '--measurements', '100000'],
     'the matrix would take')])
def test_reconstruct_sizes_are_checked_before_the_work(argv, needle, capsys):
    one_line_exit_2(['reconstruct', 'fbp', *argv, '--quiet'], capsys, needle)


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    blocker = tmp_path / 'file.txt'
    blocker.write_text('x')
    one_line_exit_2(['reconstruct', 'fbp', '--size', '16', '--out',
                     str(blocker / 'x.npy'), '--quiet'], capsys,
                    'cannot write there')
    one_line_exit_2(['reconstruct', 'fbp', '--size', '16', '--out',
                     str(tmp_path / 'x.txt'), '--quiet'], capsys, '.npy')
    one_line_exit_2(['demo', '--out', '', '--quiet'], capsys,
                    "--out '': give a file name ending in .png")
    assert sorted(os.listdir(tmp_path)) == ['file.txt']


# --- the htc2022 command ------------------------------------------------------

def _challenge_file(path, angles):
    import scipy.io
    sino = np.random.default_rng(0).uniform(0, 1, (len(angles), 560))
    scipy.io.savemat(str(path), {'CtDataLimited': {
        'sinogram': sino, 'parameters': {
            'angles': np.asarray(angles, float),
            'distanceSourceOrigin': htc2022.SOURCE_ORIGIN,
            'distanceSourceDetector': htc2022.SOURCE_DETECTOR,
            'numDetectorsPost': 560}}})
    return path


def test_htc2022_checks_method_angles_reference_and_out_first(tmp_path,
                                                              capsys):
    good = _challenge_file(tmp_path / 'good.mat', np.arange(0, 40.5, 0.5))
    one_line_exit_2(['htc2022', str(good), '--method', 'htc-lpd-12'],
                    capsys, '--method htc-lpd-12: not fbp, tv, a shipped '
                            'network (htc-')
    dup = _challenge_file(tmp_path / 'dup.mat', [0, 0, 1, 2])
    one_line_exit_2(['htc2022', str(dup), '--method', 'fbp', '--out',
                     str(tmp_path / 'o')], capsys,
                    'angles must be finite and increase; angles 0 and 1 are '
                    '0 and 0')
    text = tmp_path / 'ref.png'
    text.write_text('not an image')
    one_line_exit_2(['htc2022', str(good), '--method', 'fbp', '--reference',
                     str(text)], capsys, 'not a readable PNG')
    from PIL import Image
    big = tmp_path / 'big.png'
    Image.new('1', (4000, 3000)).save(big)
    one_line_exit_2(['htc2022', str(good), '--method', 'fbp', '--reference',
                     str(big)], capsys, 'is a 4000x3000 image, not 512x512')
    blocker = tmp_path / 'file.txt'
    blocker.write_text('x')
    one_line_exit_2(['htc2022', str(good), '--method', 'fbp', '--out',
                     str(blocker)], capsys, 'cannot write there')
    assert not list(tmp_path.glob('*.npy')) and not (tmp_path / 'o').exists()


def test_htc2022_a_one_degree_file_is_not_given_to_the_network(tmp_path,
                                                               capsys):
    short = _challenge_file(tmp_path / 'short.mat', [0.0, 0.5, 1.0])
    one_line_exit_2(['htc2022', str(short), '--method', 'htc-lpd-128',
                     '--out', str(tmp_path), '--quiet'], capsys,
                    'trained for 30-90 degrees of data; these cover 1 '
                    'degrees', '--allow-other-range')
    assert cli.main(['htc2022', str(short), '--out', str(tmp_path),
                     '--size', '32', '--quiet']) == 0
    out = capsys.readouterr().out
    assert 'less than the 30-90 degrees' in out and 'TV' in out


@needs_data
def test_htc2022_refuses_a_reconstruction_as_reference(tmp_path, capsys):
    fbp = DATA / 'htc2022_ta_full_recon_fbp.mat'
    one_line_exit_2(['htc2022', str(DATA / 'htc2022_ta_sparse_example.mat'),
                     '--method', 'fbp', '--reference', str(fbp)], capsys,
                    'is not a segmentation')


# --- training: damaged checkpoints and devices without values -----------------

def test_a_checkpoint_missing_entries_is_named(tmp_path):
    from odl_genprior.training import UnreadableFileError, train

    def run():
        torch.manual_seed(0)
        return train(torch.nn.Linear(2, 1), lambda m, x: m(x).pow(2).mean(),
                     torch.randn(8, 2), out_dir=tmp_path, batch_size=4,
                     epochs=1, progress=False)
    run()
    ckpt = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    del ckpt['val_history']
    torch.save(ckpt, tmp_path / 'checkpoint.pt')
    with pytest.raises(UnreadableFileError, match='lacks val_history: not a '
                                                  'checkpoint of train'):
        run()


@pytest.mark.parametrize('where', ['device', 'data', 'model'])
def test_the_meta_device_is_refused_before_a_step(where):
    from odl_genprior.training import train

    model = torch.nn.Linear(2, 1, device='meta' if where == 'model' else None)
    data = torch.randn(4, 2, device='meta' if where == 'data' else None)
    kw = {'device': 'meta'} if where == 'device' else {}
    with pytest.raises(ValueError, match='meta device|device meta'):
        train(model, lambda m, x: m(x).sum(), data, out_dir=None,
              batch_size=2, progress=False, **kw)


# --- group 4: results that do not depend on the cache -------------------------

@pytest.mark.parametrize('steps, path', [(3, 'loop'), (20, 'matrix')])
def test_training_is_bit_identical_cold_and_warm(tmp_path, monkeypatch,
                                                 steps, path):
    from odl_genprior.training import read_metrics, read_run_config

    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path / 'cache'))
    cfg = {'scheme': 'lgd', 'n_iter': 2, 'hidden_channels': 4,
           'benchmark': {'size': 8, 'num_angles': 4}}
    nets = []
    for run in ('cold', 'warm'):  # the second finds the matrix on disk
        from odl_genprior.models.unrolled import train_unrolled
        nets.append(train_unrolled(cfg, tmp_path / run, n_train=4, n_val=2,
                                   steps=steps, batch_size=2, seed=1,
                                   progress=False, checkpoint_every=2))
        record = read_run_config(tmp_path / run, 'provenance', '')
        assert record['provenance']['operator_batching'] == path
    assert bool(list((tmp_path / 'cache').rglob('*.npz'))) == (
        path == 'matrix')
    for a, b in zip(nets[0].state_dict().values(),
                    nets[1].state_dict().values()):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.items() if k != 'time'}
             for r in read_metrics(tmp_path / 'cold')]
    assert strip == [{k: v for k, v in r.items() if k != 'time'}
                     for r in read_metrics(tmp_path / 'warm')]


def test_auto_batching_does_not_switch_on_a_warm_cache(tmp_path, monkeypatch):
    from odl_genprior.bridge import OperatorLayer, operator_matrix

    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    A = EllipseCT(size=8, num_angles=4).operator
    operator_matrix(A)  # warm: on disk and in memory
    layer = OperatorLayer(A)
    layer(torch.rand(1, 8, 8))
    assert layer.batching == 'auto-matrix'  # still the loop's numbers
    layer(torch.rand(60, 8, 8))  # past the assembly's cost
    assert layer.batching == 'matrix'


# --- the bridge: elements of other spaces, modules that cannot run -----------

def test_torch_operator_names_the_space_and_the_module():
    import odl
    from odl_genprior.bridge import TorchOperator

    s = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    small = odl.uniform_discr([0, 0], [1, 1], (4, 4), dtype='float32')
    conv = TorchOperator(torch.nn.Conv2d(1, 1, 3, padding=1), s, s)
    with pytest.raises(odl.OpDomainError, match=r'derivative expects an '
                                                r'element of uniform_discr'):
        conv.derivative(small.one())
    for module, words in ((torch.nn.Linear(5, 3), 'mat1 and mat2'),
                          (torch.nn.Conv2d(3, 1, 3), '3 channels')):
        with pytest.raises(ValueError, match=r'module \w+ cannot take an '
                                             rf'input of shape \(1, 8, 8\).*'
                                             f'{words}'):
            TorchOperator(module, s, s)(s.one())


def test_a_matrix_over_the_limit_is_one_line_exit_2(monkeypatch, capsys):
    from odl_genprior import bridge

    monkeypatch.setenv('ODL_GENPRIOR_CACHE', '/nonexistent/none')
    monkeypatch.setattr(bridge.matrix, 'MATRIX_MAX_NNZ', 1000)
    one_line_exit_2(['reconstruct', 'dps', '--size', '64', '--angles', '20',
                     '--quiet'], capsys, 'nonzeros', 'MATRIX_MAX_NNZ',
                    "batching='loop'")
