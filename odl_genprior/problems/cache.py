"""Simulated training sets kept on disk, keyed by what made them."""
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from odl_genprior.bridge import cache_dir

__all__ = ('cached_arrays', 'MIN_CACHED')

#: Sets of fewer samples are made every time (cheaper than the disk).
MIN_CACHED = 256


def cached_arrays(key, make, names, length=None):
    """``make()`` (a tuple of arrays named ``names``), cached on disk.

    Kept under ``cache_dir() / 'datasets'`` in a file named by the SHA-256
    of ``key`` (any JSON value: the simulator's configuration, split, size
    and a format tag); a cut, foreign or wrong-sized file (arrays of
    unequal lengths, or not ``length`` samples) is made again. Sets of
    fewer than `MIN_CACHED` samples (``length``) are not kept. A read-only
    home only means the arrays are not kept.

    Examples
    --------
    >>> a, b = cached_arrays(['doc', 1], lambda: (np.zeros(2), np.ones(3)),
    ...                      ('a', 'b'))
    >>> a.shape, b.shape
    ((2,), (3,))
    """
    if length is not None and length < MIN_CACHED:
        return tuple(np.asarray(a) for a in make())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    path = cache_dir() / 'datasets' / f'{digest.hexdigest()[:24]}.npz'
    if path.is_file():
        try:
            with np.load(path) as f:
                arrays = tuple(f[name] for name in names)
            lengths = {len(a) for a in arrays if a.ndim}
            if len(lengths) <= 1 and length in (None, *lengths):
                return arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # made again below
    arrays = tuple(np.asarray(a) for a in make())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.npz')
        os.close(fd)
        np.savez(tmp, **dict(zip(names, arrays)))
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays
