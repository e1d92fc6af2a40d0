"""HTC2022 simulator, protocol, limited-angle networks and the htc2022 command.

Tests on the measured files skip without them (``$ODL_GENPRIOR_HTC2022`` or
``../shared/data/htc2022``).
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from odl_genprior import cli
from odl_genprior.problems import htc2022, htc2022_sim
from odl_genprior.problems import htc2022_protocol as protocol
from odl_genprior.problems.forward import ForwardProblem
from odl_genprior.recon.limited_angle import LimitedAngleCT
from odl_genprior.models.limited_angle import (build_limited_angle,
                                               load_limited_angle,
                                               train_limited_angle)

_DEFAULT = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'
DATA = Path(os.environ.get(htc2022.HTC2022_ENV) or _DEFAULT)
needs_data = pytest.mark.skipif(
    not (DATA / 'htc2022_ta_full.mat').is_file(),
    reason=f'HTC2022 data not found in {DATA} (set {htc2022.HTC2022_ENV})')

TINY = {'scheme': 'lfb', 'n_iter': 2, 'hidden_channels': 4,
        'htc2022': {'size': 32, 'max_range': 20, 'min_range': 6,
                    'angle_step': 2}}


def test_phantom_is_seeded_binary_and_has_holes_inside_the_disc():
    a = htc2022_sim.htc_phantom((96, 96), rng=3)
    b = htc2022_sim.htc_phantom((96, 96), rng=3)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0}
    xs, ys = htc2022.htc2022_space(96).meshgrid
    assert not a[np.hypot(xs, ys) > 37.5].any()  # nothing past the rim
    holes = [(htc2022_sim.htc_phantom((96, 96), rng=s) == 0)
             [np.hypot(xs, ys) < 30].sum() for s in range(12)]
    assert min(holes) >= 0 and max(holes) > 20  # holes, of varied sizes
    assert len(set(holes)) > 6


def test_pairs_mask_the_rows_past_the_range_and_are_seeded():
    y, mask, x = htc2022_sim.limited_angle_pairs(
        6, seed=1, size=32, max_range=20, min_range=6, angle_step=2)
    y2, _, _ = htc2022_sim.limited_angle_pairs(
        6, seed=1, size=32, max_range=20, min_range=6, angle_step=2)
    np.testing.assert_array_equal(y, y2)
    assert y.shape == (6, 11, 140) and mask.shape == (6, 11)
    assert x.shape == (6, 32, 32) and 0 <= x.min() and x.max() <= 1
    for yi, mi in zip(y, mask):
        kept = int(mi.sum())
        assert 4 <= kept <= 11 and (mi[:kept] == 1).all()
        assert not yi[kept:].any() and yi[:kept].max() > 30  # mm of acrylic


def test_range_mask_and_to_model_frame():
    mask = htc2022_sim.range_mask(4, 30.0, [0, 45, 90])
    np.testing.assert_array_equal(mask, [[1, 0, 0, 0], [1, 1, 0, 0],
                                         [1, 1, 1, 1]])
    rng = np.random.default_rng(0)
    sino = rng.random((41, 560))
    y, m, start = htc2022_sim.to_model_frame(
        sino, np.arange(41) * 0.5 + 100, max_range=10, angle_step=1.0)
    assert start == 100 and y.shape == (11, 140) and m.sum() == 11
    expected = sino[::2].reshape(21, 140, 4).mean(axis=2)[:11]
    np.testing.assert_allclose(y, expected / htc2022_sim.SCANNER.attenuation,
                               rtol=1e-5)
    with pytest.raises(ValueError, match='divides 1.0 degrees'):
        htc2022_sim.to_model_frame(sino, np.arange(41) * 0.3)
    with pytest.raises(ValueError, match='41 angles'):
        htc2022_sim.to_model_frame(sino[:, :100].T, np.arange(41))


def test_a_start_angle_is_a_rotation_of_the_object():
    f = htc2022_sim.htc_phantom((128, 128), rng=5)
    space = htc2022.htc2022_space(128)
    start = 37.0
    A_s = htc2022.htc2022_ray_transform(space, start + np.arange(0, 31.0))
    A_0 = htc2022.htc2022_ray_transform(space, np.arange(0, 31.0))
    turned = htc2022_sim.rotate_image(f, -start).astype(np.float32)
    d_s, d_0 = A_s(f).asarray(), A_0(turned).asarray()
    assert np.abs(d_s - d_0).mean() < 0.01 * np.abs(d_s).mean()
    wrong = htc2022_sim.rotate_image(f, start).astype(np.float32)
    assert np.abs(A_0(wrong).asarray() - d_s).mean() > \
        0.05 * np.abs(d_s).mean()


def test_masked_operator_is_adjoint_and_masks():
    net = build_limited_angle(TINY)
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 32, 32, generator=rng)
    h = torch.randn(2, 1, 11, 140, generator=rng)
    mask = torch.from_numpy(htc2022_sim.range_mask(11, 2.0, [6, 16]))
    net._set_mask(mask, x)
    Ax = net.A(x)
    assert not Ax[0, :, 4:].any() and Ax[0, :, :4].abs().sum() > 0
    # ODL's adjoint is the one of the weighted inner products.
    from odl_genprior.bridge import space_weight
    lhs = (Ax * h).sum() * space_weight(net.operator.range)
    rhs = (x * net.At(h)).sum() * space_weight(net.operator.domain)
    assert torch.allclose(lhs, rhs, rtol=1e-3)
    net._set_mask(None, x)
    with pytest.raises(ValueError, match=r'mask must be a tensor of shape '
                                         r'\(batch, 11\)'):
        net(torch.zeros(2, 11, 140), torch.ones(2, 10))


def test_reconstructor_turns_the_image_back_by_the_start_angle():
    torch.manual_seed(0)
    net = build_limited_angle(dict(TINY, htc2022=dict(TINY['htc2022'],
                                                      size=64)))
    method = LimitedAngleCT(net)
    f = htc2022_sim.htc_phantom((64, 64), rng=2)
    space = htc2022.htc2022_space(64)

    def problem(start, image):
        A = htc2022.htc2022_ray_transform(
            space, start + np.arange(0, 17.0, 1.0), det_binning=4)
        return ForwardProblem(A, A(image), name='sim')

    start = 90.0  # a quarter turn: no interpolation error
    x_s = method(problem(start, f), progress=False).asarray()
    g = np.rot90(f, k=-1).copy()  # f turned by -90 degrees, (x, y) indexing
    np.testing.assert_allclose(htc2022_sim.rotate_image(g, 90), f, atol=1e-6)
    x_0 = method(problem(0.0, g), progress=False).asarray()
    np.testing.assert_allclose(x_s, htc2022_sim.rotate_image(x_0, start),
                               atol=1e-4)


def test_reconstructor_refuses_other_scanners():
    from odl_genprior import problems
    method = LimitedAngleCT(build_limited_angle(TINY))
    with pytest.raises(ValueError, match='HTC2022 scanner'):
        method(problems.ct(size=16, num_angles=8, seed=0), progress=False)
    with pytest.raises(TypeError, match='build_limited_angle'):
        LimitedAngleCT(torch.nn.Linear(2, 2))


def test_training_learns_and_resumes(tmp_path):
    run = tmp_path / 'run'
    kwargs = dict(n_train=8, n_val=4, epochs=2, batch_size=4, progress=False,
                  checkpoint_every=2)
    train_limited_angle(TINY, run, **kwargs)
    import csv
    rows = list(csv.DictReader(open(run / 'metrics.csv')))
    assert rows and float(rows[-1]['loss']) < float(rows[0]['loss'])
    net = load_limited_angle(run)
    assert net.config['htc2022']['max_range'] == 20
    before = (run / 'weights.pt').read_bytes()
    train_limited_angle(TINY, run, **kwargs)  # finished: not retrained
    assert (run / 'weights.pt').read_bytes() == before
    with pytest.raises(KeyError, match='neither a run folder'):
        load_limited_angle('no-such-network')


def test_protocol_starts_problems_and_score():
    assert protocol.start_angles() == protocol.start_angles(3, 2022)
    assert protocol.start_angles(5, seed=1) != protocol.start_angles(5)
    assert all(s % 0.5 == 0 and 0 <= s < 360
               for s in protocol.start_angles(10))
    p = protocol.simulated_problem(40, seed=3, size=32)
    assert p.data.shape == (41, 140)
    seg = p.info['reference_segmentation']
    assert seg.shape == (32, 32) and 0.3 < seg.mean() < 0.8
    assert protocol.challenge_score({90: [1, 0.5], 30: [0.2]}) == \
        pytest.approx(0.95)


@needs_data
def test_scanner_model_is_what_the_files_give():
    fitted = htc2022_sim.fit_scanner_model(DATA, size=128, angle_stride=16)
    for key in ('attenuation', 'offset', 'sigma_air'):
        assert getattr(fitted, key) == pytest.approx(
            getattr(htc2022_sim.SCANNER, key), rel=0.1), key
    assert fitted.hardening < 0  # beam hardening


@needs_data
def test_simulated_data_match_the_measured_sinogram():
    from skimage.transform import resize
    sino, angles = htc2022.load_sinogram('ta', DATA)
    y, _, _ = htc2022_sim.to_model_frame(sino[:181], angles[:181],
                                         angle_step=2.0)
    _, seg = htc2022.load_reference('ta', DATA)
    phantom = resize(seg.astype(float), (256, 256), order=1,
                     anti_aliasing=True).astype(np.float32)
    A = htc2022.htc2022_ray_transform(htc2022.htc2022_space(256),
                                      np.arange(0, 90.5, 2.0))
    L = A(phantom).asarray()
    s = htc2022_sim.SCANNER
    clean = (s.offset + s.attenuation * L + s.hardening * L ** 2)
    clean = clean.reshape(46, 140, 4).mean(axis=2) / s.attenuation
    assert np.abs(clean - y).mean() < 0.03 * np.abs(y).mean()


@needs_data
def test_level_problems_cut_the_files():
    got = list(protocol.level_problems(30, DATA, starts=[350.0],
                                       phantoms=['tb']))
    assert len(got) == 1
    name, start, p = got[0]
    assert (name, start) == ('tb', 350.0) and p.data.shape == (31, 140)
    np.testing.assert_allclose(p.info['angles_deg'][[0, -1]], [350, 380])


@needs_data
def test_htc2022_command_writes_segmentation_and_mcc(tmp_path, capsys):
    from PIL import Image
    run = tmp_path / 'net'
    train_limited_angle(TINY, run, n_train=4, n_val=2, epochs=1,
                        batch_size=4, progress=False)
    ref = DATA / 'htc2022_ta_full_recon_fbp_seg.mat'
    for method in ('fbp', str(run)):
        code = cli.main(['htc2022', str(DATA / 'htc2022_ta_sparse_example.mat'),
                         '--method', method, '--out', str(tmp_path / 'out'),
                         '--reference', str(ref), '--size', '32', '--quiet'])
        assert code == 0
        out = capsys.readouterr().out
        assert 'MCC against htc2022_ta_full_recon_fbp_seg.mat' in out
    png = np.asarray(Image.open(tmp_path / 'out' /
                                'htc2022_ta_sparse_example.png'))
    assert png.shape == (512, 512) and set(np.unique(png)) <= {0, 255}
    # The FBP of the first 60 degrees scores well above chance.
    code = cli.main(['htc2022', str(DATA / 'htc2022_tb_full.mat'),
                     '--method', 'fbp', '--out', str(tmp_path / 'o2'),
                     '--reference', str(DATA / 'htc2022_tb_full_recon_fbp_seg'
                                               '.mat'), '--quiet'])
    assert code == 0
    mcc = float(capsys.readouterr().out.rsplit(':', 1)[1])
    assert mcc > 0.9


def test_htc2022_command_bad_files(tmp_path, capsys):
    import scipy.io
    text = tmp_path / 'notes.txt'
    text.write_text('x')
    cut = tmp_path / 'cut.mat'
    scipy.io.savemat(str(cut), {'CtDataLimited': {'sinogram': np.ones((3, 560))}})
    wrong = tmp_path / 'wrong.mat'
    scipy.io.savemat(str(wrong), {'CtDataLimited': {
        'sinogram': np.ones((3, 100)),
        'parameters': {'angles': np.arange(3.0), 'distanceSourceOrigin': 1.0,
                       'distanceSourceDetector': 2.0,
                       'numDetectorsPost': 560}}})
    for path, message in ((text, 'not a .mat file'),
                          (tmp_path / 'none.mat', 'not found'),
                          (cut, "no field 'parameters.angles'"),
                          (wrong, r'shape \(3, 100\) does not match')):
        assert cli.main(['htc2022', str(path), '--method', 'fbp']) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert __import__('re').search(message, err), err


@needs_data
def test_benchmark_and_example_scripts_run(tmp_path, capsys):
    import runpy
    root = Path(__file__).resolve().parents[1]
    run = tmp_path / 'net'
    train_limited_angle(TINY, run, n_train=4, n_val=2, epochs=1,
                        batch_size=4, progress=False)
    main = runpy.run_path(str(root / 'benchmarks' / 'htc2022.py'))['main']
    scores = main(['--data', str(DATA), '--levels', '30', '--phantoms', 'td',
                   '--starts', '1', '--tv-iter', '5', '--models', str(run),
                   '--quiet', '--plot', str(tmp_path / 'levels.png'),
                   '--plot-phantom', 'td'])
    out = capsys.readouterr().out
    assert '| level (deg) | FBP | TV | learned FB (net) |' in out
    assert '| score (sum) |' in out and (tmp_path / 'levels.png').is_file()
    assert set(scores) == {'FBP', 'TV', 'learned FB (net)'}
    assert all(-1 <= s[30][0] <= 1 for s in scores.values())
    example = runpy.run_path(str(root / 'examples' /
                                 'htc2022_limited_angle.py'))['main']
    example(['--data', str(DATA), '--phantom', 'td', '--levels', '90'])
    out = capsys.readouterr().out
    assert '| 90 |' in out and 'td from 253.5 deg' in out


# --- the shipped networks ------------------------------------------------------

from odl_genprior.models.limited_angle import (  # noqa: E402
    HTC_PRETRAINED_DIR, list_pretrained_limited_angle)

SHIPPED = list_pretrained_limited_angle()


def test_the_limited_angle_networks_ship():
    from odl_genprior.models.limited_angle import DEFAULT_NETWORK
    assert {'htc-lpd-128', 'htc-lfb-c4-128'} <= set(SHIPPED)
    assert DEFAULT_NETWORK in SHIPPED


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_network_is_small_documented_and_loads(name):
    import json
    from odl_genprior.training import read_metrics
    folder = HTC_PRETRAINED_DIR / name
    assert (folder / 'weights.pt').stat().st_size <= 5 * 2 ** 20
    cfg = json.loads((folder / 'config.json').read_text())
    assert cfg['user']['command'].startswith(
        'odl-genprior train unrolled --protocol htc2022')
    assert cfg['user']['options']['scanner'] == htc2022_sim.scanner_dict()
    rows = read_metrics(folder)
    assert rows[-1]['step'] > 0 and any('val_mcc' in r for r in rows)
    assert not load_limited_angle(name).training


@needs_data
@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_network_beats_tv_at_30_degrees(name):
    # tb (Voronoi cells: thin walls) from the protocol's second start angle.
    p = htc2022.load_htc2022('tb', DATA, angular_range=30, start_angle=253.5,
                             size=128, angle_step=2, det_binning=4)
    truth = p.info['reference_segmentation']
    from odl_genprior.recon import TV
    tv = htc2022.score(TV(alpha=protocol.TV_ALPHA, niter=200)(
        p, progress=False), truth)
    method = LimitedAngleCT.pretrained(name)
    learned = htc2022.score(method(p, progress=False), truth,
                            method.threshold)
    assert learned > tv + 0.1  # 0.63 (C4) and 0.77 (PD) against 0.48


def test_read_segmentation_png_mat_and_wrong_shape(tmp_path):
    import scipy.io
    from PIL import Image
    rng = np.random.default_rng(0)
    seg = rng.random((512, 512)) > 0.5
    Image.fromarray((255 * seg).astype(np.uint8)).save(tmp_path / 's.png')
    np.testing.assert_array_equal(
        htc2022.read_segmentation(tmp_path / 's.png'), seg)
    scipy.io.savemat(str(tmp_path / 's.mat'), {'reconFullFbpSeg': seg * 1.0})
    np.testing.assert_array_equal(
        htc2022.read_segmentation(tmp_path / 's.mat'), seg)
    scipy.io.savemat(str(tmp_path / 'small.mat'), {'s': np.ones((8, 8))})
    with pytest.raises(ValueError, match=r'shape \(8, 8\), not \(512, 512\)'):
        htc2022.read_segmentation(tmp_path / 'small.mat')
