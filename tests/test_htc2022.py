"""HTC2022 loader, geometry and score (data tests skip without the files)."""
import os
from pathlib import Path

import numpy as np
import pytest

from odl_genprior.problems import htc2022
from odl_genprior.recon import FBP

_DEFAULT = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'
DATA = Path(os.environ.get(htc2022.HTC2022_ENV) or _DEFAULT)
needs_data = pytest.mark.skipif(
    not (DATA / 'htc2022_ta_full.mat').is_file(),
    reason=f'HTC2022 data not found in {DATA} (set {htc2022.HTC2022_ENV})')


def _block_mean(arr, size):
    n = arr.shape[0] // size
    return arr.reshape(size, n, size, n).mean(axis=(1, 3))


def test_mcc_hand_computed_on_random_masks():
    rng = np.random.default_rng(1)
    seg = rng.random((20, 30)) > 0.5
    truth = rng.random((20, 30)) > 0.4
    tp = np.sum(seg & truth)
    tn = np.sum(~seg & ~truth)
    fp = np.sum(seg & ~truth)
    fn = np.sum(~seg & truth)
    expected = ((tp * tn - fp * fn)
                / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))))
    assert htc2022.mcc(seg, truth) == pytest.approx(expected, rel=1e-12)
    assert htc2022.mcc(truth, truth) == 1.0
    assert htc2022.mcc(~truth, truth) == -1.0
    # A constant mask has no correlation.
    assert htc2022.mcc(np.ones_like(truth), truth) == 0.0


def test_mcc_shape_error():
    with pytest.raises(ValueError, match=r'\(3, 3\).*\(3, 4\)'):
        htc2022.mcc(np.ones((3, 3)), np.ones((3, 4)))


def test_score_resamples_a_coarse_reconstruction():
    truth = np.zeros((64, 64), dtype=bool)
    truth[16:48, 16:48] = True
    coarse = _block_mean(truth.astype(float), 16)
    assert htc2022.score(coarse, truth) > 0.95


def test_missing_folder_and_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv(htc2022.HTC2022_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=htc2022.HTC2022_ENV):
        htc2022.load_htc2022('ta')
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match='nowhere'):
        htc2022.load_htc2022('ta', directory=missing)
    monkeypatch.setenv(htc2022.HTC2022_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=htc2022.HTC2022_ENV):
        htc2022.load_htc2022('ta')


def test_unknown_phantom(tmp_path):
    with pytest.raises(ValueError, match="'te'.*'ta'"):
        htc2022.load_htc2022('te', directory=tmp_path)


def test_ray_transform_shapes_and_errors():
    """Adjoint: tests/test_contracts.py (htc2022_ray_transform)."""
    space = htc2022.htc2022_space(32)
    A = htc2022.htc2022_ray_transform(space, np.arange(0, 90.5, 0.5))
    assert A.range.shape == (181, htc2022.NUM_DETECTORS)
    with pytest.raises(ValueError, match='equally spaced'):
        htc2022.htc2022_ray_transform(space, [0.0, 1.0, 3.0])
    with pytest.raises(ValueError, match='float32'):
        htc2022.htc2022_ray_transform(htc2022.htc2022_space(8, dtype='float64'),
                                      [0.0, 1.0])


@needs_data
def test_loader_shapes_and_limited_angles():
    p = htc2022.load_htc2022('tb', DATA, size=64)
    assert p.ground_truth is None and p.space.shape == (64, 64)
    assert p.data.shape == (720, 560)  # the 721st row repeats 0 degrees
    assert p.info['reference_fbp'].shape == (512, 512)
    assert p.info['reference_segmentation'].dtype == bool
    sino, angles = htc2022.load_sinogram('tb', DATA)
    np.testing.assert_array_equal(p.data.asarray(),
                                  sino[:720].astype('float32'))
    for rng, num in ((90, 181), (60, 121), (360, 720)):
        q = htc2022.load_htc2022('tb', DATA, angular_range=rng, size=64)
        assert q.data.shape == (num, 560)
        assert q.info['angles_deg'][-1] - q.info['angles_deg'][0] == (
            rng if rng < 360 else 359.5)
    # Wrap-around: 330..390 degrees = file rows 660..719, 0..60.
    q = htc2022.load_htc2022('tb', DATA, angular_range=60, start_angle=330,
                             size=64)
    np.testing.assert_array_equal(q.info['rows'][[0, 59, 60, 120]],
                                  [660, 719, 0, 60])
    np.testing.assert_array_equal(q.data.asarray(),
                                  sino[q.info['rows']].astype('float32'))
    with pytest.raises(ValueError, match='multiples of 0.5'):
        htc2022.load_htc2022('tb', DATA, angular_range=60.2, size=64)


def test_disc_phantom_is_seeded_and_inside_the_grid():
    space = htc2022.htc2022_space(64)
    x = htc2022.disc_phantom(space, rng=5)
    np.testing.assert_array_equal(x, htc2022.disc_phantom(space, rng=5))
    assert x.shape == (64, 64) and set(np.unique(x)) <= {0.0, np.float32(0.04)}
    # The disc (radius <= 36 mm) stays inside the 75.9 mm square.
    assert not x[0].any() and not x[-1].any()
    assert not np.array_equal(x, htc2022.disc_phantom(space, rng=6))


@needs_data
def test_binning_and_angle_step():
    sino, _ = htc2022.load_sinogram('tc', DATA)
    p = htc2022.load_htc2022('tc', DATA, angular_range=90, size=32,
                             angle_step=2, det_binning=4)
    assert p.data.shape == (91, 140)
    np.testing.assert_allclose(p.data.asarray()[3, 5],
                               sino[6, 20:24].mean(), rtol=1e-6)
    assert p.info['angles_deg'][1] == 1.0
    with pytest.raises(ValueError, match='divisor of 560'):
        htc2022.load_htc2022('tc', DATA, size=32, det_binning=3)


@needs_data
def test_sparse_example_is_the_first_60_degrees():
    p = htc2022.load_htc2022('ta_sparse_example', DATA, size=32)
    q = htc2022.load_htc2022('ta', DATA, angular_range=60, size=32)
    np.testing.assert_array_equal(p.data.asarray(), q.data.asarray())


@needs_data
def test_geometry_reproduces_organisers_fbp():
    p = htc2022.load_htc2022('ta', DATA, size=128)
    x = FBP(filter_type='Ram-Lak', frequency_scaling=1.0)(p, progress=False)
    x = x.asarray().astype(np.float64)
    ref = _block_mean(p.info['reference_fbp'], 128)
    # Measured 0.99993; a flipped or rotated geometry gives <= 0.991.
    assert np.corrcoef(x.ravel(), ref.ravel())[0, 1] > 0.999
    assert htc2022.score(x, p.info['reference_segmentation']) > 0.98


@needs_data
def test_example_script_runs(capsys):
    import runpy
    script = Path(__file__).resolve().parents[1] / 'examples' / 'htc2022.py'
    main = runpy.run_path(str(script))['main']
    main(['--data', str(DATA), '--phantoms', 'ta', '--ranges', '60',
          '--size', '64', '--tv-iter', '3'])
    out = capsys.readouterr().out
    assert '| ta | 60 | 61 | FBP |' in out and '| ta | 60 | 61 | TV |' in out


def test_bad_mat_files_are_named(tmp_path):
    import scipy.io

    path = tmp_path / 'htc2022_ta_full.mat'
    path.write_text('this is text, not a MATLAB file')
    with pytest.raises(ValueError, match='htc2022_ta_full.mat is not a '
                                         'readable MATLAB file'):
        htc2022.load_sinogram('ta', directory=tmp_path)
    scipy.io.savemat(str(path), {'other': np.ones(3)})
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match='not a readable MATLAB file'):
        htc2022.load_sinogram('ta', directory=tmp_path)
    path.write_bytes(whole)
    with pytest.raises(ValueError, match=r"no CT data struct .* it has "
                                         r"\['other'\]"):
        htc2022.load_sinogram('ta', directory=tmp_path)
    scipy.io.savemat(str(path), {'CtDataFull': {'parameters': {'angles':
                                                               np.ones(3)}}})
    with pytest.raises(ValueError, match="no field 'sinogram'"):
        htc2022.load_sinogram('ta', directory=tmp_path)
