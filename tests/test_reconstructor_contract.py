"""The reconstruction contract, checked over a registry of every method.

Each entry of `RECONSTRUCTORS` builds a method on a tiny problem. Every
method must: accept a ``ForwardProblem`` and return an element of its
space; leave a `Result` in ``last_result`` whose ``x`` is that element;
fit the data better than the zero image; refuse data outside the
operator's range and non-problems with a clear error. Iterative methods
take ``niter`` and ``callback`` and call the callback once per iteration
(per restart), with an element of the problem space.
"""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import problems
from odl_genprior.recon import (FBP, TV, DeepImagePrior,
                                DiffusionPosteriorSampling,
                                GenerativePhaseRetrieval, Lasso, LatentHard,
                                LatentSoft, LatentSparseDeviation,
                                LearnedReconstructor,
                                LiftedBregmanInversion, NetworkLeastSquares,
                                Reconstructor, ScoreProjection,
                                SymmetryAveraged, Tikhonov,
                                WaveletL1, WirtingerFlow)
from odl_genprior.recon.base import Result
from odl_genprior.recon.bregman_inversion import (MultilayerBregmanInversion,
                                                  multilayer_problem,
                                                  perceptron_problem)
from odl_genprior.diffusion.sde import VPSDE, gaussian_score

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _ct():
    return problems.ct(size=16, num_angles=8, noise_level=0.02, seed=0)


def _cs():
    return problems.compressed_sensing(60, size=8, seed=0)


def _phase():
    return problems.phase_retrieval(100, size=6, seed=0)


def _generator(n, latent=4):
    """A random generator ``R^latent -> R^n`` (images: ``n`` pixels)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(latent, n),
                               torch.nn.Sigmoid()).eval()


def _dip_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1),
                               torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 1, 3, padding=1))


def _sde():
    return VPSDE()


def _dival():
    from odl_genprior.problems.ellipse_ct import DivalEllipses
    return DivalEllipses().problem(0)


_LSVD = {}


def _learned_svd(**kw):
    """A learned SVD trained for `_ct`'s operator (once per session)."""
    from odl_genprior.models.learned_svd import fit_learned_svd
    from odl_genprior.recon import LearnedSVD
    if 'net' not in _LSVD:
        _LSVD['net'] = fit_learned_svd(
            {'dataset': 'ellipses', 'size': 16, 'angles': 8,
             'noise_level': 0.02, 'latent_dim': 16, 'hidden': [64]}, None,
            n_train=256, n_val=8, epochs=30, batch_size=32, progress=False)
    return LearnedSVD(_LSVD['net'], **kw)


# name -> (problem factory, method factory(**opts), per-restart factor);
# the factor is None for a method without niter/callback.
RECONSTRUCTORS = {
    'FBP': (_ct, lambda **kw: FBP(**kw), None),
    'TV': (_ct, lambda **kw: TV(alpha=1e-3, **kw), 1),
    'Tikhonov': (_ct, lambda **kw: Tikhonov(alpha=1e-2, **kw), 1),
    'Lasso': (_cs, lambda **kw: Lasso(alpha=1e-3, **kw), 1),
    'WaveletL1': (_ct, lambda **kw: WaveletL1(alpha=1e-4, **kw), 1),
    'LatentHard': (_cs, lambda **kw: LatentHard(
        _generator(64), latent_dim=4, solver='adam', learning_rate=0.1,
        restarts=2, **kw), 2),
    'LatentSoft': (_cs, lambda **kw: LatentSoft(
        _generator(64), latent_dim=4, solver='adam', learning_rate=0.1,
        restarts=2, **kw), 2),
    'LatentSparseDeviation': (_cs, lambda **kw: LatentSparseDeviation(
        _generator(64), latent_dim=4, solver='adam', learning_rate=0.1,
        restarts=2, **kw), 2),
    'GenerativePhaseRetrieval': (_phase, lambda **kw: GenerativePhaseRetrieval(
        _generator(6).double(), latent_dim=4, solver='adam', learning_rate=0.1,
        restarts=1, **kw), 1),
    'WirtingerFlow': (_phase, lambda **kw: WirtingerFlow(**kw), 1),
    'DeepImagePrior': (_ct, lambda **kw: DeepImagePrior(
        network=_dip_net(), noise_channels=4, early_stopping=None,
        **({} if 'lr' in kw else {'learning_rate': 1e-2}), **kw), 1),
    'DiffusionPosteriorSampling': (_ct, lambda **kw: DiffusionPosteriorSampling(
        gaussian_score(_sde(), 0.0, 0.25), _sde(), n_samples=2,
        prior_std=0.5, noise_std=0.02, **kw), 1),
    'ScoreProjection': (_ct, lambda **kw: ScoreProjection(
        gaussian_score(_sde(), 0.0, 0.25), _sde(), n_samples=2, **kw), 1),
    'LiftedBregmanInversion': (
        lambda: perceptron_problem(size=8, num_outputs=32, seed=0),
        lambda **kw: LiftedBregmanInversion(alpha=1e-3, **kw), 1),
    'NetworkLeastSquares': (
        lambda: perceptron_problem(size=8, num_outputs=32, seed=0),
        lambda **kw: NetworkLeastSquares(**kw), 1),
    'MultilayerBregmanInversion': (
        lambda: multilayer_problem([4, 8, 12], activations='tanh', seed=1),
        lambda **kw: MultilayerBregmanInversion(
            alpha=1e-8, regulariser='l2', **kw), 1),
    # trained networks, one forward pass (no niter, no callback)
    'LearnedReconstructor': (_dival, lambda **kw: LearnedReconstructor.
                             pretrained('dival-lpd-long-128', **kw), None),
    'LearnedSVD': (_ct, _learned_svd, None),
    # a wrapper: one FBP per symmetry of the ray transform
    'SymmetryAveraged': (_ct, lambda **kw: SymmetryAveraged(FBP(**kw)),
                         None),
}
NITER = 4
# HTC2022-scanner data only (tested in test_htc2022_limited_angle).
EXEMPT = {'LimitedAngleCT'}


def test_registry_covers_every_method():
    from odl_genprior import recon
    methods = {name for name in recon.__all__
               if isinstance(getattr(recon, name), type)
               and issubclass(getattr(recon, name), Reconstructor)
               and getattr(recon, name) is not Reconstructor}
    assert methods - EXEMPT == set(RECONSTRUCTORS)


def _run(name, **opts):
    make_problem, make_method, _ = RECONSTRUCTORS[name]
    problem = make_problem()
    method = make_method(**opts)
    return problem, method, method(problem, progress=False)


@pytest.mark.parametrize('name', sorted(RECONSTRUCTORS))
def test_returns_element_and_result(name):
    kw = {} if RECONSTRUCTORS[name][2] is None else {'niter': 20}
    problem, method, x = _run(name, **kw)
    assert x in problem.space
    assert isinstance(method.last_result, Result)
    assert method.last_result.x is x
    assert method.last_result.method == method.name
    # fits the data better than the zero image does
    residual = float((problem.operator(x) - problem.data).norm())
    assert residual < float(problem.data.norm())


@pytest.mark.parametrize('name', sorted(k for k, v in RECONSTRUCTORS.items()
                                        if v[2] is not None))
def test_niter_and_callback(name):
    seen = []

    def callback(x):
        seen.append(x)

    problem, method, x = _run(name, niter=NITER, callback=callback)
    per_restart = RECONSTRUCTORS[name][2]
    stalls = getattr(method.last_result, 'extras', {}).get('stalls', 0)
    stalled = method.last_result.extras.get('stalled', False)
    if stalls or stalled:  # a line-search stall ends a run early
        assert 0 < len(seen) <= NITER * per_restart
    else:
        assert len(seen) == NITER * per_restart
    assert all(element in problem.space for element in seen)


@pytest.mark.parametrize('name', sorted(RECONSTRUCTORS))
def test_bad_input_refused(name):
    make_problem, make_method, _ = RECONSTRUCTORS[name]
    method = make_method()
    with pytest.raises(TypeError, match='expected a ForwardProblem'):
        method(np.zeros(3), progress=False)
    problem = make_problem()
    wrong = odl.rn(problem.data.size + 1).zero()
    bad = problems.ForwardProblem(problem.operator, problem.data)
    bad.data = wrong
    with pytest.raises(ValueError, match='not in the operator range'):
        method(bad, progress=False)


@pytest.mark.parametrize('name, old', [
    ('DeepImagePrior', 'lr'), ('DiffusionPosteriorSampling', 'steps'),
    ('ScoreProjection', 'steps'), ('ScoreProjection', 'regularization'),
    ('WirtingerFlow', 'mu')])
def test_one_name_per_option(name, old):
    """Old option names are gone (the package is unreleased)."""
    with pytest.raises(TypeError, match=repr(old)):
        RECONSTRUCTORS[name][1](**{old: 1})


def test_method_registry_drives_cli_and_docs():
    import pathlib

    from odl_genprior import cli, recon
    assert {name: entry for name, entry in recon.METHODS.items()
            if entry.cli} == cli._cli_methods()
    sub = cli.build_parser()._subparsers._group_actions[0].choices[
        'reconstruct']._subparsers._group_actions[0].choices
    assert set(sub) == set(cli._cli_methods())  # one parser per method
    assert {entry.cls.__name__ for entry in recon.METHODS.values()} == (
        set(RECONSTRUCTORS) | EXEMPT)
    docs = pathlib.Path(__file__).parents[1] / 'docs'
    table = (docs / 'reconstruction.md').read_text()
    for name, entry in recon.METHODS.items():
        shown = f'`{name}`' if entry.cli else '(Python only)'
        row = (f'| {shown} | `{entry.cls.__name__}` | '
               f'[{entry.page}]({entry.page}) |')
        assert row in table, f'docs/reconstruction.md lacks the row {row}'
        assert (docs / entry.page).exists()
