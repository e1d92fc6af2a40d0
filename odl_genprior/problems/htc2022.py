"""HTC2022: measured 2D fan-beam CT of acrylic discs, as ODL forward problems.

The Helsinki Tomography Challenge 2022 teaching data (Zenodo DOI
10.5281/zenodo.6984868, CC BY 4.0) holds, per phantom ``ta``, ``tb``,
``tc``, ``td`` and ``solid_disc``, a measured sinogram (721 angles
0:0.5:360 degrees, 560 detector pixels; already flat-field corrected and
-log transformed), the organisers' FBP on a 512x512 grid and their
segmentation of it (the challenge's ground truth). The package does not
ship the files: pass ``directory=`` or set ``$ODL_GENPRIOR_HTC2022``.

Geometry
--------
Flat-detector fan beam, source-origin 410.66 mm, source-detector
553.74 mm, 560 detector pixels of 0.2 mm, image grid of 512 pixels of
``effectivePixelSizePost`` = 0.1483223 mm (75.94 mm wide; ``size`` picks a
coarser grid over the same square). The source starts on the positive
``x`` axis (``src_to_det_init = (-1, 0)``), the detector axis is ``(0,
1)`` and angles grow counter-clockwise as in the files. This was chosen
among the 8 flips/quarter turns by reproducing the organisers' FBP: with
this choice ODL's ``fbp_op`` (Ram-Lak) on the full ``ta`` data correlates
with ``reconFullFbp`` at 0.9999 (128x128 grid, the reference block
averaged), the next best choice at 0.991 and the others at 0.68-0.70, and the
arrays agree in orientation (``x.asarray()`` lies like ``reconFullFbp``).
See docs/htc2022.md.

Scoring
-------
The challenge scores a binary segmentation against the organisers' one by
the Matthews correlation coefficient, `mcc`; `segment` is Otsu's threshold
and `score` resamples a reconstruction to the reference grid, segments it
and returns the MCC.
"""
import os
from pathlib import Path

import numpy as np
import odl
from odl.applications import tomo

from odl_genprior.bridge import to_numpy
from odl_genprior.problems import ForwardProblem

__all__ = ('HTC2022_ENV', 'PHANTOMS', 'SOURCE_ORIGIN', 'SOURCE_DETECTOR',
           'NUM_DETECTORS', 'DETECTOR_PIXEL', 'EFFECTIVE_PIXEL',
           'htc2022_directory', 'htc2022_space', 'htc2022_ray_transform',
           'load_sinogram', 'load_reference', 'load_htc2022', 'segment',
           'read_challenge_file', 'load_challenge_file', 'read_segmentation',
           'bin_detector', 'measured_problem',
           'mcc', 'score', 'resample', 'disc_phantom')

HTC2022_ENV = 'ODL_GENPRIOR_HTC2022'
PHANTOMS = ('ta', 'tb', 'tc', 'td', 'solid_disc')
# The organisers' limited-angle example (``CtDataLimited``, 0:0.5:60 of ta).
_SPARSE_EXAMPLE = 'ta_sparse_example'

# From ``CtDataFull.parameters`` (the same in every file), in mm.
SOURCE_ORIGIN = 410.66
SOURCE_DETECTOR = 553.74
NUM_DETECTORS = 560
DETECTOR_PIXEL = 0.2
EFFECTIVE_PIXEL = 0.1483223173330444
_REFERENCE_SIZE = 512
ANGLE_STEP = 0.5  # degrees between projections in every file


def htc2022_directory(directory=None):
    """The HTC2022 folder: the argument, else ``$ODL_GENPRIOR_HTC2022``.

    Raises a ``FileNotFoundError`` that names the folder and the variable.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> htc2022_directory(d) == Path(d)
    True
    """
    directory = directory or os.environ.get(HTC2022_ENV)
    if not directory:
        raise FileNotFoundError(
            'no HTC2022 directory: pass directory=... or set the environment '
            f'variable {HTC2022_ENV} to the folder holding '
            'htc2022_<name>_full.mat files')
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f'HTC2022 directory {path} does not exist (set by the directory '
            f'argument or ${HTC2022_ENV})')
    return path


def htc2022_space(size=_REFERENCE_SIZE, impl='numpy', dtype='float32'):
    """The image space of the organisers' reconstructions (lengths in mm).

    A square of ``512 * EFFECTIVE_PIXEL`` = 75.94 mm centred on the
    rotation axis, with ``size`` x ``size`` pixels (512: the organisers'
    grid). ASTRA needs ``dtype='float32'``.

    Examples
    --------
    >>> space = htc2022_space(128)
    >>> space.shape, round(float(space.cell_sides[0]), 4)
    ((128, 128), 0.5933)
    """
    size = int(size)
    if size < 2:
        raise ValueError(f'size must be an int >= 2, got {size}')
    half = 0.5 * _REFERENCE_SIZE * EFFECTIVE_PIXEL
    kwargs = {'impl': impl} if impl == 'numpy' else {'impl': impl,
                                                     'device': 'cpu'}
    return odl.uniform_discr([-half, -half], [half, half], (size, size),
                             dtype=dtype, **kwargs)


def _check_angles(angles_deg):
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size < 2:
        raise ValueError(f'angles must be a 1D array of >= 2 values in '
                         f'degrees, got shape {angles.shape}')
    steps = np.diff(angles)
    if not np.allclose(steps, steps[0]) or steps[0] <= 0:
        raise ValueError('angles must be increasing and equally spaced '
                         f'(degrees), got steps from {steps.min()} to '
                         f'{steps.max()}')
    return angles


def htc2022_ray_transform(space, angles_deg, impl='astra_cpu', det_binning=1,
                          source_origin=SOURCE_ORIGIN,
                          source_detector=SOURCE_DETECTOR):
    """ODL fan-beam ``RayTransform`` of the HTC2022 scanner.

    Parameters
    ----------
    space : odl.DiscretizedSpace
        A float32 image space in mm, e.g. `htc2022_space`.
    angles_deg : array-like
        Increasing, equally spaced source angles in degrees (as in the
        files' ``parameters.angles``).
    impl : str
        ODL's ray-transform backend ('astra_cpu', 'astra_cuda').
    det_binning : int
        Merge this many neighbouring detector pixels into one (a divisor
        of 560): ``560 / det_binning`` pixels of ``0.2 det_binning`` mm.
    source_origin, source_detector : float
        Distances in mm (a file's ``distanceSourceOrigin`` and
        ``distanceSourceDetector``; default the scanner's).

    Examples
    --------
    >>> A = htc2022_ray_transform(htc2022_space(64), np.arange(0, 60.5, 0.5))
    >>> A.range.shape
    (121, 560)
    >>> htc2022_ray_transform(htc2022_space(64), [0, 90], det_binning=4).range.shape
    (2, 140)
    """
    if space.dtype_identifier != 'float32':
        raise ValueError(f'ASTRA needs a float32 space, got {space!r}')
    angles = np.deg2rad(_check_angles(angles_deg))
    step = angles[1] - angles[0]
    # Cells centred on the given angles, so the nodes are the angles.
    apart = odl.uniform_partition(angles[0] - step / 2, angles[-1] + step / 2,
                                  angles.size)
    half = 0.5 * NUM_DETECTORS * DETECTOR_PIXEL
    dpart = odl.uniform_partition(-half, half,
                                  NUM_DETECTORS // _check_binning(det_binning))
    geometry = tomo.FanBeamGeometry(
        apart, dpart, src_radius=float(source_origin),
        det_radius=float(source_detector) - float(source_origin),
        src_to_det_init=(-1, 0), det_axis_init=(0, 1))
    return tomo.RayTransform(space, geometry, impl=impl)


def _check_binning(det_binning):
    b = int(det_binning)
    if b != det_binning or b < 1 or NUM_DETECTORS % b:
        raise ValueError(f'det_binning must be a divisor of {NUM_DETECTORS}, '
                         f'got {det_binning}')
    return b


def _file(directory, name, suffix):
    if name not in PHANTOMS and name != _SPARSE_EXAMPLE:
        raise ValueError(f'unknown HTC2022 phantom {name!r}; expected one of '
                         f'{PHANTOMS + (_SPARSE_EXAMPLE,)}')
    path = htc2022_directory(directory) / f'htc2022_{name}{suffix}.mat'
    if not path.is_file():
        raise FileNotFoundError(f'HTC2022 file {path} not found')
    return path


def _read_mat(path):
    import scipy.io  # scipy comes with scikit-image

    try:
        return scipy.io.loadmat(str(path), squeeze_me=True,
                                struct_as_record=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # scipy raises several kinds for bad files
        raise ValueError(f'{path} is not a readable MATLAB file (cut or not '
                         f'a .mat: {type(err).__name__})') from None


def _loadmat(path, key):
    mat = _read_mat(path)
    if key not in mat:
        raise ValueError(f'{path} has no variable {key!r}; it has '
                         f'{sorted(k for k in mat if not k.startswith("__"))}')
    return mat[key]


def _field(struct, name, path):
    """``struct.name`` (a MATLAB struct field); a missing one is named."""
    for part in name.split('.'):
        if not hasattr(struct, part):
            raise ValueError(f'{path} has no field {name!r} in its CT data '
                             'struct: not a file in the challenge format')
        struct = getattr(struct, part)
    return struct


def _ct_struct(path):
    """The CT data struct of a challenge file: ``CtDataFull``,
    ``CtDataLimited`` or any variable with ``sinogram`` and ``parameters``
    fields (the challenge's test files name it after the level)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'HTC2022 file {path} not found')
    mat = _read_mat(path)
    names = [k for k in mat if not k.startswith('__')]
    for key in ('CtDataFull', 'CtDataLimited'):
        if key in mat:
            return mat[key]  # a missing field is named by _field
    for key in names:
        if hasattr(mat[key], 'sinogram'):
            return mat[key]
    raise ValueError(f'{path} holds no CT data struct (a variable with a '
                     f'sinogram field); it has {sorted(names)}')


def read_challenge_file(path):
    """Sinogram, angles and geometry of any file in the challenge's format.

    Returns ``(sinogram, angles_deg, geometry)``: the ``(angles, pixels)``
    float64 sinogram, the angles in degrees and a dict with
    ``source_origin``, ``source_detector`` (mm) and ``pixels`` read from the
    file's ``parameters``. Missing fields and mismatched shapes raise a
    ``ValueError`` that names them.

    Examples
    --------
    >>> read_challenge_file('nowhere.mat')
    Traceback (most recent call last):
    ...
    FileNotFoundError: HTC2022 file nowhere.mat not found
    """
    ct = _ct_struct(path)
    sino = np.atleast_2d(np.asarray(_field(ct, 'sinogram', path),
                                    dtype=np.float64))
    angles = np.atleast_1d(np.asarray(_field(ct, 'parameters.angles', path),
                                      dtype=np.float64)).ravel()
    geometry = {
        'source_origin': float(_field(ct, 'parameters.distanceSourceOrigin',
                                      path)),
        'source_detector': float(_field(
            ct, 'parameters.distanceSourceDetector', path)),
        'pixels': int(_field(ct, 'parameters.numDetectorsPost', path))}
    if sino.ndim != 2 or sino.shape != (angles.size, geometry['pixels']):
        raise ValueError(f'{path}: sinogram shape {sino.shape} does not match '
                         f'{angles.size} angles x {geometry["pixels"]} '
                         'detector pixels (parameters.angles, '
                         'numDetectorsPost)')
    if geometry['pixels'] != NUM_DETECTORS:
        raise ValueError(f'{path}: {geometry["pixels"]} detector pixels; the '
                         f'HTC2022 scanner files have {NUM_DETECTORS}')
    steps = np.diff(angles)
    if not np.all(np.isfinite(angles)) or np.any(steps <= 0):
        k = int(np.argmax(~(steps > 0))) if steps.size else 0
        raise ValueError(f'{path}: parameters.angles must be finite and '
                         f'increase; angles {k} and {k + 1} are '
                         f'{angles[k]:g} and '
                         f'{angles[min(k + 1, angles.size - 1)]:g}')
    return sino, angles, geometry


def bin_detector(sinogram, det_binning):
    """``sinogram`` rows with ``det_binning`` neighbouring pixels averaged.

    The mean of ``-log`` data over merged pixels approximates the line
    integral over the wider pixel (how every HTC2022 problem and simulated
    pair of the package is binned).

    Examples
    --------
    >>> bin_detector(np.arange(8.0).reshape(1, 8), 4)
    array([[ 1.5,  5.5]])
    """
    sino = np.asarray(sinogram)
    b = int(det_binning)
    if sino.shape[-1] % b:
        raise ValueError(f'{sino.shape[-1]} detector pixels cannot be merged '
                         f'by {det_binning}')
    return sino.reshape(sino.shape[:-1] + (sino.shape[-1] // b, b)).mean(-1)


def measured_problem(sinogram, angles_deg, geometry=None, size=_REFERENCE_SIZE,
                     angle_step=1, det_binning=1, impl='astra_cpu',
                     space_impl='numpy', name='HTC2022', info=None):
    """Measured sinogram rows of the scanner as a `ForwardProblem`.

    Keeps every ``angle_step``-th row (a last row repeating the first one
    360 degrees later is dropped), merges ``det_binning`` detector pixels
    (`bin_detector`) and builds `htc2022_ray_transform` on
    `htc2022_space` ``(size)`` with the distances of ``geometry`` (a dict
    of `read_challenge_file`; default the scanner's). ``info`` gets
    'angles_deg'. What `load_htc2022` and `load_challenge_file` return.

    Examples
    --------
    >>> p = measured_problem(np.zeros((4, 560)), [0, 30, 60, 90], size=16,
    ...                      det_binning=4)
    >>> p.data.shape, p.info['angles_deg'].tolist()
    ((4, 140), [0.0, 30.0, 60.0, 90.0])
    """
    sino = np.asarray(sinogram, dtype=np.float64)
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.size > 1 and np.isclose(angles[-1] - angles[0], 360.0):
        sino, angles = sino[:-1], angles[:-1]
    step = int(angle_step)
    if step != angle_step or step < 1 or (angles.size > 1
                                          and step >= angles.size):
        raise ValueError(f'angle_step must be an int in [1, {angles.size}), '
                         f'got {angle_step}')
    sino, angles = sino[::step], angles[::step]
    b = _check_binning(det_binning)
    distances = {k: v for k, v in (geometry or {}).items()
                 if k in ('source_origin', 'source_detector')}
    A = htc2022_ray_transform(htc2022_space(size, impl=space_impl), angles,
                              impl=impl, det_binning=b, **distances)
    data = A.range.element(np.ascontiguousarray(bin_detector(sino, b),
                                                dtype=np.float32))
    return ForwardProblem(operator=A, data=data, ground_truth=None,
                          noise_level=float('nan'), name=name,
                          info={**(info or {}), 'angles_deg': angles})


def load_challenge_file(path, size=_REFERENCE_SIZE, angle_step=1,
                        det_binning=1, impl='astra_cpu'):
    """A file in the challenge's format as a `ForwardProblem`.

    `measured_problem` of all the file's angles, with the geometry read
    from the file (`read_challenge_file`); ``info`` has 'angles_deg',
    'path' and the distances.

    Examples
    --------
    >>> load_challenge_file('missing.mat')
    Traceback (most recent call last):
    ...
    FileNotFoundError: HTC2022 file missing.mat not found
    """
    sino, angles, geometry = read_challenge_file(path)
    return measured_problem(sino, angles, geometry, size, angle_step,
                            det_binning, impl, name=Path(path).stem,
                            info={'path': str(path), **geometry})


def load_sinogram(name, directory=None):
    """The measured sinogram and its angles: ``(sinogram, angles_deg)``.

    ``name`` is one of `PHANTOMS` (``CtDataFull``: 721 angles 0:0.5:360) or
    ``'ta_sparse_example'`` (``CtDataLimited``: 121 angles 0:0.5:60). The
    sinogram is float64 of shape ``(angles, 560)``, ``-log`` attenuation.
    """
    suffix = '' if name == _SPARSE_EXAMPLE else '_full'
    sino, angles, _ = read_challenge_file(_file(directory, name, suffix))
    return sino, angles


def read_segmentation(path, shape=(_REFERENCE_SIZE, _REFERENCE_SIZE)):
    """A reference segmentation from a file: ``.png`` or ``.mat``.

    A ``.mat`` file's first 2D array (``reconFullFbpSeg`` in the
    organisers' files), or a PNG (nonzero: foreground); it must have
    ``shape`` (512x512). Returns a bool array.

    Examples
    --------
    >>> read_segmentation('none.png')
    Traceback (most recent call last):
    ...
    FileNotFoundError: segmentation none.png not found
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'segmentation {path} not found')
    if path.suffix.lower() == '.png':
        from PIL import Image
        try:
            with Image.open(path) as image:
                # the size is in the header: refuse a huge image before
                # decoding it (PIL's own bomb check fires at 2x its limit)
                if image.size != tuple(shape)[::-1]:
                    raise ValueError(f'segmentation {path} is a '
                                     f'{image.size[0]}x{image.size[1]} '
                                     f'image, not {shape[1]}x{shape[0]}')
                arr = np.asarray(image)
        except (OSError, Image.DecompressionBombError) as err:
            raise ValueError(f'segmentation {path} is not a readable PNG '
                             f'image ({type(err).__name__})') from None
    else:
        arrays = [v for k, v in _read_mat(path).items()
                  if not k.startswith('__') and np.ndim(v) == 2]
        if not arrays:
            raise ValueError(f'{path} holds no 2D array (a segmentation)')
        arr = np.asarray(arrays[0])
    if arr.ndim == 3:  # an RGB(A) PNG: one channel
        arr = arr[..., 0]
    if arr.shape != tuple(shape):
        raise ValueError(f'segmentation {path} has shape {arr.shape}, not '
                         f'{tuple(shape)}')
    values = np.unique(arr)
    if values.size > 2 or not np.all(np.isfinite(values.astype(float))):
        raise ValueError(f'{path} is not a segmentation: it holds '
                         f'{values.size} distinct values (a reconstruction?),'
                         ' a segmentation holds two')
    return arr > 0


def load_reference(name, directory=None):
    """The organisers' FBP and segmentation: ``(fbp, segmentation)``.

    Both are 512x512 NumPy arrays oriented like the arrays of
    `htc2022_space` elements: ``fbp`` float64 (``reconFullFbp``) and
    ``segmentation`` bool (``reconFullFbpSeg``, the challenge's ground
    truth).
    """
    fbp = _loadmat(_file(directory, name, '_full_recon_fbp'), 'reconFullFbp')
    seg = _loadmat(_file(directory, name, '_full_recon_fbp_seg'),
                   'reconFullFbpSeg')
    return np.asarray(fbp, dtype=np.float64), np.asarray(seg) > 0


def _select(angles, angular_range, start_angle):
    """Row indices and angles (deg) of ``[start, start + range]`` (internal).

    Both ends are included, as in the organisers' 0:0.5:60 example (121
    angles for 60 degrees); the range wraps around 360 degrees.
    """
    full = angles
    if np.isclose(full[-1] - full[0], 360.0):
        full = full[:-1]  # the last angle repeats the first
    if angular_range is None:
        return np.arange(full.size), full
    span = full[-1] - full[0] + ANGLE_STEP
    if not 0 < float(angular_range) <= span:
        raise ValueError(f'angular_range must be in (0, {span:g}] degrees, '
                         f'got {angular_range}')
    offset = (float(start_angle) - full[0]) / ANGLE_STEP
    count = float(angular_range) / ANGLE_STEP
    if not (np.isclose(offset, round(offset))
            and np.isclose(count, round(count))):
        raise ValueError(f'start_angle and angular_range must be multiples of '
                         f'{ANGLE_STEP} degrees, got {start_angle}, '
                         f'{angular_range}')
    num = int(round(count)) + (1 if float(angular_range) < 360 else 0)
    num = min(num, full.size)
    if span < 360 and int(round(offset)) + num > full.size:
        raise ValueError(f'start_angle {start_angle} + angular_range '
                         f'{angular_range} leaves the measured angles '
                         f'{full[0]:g}..{full[-1]:g}')
    rows = (int(round(offset)) + np.arange(num)) % full.size
    return rows, float(start_angle) + ANGLE_STEP * np.arange(num)


def load_htc2022(name, directory=None, angular_range=None, start_angle=0,
                 size=_REFERENCE_SIZE, angle_step=1, det_binning=1,
                 impl='astra_cpu', space_impl='numpy'):
    """An HTC2022 phantom as a `ForwardProblem` with measured data.

    Parameters
    ----------
    name : str
        One of `PHANTOMS` ('ta', 'tb', 'tc', 'td', 'solid_disc'), or
        'ta_sparse_example' (the organisers' 60-degree example).
    directory : str or Path, optional
        Folder of the .mat files; default ``$ODL_GENPRIOR_HTC2022``.
    angular_range : float, optional
        Degrees of data to keep, from ``start_angle`` to ``start_angle +
        angular_range`` inclusive (60 -> 121 angles, 90 -> 181); a multiple
        of 0.5. None (default) or 360: all 720 distinct angles (the 721st
        file row repeats 0 degrees and is dropped).
    start_angle : float
        First angle in degrees (wraps around 360).
    size : int
        Image grid ``size`` x ``size`` over the organisers' 75.94 mm square
        (512: their grid; 256 or 128 for speed).
    angle_step : int
        Keep every ``angle_step``-th of the selected angles (for speed).
    det_binning : int
        Average this many neighbouring detector columns (a divisor of
        560; for speed on coarse grids, where a 0.2 mm detector pixel is
        finer than the image pixel).
    impl : str
        Ray-transform backend.
    space_impl : str
        ODL backend of the image space ('numpy' or 'pytorch').

    Returns
    -------
    problem : ForwardProblem
        ``operator`` the fan-beam ray transform, ``data`` the measured
        (float32) sinogram rows, ``ground_truth`` None, ``noise_level`` NaN;
        ``info`` holds 'angles_deg', 'rows' (file rows used),
        'reference_fbp' and 'reference_segmentation' (512x512 arrays, or
        None if those files are missing) and 'directory'.
    """
    sino, angles = load_sinogram(name, directory)
    rows, used = _select(angles, angular_range, start_angle)
    step = int(angle_step)
    if step != angle_step or step < 1 or step >= rows.size:
        raise ValueError(f'angle_step must be an int in [1, {rows.size}), '
                         f'got {angle_step}')
    rows, used = rows[::step], used[::step]
    ref_name = 'ta' if name == _SPARSE_EXAMPLE else name
    try:
        fbp, seg = load_reference(ref_name, directory)
    except FileNotFoundError:
        fbp = seg = None
    info = {'source': 'HTC2022 (Zenodo 10.5281/zenodo.6984868)',
            'phantom': name, 'rows': rows,
            'angular_range': angular_range, 'start_angle': float(start_angle),
            'size': int(size), 'angle_step': step,
            'det_binning': _check_binning(det_binning),
            'reference_fbp': fbp,
            'reference_segmentation': seg,
            'directory': str(htc2022_directory(directory))}
    rng = '' if angular_range is None else f', {angular_range:g} deg'
    return measured_problem(sino[rows], used, size=size,
                            det_binning=det_binning, impl=impl,
                            space_impl=space_impl,
                            name=f'HTC2022 {name}{rng}', info=info)


def segment(image, threshold=None):
    """Binary segmentation ``image > threshold`` (Otsu's threshold if None).

    Examples
    --------
    >>> img = np.zeros((8, 8)); img[2:5, 2:5] = 1.0
    >>> int(segment(img).sum()), int(segment(img, threshold=2).sum())
    (9, 0)
    """
    from skimage.filters import threshold_otsu

    arr = np.asarray(to_numpy(image), dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f'segment needs a 2D image, got shape {arr.shape}')
    if threshold is not None:
        return arr > float(threshold)
    if arr.max() == arr.min():
        return np.zeros(arr.shape, dtype=bool)
    return arr > threshold_otsu(arr)


def mcc(seg, truth):
    """Matthews correlation coefficient of two binary masks (the HTC score).

    ``(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))`` with the
    counts of ``seg`` against ``truth``; 0 when a factor of the denominator
    is 0 (a constant mask). 1: identical, -1: complementary.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    >>> seg = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    >>> round(mcc(seg, truth), 4)  # TP=1, TN=3, FP=1, FN=1: (3-1)/sqrt(2*2*4*4)
    0.25
    >>> mcc(truth, truth), mcc(~truth, truth)
    (1.0, -1.0)
    """
    seg = np.asarray(to_numpy(seg))
    truth = np.asarray(to_numpy(truth))
    if seg.shape != truth.shape:
        raise ValueError(f'shapes differ: segmentation {seg.shape}, truth '
                         f'{truth.shape}')
    seg, truth = seg.astype(bool), truth.astype(bool)
    tp = float(np.sum(seg & truth))
    tn = float(np.sum(~seg & ~truth))
    fp = float(np.sum(seg & ~truth))
    fn = float(np.sum(~seg & truth))
    denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if denom == 0:
        return 0.0
    return float((tp * tn - fp * fn) / np.sqrt(denom))


def score(reconstruction, truth, threshold=None):
    """MCC of the segmentation of ``reconstruction`` against ``truth``.

    A reconstruction on a coarser grid is first resampled (bilinear) to the
    shape of ``truth`` (512x512 for the organisers' segmentations), then
    segmented by `segment` (``threshold``; Otsu's if None).

    Examples
    --------
    >>> truth = np.zeros((8, 8), dtype=bool); truth[2:6, 2:6] = True
    >>> score(truth.astype(float), truth)
    1.0
    """
    return mcc(segment(resample(reconstruction, np.shape(truth)),
                       threshold), truth)


def resample(image, shape):
    """``image`` resampled (bilinear) to ``shape``, as a float64 array.

    Examples
    --------
    >>> resample(np.ones((4, 4)), (8, 8)).shape
    (8, 8)
    """
    from skimage.transform import resize

    arr = np.asarray(to_numpy(image), dtype=np.float64)
    if arr.ndim != 2 or len(shape) != 2:
        raise ValueError(f'resample needs a 2D image and a 2D shape, got '
                         f'{arr.shape} and {tuple(shape)}')
    if arr.shape == tuple(shape):
        return arr
    return resize(arr, shape, order=1, anti_aliasing=False)


def disc_phantom(space, rng=None, max_holes=10, attenuation=0.04):
    """A random acrylic disc with holes, like the HTC2022 phantoms.

    A disc of radius 33-36 mm (lengths of `htc2022_space`), shifted by up
    to 1 mm, of value ``attenuation`` (about the measured mm^-1 of the
    discs), with 1 to ``max_holes`` holes of value 0: ellipses and rotated
    rectangles of 2-15 mm, kept 2 mm inside the rim. For training learned
    methods on simulated data of the scanner's geometry.

    Parameters
    ----------
    space : odl.DiscretizedSpace
        2D image space in mm.
    rng : numpy.random.Generator or int, optional
    max_holes : int
    attenuation : float

    Returns
    -------
    phantom : numpy.ndarray
        ``space.shape`` float32 array.

    Examples
    --------
    >>> x = disc_phantom(htc2022_space(64), rng=0)
    >>> x.shape, round(float(x.max()), 6), float(x.min())
    ((64, 64), 0.04, 0.0)
    """
    rng = np.random.default_rng(rng)
    xs, ys = (np.asarray(c, dtype=np.float64) for c in space.meshgrid)
    radius = rng.uniform(33.0, 36.0)
    cx, cy = rng.uniform(-1.0, 1.0, size=2)
    out = ((xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2).astype(np.float64)
    for _ in range(rng.integers(1, max_holes + 1)):
        a, b = rng.uniform(1.0, 7.5, size=2)
        reach = radius - 2.0 - max(a, b)
        r, phi = reach * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        hx, hy = cx + r * np.cos(phi), cy + r * np.sin(phi)
        t = rng.uniform(0, np.pi)
        u = (xs - hx) * np.cos(t) + (ys - hy) * np.sin(t)
        v = -(xs - hx) * np.sin(t) + (ys - hy) * np.cos(t)
        if rng.uniform() < 0.5:
            hole = (u / a) ** 2 + (v / b) ** 2 <= 1
        else:
            hole = (np.abs(u) <= a) & (np.abs(v) <= b)
        out[hole] = 0.0
    return (attenuation * out).astype(np.float32)
