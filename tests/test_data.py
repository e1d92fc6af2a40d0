"""Data: MNIST IDX reading (real files when present), 1D signals."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from odl_genprior import data

SHARED_MNIST = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mnist'


def write_idx(path, array, magic):
    header = magic.to_bytes(4, 'big') + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if path.suffix == '.gz':
        with gzip.open(path, 'wb') as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.fixture
def fake_mnist(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labs = rng.integers(0, 10, 7)
    write_idx(tmp_path / 't10k-images-idx3-ubyte.gz', imgs, 2051)
    write_idx(tmp_path / 't10k-labels-idx1-ubyte', labs, 2049)
    return tmp_path, imgs, labs


def test_reads_idx_gz_and_raw(fake_mnist):
    d, imgs, labs = fake_mnist
    x, y = data.load_mnist('test', directory=d)
    assert x.dtype == np.float32 and x.shape == (7, 28, 28)
    np.testing.assert_array_equal(np.round(x * 255).astype(int), imgs)
    np.testing.assert_array_equal(y, labs)
    x3, _ = data.load_mnist('test', directory=d, limit=3)
    assert x3.shape == (3, 28, 28)


def test_environment_variable(fake_mnist, monkeypatch):
    d, imgs, _ = fake_mnist
    monkeypatch.setenv(data.MNIST_ENV, str(d))
    x, _ = data.load_mnist('test')
    assert x.shape[0] == 7
    monkeypatch.delenv(data.MNIST_ENV)
    with pytest.raises(FileNotFoundError, match=data.MNIST_ENV):
        data.load_mnist('test')


def test_malformed_files(fake_mnist):
    d, imgs, labs = fake_mnist
    write_idx(d / 't10k-labels-idx1-ubyte', labs[:5], 2049)
    with pytest.raises(ValueError, match='7 images but 5 labels'):
        data.load_mnist('test', directory=d)
    write_idx(d / 't10k-labels-idx1-ubyte', labs, 1234)
    with pytest.raises(ValueError, match='magic number 1234'):
        data.load_mnist('test', directory=d)
    write_idx(d / 't10k-labels-idx1-ubyte', labs, 2049)
    (d / 't10k-labels-idx1-ubyte').write_bytes(
        (d / 't10k-labels-idx1-ubyte').read_bytes()[:-2])
    with pytest.raises(ValueError, match='bytes'):
        data.load_mnist('test', directory=d)
    with pytest.raises(FileNotFoundError, match='train-images'):
        data.load_mnist('train', directory=d)
    with pytest.raises(ValueError, match='split'):
        data.load_mnist('validation', directory=d)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason='shared MNIST absent')
def test_real_mnist_test_set():
    x, y = data.load_mnist('test', directory=SHARED_MNIST)
    assert x.shape == (10000, 28, 28)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                       1028, 974, 1009]
    assert 0.0 == x.min() and x.max() == 1.0


def test_trig_signals_statistics():
    s = data.trig_signals(200, num_samples=256, seed=1)
    assert s.shape == (200, 256) and s.dtype == np.float32
    assert np.allclose(s.min(axis=1), 0) and np.allclose(s.max(axis=1), 1)
    # Only modes 1 and 2: the spectrum beyond index 2 is (numerically) zero.
    spec = np.abs(np.fft.rfft(s - s.mean(axis=1, keepdims=True), axis=1))
    assert spec[:, 3:].max() < 1e-3 * spec[:, 1:3].max()
    # Mode 1 dominates on average ((r+1)^-3 decay: 1/8 against 1/27).
    assert spec[:, 1].mean() > 2 * spec[:, 2].mean()
    assert np.array_equal(s, data.trig_signals(200, num_samples=256, seed=1))


def test_load_mnist_limit_is_checked():
    directory = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mnist'
    if not directory.is_dir():
        pytest.skip('MNIST files not found')
    for bad in (-1, 0, 70000, 2.5):
        with pytest.raises(ValueError, match=r'limit must be an integer in '
                                             r'\[1, 10000\]'):
            data.load_mnist('test', directory, limit=bad)
    assert data.load_mnist('test', directory, limit=3)[0].shape == (3, 28, 28)


def test_cut_or_corrupt_gzip_is_named(fake_mnist):
    d, _, _ = fake_mnist
    path = d / 't10k-images-idx3-ubyte.gz'
    whole = path.read_bytes()
    for damaged in (whole[:len(whole) // 2], b'not gzip at all'):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=r't10k-images-idx3-ubyte.gz is '
                                             r'not a readable gzip file'):
            data.load_mnist('test', directory=d)
