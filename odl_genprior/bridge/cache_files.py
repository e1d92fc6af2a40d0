"""Verified cache files: every file carries the key that made it and the
SHA-256 of its arrays, and is written whole (`odl_genprior.files`)."""
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from odl_genprior.files import atomic_write


def cache_dir():
    """Folder of the package's on-disk caches (assembled operator matrices,
    simulated data sets).

    ``$ODL_GENPRIOR_CACHE`` if set, else ``~/.cache/odl_genprior``.

    Examples
    --------
    >>> cache_dir().name in ('odl_genprior',) or 'ODL_GENPRIOR_CACHE' in os.environ
    True
    """
    env = os.environ.get('ODL_GENPRIOR_CACHE')
    return Path(env) if env else Path.home() / '.cache' / 'odl_genprior'


# --- verified cache files ---------------------------------------------------
# Every cache file carries the key that made it and the SHA-256 of its
# arrays; a file that cannot be read, or was made for another key, or whose
# arrays do not match their checksum, is reported, removed and made again.
# Files are written whole or not at all (temporary file, fsync, os.replace).

def _arrays_digest(key, arrays):
    """SHA-256 (hex) of ``key`` and the ``(name, array)`` pairs ``arrays``:
    names, dtypes, shapes and bytes.

    The arrays' own memory is hashed (no copy of a contiguous array): a
    2.8 GB data set costs about 1.6 s (measured), once per load.

    Examples
    --------
    >>> a = np.arange(3.0)
    >>> _arrays_digest('k', [('a', a)]) == _arrays_digest('k', [('a', a)])
    True
    >>> _arrays_digest('k', [('a', a)]) == _arrays_digest('j', [('a', a)])
    False
    """
    h = hashlib.sha256(f'{len(key)}:{key}|'.encode())
    for name, a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f'{name}|{a.dtype.str}|{a.shape}|'.encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _discard_cache_file(path, why, seen=None):
    """Warn that the cache file ``path`` is not used (``why``) and remove it.

    ``seen``: its ``os.stat`` when it was read; a file another process has
    since put in its place is left alone.
    """
    warnings.warn(f'cache file {path} is not used: {why}; it is removed '
                  'and made again', stacklevel=3)
    try:
        now = os.stat(path)
        if seen is None or (now.st_ino, now.st_size, now.st_mtime_ns) == (
                seen.st_ino, seen.st_size, seen.st_mtime_ns):
            os.unlink(path)
    except OSError:
        pass  # gone, or a read-only cache: it is overwritten when made


def _read_cache_file(path, key, names, check=None):
    """The arrays ``names`` of the ``.npz`` cache file ``path``, verified.

    Returns None when there is no file. A file that cannot be read, carries
    no key and checksum (an older format), carries another key than
    ``key``, fails its checksum, or fails ``check(arrays)`` (a reason, or
    None when fine) is reported (a warning naming it and why), removed and
    None returned: it is never used.
    """
    path = Path(path)
    try:
        seen = os.stat(path)
    except OSError:
        return None
    why = None
    try:
        with np.load(path, allow_pickle=False) as f:
            if '__key__' not in f.files or '__sha256__' not in f.files:
                why = 'it carries no key and checksum (an older format)'
            else:
                stored = str(f['__key__'][()])
                if stored != key:  # a foreign file: the arrays are not read
                    why = (f'it was made for another key '
                           f'({stored[:200]!r}, not {key[:200]!r})')
                else:
                    digest = str(f['__sha256__'][()])
                    arrays = tuple(f[name] for name in names)
    except MemoryError:
        raise  # a big file on a full machine is no bad file
    except Exception as e:  # noqa: BLE001  (any failure: not used)
        why = f'it cannot be read ({type(e).__name__}: {e})'
    if why is None and _arrays_digest(key, zip(names, arrays)) != digest:
        why = 'its arrays do not match their SHA-256 checksum'
    if why is None and check is not None:
        why = check(arrays)
    if why is not None:
        _discard_cache_file(path, why, seen)
        return None
    return arrays


def _write_cache_file(path, key, arrays):
    """Keep the named ``arrays`` (a dict) in the ``.npz`` file ``path`` with
    ``key`` and their checksum. Returns whether it was written: a cache
    that cannot be written (read-only, full disk) is reported, not raised.
    """
    for name in arrays:
        if name.startswith('__'):
            raise ValueError(f'array name {name!r}: names starting with '
                             '"__" are the cache file\'s own')
    digest = _arrays_digest(key, arrays.items())
    try:
        atomic_write(path, lambda f: np.savez(
            f, __key__=np.array(key), __sha256__=np.array(digest),
            **arrays))
    except OSError as e:
        warnings.warn(f'cache file {path} could not be written ({e}); the '
                      'result is not kept', stacklevel=3)
        return False
    return True
