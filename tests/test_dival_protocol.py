"""DIVal's ellipses protocol rebuilt on ODL 1.x (ct_benchmark.DivalEllipses)."""
import numpy as np
import pytest
import torch

from odl_genprior.problems import ellipse_ct as ct_benchmark
from odl_genprior.problems.ellipse_ct import DivalEllipses
from odl_genprior.problems.protocol import make_protocol


@pytest.fixture(scope='module')
def small():
    return DivalEllipses(size=32, num_angles=10, sim_size=80)


def test_geometry_is_dival_at_full_size():
    bench = DivalEllipses()
    A = bench.operator
    assert A.domain.shape == (128, 128)
    assert np.allclose(A.domain.min_pt, [-64, -64])
    assert np.allclose(A.domain.max_pt, [64, 64])
    assert A.range.shape == (30, 183)
    sim = bench._simulation()
    assert sim.domain.shape == (400, 400)
    assert sim.range.shape == (30, 183)
    assert np.allclose(sim.geometry.angles, A.geometry.angles)


def test_phantom_parameters_follow_dival_draws(small):
    rs = np.random.RandomState(0)
    params = [small._ellipses(rs) for _ in range(300)]
    counts = np.array([len(p) for p in params])
    # min(Poisson(40), 70): mean 40, variance 40
    assert abs(counts.mean() - 40) < 1.5 and 30 < counts.var() < 52
    allp = np.concatenate(params)
    v, a1, x, rot = allp[:, 0], allp[:, 1], allp[:, 3], allp[:, 5]
    assert v.min() >= -0.4 and v.max() <= 1.0 and abs(v.mean() - 0.3) < 0.02
    assert abs(a1.mean() - 0.2) < 0.01  # 0.2 Exp(1)
    assert np.abs(x).max() <= 0.9 and abs(x.mean()) < 0.02
    assert rot.min() >= 0 and rot.max() <= 2 * np.pi


def test_images_normalised_and_noise_relative(small):
    y, x = small.pairs(6, 'train')
    assert x.shape == (6, 32, 32) and y.shape == (6, 10, 47)
    for img in x:
        assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    p = small.problem(2, 'validation')
    clean = small._simulation()
    assert p.info['noise_std'] > 0
    # noise std is 2.5% of the mean |observation| (of the 80x80 simulation)
    rel = p.info['noise_std'] / float(np.mean(np.abs(p.data.asarray())))
    assert 0.022 < rel < 0.028
    assert clean.domain.shape == (80, 80)


def test_splits_are_fixed_streams(small):
    y_a, x_a = small.pairs(4, 'test')
    y_b, x_b = small.pairs(2, 'test', start=2)
    assert torch.equal(x_a[2:], x_b) and torch.equal(y_a[2:], y_b)
    p = small.problem(3, 'test')
    assert np.array_equal(p.ground_truth.asarray(), x_a[3].numpy())
    _, x_train = small.pairs(4, 'train')
    assert not torch.equal(x_train, x_a)


def test_make_protocol_and_errors():
    assert isinstance(make_protocol({'protocol': 'dival', 'size': 32}),
                      DivalEllipses)
    assert isinstance(make_protocol(None), ct_benchmark.EllipseCT)
    with pytest.raises(ValueError, match='protocol'):
        make_protocol({'protocol': 'lodopab'})
    with pytest.raises(ValueError, match='geometry'):
        make_protocol({'protocol': 'dival', 'geometry': 'fan'})
    with pytest.raises(ValueError, match='size'):
        DivalEllipses(size=0)
    with pytest.raises(ValueError, match='split'):
        DivalEllipses(size=16, sim_size=32).problem(0, 'val')


def test_cached_pairs_round_trip(small, tmp_path, monkeypatch):
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    bench = DivalEllipses(size=8, num_angles=4, sim_size=16)
    y1, x1 = ct_benchmark.cached_pairs(bench, 256, 'validation')
    files = list((tmp_path / 'datasets').glob('*.npz'))
    assert len(files) == 1
    y2, x2 = ct_benchmark.cached_pairs(bench, 256, 'validation')
    assert torch.equal(y1, y2) and torch.equal(x1, x2)
    files[0].write_bytes(b'cut')
    y3, _ = ct_benchmark.cached_pairs(bench, 256, 'validation')
    assert torch.equal(y1, y3)


def test_cached_arrays_remakes_a_file_of_another_length(tmp_path,
                                                       monkeypatch):
    from odl_genprior.problems.cache import MIN_CACHED, cached_arrays
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(tmp_path))
    rng = np.random.default_rng(0)
    n = MIN_CACHED
    calls = []

    def make(m):
        calls.append(m)
        return rng.random((m, 3)), rng.random(m)

    a, b = cached_arrays(['t', 1], lambda: make(n), ('a', 'b'), length=n)
    a2, _ = cached_arrays(['t', 1], lambda: make(n), ('a', 'b'), length=n)
    assert np.array_equal(a, a2) and calls == [n]  # read back
    # the same key holding another number of samples: made again, kept
    a3, b3 = cached_arrays(['t', 1], lambda: make(n + 1), ('a', 'b'),
                           length=n + 1)
    assert len(a3) == len(b3) == n + 1 and calls == [n, n + 1]
    a4, _ = cached_arrays(['t', 1], lambda: make(n + 1), ('a', 'b'),
                          length=n + 1)
    assert np.array_equal(a3, a4) and calls == [n, n + 1]
    # a small set is made every time and never written
    before = sorted((tmp_path / 'datasets').iterdir())
    cached_arrays(['small'], lambda: make(4), ('a', 'b'), length=4)
    cached_arrays(['small'], lambda: make(4), ('a', 'b'), length=4)
    assert calls[-2:] == [4, 4]
    assert sorted((tmp_path / 'datasets').iterdir()) == before


def test_train_unrolled_on_dival_protocol(tmp_path):
    from odl_genprior.models.unrolled import load_unrolled, train_unrolled
    cfg = {'scheme': 'lpd', 'hidden_channels': 4, 'n_iter': 2,
           'benchmark': {'protocol': 'dival', 'size': 16, 'num_angles': 6,
                         'sim_size': 32}}
    train_unrolled(cfg, tmp_path, n_train=4, n_val=2, epochs=1,
                   batch_size=2, progress=False)
    net = load_unrolled(tmp_path)
    assert net.config['benchmark']['protocol'] == 'dival'
    assert net.operator.domain.shape == (16, 16)


def test_cli_train_unrolled_protocol_dival(tmp_path, capsys):
    import json
    from odl_genprior.cli import main
    out = tmp_path / 'run'
    rc = main(['train', 'unrolled', '--protocol', 'dival', '--scheme', 'lgd',
               '--size', '16', '--angles', '5', '--width', '4',
               '--iterations', '2', '--n-train', '2', '--n-val', '1',
               '--epochs', '1', '--batch-size', '2', '--quiet',
               '--out', str(out)])
    assert rc == 0
    cfg = json.loads((out / 'config.json').read_text())
    text = json.dumps(cfg)
    assert '"protocol": "dival"' in text and '"noise_level": 0.025' in text
    rc = main(['train', 'unrolled', '--protocol', 'dival', '--geometry',
               'fan', '--out', str(tmp_path / 'x')])
    assert rc == 2
    assert '--protocol dival' in capsys.readouterr().err
