"""Simulated training sets kept on disk, keyed by what made them."""
import hashlib
import json

import numpy as np

from odl_genprior.bridge import (_read_cache_file, _write_cache_file,
                                 cache_dir)

__all__ = ('cached_arrays', 'MIN_CACHED')

#: Sets of fewer samples are made every time (cheaper than the disk).
MIN_CACHED = 256


def cached_arrays(key, make, names, length=None):
    """``make()`` (a tuple of arrays named ``names``), cached on disk.

    Kept under ``cache_dir() / 'datasets'`` in a ``.npz`` file named by the
    SHA-256 of ``key`` (any JSON value: the simulator's configuration,
    split, size and a format tag). The file carries the whole key
    (``__key__``) and the SHA-256 of its arrays (``__sha256__``), checked
    on every read (the arrays are hashed in place, a few seconds for
    gigabytes). A file that cannot be read, was made for another key,
    fails its checksum, holds arrays of unequal lengths or not ``length``
    samples, or has no key (an older format) is reported (a warning naming
    it and why), removed and made again: it is never used. The file is
    written whole or not at all (a temporary file in the same folder,
    fsync, ``os.replace``), so processes making the same set at once each
    get correct arrays. Sets of fewer than `MIN_CACHED` samples
    (``length``), and sets that fail the length checks themselves, are not
    kept. A cache that cannot be written (read-only,
    full disk) gives a warning; the arrays are returned all the same.

    Examples
    --------
    >>> a, b = cached_arrays(['doc', 2],
    ...                      lambda: (np.zeros(2), np.ones((2, 3))), ('a', 'b'))
    >>> a.shape, b.shape
    ((2,), (2, 3))
    """
    if length is not None and length < MIN_CACHED:
        return tuple(np.asarray(a) for a in make())
    text = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(text.encode())
    path = cache_dir() / 'datasets' / f'{digest.hexdigest()[:24]}.npz'

    def check(arrays):
        lengths = sorted({len(a) for a in arrays if a.ndim})
        if len(lengths) > 1:
            return f'its arrays have unequal lengths {lengths}'
        if length is not None and length not in lengths:
            return f'it holds {lengths} samples, not {length}'
        return None

    arrays = _read_cache_file(path, text, tuple(names), check)
    if arrays is not None:
        return arrays
    arrays = tuple(np.asarray(a) for a in make())
    if check(arrays) is None:  # else it could never be read back
        _write_cache_file(path, text, dict(zip(names, arrays)))
    return arrays
