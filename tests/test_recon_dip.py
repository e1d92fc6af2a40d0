"""Deep image prior: baseline, early stopping, TV term, warm start, errors."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import metrics, problems, training
from odl_genprior.generators.skip_net import SkipNet
from odl_genprior.recon import base
from odl_genprior.recon.dip import (DeepImagePrior, ellipse_fbp_pairs,
                                    pretrain_dip_network)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def problem():
    return problems.ct(size=16, num_angles=10, noise_level=0.05, seed=3)


def small_net(in_channels=8, seed=0):
    torch.manual_seed(seed)
    return SkipNet(in_channels=in_channels, channels=(8, 16), skip_channels=4)


def dip(**kwargs):
    opts = dict(network=small_net(), noise_channels=8, learning_rate=1e-2)
    opts.update(kwargs)
    return DeepImagePrior(**opts)


def residual_sq(problem, x):
    return float((problem.operator(x) - problem.data).norm()) ** 2


TAU, NITER = 3.0, 200


@pytest.fixture(scope='module')
def stopped_run(problem):
    """DIP stopped by the discrepancy principle (fires near 125 < NITER)."""
    torch.set_num_threads(1)
    method = dip(niter=NITER, early_stopping='discrepancy', tau=TAU,
                 track=problem.ground_truth)
    return method, method(problem, progress=False)


# --- SkipNet

def test_skipnet_shapes_and_errors():
    net = SkipNet(in_channels=3, out_channels=2, channels=(4, 8, 8))
    assert net(torch.rand(2, 3, 17, 24)).shape == (2, 2, 17, 24)
    no_skip = SkipNet(in_channels=1, channels=(4, 8), skip_channels=0)
    assert no_skip(torch.rand(1, 1, 9, 11)).shape == (1, 1, 9, 11)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\).*\(1, 2, 16, 16\)'):
        net(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match='sides >= 8'):
        net(torch.rand(1, 3, 4, 16))
    with pytest.raises(ValueError, match='norm'):
        SkipNet(norm='layer')


def test_skipnet_output_independent_of_batch():
    # Group normalisation: a sample's output does not depend on its batch.
    net = SkipNet(in_channels=1, channels=(4, 8))
    x = torch.rand(4, 1, 16, 16)
    alone = net(x[:1])
    torch.testing.assert_close(net(x)[:1], alone, rtol=1e-5, atol=1e-6)


# --- contract and baseline

def test_is_a_reconstructor_and_repr():
    method = dip(niter=2, early_stopping=None, track=np.ones((2, 2)))
    assert isinstance(method, base.Reconstructor)
    text = repr(method)
    assert 'network=SkipNet' in text and '<ndarray (2, 2)>' in text


def test_beats_trivial_baselines(problem, stopped_run):
    method, x = stopped_run
    A, y, gt = problem.operator, problem.data, problem.ground_truth
    assert x in problem.space
    # Baselines: the zero image and the back-projection scaled to fit y.
    aty = A.adjoint(y)
    a_aty = A(aty)
    scale = float(a_aty.inner(y)) / float(a_aty.norm()) ** 2
    p_dip = metrics.psnr(x, gt)
    assert p_dip > metrics.psnr(problem.space.zero(), gt) + 5
    assert p_dip > metrics.psnr(scale * aty, gt) + 3
    fits = method.history['data_fit']
    assert fits[-1] < 0.1 * fits[0]


def test_no_rule_returns_last_iterate(problem):
    method = dip(niter=5, early_stopping=None)
    x = method(problem, progress=False)
    assert method.returned_iteration == 5 and method.stop_iteration is None
    assert residual_sq(problem, x) == pytest.approx(
        method.history['data_fit'][-1], rel=1e-3)


def test_same_seed_same_result_and_network_not_changed(problem):
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x1 = dip(network=net, niter=20, early_stopping=None)(problem,
                                                         progress=False)
    x2 = dip(network=net, niter=20, early_stopping=None)(problem,
                                                         progress=False)
    assert np.array_equal(x1.asarray(), x2.asarray())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    x3 = dip(network=net, niter=20, early_stopping=None, seed=1)(
        problem, progress=False)
    assert not np.array_equal(x1.asarray(), x3.asarray())


def test_default_network_and_fbp_input(problem):
    method = DeepImagePrior(z0='fbp', niter=3, early_stopping=None)
    x = method(problem, progress=False)
    assert x in problem.space
    assert isinstance(method.network_, SkipNet)
    assert method.network_.in_channels == 1


def test_pytorch_space():
    p = problems.ct(size=16, num_angles=8, seed=0, impl='pytorch')
    method = dip(network=SkipNet(in_channels=8, channels=(4,)), niter=3,
                 early_stopping=None)
    x = method(p, progress=False)
    assert x in p.space and isinstance(x.data, torch.Tensor)


# --- early stopping

def test_discrepancy_stops_early_and_returns_that_iterate(problem,
                                                          stopped_run):
    method, x = stopped_run
    k = method.stop_iteration
    assert k is not None and k < NITER  # the rule fired before NITER
    assert method.returned_iteration == k and method.rule == 'discrepancy'
    h = method.history
    assert len(h['data_fit']) == k + 1 and h['iteration'][-1] == k
    fits = np.array(h['data_fit'])
    bound = (TAU * problem.noise_level) ** 2
    assert fits[k] <= bound and np.all(fits[:k] > bound)
    # The returned image is iterate k.
    assert residual_sq(problem, x) == pytest.approx(fits[k], rel=1e-3)
    assert metrics.psnr(x, problem.ground_truth) == pytest.approx(
        h['psnr'][k], abs=1e-4)


def test_continue_after_stop_keeps_early_stopped_image(problem):
    short = dip(niter=45, early_stopping='discrepancy', tau=6.0)
    x_short = short(problem, progress=False)
    k = short.stop_iteration
    assert k is not None and k < 45
    full = dip(niter=45, early_stopping='discrepancy', tau=6.0,
               continue_after_stop=True)
    x_full = full(problem, progress=False)
    assert len(full.history['data_fit']) == 46  # the whole curve
    assert full.stop_iteration == k and full.returned_iteration == k
    assert np.array_equal(full.history['data_fit'][:k + 1],
                          short.history['data_fit'])
    assert np.array_equal(x_full.asarray(), x_short.asarray())


def test_auto_rule_resolution(problem):
    method = dip(niter=1, early_stopping='auto')
    method(problem, progress=False)
    assert method.rule == 'discrepancy'
    unknown = problems.ForwardProblem(problem.operator, problem.data)
    method(unknown, progress=False)
    assert method.rule == 'wmv'
    with pytest.raises(ValueError, match='noise level'):
        dip(early_stopping='discrepancy')(unknown, progress=False)


def test_wmv_stops_at_variance_minimum(problem):
    method = dip(niter=3000, early_stopping='wmv', window=8, patience=20,
                 learning_rate=2e-2, track=problem.ground_truth)
    x = method(problem, progress=False)
    h = method.history
    k, stop = method.returned_iteration, method.stop_iteration
    assert stop is not None and stop < 3000
    assert len(h['iteration']) == stop + 1
    var = np.array(h['variance'])
    assert np.all(np.isnan(var[:7])) and np.isfinite(var[7:]).all()
    assert k == int(np.nanargmin(var)) and stop - k == 20
    assert metrics.psnr(x, problem.ground_truth) == pytest.approx(
        h['psnr'][k], abs=1e-4)


def test_track_callable(problem):
    method = dip(niter=4, early_stopping=None, track=lambda a: a.mean())
    x = method(problem, progress=False)
    assert method.history['track'][-1] == pytest.approx(
        float(x.asarray().mean()), rel=1e-5)


# --- TV

def test_tv_term_changes_result_and_matches_odl(problem):
    plain = dip(niter=40, early_stopping=None)
    with_tv = dip(niter=40, early_stopping=None, alpha_tv=0.05)
    x0 = plain(problem, progress=False)
    x1 = with_tv(problem, progress=False)
    grad = odl.Gradient(problem.space)
    tv = odl.functionals.GroupL1Norm(grad.range)
    assert not np.allclose(x0.asarray(), x1.asarray())
    assert tv(grad(x1)) < 0.9 * tv(grad(x0))
    # The torch TV term is ODL's ||grad x||_{2,1} of the same iterate.
    assert with_tv.history['tv'][-1] == pytest.approx(tv(grad(x1)), rel=1e-4)
    h = with_tv.history
    assert h['loss'][-1] == pytest.approx(
        h['data_fit'][-1] + 0.05 * h['tv'][-1], rel=1e-5)


# --- warm start

def test_warm_start_state_dict(problem):
    source = small_net(seed=5)
    method = dip(network=small_net(seed=0), warm_start=source.state_dict(),
                 niter=1, early_stopping=None)
    method(problem, progress=False)
    z0 = method.make_input(problem)
    expected = source(z0).detach().reshape(problem.space.shape)
    assert method.history['data_fit'][0] == pytest.approx(
        residual_sq(problem, problem.space.element(expected.numpy())),
        rel=1e-4)
    cold = dip(network=small_net(seed=0), niter=1, early_stopping=None)
    cold(problem, progress=False)
    assert cold.history['data_fit'][0] != pytest.approx(
        method.history['data_fit'][0], rel=1e-3)


def test_pretrain_run_folder_and_warm_start_from_path(tmp_path):
    p = problems.ct(size=16, num_angles=8, noise_level=0.05, seed=1)
    opts = dict(n_train=16, epochs=2, batch_size=8, progress=False)
    net = pretrain_dip_network(
        p.operator, tmp_path, network=SkipNet(in_channels=1, channels=(4,)),
        **opts)
    assert {'weights.pt', 'checkpoint.pt', 'config.json', 'pairs.pt'} <= {
        f.name for f in tmp_path.iterdir()}
    # A finished run is loaded, not retrained: same weights again.
    again = pretrain_dip_network(
        p.operator, tmp_path, network=SkipNet(in_channels=1, channels=(4,)),
        **opts)
    for a, b in zip(net.parameters(), again.parameters()):
        assert torch.equal(a, b)
    method = DeepImagePrior(network=SkipNet(in_channels=1, channels=(4,)),
                            z0='fbp', warm_start=tmp_path, niter=1,
                            early_stopping=None)
    method(p, progress=False)
    z0 = method.make_input(p)
    expected = net(z0).detach().reshape(p.space.shape).numpy()
    assert method.history['data_fit'][0] == pytest.approx(
        residual_sq(p, p.space.element(expected)), rel=1e-4)
    with pytest.raises(ValueError, match='warm_start does not fit'):
        DeepImagePrior(network=SkipNet(in_channels=1, channels=(8,)),
                       z0='fbp', warm_start=tmp_path, niter=1)(
                           p, progress=False)


def test_ellipse_fbp_pairs_are_close_to_images():
    A = problems.ray_transform(problems.image_space(32), num_angles=30)
    fbps, images = ellipse_fbp_pairs(A, 4, noise_level=0.0, seed=2)
    assert fbps.dtype == torch.float32 and images.shape == (4, 1, 32, 32)
    assert float(images.min()) >= 0 and float(images.max()) == 1.0
    for f, im in zip(fbps, images):
        assert metrics.psnr(f, im) > 15


def test_pretraining_reduces_the_loss(tmp_path):
    A = problems.ray_transform(problems.image_space(16), num_angles=8)
    net = SkipNet(in_channels=1, channels=(4, 8))
    pretrain_dip_network(A, tmp_path, network=net, n_train=16, epochs=6,
                         batch_size=4, lr=3e-3, progress=False)
    rows = training.read_metrics(tmp_path)
    assert rows[-1]['loss'] < 0.5 * rows[0]['loss']


# --- bad input

def test_wrong_z0_shape_is_named(problem):
    with pytest.raises(ValueError, match=r'z0 has shape \(1, 3, 16, 16\).*'
                       r'\(1, 8, 16, 16\)'):
        dip(z0=torch.rand(1, 3, 16, 16), niter=1)(problem, progress=False)


def test_wrong_output_shape_is_named(problem):
    class Half(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 1, 3, stride=2, padding=1)

        def forward(self, z):
            return self.conv(z)

    with pytest.raises(ValueError, match=r'output has shape \(1, 1, 8, 8\)'
                       r'.*\(1, 1, 16, 16\)'):
        dip(network=Half(), niter=1)(problem, progress=False)


def test_network_failure_names_z0_shape(problem):
    net = torch.nn.Linear(5, 5)
    with pytest.raises(ValueError, match=r'failed on z0 of shape '
                       r'\(1, 8, 16, 16\)'):
        dip(network=net, niter=1)(problem, progress=False)


@pytest.mark.parametrize('kwargs, match', [
    (dict(z0='zeros'), 'z0'),
    (dict(early_stopping='never'), 'early_stopping'),
    (dict(niter=0), 'niter'),
    (dict(learning_rate=-1.0), 'learning_rate'),
    (dict(network='unet'), 'torch.nn.Module'),
    (dict(warm_start=3), 'warm_start'),
])
def test_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DeepImagePrior(**kwargs)


def test_nonlinear_operator_refused():
    space = odl.rn(4)
    op = odl.PowerOperator(space, 2)
    p = problems.ForwardProblem(op, op(space.one()))
    with pytest.raises(ValueError, match='linear'):
        dip(niter=1)(p, progress=False)


# --- the reproduction script

@pytest.mark.slow
def test_reproduction_script_runs(tmp_path, capsys):
    """Tiny settings: the script runs, prints its tables and goals (~10 s
    of CPU time, so marked slow)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'examples' / (
        'reproduce_dip_ct.py')
    spec = importlib.util.spec_from_file_location('reproduce_dip_ct', path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = script.main([
        '--size', '16', '--angles', '8', '--niter', '12', '--niter-warm',
        '6', '--n-train', '16', '--epochs', '1', '--every', '5',
        '--run-dir', str(tmp_path / 'run'), '--json',
        str(tmp_path / 'curves.json')])
    out = capsys.readouterr().out
    assert set(results) == {'dip', 'dip+tv', 'warm'}
    assert len(results['dip']['psnr']) == 13
    assert len(results['warm']['psnr']) == 7
    for text in ('| iteration | dip | dip+tv | warm |', 'Goals',
                 'DIP peak', 'DIP+TV peak', 'warm-start peak'):
        assert text in out
    assert (tmp_path / 'run' / 'weights.pt').exists()
    assert (tmp_path / 'curves.json').exists()
