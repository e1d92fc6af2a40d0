"""Phantoms and data sets: random ellipses (any size, from a seed), Shepp-Logan.

Random ellipses follow DIVal's ``EllipsesDataset`` recipe (about 40 ellipses
per image, values in [-0.4, 1], half-axes 0.2 Exp(1), centres in
[-0.9, 0.9]^2, random rotation; the foreground is then shifted and scaled to
[0, 1]).
"""
import numpy as np
import odl

__all__ = ('random_ellipses', 'random_ellipse_params', 'shepp_logan',
           'ellipse_batch')

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
