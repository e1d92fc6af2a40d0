"""Files written whole or not at all: the package's one atomic write.

Checkpoints, weights, run configs, logs and cache files all go through
`atomic_write`, so a kill, a full disk or a failing writer at any moment
leaves the previous file (or none), never a cut one.
"""
import os
import tempfile
from pathlib import Path

__all__ = ('atomic_write', 'TMP_PREFIX')


def TMP_PREFIX(name):
    """Prefix of the temporary files of ``name`` (``.NAME.tmp-``): what a
    resumed run sweeps away after a kill."""
    return f'.{name}.tmp-'


def _fsync_dir(folder):
    """Make a rename in ``folder`` durable (where the OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every OS or file system syncs a folder
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then
    rename it over ``path``.

    The temporary file (a unique name, ``TMP_PREFIX(path.name) + ...``, in
    the same folder, made if missing) is flushed and fsynced, renamed with
    ``os.replace`` (atomic on POSIX and Windows: a reader sees the old file
    or the new one; concurrent writers each rename a complete file), and
    the folder is fsynced so that the rename itself survives a crash. The
    temporary file is removed on every way out, also when ``write`` or the
    rename raise.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write(d / 'a.txt', lambda f: f.write(b'whole'))
    >>> (d / 'a.txt').read_bytes(), sorted(p.name for p in d.iterdir())
    (b'whole', ['a.txt'])
    >>> oct((d / 'a.txt').stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX(path.name))
    done = False
    try:
        # mkstemp makes the file private (0600); give it the mode an
        # ordinary open() would (0666 less the umask): run folders and
        # caches are shared
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # gone already; the original error matters
    _fsync_dir(path.parent)
