"""Unrolled schemes over ODL operators; training, reloading, the contract."""
import json

import numpy as np
import odl
import pytest
import torch

from odl_genprior import metrics
from odl_genprior.bridge import OperatorLayer, TorchOperator
from odl_genprior.problems.ellipse_ct import EllipseCT, evaluate
from odl_genprior.nn.equivariant import rotation_equivariance_error
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.models.unrolled import (build_unrolled, load_unrolled,
                                          train_unrolled)
from odl_genprior.nn.unrolled import (LearnedForwardBackward,
                                   LearnedGradientDescent, LearnedPrimalDual)

SMALL = {'size': 16, 'num_angles': 8}


@pytest.fixture(scope='module')
def bench():
    return EllipseCT(**SMALL)


@pytest.mark.parametrize('cls, kw', [
    (LearnedGradientDescent, {}), (LearnedPrimalDual, {}),
    (LearnedForwardBackward, {}), (LearnedForwardBackward, {'group': 'C4'}),
    (LearnedPrimalDual, {'group': 'C4'}), (LearnedPrimalDual,
                                           {'start': 'fbp'}),
    (LearnedGradientDescent, {'start': 'fbp'})])
def test_shapes_and_gradients_through_the_ray_transform(bench, cls, kw):
    net = cls(bench.operator, n_iter=2, hidden_channels=8, **kw)
    y, _ = bench.pairs(3, 'train')
    x = net(y)
    assert x.shape == (3, 16, 16)
    x.square().sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize('cls', [LearnedPrimalDual, LearnedGradientDescent,
                                 LearnedForwardBackward])
def test_fbp_start_is_the_fbp_of_the_data(bench, cls):
    from odl.applications import tomo

    net = cls(bench.operator, n_iter=1, hidden_channels=4, start='fbp')
    y, _ = bench.pairs(2, 'train')
    fbp = tomo.fbp_op(bench.operator, filter_type='Hann',
                      frequency_scaling=0.4)
    x0 = net.initial(net._check(y), channels=3)
    assert x0.shape == (2, 3, 16, 16)
    for i in range(2):
        want = fbp(y[i].numpy()).asarray()
        for c in range(3):
            np.testing.assert_allclose(x0[i, c].numpy(), want, rtol=1e-5,
                                       atol=1e-5 * np.abs(want).max())
    with pytest.raises(ValueError, match='start must be one of'):
        cls(bench.operator, start='tv')
    space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    with pytest.raises(ValueError, match='needs a ray transform'):
        cls(odl.IdentityOperator(space), start='fbp')


def test_operator_norm_scaling(bench):
    net = LearnedForwardBackward(bench.operator, n_iter=1, hidden_channels=8)
    A = bench.operator
    x = odl.core.phantom.noise.white_noise(A.domain, seed=3)
    # The scaled operator has norm ~1 (power method estimate).
    ratio = A(x).norm() / x.norm() / net.opnorm
    assert 0.05 < ratio <= 1.01


@pytest.mark.parametrize('cls', [LearnedForwardBackward,
                                 LearnedGradientDescent])
def test_equivariant_scheme_commutes_with_rotations_when_A_does(cls):
    # The identity commutes with rotations, so the whole C4 scheme must.
    space = odl.uniform_discr([-1, -1], [1, 1], (12, 12), dtype='float32')
    eq = cls(odl.IdentityOperator(space), n_iter=2, hidden_channels=8,
             group='C4', opnorm=1.0)
    ordinary = cls(odl.IdentityOperator(space), n_iter=2, hidden_channels=8,
                   opnorm=1.0)
    y = torch.randn(2, 12, 12)
    assert rotation_equivariance_error(eq, y, 90) < 1e-5
    assert rotation_equivariance_error(ordinary, y, 90) > 1e-2


def test_training_beats_the_zero_image_and_reloads(tmp_path, bench):
    cfg = {'scheme': 'lfb', 'hidden_channels': 8, 'n_iter': 3,
           'benchmark': SMALL}
    net = train_unrolled(cfg, tmp_path, n_train=16, n_val=4, epochs=8,
                         batch_size=4, lr=3e-3, progress=False)
    test = [bench.problem(i) for i in range(4)]
    learned = evaluate(LearnedReconstructor(net), test)
    zero = np.mean([metrics.psnr(np.zeros((16, 16)), p.ground_truth)
                    for p in test])
    assert learned['psnr'] > zero + 3
    again = load_unrolled(tmp_path)
    y, _ = bench.pairs(2, 'test')
    with torch.no_grad():
        torch.testing.assert_close(again(y), net(y))
    # Resuming the finished run with more epochs continues it.
    more = train_unrolled(cfg, tmp_path, n_train=16, n_val=4, epochs=9,
                          batch_size=4, lr=3e-3, progress=False)
    assert not torch.equal(more.blocks[0].head.weight,
                           again.blocks[0].head.weight)


def test_lr_schedule_warms_up_then_follows_the_cosine():
    from odl_genprior.models.unrolled import lr_schedule

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=2.0)
    sched = lr_schedule(20, warmup=4)(opt)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs[:4], [0.5, 1.0, 1.5, 2.0])
    cosine = [1 + np.cos(np.pi * k / 16) for k in range(16)]
    np.testing.assert_allclose(lrs[4:], cosine, rtol=1e-6)
    with pytest.raises(ValueError, match='warmup must be'):
        lr_schedule(5, warmup=5)


def test_step_budget_warmup_and_compile_are_recorded_and_resume(tmp_path):
    from odl_genprior.training import read_run_config

    cfg = {'scheme': 'lpd', 'hidden_channels': 4, 'n_iter': 1,
           'benchmark': SMALL}
    net = train_unrolled(cfg, tmp_path, n_train=8, n_val=2, steps=3,
                         batch_size=4, warmup=2, compile=True,
                         autocast='bfloat16', progress=False)
    record = read_run_config(tmp_path, 'options', '')
    assert record['options']['warmup'] == 2
    assert record['options']['compile'] is True
    run = json.loads((tmp_path / 'config.json').read_text())
    assert run['steps'] == run['steps_done'] == 3
    assert run['schedulers'] == {'model': 'SequentialLR'}
    # compiled in place: the weights file loads into a plain network
    again = load_unrolled(tmp_path)
    y, _ = EllipseCT(**SMALL).pairs(2, 'test')
    with torch.no_grad():
        torch.testing.assert_close(again(y), net(y))


def test_progressive_init_from_a_coarser_grid(tmp_path):
    from odl_genprior.training import read_run_config

    coarse = {'scheme': 'lfb', 'hidden_channels': 4, 'n_iter': 1,
              'benchmark': {'protocol': 'dival', 'size': 16,
                            'num_angles': 6, 'sim_size': 24}}
    fine = {**coarse, 'benchmark': {**coarse['benchmark'], 'size': 24,
                                    'sim_size': 32}}
    first = train_unrolled(coarse, tmp_path / 'a', n_train=4, n_val=2,
                           steps=2, batch_size=2, progress=False)
    with pytest.raises(ValueError, match='benchmark'):
        train_unrolled(fine, tmp_path / 'b', n_train=2, n_val=2, steps=1,
                       batch_size=2, progress=False, init=tmp_path / 'a')
    tuned = train_unrolled(fine, tmp_path / 'c', n_train=2, n_val=2, steps=1,
                           batch_size=2, lr=1e-12, progress=False,
                           init=tmp_path / 'a', init_resize=True)
    torch.testing.assert_close(next(tuned.parameters()),
                               next(first.parameters()))
    assert read_run_config(tmp_path / 'c', 'options', '')['options'][
        'init']['resized'] is True
    # the grid alone may differ: another noise level is refused
    other = {**fine, 'benchmark': {**fine['benchmark'], 'noise_level': 0.1}}
    with pytest.raises(ValueError, match='benchmark'):
        train_unrolled(other, tmp_path / 'd', n_train=2, n_val=2, steps=1,
                       batch_size=2, progress=False, init=tmp_path / 'a',
                       init_resize=True)


def test_init_starts_from_a_trained_network_and_checks_it(tmp_path, bench):
    from odl_genprior.training import export_run, read_run_config

    cfg = {'scheme': 'lgd', 'hidden_channels': 4, 'n_iter': 2,
           'benchmark': SMALL}
    first = train_unrolled(cfg, tmp_path / 'a', n_train=8, n_val=2, epochs=2,
                           batch_size=4, lr=3e-3, progress=False)
    # epochs=0 steps would be refused; one step moves away from the init.
    tuned = train_unrolled(cfg, tmp_path / 'b', n_train=4, n_val=2, epochs=1,
                           batch_size=4, lr=1e-12, progress=False,
                           init=tmp_path / 'a')
    torch.testing.assert_close(next(tuned.parameters()),
                               next(first.parameters()))
    record = read_run_config(tmp_path / 'b', 'options', '')['options']
    assert record['init']['from'] == str(tmp_path / 'a')
    assert len(record['init']['weights_sha256']) == 64
    with pytest.raises(ValueError, match='hidden_channels: 4 != 8'):
        train_unrolled({**cfg, 'hidden_channels': 8}, tmp_path / 'c',
                       n_train=4, n_val=2, epochs=1, batch_size=4,
                       progress=False, init=tmp_path / 'a')
    with pytest.raises(FileNotFoundError, match='neither a run folder'):
        train_unrolled(cfg, tmp_path / 'd', n_train=4, n_val=2, epochs=1,
                       batch_size=4, progress=False, init='no-such-net')
    # What ships is what was trained (weights, log and command).
    assert export_run(tmp_path / 'a', tmp_path / 'shipped') == 4
    again = load_unrolled(tmp_path / 'shipped')
    y, _ = bench.pairs(2, 'test')
    with torch.no_grad():
        torch.testing.assert_close(again(y), first(y))


def test_bad_inputs_name_shapes(bench):
    net = LearnedGradientDescent(bench.operator, n_iter=1, hidden_channels=4)
    with pytest.raises(ValueError, match=r'\(batch, 8, 25\).*\(2, 8, 20\)'):
        net(torch.zeros(2, 8, 20))
    with pytest.raises(TypeError, match='linear ODL operator'):
        LearnedGradientDescent(odl.PointwiseNorm(
            odl.ProductSpace(bench.operator.domain, 2)))
    other = EllipseCT(size=16, num_angles=6).problem(0)
    with pytest.raises(ValueError, match=r'range shape: 8x25 \(trained\) against 6x25'):
        LearnedReconstructor(net)(other, progress=False)
    with pytest.raises(ValueError, match="scheme must be one of"):
        build_unrolled({'scheme': 'unet'})


def test_operator_layer_pair_is_not_a_module_cycle(bench):
    layer = OperatorLayer(bench.operator)
    adj = layer.adjoint_layer()
    assert adj.adjoint_layer() is layer
    layer.eval()  # a registered cycle would recurse forever here
    assert len(list(layer.modules())) == 1


def test_cli_trains_resumes_and_reconstructs(tmp_path, capsys):
    from odl_genprior.cli import main
    run = str(tmp_path / 'run')
    args = ['train', 'unrolled', '--scheme', 'lgd', '--size', '16',
            '--angles', '8', '--width', '4', '--iterations', '2',
            '--n-train', '4', '--n-val', '2', '--batch-size', '2',
            '--out', run, '--quiet']
    assert main(args + ['--epochs', '1']) == 0
    assert main(args + ['--epochs', '2']) == 0  # resumes: same run
    with open(tmp_path / 'run' / 'config.json') as f:
        assert '--epochs 1' in f.read()  # the command of the first call
    assert main(['reconstruct', 'learned', '--model', run, '--quiet']) == 0
    out = capsys.readouterr().out
    assert 'LearnedGradientDescent' in out and 'PSNR' in out
    assert main(['train', 'unrolled', '--group', 'C5', '--out', run]) == 2


def test_ellipse_ct_benchmark_script_prints_table_and_reuses_runs(
        tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'benchmarks' / 'ellipse_ct.py'
    spec = importlib.util.spec_from_file_location('_ellipse_ct', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    runs = tmp_path / 'runs'
    args = ['--size', '16', '--angles', '8', '--n-train', '4', '--n-val',
            '2', '--epochs', '1', '--batch-size', '2', '--width', '4',
            '--n-test', '2', '--n-tune', '1', '--tv-iter', '3',
            '--fbp-scalings', '0.8', '--tv-alphas', '1e-3',
            '--models', 'lgd', 'lfb-c4', '--runs', str(runs), '--quiet',
            '--json', str(tmp_path / 'r.json')]
    mod.main(args)
    out = capsys.readouterr().out
    for name in ('FBP', 'TV', 'learned GD', 'learned FB C4', '24.18',
                 '30.30', '2 steps'):
        assert name in out
    weights = (runs / 'lgd' / 'weights.pt').stat().st_mtime_ns
    mod.main(args)  # finished runs are reused, not retrained
    assert (runs / 'lgd' / 'weights.pt').stat().st_mtime_ns == weights
    with open(tmp_path / 'r.json') as f:
        import json
        assert [r['method'] for r in json.load(f)['results']][:2] == \
            ['FBP', 'TV']
