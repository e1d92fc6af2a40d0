"""The symmetries of parallel-beam ray transforms, and averaging a method
over them (`problems.symmetries`, `recon.SymmetryAveraged`)."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import cli
from odl_genprior.bridge import as_element, as_tensor
from odl_genprior.nn.unrolled import LearnedPrimalDual
from odl_genprior.problems import (ForwardProblem, RaySymmetry,
                                   ray_transform_symmetries)
from odl_genprior.problems.ellipse_ct import DivalEllipses, EllipseCT
from odl_genprior.recon import FBP, LearnedReconstructor, SymmetryAveraged

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _apply(A, x):
    return as_tensor(A(as_element(x.contiguous(), A.domain))).float()


def _adjoint(A, y):
    return as_tensor(A.adjoint(as_element(y.contiguous(), A.range))).float()


@pytest.fixture(scope='module')
def dival_small():
    return DivalEllipses(size=32, num_angles=8, sim_size=64)


@pytest.mark.parametrize('angles, count', [(8, 8), (30, 8), (7, 4),
                                           (5, 4)])
def test_how_many(angles, count):
    """Quarter turns and diagonal mirrors need an even number of angles."""
    A = EllipseCT(size=16, num_angles=angles).operator
    sym = ray_transform_symmetries(A)
    assert len(sym) == count and sym[0].name == 'identity'
    assert len({s.name for s in sym}) == count


def test_forward_and_adjoint_commute(dival_small):
    """A(g x) = T_g(A x) and A*(T_g y) = g(A* y) on random x, y (other
    than the check's own image)."""
    A = dival_small.operator
    g = torch.Generator().manual_seed(3)
    x = torch.rand(A.domain.shape, generator=g)
    y = torch.randn(A.range.shape, generator=g)
    ax, aty = _apply(A, x), _adjoint(A, y)
    for s in ray_transform_symmetries(A):
        np.testing.assert_allclose(_apply(A, s.image(x)), s.data(ax),
                                   rtol=0, atol=1e-4 * float(ax.abs().max()))
        np.testing.assert_allclose(_adjoint(A, s.data(y)), s.image(aty),
                                   rtol=0, atol=1e-4 * float(aty.abs().max()))


def test_maps_are_orthogonal_and_batched(dival_small):
    """The inverses are the adjoints; a batch axis goes through."""
    A = dival_small.operator
    g = torch.Generator().manual_seed(1)
    x, x2 = torch.randn(2, 3, *A.domain.shape, generator=g)
    y, y2 = torch.randn(2, 3, *A.range.shape, generator=g)
    for s in ray_transform_symmetries(A):
        assert torch.allclose((s.image(x) * x2).sum(),
                              (x * s.image_inverse(x2)).sum(), atol=1e-4)
        assert torch.allclose((s.data(y) * y2).sum(),
                              (y * s.data_inverse(y2)).sum(), atol=1e-4)
        assert torch.equal(s.data_inverse(s.data(y)), y)
        assert torch.equal(s.image_inverse(s.image(x)), x)
        assert torch.equal(s.data(y)[1], s.data(y[1]))


def test_a_group(dival_small):
    """The image maps compose to another symmetry's, and so do the data
    maps, in the same order: the eight form the group of the square."""
    A = dival_small.operator
    sym = ray_transform_symmetries(A)
    x = torch.rand(A.domain.shape)
    y = torch.rand(A.range.shape)
    for s in sym:
        for t in sym:
            gx = s.image(t.image(x))
            match = [u for u in sym if torch.equal(u.image(x), gx)]
            assert len(match) == 1
            # (g_s g_t) x = x(Q_t Q_s p): the data maps compose likewise
            assert torch.equal(match[0].data(y), t.data(s.data(y))) or \
                torch.equal(match[0].data(y), s.data(t.data(y)))


def test_refusals():
    fan = odl.applications.tomo.FanBeamGeometry(
        odl.uniform_partition(0, 2 * np.pi, 8), odl.uniform_partition(
            -30, 30, 24), src_radius=40, det_radius=40)
    space = odl.uniform_discr([-16, -16], [16, 16], (16, 16),
                              dtype='float32')
    A = odl.applications.tomo.RayTransform(space, fan)
    with pytest.raises(ValueError, match='FanBeamGeometry'):
        ray_transform_symmetries(A)
    with pytest.raises(ValueError, match='got IdentityOperator'):
        ray_transform_symmetries(odl.IdentityOperator(space))
    shifted = odl.uniform_discr([-16, -10], [16, 22], (16, 16),
                                dtype='float32')
    geo = odl.applications.tomo.parallel_beam_geometry(shifted, 8)
    with pytest.raises(ValueError, match='square image grid centred'):
        ray_transform_symmetries(
            odl.applications.tomo.RayTransform(shifted, geo))
    offset = odl.applications.tomo.Parallel2dGeometry(
        odl.uniform_partition(0, np.pi, 8),
        odl.uniform_partition(-20, 24, 22))
    with pytest.raises(ValueError, match='detector centred'):
        ray_transform_symmetries(
            odl.applications.tomo.RayTransform(space, offset))


def test_a_wrong_map_is_refuted(dival_small, monkeypatch):
    """The check on a random image catches a map that does not commute."""
    from odl_genprior.problems import symmetries
    wrong = dict(symmetries._SQUARE)
    wrong['mirror 0'] = ((1, 0), (0, 1))  # identity named as a mirror
    monkeypatch.setattr(symmetries, '_SQUARE', wrong)
    broken = RaySymmetry.data
    monkeypatch.setattr(RaySymmetry, 'data', lambda self, y: broken(
        self, y).flip(-1) if self.name == 'mirror 0' else broken(self, y))
    with pytest.raises(ValueError, match='mirror 0.*does not commute'):
        ray_transform_symmetries(dival_small.operator)


@pytest.fixture(scope='module')
def random_lpd(dival_small):
    torch.manual_seed(0)
    return LearnedReconstructor(LearnedPrimalDual(
        dival_small.operator, n_iter=2, hidden_channels=8))


def test_averaged_network_is_equivariant(dival_small, random_lpd):
    """R_G(T_g y) = g R_G(y) for a network that is not equivariant."""
    A = dival_small.operator
    y = torch.as_tensor(np.asarray(dival_small.pairs(2, 'validation')[0]))
    plain = random_lpd.reconstruct_batch(A, y)
    method = SymmetryAveraged(random_lpd)
    avg = method.reconstruct_batch(A, y)
    for s in ray_transform_symmetries(A)[1:]:
        assert (random_lpd.reconstruct_batch(A, s.data(y))
                - s.image(plain)).abs().max() > 1e-3  # not equivariant
        assert torch.allclose(method.reconstruct_batch(A, s.data(y)),
                              s.image(avg), atol=1e-5)
    assert method.last_result is None  # reconstruct_batch keeps no result


def test_problem_path_matches_batch_and_loop(dival_small, random_lpd):
    """`reconstruct` on a problem gives the batch's mean; a method without
    reconstruct_batch gives the same, one reconstruction at a time."""
    p = dival_small.problem(0, 'validation')
    method = SymmetryAveraged(random_lpd)
    x = as_tensor(method(p, progress=False))
    y = as_tensor(p.data).float()[None]
    assert torch.allclose(x, method.reconstruct_batch(p.operator, y)[0],
                          atol=1e-6)

    class OneAtATime(LearnedReconstructor):
        reconstruct_batch = None

    looped = SymmetryAveraged(OneAtATime(random_lpd.model))
    assert torch.allclose(as_tensor(looped(p, progress=False)), x,
                          atol=1e-5)
    r = method.last_result
    assert len(r.symmetries) == 8 and 0 < r.spread < 1


def test_fbp_average_close_to_fbp():
    """FBP is nearly equivariant already: the average barely moves it."""
    p = EllipseCT(size=32, num_angles=8).problem(0)
    method = SymmetryAveraged(FBP())
    x = as_tensor(method(p, progress=False))
    x0 = as_tensor(FBP()(p, progress=False))
    assert float((x - x0).norm() / x0.norm()) < 1e-3
    assert method.last_result.spread < 1e-3


def test_bad_input(dival_small, random_lpd):
    with pytest.raises(TypeError, match='must be a Reconstructor, got '
                                        'LearnedPrimalDual'):
        SymmetryAveraged(random_lpd.model)
    with pytest.raises(ValueError, match='symmetries is empty'):
        SymmetryAveraged(FBP(), symmetries=[])
    A = dival_small.operator
    with pytest.raises(ValueError, match=r'shape \(batch, 8, 47\), got '
                                         r'\(2, 8, 46\)'):
        SymmetryAveraged(random_lpd).reconstruct_batch(
            A, torch.rand(2, 8, 46))
    # symmetries of another operator
    other = ray_transform_symmetries(EllipseCT(size=16, num_angles=6).operator)
    with pytest.raises(ValueError, match=r"permute 6 sinogram rows, the "
                                         r"operator has 8 angles"):
        SymmetryAveraged(random_lpd, other).reconstruct_batch(
            A, torch.rand(2, *A.range.shape))
    # a problem whose operator has no symmetries is refused with the reason
    space = odl.uniform_discr([0, 0], [1, 1], (4, 4), dtype='float32')
    p = ForwardProblem(odl.IdentityOperator(space), space.one())
    with pytest.raises(ValueError, match='2D parallel-beam geometry'):
        SymmetryAveraged(FBP())(p, progress=False)


def test_given_symmetries_only(dival_small, random_lpd):
    """A subset of the group: the identity alone is the method itself."""
    A = dival_small.operator
    identity = ray_transform_symmetries(A)[:1]
    y = torch.rand(2, *A.range.shape)
    assert torch.allclose(
        SymmetryAveraged(random_lpd, identity).reconstruct_batch(A, y),
        random_lpd.reconstruct_batch(A, y), atol=1e-6)


def test_cli_symmetrize(capsys):
    code = cli.main(['reconstruct', 'learned', '--model', 'dival-lgd-128',
                     '--symmetrize', '--quiet'])
    out = capsys.readouterr().out
    assert code == 0 and 'symmetry-averaged' in out


def _example():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / 'examples' / 'symmetry_averaging.py'
    spec = importlib.util.spec_from_file_location('symmetry_averaging', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _equivariance_error(method, A, y):
    """The definition, term by term: mean over g != identity of
    ||R(T_g y) - g R(y)|| / ||R(y)||."""
    x = method.reconstruct_batch(A, y)
    return float(np.mean([
        float((method.reconstruct_batch(A, s.data(y)) - s.image(x)).norm()
              / x.norm()) for s in ray_transform_symmetries(A)[1:]]))


def test_example_script():
    """examples/symmetry_averaging.py on one network and one image: its
    equivariance error is the definition's, on the same test pair."""
    [row] = _example().main(['--n', '1', '--networks', 'dival-lgd-128'])
    assert 20 < row['psnr'] < 40 and abs(row['psnr_averaged']
                                         - row['psnr']) < 2
    bench = DivalEllipses()
    y = torch.as_tensor(np.asarray(bench.pairs(1, 'test')[0]))
    want = _equivariance_error(
        LearnedReconstructor.pretrained('dival-lgd-128'), bench.operator, y)
    assert row['equivariance_error'] == pytest.approx(want, rel=1e-3)
    assert row['equivariance_error'] > 1e-3  # the network alone is not


def test_members(dival_small, random_lpd):
    """The averaged network's terms: the first is R(y), their mean is the
    averaged reconstruction, and the example's equivariance error read from
    them is the definition's (0 for the averaged network itself)."""
    A = dival_small.operator
    y = torch.rand(3, *A.range.shape)
    averaged = SymmetryAveraged(random_lpd)
    members = averaged.members(A, y)
    assert members.shape == (8, 3, *A.domain.shape)
    assert torch.allclose(members[0], random_lpd.reconstruct_batch(A, y),
                          atol=1e-6)
    assert torch.allclose(members.mean(0), averaged.reconstruct_batch(A, y),
                          atol=1e-6)
    error = _example().equivariance_error
    assert error(members) == pytest.approx(
        _equivariance_error(random_lpd, A, y), rel=1e-4)
    assert error(members) > 1e-2
    assert error(SymmetryAveraged(averaged).members(A, y)) < 1e-5


def test_deepinv_solver_of_an_averaged_network(dival_small, random_lpd):
    """deepinv's users get the averaged network as a solver, in one batch."""
    from odl_genprior.interop.deepinv import (as_physics, as_solver,
                                              prepare_torchvision)
    prepare_torchvision()  # before deepinv imports torchvision
    pytest.importorskip('deepinv')
    A = dival_small.operator
    method = SymmetryAveraged(random_lpd)
    y = torch.rand(2, 1, *A.range.shape)
    x = as_solver(method)(y, as_physics(A))
    assert x.shape == (2, 1, *A.domain.shape)
    assert torch.allclose(x[:, 0], method.reconstruct_batch(A, y[:, 0]),
                          atol=1e-6)


@pytest.mark.parametrize('group, equivariant', [
    ('C4', {'identity', 'quarter turn', 'half turn', 'three quarter turns'}),
    ('D4', {'identity', 'quarter turn', 'half turn', 'three quarter turns',
            'mirror 0', 'mirror 1', 'transpose', 'anti-transpose'})])
def test_equivariant_blocks_meet_the_ray_symmetries(dival_small, group,
                                                    equivariant):
    """Learned FB works in the image domain only (its data enter as
    A^T(A x - y)), so with C4 (D4) blocks it is equivariant to exactly the
    ray transform's quarter turns (and mirrors), through the sinogram maps:
    the e2cnn side and the ray-transform side agree."""
    from odl_genprior.nn.unrolled import LearnedForwardBackward
    A = dival_small.operator
    torch.manual_seed(0)
    net = LearnedForwardBackward(A, n_iter=2, hidden_channels=8,
                                 group=group, start='fbp').eval()
    y = torch.as_tensor(np.asarray(dival_small.pairs(2, 'validation')[0]))
    with torch.no_grad():
        x = net(y)
        for s in ray_transform_symmetries(A):
            err = float((net(s.data(y)) - s.image(x)).norm() / x.norm())
            assert (err < 1e-3) == (s.name in equivariant), (s.name, err)
