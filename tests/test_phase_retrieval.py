"""Phase retrieval: the operator ``|A x|``, the generative method, WF."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import problems
from odl_genprior.recon import (GenerativePhaseRetrieval, WirtingerFlow,
                                relative_error_up_to_sign)
from odl_genprior.recon.phase_retrieval import AbsMatrixMultiply


def _random(space, seed):
    rng = np.random.default_rng(seed)
    return space.element(rng.standard_normal(space.shape))


@pytest.mark.parametrize('complex_matrix', [False, True])
def test_operator_values(complex_matrix):
    """Values and sign invariance; derivative and adjoint:
    tests/test_contracts.py (phase_retrieval_*)."""
    p = problems.phase_retrieval(30, size=12, seed=3,
                                 complex_matrix=complex_matrix)
    P = p.operator
    assert not P.is_linear
    mod = P.module
    x = _random(P.domain, 1)
    ax = mod.matrix.numpy() @ x.asarray()
    mag2 = ax ** 2
    if complex_matrix:
        mag2 = mag2 + (mod.matrix_imag.numpy() @ x.asarray()) ** 2
    np.testing.assert_allclose(P(x).asarray(), np.sqrt(mag2), atol=1e-6)
    # Away from zero: |A x| is far above sqrt(eps).
    assert P(x).asarray().min() > 1e-4
    # sign invariance of the data
    np.testing.assert_allclose(P(-x).asarray(), P(x).asarray())


def test_operator_diagnostics_and_errors():
    p = problems.phase_retrieval(20, size=6, seed=0)
    assert p.data.shape == (20,) and p.ground_truth.shape == (6,)
    assert p.noise_level == 0.0
    noisy = problems.phase_retrieval(20, size=6, seed=0, noise_std=0.1)
    assert noisy.noise_level > 0
    img = problems.phase_retrieval(50, size=4, phantom='ellipses', seed=0)
    assert img.space.shape == (4, 4)
    # the same seed gives the same problem
    again = problems.phase_retrieval(20, size=6, seed=0)
    assert np.array_equal(again.data.asarray(), p.data.asarray())
    with pytest.raises(ValueError, match='eps'):
        problems.phase_retrieval(20, size=6, eps=0.0)
    with pytest.raises(ValueError, match='shape'):
        AbsMatrixMultiply(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match='shape'):
        relative_error_up_to_sign(np.ones(3), np.ones(4))


def _tanh_generator(k, n, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(k, 40), torch.nn.Tanh(),
                               torch.nn.Linear(40, n)).double()


@pytest.mark.parametrize('solver', ['adam', 'bfgs'])
def test_generative_recovers_up_to_sign(solver):
    k, n = 4, 50
    gen = _tanh_generator(k, n, 0)
    z = torch.randn(1, k, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    x_true = gen(z).detach().reshape(n).numpy()
    p = problems.phase_retrieval(4 * k, phantom=x_true, seed=1)
    method = GenerativePhaseRetrieval(gen, latent_dim=k, niter=200,
                                      restarts=3, solver=solver, seed=0)
    x = method(p, progress=False)
    assert x in p.space
    err = relative_error_up_to_sign(x, p.ground_truth)
    assert err < 0.1
    # better than the trivial estimate 0 (relative error 1)
    assert err < relative_error_up_to_sign(p.space.zero(), p.ground_truth)
    assert len(method.flips) == 3
    assert method.result.data_fit == min(method.result.data_fits)


def test_negation_check_helps():
    # Hand et al.'s setting: a biasless expansive ReLU network, started at a
    # negative multiple of the true latent code (their spurious basin).
    k, n = 4, 60
    torch.manual_seed(0)
    gen = torch.nn.Sequential(
        torch.nn.Linear(k, 30, bias=False), torch.nn.ReLU(),
        torch.nn.Linear(30, n, bias=False), torch.nn.ReLU()).double()
    z = torch.randn(1, k, dtype=torch.float64)
    p = problems.phase_retrieval(24, phantom=gen(z).detach().reshape(n),
                                 seed=0)
    start = -0.7 * z.numpy().ravel()
    runs = {}
    for negation in (False, True):
        method = GenerativePhaseRetrieval(
            gen, latent_dim=k, niter=200, restarts=1, negation=negation,
            start=start, solver='adam')
        x = method(p, progress=False)
        runs[negation] = (method.result.objective,
                          relative_error_up_to_sign(x, p.ground_truth),
                          method.flips)
    assert runs[True][0] < runs[False][0]
    assert runs[True][1] < 0.1 < runs[False][1]
    assert runs[True][2][0] >= 1 and runs[False][2] == [0]


def test_generative_errors():
    gen = _tanh_generator(3, 10, 0)
    p = problems.phase_retrieval(20, size=10, seed=0)
    with pytest.raises(ValueError, match='start has 2 entries'):
        GenerativePhaseRetrieval(gen, latent_dim=3, niter=5, restarts=1,
                                 start=[1.0, 2.0])(p, progress=False)
    with pytest.raises(ValueError, match='negation_every'):
        GenerativePhaseRetrieval(gen, latent_dim=3, negation_every=0)
    wrong = problems.phase_retrieval(20, size=12, seed=0)
    with pytest.raises(ValueError, match='generator range'):
        GenerativePhaseRetrieval(
            _odl_generator(gen, p.space), niter=5, restarts=1)(
                wrong, progress=False)


def _odl_generator(module, space):
    from odl_genprior.recon.latent import generator_operator
    return generator_operator(module, space, latent_dim=3)


@pytest.mark.parametrize('complex_matrix', [False, True])
@pytest.mark.parametrize('truncated', [False, True])
def test_wirtinger_flow_threshold(complex_matrix, truncated):
    n = 24
    wf = WirtingerFlow(niter=300, truncated=truncated)
    good = problems.phase_retrieval(8 * n, size=n, seed=2,
                                    complex_matrix=complex_matrix)
    x = wf(good, progress=False)
    assert x in good.space
    err = relative_error_up_to_sign(x, good.ground_truth)
    assert err < 1e-3
    # the spectral start alone (the usual trivial baseline here) is worse
    x0 = wf.spectral_init(good)
    assert err < relative_error_up_to_sign(x0, good.ground_truth)
    bad = problems.phase_retrieval(n, size=n, seed=2,
                                   complex_matrix=complex_matrix)
    x = wf(bad, progress=False)
    assert relative_error_up_to_sign(x, bad.ground_truth) > 0.5


def test_wirtinger_flow_errors():
    cs = problems.compressed_sensing(10, size=8, phantom='sparse', sparsity=2,
                                   noise=None)
    with pytest.raises(ValueError, match='phase-retrieval operator'):
        WirtingerFlow(niter=5)(cs, progress=False)
    with pytest.raises(ValueError, match='step_size must be > 0'):
        WirtingerFlow(step_size=0.0)
    with pytest.raises(TypeError, match="'mu'"):  # one name: step_size
        WirtingerFlow(mu=0.3)
    p = problems.phase_retrieval(40, size=5, seed=0)
    assert WirtingerFlow(niter=0)(p, progress=False) in p.space
    assert isinstance(p.operator, odl.Operator)
