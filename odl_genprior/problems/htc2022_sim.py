"""HTC2022-like training data: phantoms, the scanner fitted to the files, pairs.

The teaching phantoms of `odl_genprior.problems.htc2022` are the test set;
learned methods train on this simulator instead. It draws acrylic discs
with holes (`htc_phantom`: ellipses and circles as in ``ta``/``td``,
rotated bars and parallelograms as in ``tc``, Voronoi cells with thin
walls as in ``tb``), projects them with the scanner's fan-beam geometry on
a grid twice as fine as the reconstruction grid and with all 560 detector
pixels (binned afterwards like the measured data: no inverse crime), and
applies the measured physics of `ScannerModel`:

``y = offset + a L + b L^2 + noise``, ``L`` the length (mm) of acrylic on
the ray, ``std(noise) = sigma_air * exp(y / 2)`` per detector pixel.

The quadratic is the beam hardening seen in the ``solid_disc`` file (the
measured ``y / L`` falls from 0.040 on short chords to 0.031 across the
70 mm disc), ``offset`` the mean ``-log`` value of air (0.015, a flat-field
bias), ``sigma_air`` the noise in air estimated from second differences
along the angles (the signal is smooth over 0.5 degrees, the noise is not),
and the ``exp(y / 2)`` growth is the Poisson law (variance of ``-log I``
is ``1 / I``). `fit_scanner_model` measures all of it from the files; the
defaults are what it gave on the teaching data.

Limited-angle data are masked rows of one fixed operator: angles ``0,
step, ..., max_range`` degrees; a range ``r`` keeps the rows ``<= r``. A
start angle ``s`` is a rotation (data at ``[s, s + r]`` of ``f`` are the
data at ``[0, r]`` of ``f`` turned by ``-s``), so the simulator draws
isotropic phantoms and only ranges, and `to_model_frame` maps measured
data to the fixed operator.
"""
from dataclasses import asdict, dataclass

import numpy as np

from odl_genprior.problems import htc2022

__all__ = ('ScannerModel', 'SCANNER', 'fit_scanner_model', 'htc_phantom',
           'operator_angles', 'limited_angle_operator',
           'limited_angle_pairs', 'range_mask',
           'simulate_measurement',
           'to_model_frame', 'rotate_image')


@dataclass(frozen=True)
class ScannerModel:
    """The measured physics of the HTC2022 scanner (see the module doc).

    ``y = offset + attenuation * L + hardening * L**2`` (``L`` in mm of
    acrylic), noise std ``sigma_air * exp(y / 2)`` per 0.2 mm pixel.
    """

    attenuation: float = 0.0429
    hardening: float = -1.70e-4
    offset: float = 0.0154
    sigma_air: float = 0.0041

    def sinogram(self, lengths, rng):
        """Noisy ``-log`` data for acrylic lengths ``lengths`` (mm)."""
        lengths = np.asarray(lengths, dtype=np.float64)
        y = self.offset + self.attenuation * lengths \
            + self.hardening * lengths ** 2
        return y + self.sigma_air * np.exp(y / 2) * \
            rng.standard_normal(y.shape)


SCANNER = ScannerModel()


def fit_scanner_model(directory=None, size=256, angle_stride=8):
    """Estimate a `ScannerModel` from the HTC2022 files.

    ``sigma_air``: median over the files of the standard deviation of the
    second difference along the angles in the 25 outermost detector pixels
    on each side (air for every angle), over ``sqrt(6)``. ``offset``: the
    mean of those pixels. ``attenuation`` and ``hardening``: least squares
    of ``y - offset = a L + b L^2`` over the rays of ``solid_disc``, ``L``
    the projection of the organisers' segmentation (resampled to ``size``).

    Examples
    --------
    >>> model = fit_scanner_model()  # doctest: +SKIP
    >>> round(model.attenuation, 3)  # doctest: +SKIP
    0.043
    """
    from skimage.transform import resize

    sigmas, offsets = [], []
    for name in htc2022.PHANTOMS:
        sino, _ = htc2022.load_sinogram(name, directory)
        air = np.concatenate([sino[:, :25], sino[:, -25:]], axis=1)
        second = air[:-2] - 2 * air[1:-1] + air[2:]
        sigmas.append(second.std() / np.sqrt(6))
        offsets.append(air.mean())
    sino, angles = htc2022.load_sinogram('solid_disc', directory)
    _, seg = htc2022.load_reference('solid_disc', directory)
    space = htc2022.htc2022_space(size)
    rows = np.arange(0, angles.size - 1, angle_stride)
    A = htc2022.htc2022_ray_transform(space, angles[rows])
    disc = resize(seg.astype(np.float64), space.shape, order=1,
                  anti_aliasing=True).astype(np.float32)
    lengths = A(disc).asarray().astype(np.float64).ravel()
    offset = float(np.median(offsets))
    y = sino[rows].ravel() - offset
    inside = lengths > 1.0
    design = np.stack([lengths[inside], lengths[inside] ** 2], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y[inside], rcond=None)
    return ScannerModel(attenuation=float(a), hardening=float(b),
                        offset=offset, sigma_air=float(np.median(sigmas)))


def htc_phantom(shape=(256, 256), rng=None):
    """A random HTC-like phantom: 1 on acrylic, 0 in air and in holes.

    A disc of radius 34.9 +- 0.4 mm (the measured ``solid_disc``: 34.87
    mm), centred within 1.5 mm of the axis, over the 75.94 mm square of
    `htc2022.htc2022_space`, with holes of one of four kinds (drawn with
    equal probability): 1-10 ellipses/circles, 1-14 rotated bars and
    parallelograms, 6-25 Voronoi cells with walls of 1-4 mm (some cells
    left solid), or a mix of the first two; the holes stay 2 mm inside the
    rim. Arrays are indexed ``(x, y)`` like ODL elements.

    Examples
    --------
    >>> x = htc_phantom((64, 64), rng=0)
    >>> x.shape, x.dtype, sorted(np.unique(x).tolist())
    ((64, 64), dtype('float32'), [0.0, 1.0])
    """
    rng = np.random.default_rng(rng)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f'htc_phantom draws square images, got shape {shape}')
    # Pixel centres (mm) of htc2022_space, broadcastable (n, 1) and (1, n).
    xs, ys = (np.asarray(c, dtype=np.float64)
              for c in htc2022.htc2022_space(shape[0]).meshgrid)
    radius = rng.normal(34.9, 0.4)
    cx, cy = rng.uniform(-1.5, 1.5, size=2)
    r = np.hypot(xs - cx, ys - cy)
    disc = r <= radius
    inner = radius - 2.0 - rng.uniform(0, 3)
    holes = np.zeros(shape, dtype=bool)
    kind = rng.integers(4)
    if kind == 2:
        holes = _voronoi_holes(xs - cx, ys - cy, inner, rng)
    if kind in (0, 3):
        for _ in range(rng.integers(1, 11)):
            holes |= _ellipse(xs - cx, ys - cy, inner, rng)
    if kind in (1, 3):
        for _ in range(rng.integers(1, 15)):
            holes |= _bar(xs - cx, ys - cy, inner, rng)
    holes &= r <= inner
    return (disc & ~holes).astype(np.float32)


def _place(inner, size, rng):
    reach = max(inner - size, 0.0)
    rad, phi = reach * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    return rad * np.cos(phi), rad * np.sin(phi)


def _frame(xs, ys, centre, angle):
    u = (xs - centre[0]) * np.cos(angle) + (ys - centre[1]) * np.sin(angle)
    v = -(xs - centre[0]) * np.sin(angle) + (ys - centre[1]) * np.cos(angle)
    return u, v


def _ellipse(xs, ys, inner, rng):
    a = rng.uniform(1.5, 8.0)
    b = a if rng.uniform() < 0.3 else rng.uniform(1.5, 8.0)
    u, v = _frame(xs, ys, _place(inner, max(a, b), rng),
                  rng.uniform(0, np.pi))
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _bar(xs, ys, inner, rng):
    a, b = rng.uniform(2.0, 9.0), rng.uniform(0.8, 4.0)
    shear = rng.uniform(-0.6, 0.6)
    u, v = _frame(xs, ys, _place(inner, a, rng), rng.uniform(0, np.pi))
    return (np.abs(u + shear * v) <= a) & (np.abs(v) <= b)


def _voronoi_holes(xs, ys, inner, rng):
    n = rng.integers(6, 26)
    rad = inner * np.sqrt(rng.uniform(size=n))
    phi = rng.uniform(0, 2 * np.pi, size=n)
    seeds = np.stack([rad * np.cos(phi), rad * np.sin(phi)], axis=1)
    d = np.hypot(xs[..., None] - seeds[:, 0], ys[..., None] - seeds[:, 1])
    part = np.partition(d, 1, axis=-1)
    wall = rng.uniform(1.0, 4.0)
    nearest = np.argmin(d, axis=-1)
    solid = rng.uniform(size=n) < rng.uniform(0, 0.3)
    return (part[..., 1] - part[..., 0] > wall) & ~solid[nearest] & \
        (np.hypot(xs, ys) <= inner - wall / 2)


def operator_angles(max_range=90.0, angle_step=1.0):
    """The angles (degrees) of `limited_angle_operator`: ``0, angle_step,
    ..., max_range``.

    Examples
    --------
    >>> operator_angles(10, 5).tolist()
    [0.0, 5.0, 10.0]
    """
    return np.arange(0, max_range + angle_step / 2, angle_step)


def limited_angle_operator(size=128, max_range=90.0, angle_step=1.0,
                           det_binning=4, space_impl='numpy'):
    """The fixed operator of the learned limited-angle methods.

    The scanner's fan-beam ray transform (`htc2022.htc2022_ray_transform`)
    on `htc2022.htc2022_space` ``(size)`` at the angles ``0, angle_step,
    ..., max_range`` degrees, with ``560 / det_binning`` detector pixels.

    Examples
    --------
    >>> limited_angle_operator(64, max_range=30, angle_step=2).range.shape
    (16, 140)
    """
    space = htc2022.htc2022_space(size, impl=space_impl)
    return htc2022.htc2022_ray_transform(space,
                                         operator_angles(max_range,
                                                         angle_step),
                                         det_binning=det_binning)


def range_mask(num_angles, angle_step, ranges):
    """Rows kept per range: ``mask[i, k] = k * angle_step <= ranges[i]``.

    Examples
    --------
    >>> range_mask(5, 10.0, [20, 40]).astype(int).tolist()
    [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    """
    angles = angle_step * np.arange(num_angles)
    ranges = np.asarray(ranges, dtype=np.float64)[:, None]
    return (angles[None] <= ranges + 1e-6).astype(np.float32)


def limited_angle_pairs(n, seed, size=128, max_range=90.0, min_range=30.0,
                        angle_step=1.0, det_binning=4, scanner=SCANNER,
                        progress=False):
    """``n`` simulated training triples ``(y, mask, x)`` as float32 arrays.

    ``x`` (``n, size, size``): the phantom's acrylic fraction per pixel
    (a phantom drawn on a ``2 size`` grid, averaged over 2x2 blocks);
    ``y`` (``n, angles, 560 / det_binning``): its noisy data under
    ``scanner`` at the angles of `limited_angle_operator`, projected on the
    fine grid with all 560 pixels and averaged over ``det_binning`` pixels
    like the measured data, divided by ``scanner.attenuation`` (so ``y``
    is about the acrylic length in mm) and zero on the rows past the range;
    ``mask`` (``n, angles``): 1 on the rows within the range. Ranges are
    drawn uniformly from the multiples of ``angle_step`` in ``[min_range,
    max_range]``; everything is drawn from ``seed``.

    Examples
    --------
    >>> y, mask, x = limited_angle_pairs(2, seed=0, size=32, max_range=20,
    ...                                  min_range=10, angle_step=5)
    >>> y.shape, mask.shape, x.shape
    ((2, 5, 140), (2, 5), (2, 32, 32))
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng([int(seed), 2022])
    angles = operator_angles(max_range, angle_step)
    fine = htc2022.htc2022_ray_transform(htc2022.htc2022_space(2 * size),
                                         angles)
    b = htc2022._check_binning(det_binning)
    steps = np.arange(round(min_range / angle_step),
                      round(max_range / angle_step) + 1)
    ranges = angle_step * rng.choice(steps, size=n)
    mask = range_mask(angles.size, angle_step, ranges)
    ys = np.empty((n, angles.size, htc2022.NUM_DETECTORS // b), np.float32)
    xs = np.empty((n, size, size), np.float32)
    for i in tqdm(range(n), disable=not progress, desc='HTC pairs'):
        sino, xs[i] = simulate_measurement(fine, rng, scanner)
        ys[i] = htc2022.bin_detector(sino, b) / scanner.attenuation \
            * mask[i][:, None]
    return ys, mask, xs


def simulate_measurement(fine, rng, scanner=SCANNER):
    """One simulated measurement: ``(sinogram, fraction)``.

    A phantom of `htc_phantom` on the grid of ``fine`` (a ray transform of
    `htc2022.htc2022_space` with all 560 pixels, on a grid twice as fine as
    the reconstruction grid), projected by ``fine`` and given the physics
    of ``scanner``; ``fraction`` is the phantom averaged over 2x2 blocks
    (the reconstruction grid). The one path of every simulated HTC pair
    and problem.

    Examples
    --------
    >>> fine = htc2022.htc2022_ray_transform(htc2022.htc2022_space(32),
    ...                                      [0.0, 45.0])
    >>> sino, fraction = simulate_measurement(fine, np.random.default_rng(0))
    >>> sino.shape, fraction.shape
    ((2, 560), (16, 16))
    """
    n = fine.domain.shape[0]
    phantom = htc_phantom((n, n), rng)
    sino = scanner.sinogram(fine(phantom).asarray(), rng)
    half = n // 2
    return sino, phantom.reshape(half, 2, half, 2).mean(axis=(1, 3))


def to_model_frame(sinogram, angles_deg, max_range=90.0, angle_step=1.0,
                   det_binning=4, scanner=SCANNER):
    """Measured data in the frame of `limited_angle_operator`.

    Takes ``sinogram`` rows at equally spaced ``angles_deg`` (a step that
    divides ``angle_step``) and ``560 / k`` pixels (``k`` divides
    ``det_binning``), keeps at most ``max_range`` degrees from the first
    angle, resamples the rows and pixels to the operator's, divides by the
    attenuation and pads with zero rows. Returns ``(y, mask, start)``:
    ``start`` the first angle (degrees), by which the reconstruction must
    be turned back (`rotate_image`).

    Examples
    --------
    >>> sino = np.ones((61, 560))
    >>> y, mask, start = to_model_frame(sino, np.arange(10, 40.5, 0.5))
    >>> y.shape, int(mask.sum()), start
    ((91, 140), 31, 10.0)
    """
    sino = np.asarray(sinogram, dtype=np.float64)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if sino.ndim != 2 or sino.shape[0] != angles.size:
        raise ValueError(f'sinogram must be (angles, pixels) with '
                         f'{angles.size} angles, got shape {sino.shape}')
    step = float(angles[1] - angles[0]) if angles.size > 1 else angle_step
    stride = angle_step / step
    if angles.size > 1 and (not np.allclose(np.diff(angles), step)
                            or not np.isclose(stride, round(stride))):
        raise ValueError(f'angles must be equally spaced with a step that '
                         f'divides {angle_step} degrees, got steps '
                         f'{np.unique(np.round(np.diff(angles), 6))}')
    pixels = htc2022.NUM_DETECTORS // det_binning
    if sino.shape[1] % pixels:
        raise ValueError(f'the sinogram has {sino.shape[1]} detector pixels, '
                         f'not a multiple of {pixels}')
    sino = htc2022.bin_detector(sino, sino.shape[1] // pixels)
    rows = sino[::int(round(stride))]
    num = operator_angles(max_range, angle_step).size
    rows = rows[:num]
    y = np.zeros((num, pixels), np.float32)
    y[:rows.shape[0]] = rows / scanner.attenuation
    mask = np.zeros(num, np.float32)
    mask[:rows.shape[0]] = 1
    return y, mask, float(angles[0])


def rotate_image(image, degrees):
    """``image`` (indexed ``(x, y)``) turned counter-clockwise by ``degrees``.

    Bilinear, the same shape, zero outside.

    Examples
    --------
    >>> img = np.zeros((5, 5)); img[4, 2] = 1  # on the +x axis
    >>> np.argwhere(rotate_image(img, 90) > 0.5).tolist()  # to +y
    [[2, 4]]
    """
    from scipy import ndimage

    # With axes=(1, 0) a positive ndimage angle turns axis 0 (x) towards
    # axis 1 (y): counter-clockwise in our (x, y) indexing.
    return ndimage.rotate(np.asarray(image, dtype=np.float64), degrees,
                          axes=(1, 0), reshape=False, order=1, mode='constant')


def scanner_dict(scanner=SCANNER):
    """The `ScannerModel` as a plain dict (for config files)."""
    return asdict(scanner)
