"""The on-disk caches (issue 25): every file carries its key and the SHA-256
of its arrays; a cut, foreign, tampered or old file is reported, removed and
made again, never used; files are written whole or not at all, also by
processes writing one key at once, and no temporary file is ever left."""
import errno
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch

from odl_genprior import bridge, problems
from odl_genprior.files import atomic_write
from odl_genprior.problems.cache import MIN_CACHED, cached_arrays

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh cache folder: the user's own cache is never touched."""
    folder = tmp_path / 'cache'
    monkeypatch.setenv('ODL_GENPRIOR_CACHE', str(folder))
    bridge._MATRICES.by_id.clear()  # every test reads the disk
    return folder


def _forget():
    """Forget the matrices in memory, as a new process would."""
    bridge._MATRICES.by_id.clear()


def _rays():
    """A parallel and a fan beam ray transform, 32x32, 10 angles."""
    space = problems.image_space(32)
    return {'parallel': problems.ray_transform(space, num_angles=10),
            'fan': problems.ray_transform(space, num_angles=10,
                                          geometry='fan')}


def _reference(name):
    """The matrix of ``_rays()[name]``, assembled without any cache."""
    m = bridge.operator_matrix(_rays()[name], cache=False)
    _forget()
    return m


def _same(a, b):
    return a.shape == b.shape and (a != b).nnz == 0


def _tmp_files(folder):
    return sorted(p.name for p in folder.glob('tmp*')) if folder.exists() \
        else []


def _make(n=MIN_CACHED, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4, 5)).astype('float32'),
            rng.integers(0, 9, n))


# --- operator matrices -----------------------------------------------------

def test_matrix_file_carries_its_key_and_checksum(cache, monkeypatch):
    A = _rays()['parallel']
    m = bridge.operator_matrix(A)
    (path,) = (cache / 'operators').glob('*.npz')
    with np.load(path) as f:
        key = str(f['__key__'][()])
        assert key == bridge._operator_key(A)
        assert json.loads(key)['geometry'] == 'Parallel2dGeometry'
        parts = [(n, f[n]) for n in ('data', 'indices', 'indptr', 'shape')]
        assert str(f['__sha256__'][()]) == bridge._arrays_digest(key, parts)
    _forget()
    calls = []
    real = bridge.per_sample.apply_per_sample
    monkeypatch.setattr(bridge.per_sample, 'apply_per_sample',
                        lambda *a: calls.append(1) or real(*a))
    again = bridge.operator_matrix(_rays()['parallel'])  # from disk
    assert not calls and _same(again, m)


def test_zero_byte_matrix_file_is_rebuilt_with_a_warning(cache):
    ref = _reference('parallel')
    bridge.operator_matrix(_rays()['parallel'])
    (path,) = (cache / 'operators').glob('*.npz')
    path.write_bytes(b'')  # what a crash can leave
    _forget()
    with pytest.warns(UserWarning, match=f'{path.name}.*cannot be read'):
        m = bridge.operator_matrix(_rays()['parallel'])
    assert _same(m, ref)
    _forget()
    assert _same(bridge._MATRICES.get(_rays()['parallel'], True), ref)


def test_swapped_matrix_files_are_foreign_and_rebuilt(cache):
    refs = {name: _reference(name) for name in ('parallel', 'fan')}
    assert not _same(refs['parallel'], refs['fan'])
    ops = _rays()
    for op in ops.values():
        bridge.operator_matrix(op)
    paths = {name: bridge._matrix_path(bridge._operator_key(op))
             for name, op in ops.items()}
    assert paths['parallel'] != paths['fan']
    os.replace(paths['parallel'], cache / 'swap')
    os.replace(paths['fan'], paths['parallel'])
    os.replace(cache / 'swap', paths['fan'])
    _forget()
    for name, op in _rays().items():
        with pytest.warns(UserWarning, match=f'{paths[name].name}.*another '
                          'key'):
            m = bridge.operator_matrix(op)
        assert _same(m, refs[name])
    _forget()
    for name, op in _rays().items():  # both files are right now
        assert _same(bridge._MATRICES.get(op, True), refs[name])


def test_tampered_matrix_file_fails_its_checksum(cache):
    ref = _reference('parallel')
    bridge.operator_matrix(_rays()['parallel'])
    (path,) = (cache / 'operators').glob('*.npz')
    with np.load(path) as f:
        arrays = dict(f)
    arrays['data'] = arrays['data'] * np.float32(1.001)  # key and sum kept
    np.savez(path, **arrays)
    _forget()
    with pytest.warns(UserWarning, match='SHA-256'):
        m = bridge.operator_matrix(_rays()['parallel'])
    assert _same(m, ref)


def test_old_format_matrix_file_is_rebuilt(cache):
    ref = _reference('parallel')
    path = bridge._matrix_path(bridge._operator_key(_rays()['parallel']))
    path.parent.mkdir(parents=True)
    scipy.sparse.save_npz(path, ref * 2)  # no key, no checksum
    with pytest.warns(UserWarning, match='no key and checksum'):
        m = bridge.operator_matrix(_rays()['parallel'])
    assert _same(m, ref)
    with np.load(path) as f:
        assert '__key__' in f.files


def test_failed_replace_leaves_no_temp_file(cache, monkeypatch):
    ref = _reference('parallel')

    def fail(src, dst):
        raise OSError(errno.EXDEV, 'replace refused', str(dst))

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.warns(UserWarning, match='could not be written'):
        m = bridge.operator_matrix(_rays()['parallel'])
    with pytest.warns(UserWarning, match='could not be written'):
        arrays = cached_arrays(['replace'], _make, ('x', 'y'),
                               length=MIN_CACHED)
    monkeypatch.undo()
    assert _same(m, ref) and np.array_equal(arrays[0], _make()[0])
    for folder in (cache / 'operators', cache / 'datasets'):
        assert folder.is_dir() and list(folder.iterdir()) == []


def test_full_disk_leaves_no_temp_file(cache, monkeypatch):
    real = np.savez

    def full(f, **arrays):
        f.write(b'PK\x03\x04 half an archive')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(np, 'savez', full)
    with pytest.warns(UserWarning, match='No space left'):
        bridge.operator_matrix(_rays()['parallel'])
    with pytest.warns(UserWarning, match='No space left'):
        cached_arrays(['full'], _make, ('x', 'y'))
    monkeypatch.setattr(np, 'savez', real)
    for folder in (cache / 'operators', cache / 'datasets'):
        assert list(folder.iterdir()) == []
    # any other failure while writing propagates, and still cleans up
    def broken(f):
        f.write(b'half')
        raise RuntimeError('broken')

    with pytest.raises(RuntimeError, match='broken'):
        atomic_write(cache / 'datasets' / 'x.npz', broken)
    assert list((cache / 'datasets').iterdir()) == []


# --- simulated data sets ---------------------------------------------------

def test_dataset_file_carries_its_key_and_checksum(cache):
    calls = []

    def make():
        calls.append(1)
        return _make()

    key = {'sim': 'ellipses', 'split': 'train', 'n': MIN_CACHED}
    x, y = cached_arrays(key, make, ('x', 'y'), length=MIN_CACHED)
    (path,) = (cache / 'datasets').glob('*.npz')
    with np.load(path) as f:
        assert str(f['__key__'][()]) == json.dumps(key, sort_keys=True)
        assert sorted(f.files) == ['__key__', '__sha256__', 'x', 'y']
    x2, y2 = cached_arrays(key, make, ('x', 'y'), length=MIN_CACHED)
    assert calls == [1] and np.array_equal(x, x2) and np.array_equal(y, y2)
    with pytest.raises(ValueError, match='__key__'):
        cached_arrays(['bad'], lambda: (np.ones(3),), ('__key__',))


def test_zero_byte_dataset_file_is_rebuilt_with_a_warning(cache):
    want = _make(seed=3)
    cached_arrays(['zero'], lambda: want, ('x', 'y'))
    (path,) = (cache / 'datasets').glob('*.npz')
    path.write_bytes(b'')
    with pytest.warns(UserWarning, match=f'{path.name}.*cannot be read'):
        x, y = cached_arrays(['zero'], lambda: want, ('x', 'y'))
    assert np.array_equal(x, want[0]) and np.array_equal(y, want[1])
    assert path.stat().st_size > 0


def test_swapped_dataset_files_are_foreign_and_rebuilt(cache):
    a, b = _make(seed=1), _make(seed=2)
    cached_arrays(['set', 'a'], lambda: a, ('x', 'y'))
    pa = next((cache / 'datasets').glob('*.npz'))
    cached_arrays(['set', 'b'], lambda: b, ('x', 'y'))
    (pb,) = set((cache / 'datasets').glob('*.npz')) - {pa}
    os.replace(pa, cache / 'swap')
    os.replace(pb, pa)
    os.replace(cache / 'swap', pb)
    for key, want, path in ((['set', 'a'], a, pa), (['set', 'b'], b, pb)):
        with pytest.warns(UserWarning, match=f'{path.name}.*another key'):
            x, y = cached_arrays(key, lambda: want, ('x', 'y'))
        assert np.array_equal(x, want[0]) and np.array_equal(y, want[1])
    x, _ = cached_arrays(['set', 'a'], lambda: 1 / 0, ('x', 'y'))
    assert np.array_equal(x, a[0])


def test_tampered_and_old_dataset_files_are_rebuilt(cache):
    want = _make(seed=4)
    cached_arrays(['t'], lambda: want, ('x', 'y'))
    (path,) = (cache / 'datasets').glob('*.npz')
    with np.load(path) as f:
        arrays = dict(f)
    arrays['x'][7, 1, 2] += 1  # one number changed, key and sum kept
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match='SHA-256'):
        x, _ = cached_arrays(['t'], lambda: want, ('x', 'y'))
    assert np.array_equal(x, want[0])
    np.savez(path, x=want[0] + 1, y=want[1])  # the format before issue 25
    with pytest.warns(UserWarning, match='no key and checksum'):
        x, _ = cached_arrays(['t'], lambda: want, ('x', 'y'))
    assert np.array_equal(x, want[0])
    # a set of other length under the same key: made again
    with pytest.warns(UserWarning, match='samples, not'):
        x, _ = cached_arrays(['t'], lambda: _make(MIN_CACHED + 1),
                             ('x', 'y'), length=MIN_CACHED + 1)
    assert len(x) == MIN_CACHED + 1


# --- four processes, one key ------------------------------------------------

_WORKER = textwrap.dedent('''
    import hashlib, os, sys, time, warnings
    import numpy as np
    import odl
    from odl.applications import tomo
    from odl_genprior import bridge
    from odl_genprior.problems.cache import cached_arrays

    i, n, barrier = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    def make():
        rng = np.random.default_rng(7)
        return rng.standard_normal((300, 32, 32)).astype('float32'), \\
            rng.integers(0, 5, 300)

    space = odl.uniform_discr([-1, -1], [1, 1], (32, 32), dtype='float32')
    ray = tomo.RayTransform(space, tomo.parallel_beam_geometry(space, 10))
    open(os.path.join(barrier, f'ready-{i}'), 'w').close()
    end = time.time() + 300
    while len(os.listdir(barrier)) < n and time.time() < end:
        time.sleep(0.01)
    out = []
    for _ in range(3):  # build, then read what the others wrote
        x, y = cached_arrays(['race', 1], make, ('x', 'y'), length=300)
        m = bridge.operator_matrix(ray)
        bridge._MATRICES.by_id.clear()
        out.append(hashlib.sha256(x.tobytes() + y.tobytes() + m.data.tobytes()
                                  + m.indices.tobytes()).hexdigest())
        warnings.simplefilter('error')  # from now on every file must verify
    print(' '.join(out))
''')


def test_four_processes_building_one_key_at_once(cache, tmp_path):
    barrier = tmp_path / 'barrier'
    barrier.mkdir()
    env = dict(os.environ, ODL_GENPRIOR_CACHE=str(cache), OMP_NUM_THREADS='1')
    procs = [subprocess.Popen(
        [sys.executable, '-c', _WORKER, str(i), '4', str(barrier)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    digests = {d for out, _ in results for d in out.split()}
    assert len(digests) == 1, results  # every process, every round: one answer
    for folder in ('datasets', 'operators'):
        assert _tmp_files(cache / folder) == []
        assert len(list((cache / folder).iterdir())) == 1
    # and the files left verify in this process too
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        x, _ = cached_arrays(['race', 1], lambda: 1 / 0, ('x', 'y'),
                             length=300)
    assert x.shape == (300, 32, 32)


# --- the DIP training pairs (pairs.pt) ---------------------------------------

def test_dip_pairs_cache_verifies_what_it_reads(tmp_path, monkeypatch):
    from odl_genprior.recon import dip
    path = tmp_path / 'run' / 'pairs.pt'
    meta = {'n': 4, 'seed': 0, 'shape': [8, 8]}
    g = torch.Generator().manual_seed(0)
    pairs = (torch.randn(4, 1, 8, 8, generator=g),
             torch.rand(4, 1, 8, 8, generator=g))
    dip._write_pairs(path, meta, pairs)
    fbps, images = dip._read_pairs(path, meta)
    assert torch.equal(fbps, pairs[0]) and torch.equal(images, pairs[1])
    assert dip._read_pairs(tmp_path / 'none.pt', meta) is None  # no warning
    with pytest.warns(UserWarning, match='other settings'):
        assert dip._read_pairs(path, dict(meta, n=5)) is None
    assert not path.exists()
    dip._write_pairs(path, meta, pairs)
    stored = torch.load(path, weights_only=True)
    stored['images'][0, 0, 3, 3] += 1
    torch.save(stored, path)
    with pytest.warns(UserWarning, match='SHA-256'):
        assert dip._read_pairs(path, meta) is None
    torch.save({'meta': meta, 'fbps': pairs[0], 'images': pairs[1]}, path)
    with pytest.warns(UserWarning, match='no key and checksum'):
        assert dip._read_pairs(path, meta) is None
    path.write_bytes(b'')
    with pytest.warns(UserWarning,
                      match=f'{re.escape(str(path))}.*cannot be read'):
        assert dip._read_pairs(path, meta) is None
    monkeypatch.setattr(os, 'replace', lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        dip._write_pairs(path, meta, pairs)
    assert list(path.parent.iterdir()) == []


def test_a_set_that_fails_its_own_checks_is_not_kept(cache):
    ragged = (np.zeros(MIN_CACHED), np.ones(MIN_CACHED + 1))
    for _ in range(2):  # no file, so no warning about one either
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            a, b = cached_arrays(['ragged'], lambda: ragged, ('a', 'b'))
        assert len(a) == MIN_CACHED and len(b) == MIN_CACHED + 1
    assert not (cache / 'datasets').exists()
