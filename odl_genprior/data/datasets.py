"""Phantoms and data sets: random ellipses, Shepp-Logan, MNIST, 1D signals.

Nothing is downloaded. MNIST is read from the standard IDX files in a
directory given by argument or by the environment variable
``ODL_GENPRIOR_MNIST``.

Random ellipses follow DIVal's ``EllipsesDataset`` recipe (about 40 ellipses
per image, values in [-0.4, 1], half-axes 0.2 Exp(1), centres in
[-0.9, 0.9]^2, random rotation; the foreground is then shifted and scaled to
[0, 1]).
"""
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import odl

__all__ = ('random_ellipses', 'random_ellipse_params', 'shepp_logan',
           'ellipse_batch', 'load_mnist', 'mnist_directory', 'trig_signals',
           'MNIST_ENV')

MAX_ELLIPSES = 70


def random_ellipse_params(rng, max_ellipses=MAX_ELLIPSES, mean_ellipses=40):
    """Return a ``(max_ellipses, 6)`` array (value, a1, a2, x, y, angle).

    Unused rows have value 0. ``rng`` is a ``numpy.random.Generator``.
    """
    v = rng.uniform(-0.4, 1.0, max_ellipses)
    a1 = 0.2 * rng.exponential(1.0, max_ellipses)
    a2 = 0.2 * rng.exponential(1.0, max_ellipses)
    x = rng.uniform(-0.9, 0.9, max_ellipses)
    y = rng.uniform(-0.9, 0.9, max_ellipses)
    rot = rng.uniform(0.0, 2 * np.pi, max_ellipses)
    n = min(rng.poisson(mean_ellipses), max_ellipses)
    v[n:] = 0.0
    return np.stack((v, a1, a2, x, y, rot), axis=1)


def _normalized(space, params):
    # Drawn on a NumPy twin of ``space``: same grid, any impl or device.
    twin = odl.uniform_discr_frompartition(space.partition, dtype='float64')
    img = odl.core.phantom.ellipsoid_phantom(twin, params).asarray()
    fg = img != 0
    if fg.any():
        img[fg] -= img.min()
        mx = img.max()
        if mx > 0:
            img /= mx
    return img


def random_ellipses(space, seed=None, rng=None):
    """One random-ellipse phantom in ``space`` (values in [0, 1]).

    The phantom lives on the unit square ``[-1, 1]^2`` of ``space``'s
    coordinates (ODL's ellipse convention), so the same seed gives the same
    picture at every resolution.

    Parameters
    ----------
    space : odl.DiscretizedSpace
        2D space; any impl and size.
    seed : int, optional
        Seed for ``numpy.random.default_rng``; ignored if ``rng`` is given.
    rng : numpy.random.Generator, optional

    Examples
    --------
    >>> space = odl.uniform_discr([-1, -1], [1, 1], (32, 32))
    >>> x = random_ellipses(space, seed=0)
    >>> float(x.asarray().min()) >= 0 and float(x.asarray().max()) == 1.0
    True
    """
    if rng is None:
        rng = np.random.default_rng(seed)
    img = _normalized(space, random_ellipse_params(rng))
    return space.element(img.astype(space.dtype_identifier))


def ellipse_batch(space, n, seed):
    """``n`` random-ellipse images as a float32 array ``(n, *space.shape)``.

    Examples
    --------
    >>> space = odl.uniform_discr([-1, -1], [1, 1], (16, 16))
    >>> ellipse_batch(space, 3, seed=1).shape
    (3, 16, 16)
    """
    rng = np.random.default_rng(seed)
    return np.stack([_normalized(space, random_ellipse_params(rng))
                     for _ in range(n)]).astype(np.float32)


def shepp_logan(space, modified=True):
    """The (modified) Shepp-Logan phantom in ``space``.

    Examples
    --------
    >>> space = odl.uniform_discr([-1, -1], [1, 1], (32, 32))
    >>> shepp_logan(space).shape
    (32, 32)
    """
    return odl.core.phantom.shepp_logan(space, modified=modified)


# --- MNIST -----------------------------------------------------------------

MNIST_ENV = 'ODL_GENPRIOR_MNIST'
_MNIST_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
                'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}


def mnist_directory(directory=None):
    """The MNIST directory: the argument, else ``$ODL_GENPRIOR_MNIST``.

    Raises a ``FileNotFoundError`` that says how to point at the files.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> mnist_directory(d) == Path(d)
    True
    """
    directory = directory or os.environ.get(MNIST_ENV)
    if not directory:
        raise FileNotFoundError(
            'no MNIST directory: pass directory=... or set the environment '
            f'variable {MNIST_ENV} to a folder holding the IDX files '
            '(train-images-idx3-ubyte[.gz], ...)')
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f'MNIST directory {path} does not exist')
    return path


def _read_idx(path, magic, ndim):
    opener = gzip.open if path.suffix == '.gz' else open
    try:
        with opener(path, 'rb') as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f'{path} is not a readable gzip file (cut or '
                         f'corrupt: {type(err).__name__})') from None
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f'{path} is too short for an IDX file')
    found = int.from_bytes(raw[:4], 'big')
    if found != magic:
        raise ValueError(f'{path}: IDX magic number {found}, expected {magic}')
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big')
            for i in range(ndim)]
    offset = 4 + 4 * ndim
    size = int(np.prod(dims))
    if len(raw) - offset != size:
        raise ValueError(f'{path}: header says {dims} ({size} bytes) but the '
                         f'file holds {len(raw) - offset} bytes of data')
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def _find(directory, stem):
    for name in (stem + '.gz', stem, stem.replace('-idx', '.idx')):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f'{stem}[.gz] not found in {directory}')


def load_mnist(split='train', directory=None, limit=None):
    """MNIST images (float32 in [0, 1], ``(N, 28, 28)``) and labels (int64).

    Parameters
    ----------
    split : {'train', 'test'}
    directory : str or Path, optional
        Folder with the standard IDX files (gzipped or not). Default: the
        environment variable ``ODL_GENPRIOR_MNIST``.
    limit : int, optional
        Return only the first ``limit`` samples.

    Examples
    --------
    With the files in ``$ODL_GENPRIOR_MNIST``, ``load_mnist('test',
    limit=5)`` gives images of shape ``(5, 28, 28)`` and labels
    ``[7, 2, 1, 0, 4]``. Without them the error says what to do:

    >>> load_mnist('test', directory='/no/such/folder')
    Traceback (most recent call last):
    ...
    FileNotFoundError: MNIST directory /no/such/folder does not exist
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = mnist_directory(directory)
    img_stem, lab_stem = _MNIST_FILES[split]
    images = _read_idx(_find(d, img_stem), 2051, 3)
    labels = _read_idx(_find(d, lab_stem), 2049, 1)
    if len(images) != len(labels):
        raise ValueError(f'{len(images)} images but {len(labels)} labels in {d}')
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(
                limit, (int, np.integer)) or not 1 <= limit <= len(images):
            raise ValueError(f'load_mnist: limit must be an integer in [1, '
                             f'{len(images)}] (the {split} split has '
                             f'{len(images)} images), got {limit!r}')
        images, labels = images[:limit], labels[:limit]
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


# --- 1D signals of the CGNN paper -------------------------------------------

def trig_signals(n, num_samples=4096, modes=2, seed=0):
    """Random trigonometric polynomials on [0, 1], min-max normalised.

    ``x(t) = sum_{r=1}^{modes} a_r cos(2 pi r t) + b_r sin(2 pi r t)`` with
    ``a_0 = 0`` and ``a_r, b_r ~ N(0, 1) / (r + 1)^3`` (the 1D experiment
    of Alberti, Santacesaria and Sciutto), sampled at the ``num_samples``
    cell midpoints of [0, 1] and scaled to [0, 1].

    Returns
    -------
    signals : ndarray, float32, shape ``(n, num_samples)``

    Examples
    --------
    >>> s = trig_signals(3, num_samples=64, seed=0)
    >>> s.shape, float(s.min()), float(s.max())
    ((3, 64), 0.0, 1.0)
    """
    rng = np.random.default_rng(seed)
    t = (np.arange(num_samples) + 0.5) / num_samples
    r = np.arange(1, modes + 1)
    scale = 1.0 / (r + 1.0) ** 3
    a = rng.standard_normal((n, modes)) * scale
    b = rng.standard_normal((n, modes)) * scale
    phase = 2 * np.pi * np.outer(r, t)
    x = a @ np.cos(phase) + b @ np.sin(phase)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return ((x - lo) / (hi - lo)).astype(np.float32)
