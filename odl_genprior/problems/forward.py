"""Forward problems ``y = A x + e``: operator, noisy data, ground truth, noise.

Every constructor takes a ``seed`` and returns a `ForwardProblem`; the same
seed gives the same phantom, the same random operator (where there is one)
and the same noise. Images live on ``[-1, 1]^2`` as ``uniform_discr``
spaces (float32 by default, ``impl='numpy'`` or ``'pytorch'``).

Noise models
------------
``'gaussian'``: ``e = s * n``, ``n`` standard normal, with ``s =
noise_level * mean(|A x|)`` (DIVal's relative convention), or ``s =
noise_std`` when that is given. ``'poisson'`` (CT only): photon counts
``N ~ Poisson(photons * exp(-A x))`` and post-log data
``y = -log(max(N, 0.1) / photons)``. ``None``: exact data.
"""
import dataclasses
import math

import numpy as np
import odl
import torch
from odl.applications import tomo

from odl_genprior import data as _data
from odl_genprior.bridge import (OperatorLayer, TorchOperator, as_element,
                                 as_tensor, to_numpy)

__all__ = ('ForwardProblem', 'image_space', 'ray_transform', 'ct',
           'compressed_sensing', 'deblurring', 'inpainting', 'denoising',
           'GaussianBlur', 'MatrixMultiply', 'AbsMatrixMultiply',
           'phase_retrieval',
           'relative_noise_std', 'measurement_pairs')


def relative_noise_std(clean, noise_level, per_sample=False):
    """The standard deviation ``noise_level * mean(|clean|)`` of relative
    Gaussian noise (DIVal's convention), the one rule of the package.

    ``clean`` is an array, a tensor or an ODL element. With ``per_sample``
    the first axis is a batch: one deviation per sample, shaped to
    broadcast against ``clean`` (an array or tensor like ``clean``).

    Examples
    --------
    >>> relative_noise_std(np.array([1.0, -3.0]), 0.1)
    0.2
    >>> relative_noise_std(torch.tensor([[1.0, 1.0], [2.0, 4.0]]), 0.5,
    ...                    per_sample=True).tolist()
    [[0.5], [1.5]]
    """
    level = float(noise_level)
    if not level >= 0:
        raise ValueError(f'noise_level must be >= 0, got {noise_level!r}')
    if not per_sample:
        return level * float(np.mean(np.abs(to_numpy(clean))))
    if isinstance(clean, torch.Tensor):
        axes = tuple(range(1, clean.ndim))
        return level * clean.abs().mean(dim=axes, keepdim=True)
    clean = np.asarray(clean)
    return level * np.abs(clean).mean(axis=tuple(range(1, clean.ndim)),
                                      keepdims=True)


def measurement_pairs(operator, images, noise_level=0.05, seed=0,
                      batch_size=256):
    """Training pairs ``(y, x)``: noisy data ``y = A x + e`` of ``images``.

    The one pairs builder of the package (learned SVD, DIP pre-training,
    ...): ``A x`` in batches through `odl_genprior.bridge.OperatorLayer`,
    relative Gaussian noise (`relative_noise_std`, per sample) drawn from a
    torch generator seeded with ``seed``, one draw per sample (so the noise
    does not depend on ``batch_size``).

    Parameters
    ----------
    operator : odl.Operator
        Float32 domain of shape ``images.shape[1:]``.
    images : array-like or torch.Tensor, shape ``(N, *operator.domain.shape)``
    noise_level : float
        Relative noise (0: exact data).
    seed, batch_size : int

    Returns
    -------
    y, x : torch.Tensor
        float32 on the CPU, ``(N, *range.shape)`` and ``(N, *domain.shape)``.

    Examples
    --------
    >>> A = ray_transform(image_space(16), num_angles=4)
    >>> y, x = measurement_pairs(A, np.random.rand(3, 16, 16), seed=1)
    >>> y.shape, x.shape
    (torch.Size([3, 4, 25]), torch.Size([3, 16, 16]))
    """
    x = as_tensor(images, dtype=torch.float32).cpu()
    shape = tuple(operator.domain.shape)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(f'images of shape {tuple(x.shape)} are not a batch '
                         f'(N, *{shape}) for the operator domain '
                         f'{operator.domain!r}')
    layer = OperatorLayer(operator)
    gen = torch.Generator().manual_seed(int(seed))
    ys = []
    with torch.no_grad():
        for start in range(0, len(x), int(batch_size)):
            clean = layer(x[start:start + batch_size]).cpu()
            std = relative_noise_std(clean, noise_level, per_sample=True)
            noise = torch.stack([torch.randn(clean.shape[1:], generator=gen)
                                 for _ in range(len(clean))])
            ys.append(clean + std * noise)
    y = torch.cat(ys) if ys else torch.empty((0,) + tuple(
        operator.range.shape))
    return y, x


@dataclasses.dataclass
class ForwardProblem:
    """A forward problem ``data = operator(ground_truth) + noise``.

    Attributes
    ----------
    operator : odl.Operator
        The forward operator ``A``.
    data : ``operator.range`` element
        Noisy measurements ``y``.
    ground_truth : ``operator.domain`` element or None
        The ``x`` that made the data (None for measured data).
    noise_level : float
        ``||y - A x||`` in the norm of ``operator.range`` (the ``delta`` of
        the discrepancy principle); NaN when unknown.
    name : str
    info : dict
        How the problem was made (seed, noise model, sizes).

    Examples
    --------
    >>> p = denoising(size=16, noise_level=0.1, seed=0)
    >>> p.operator.domain == p.ground_truth.space
    True
    """

    operator: odl.Operator
    data: object
    ground_truth: object = None
    noise_level: float = float('nan')
    name: str = ''
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.data not in self.operator.range:
            raise ValueError(f'data must be an element of the operator range '
                             f'{self.operator.range!r}, got '
                             f'{getattr(self.data, "space", type(self.data))!r}')
        if not np.all(np.isfinite(to_numpy(self.data))):
            raise ValueError(f'data of problem {self.name!r} contains NaN or '
                             'inf values')
        if (self.ground_truth is not None
                and self.ground_truth not in self.operator.domain):
            raise ValueError(f'ground truth must be an element of '
                             f'{self.operator.domain!r}')

    @property
    def space(self):
        """The reconstruction space (``operator.domain``)."""
        return self.operator.domain


def image_space(size=128, impl='numpy', device='cpu', dtype='float32'):
    """The image space ``[-1, 1]^2`` with ``size`` (int or pair) pixels.

    Examples
    --------
    >>> image_space(8)
    uniform_discr([-1., -1.], [ 1.,  1.], (8, 8), dtype='float32')
    """
    shape = (size, size) if np.isscalar(size) else tuple(size)
    kwargs = {'device': device} if impl == 'pytorch' else {}
    return odl.uniform_discr([-1, -1], [1, 1], shape, dtype=dtype, impl=impl,
                             **kwargs)


def ray_transform(space, num_angles=30, geometry='parallel', det_shape=None,
                  ray_impl=None, src_radius=3.0, det_radius=3.0):
    """ODL ``RayTransform`` on ``space`` for a 2D parallel or fan geometry.

    ``ray_impl`` defaults to ``'astra_cuda'`` on a CUDA space when ASTRA has
    CUDA, else ``'astra_cpu'``. ASTRA needs float32 spaces.

    Examples
    --------
    >>> A = ray_transform(image_space(32), num_angles=10)
    >>> A.range.shape[0]
    10
    """
    if space.dtype_identifier != 'float32':
        raise ValueError(f'ASTRA needs a float32 space, got {space!r}')
    if geometry == 'parallel':
        geom = tomo.parallel_beam_geometry(space, num_angles=num_angles,
                                           det_shape=det_shape)
    elif geometry == 'fan':
        geom = tomo.cone_beam_geometry(space, src_radius, det_radius,
                                       num_angles=num_angles,
                                       det_shape=det_shape)
    else:
        raise ValueError(f"geometry must be 'parallel' or 'fan', "
                         f'got {geometry!r}')
    if ray_impl is None:
        on_gpu = str(getattr(space, 'device', 'cpu')).startswith('cuda')
        ray_impl = ('astra_cuda' if on_gpu and tomo.ASTRA_CUDA_AVAILABLE
                    else 'astra_cpu')
    return tomo.RayTransform(space, geom, impl=ray_impl)


def _phantom(space, phantom, rng):
    if isinstance(phantom, str):
        if phantom == 'ellipses':
            return _data.random_ellipses(space, rng=rng)
        if phantom in ('shepp_logan', 'shepp-logan'):
            return _data.shepp_logan(space)
        raise ValueError(f"phantom must be 'ellipses', 'shepp_logan', an "
                         f'array or an element, got {phantom!r}')
    arr = to_numpy(phantom)
    if arr.shape != space.shape:
        raise ValueError(f'phantom has shape {arr.shape}, space {space!r} '
                         f'has shape {space.shape}')
    return as_element(arr, space)


def _noisy(clean, noise, noise_level, noise_std, photons, rng):
    """Return (data, info) for the clean measurements ``clean``."""
    space = clean.space
    y = to_numpy(clean).astype(np.float64)
    if noise is None:
        noisy, info = y, {'noise': None}
    elif noise == 'gaussian':
        std = (float(noise_std) if noise_std is not None
               else relative_noise_std(y, noise_level))
        noisy = y + std * rng.standard_normal(y.shape)
        info = {'noise': 'gaussian', 'noise_std': std,
                'relative_noise': noise_level if noise_std is None else None}
    elif noise == 'poisson':
        if photons is None or photons <= 0:
            raise ValueError(f'poisson noise needs photons > 0, got {photons}')
        counts = rng.poisson(photons * np.exp(-y))
        noisy = -np.log(np.maximum(counts, 0.1) / photons)
        info = {'noise': 'poisson', 'photons': float(photons)}
    else:
        raise ValueError(f"noise must be 'gaussian', 'poisson' or None, "
                         f'got {noise!r}')
    data = as_element(noisy, space)
    return data, info


def _make(operator, x, name, noise, noise_level, noise_std, photons, rng,
          info):
    clean = operator(x)
    y, noise_info = _noisy(clean, noise, noise_level, noise_std, photons, rng)
    info.update(noise_info)
    return ForwardProblem(operator, y, x, float((y - clean).norm()), name,
                          info)


def ct(size=128, num_angles=30, geometry='parallel', phantom='ellipses',
       noise='gaussian', noise_level=0.05, noise_std=None, photons=None,
       seed=0, impl='numpy', device='cpu', ray_impl=None, det_shape=None):
    """2D CT: an ODL ``RayTransform`` (ASTRA) on a phantom, with noise.

    Parameters
    ----------
    size : int or (int, int)
        Image size; the image covers ``[-1, 1]^2``.
    num_angles : int
        Projection angles over 180 degrees (parallel) or 360 plus fan angle
        (fan).
    geometry : {'parallel', 'fan'}
    phantom : {'ellipses', 'shepp_logan'} or array-like
    noise : {'gaussian', 'poisson', None}
        See the module docstring; ``noise_level`` is relative, ``photons``
        the incident count for Poisson noise.
    seed : int
    impl, device : str
        ODL backend of the spaces (``'numpy'`` or ``'pytorch'``).

    Examples
    --------
    >>> p = ct(size=32, num_angles=10, seed=1)
    >>> p.data.shape
    (10, 47)
    >>> ct(size=32, num_angles=10, seed=1).data.asarray().tolist() == p.data.asarray().tolist()
    True
    """
    rng = np.random.default_rng(seed)
    space = image_space(size, impl=impl, device=device)
    A = ray_transform(space, num_angles, geometry, det_shape, ray_impl)
    x = _phantom(space, phantom, rng)
    if noise == 'poisson' and photons is None:
        photons = 1e4
    info = {'seed': seed, 'size': space.shape, 'num_angles': num_angles,
            'geometry': geometry, 'phantom': phantom if isinstance(
                phantom, str) else 'given', 'impl': impl}
    return _make(A, x, f'{geometry}-beam CT', noise, noise_level, noise_std,
                 photons, rng, info)


def _unweighted_signal(phantom, size, rng, dtype, impl, kwargs, random_1d):
    """The signal of a matrix problem on an unweighted tensor space.

    ``random_1d = (name, draw)``: ``phantom == name`` gives the 1D signal
    ``draw(size)``; other names are image phantoms of shape
    ``(size, size)``; arrays are taken as they are. Returns (space, x).
    """
    name, draw = random_1d
    if isinstance(phantom, str) and phantom == name:
        space = odl.tensor_space((int(size),), dtype=dtype, impl=impl,
                                 **kwargs)
        x = draw(int(size))
    else:
        shape = ((size, size) if isinstance(phantom, str)
                 else to_numpy(phantom).shape)
        space = odl.tensor_space(shape, dtype=dtype, impl=impl, **kwargs)
        img_space = odl.uniform_discr([-1] * len(shape), [1] * len(shape),
                                      shape)
        x = (to_numpy(_phantom(img_space, phantom, rng))
             if isinstance(phantom, str) else to_numpy(phantom))
    return space, as_element(x, space)


def compressed_sensing(num_measurements=100, size=32, phantom='ellipses',
                       sparsity=10, noise='gaussian', noise_level=0.0,
                       noise_std=0.1, seed=0, impl='numpy', device='cpu',
                       dtype='float32'):
    """Compressed sensing ``y = M x + e`` with Gaussian ``M_ij ~ N(0, 1/m)``.

    The signal space is an unweighted tensor space (plain Euclidean inner
    product, as in the compressed-sensing literature) of shape ``(size,
    size)`` for images or ``(size,)`` for ``phantom='sparse'``
    (``sparsity`` nonzero standard-normal entries). The operator is a
    linear `TorchOperator` of `MatrixMultiply` (ODL 1.0's
    ``FlatteningOperator`` fails on pytorch spaces). ``noise_std`` is the
    absolute noise per measurement (Bora et al. use 0.1).

    Examples
    --------
    >>> p = compressed_sensing(num_measurements=20, size=50, phantom='sparse')
    >>> p.data.shape, p.ground_truth.shape
    ((20,), (50,))
    """
    rng = np.random.default_rng(seed)
    kwargs = {'device': device} if impl == 'pytorch' else {}
    def sparse(n):
        x = np.zeros(n)
        x[rng.choice(n, sparsity, replace=False)] = rng.standard_normal(
            sparsity)
        return x

    space, x = _unweighted_signal(phantom, size, rng, dtype, impl, kwargs,
                                  ('sparse', sparse))
    m, n = int(num_measurements), space.size
    matrix = torch.from_numpy(rng.standard_normal((m, n)) / math.sqrt(m))
    module = MatrixMultiply(matrix.to(getattr(torch, dtype)))
    module.to(device if impl == 'pytorch' else 'cpu')
    A = TorchOperator(module, space,
                      odl.tensor_space((m,), dtype=dtype, impl=impl, **kwargs),
                      linear=True)
    info = {'seed': seed, 'num_measurements': m, 'signal_shape': space.shape}
    if noise == 'gaussian' and noise_std is None and noise_level == 0:
        noise = None
    return _make(A, x, 'compressed sensing', noise,
                 noise_level, noise_std, None, rng, info)


class MatrixMultiply(torch.nn.Module):
    """``x -> M x`` on flattened samples, as a linear torch module.

    Examples
    --------
    >>> mm = MatrixMultiply(torch.eye(2))
    >>> mm(torch.ones(1, 2)).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, matrix):
        super().__init__()
        self.register_buffer('matrix', torch.as_tensor(matrix))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.matrix.T


class AbsMatrixMultiply(torch.nn.Module):
    r"""``x -> |A x|`` on flattened samples, with ``A = M`` or ``M + i N``.

    Computes ``sqrt((M x)^2 + (N x)^2 + eps)`` (``N = 0`` for a real
    matrix): the modulus smoothed by ``eps`` so that it is differentiable
    everywhere, with derivative 0 where ``A x = 0``.

    Parameters
    ----------
    matrix : torch.Tensor
        Real part ``M``, shape ``(m, n)``.
    matrix_imag : torch.Tensor, optional
        Imaginary part ``N``, same shape.
    eps : float
        Smoothing, added to the squared modulus; positive.

    Examples
    --------
    >>> mod = AbsMatrixMultiply(torch.tensor([[1.0, 0.0], [0.0, -2.0]]),
    ...                         eps=1e-12)
    >>> mod(torch.tensor([[-3.0, 1.0]])).tolist()
    [[3.0, 2.0]]
    """

    def __init__(self, matrix, matrix_imag=None, eps=1e-12):
        super().__init__()
        matrix = torch.as_tensor(matrix)
        if matrix.ndim != 2:
            raise ValueError(f'matrix must be 2D (m, n), got shape '
                             f'{tuple(matrix.shape)}')
        if matrix_imag is not None:
            matrix_imag = torch.as_tensor(matrix_imag)
            if matrix_imag.shape != matrix.shape:
                raise ValueError(
                    f'matrix_imag has shape {tuple(matrix_imag.shape)}, '
                    f'matrix has shape {tuple(matrix.shape)}')
        if not float(eps) > 0:
            raise ValueError(f'eps must be positive, got {eps}')
        self.register_buffer('matrix', matrix)
        self.register_buffer('matrix_imag', matrix_imag)
        self.eps = float(eps)

    @property
    def is_complex(self):
        """Whether ``A`` has an imaginary part."""
        return self.matrix_imag is not None

    def forward(self, x):
        t = x.reshape(x.shape[0], -1)
        sq = (t @ self.matrix.T) ** 2
        if self.matrix_imag is not None:
            sq = sq + (t @ self.matrix_imag.T) ** 2
        return torch.sqrt(sq + self.eps)


class GaussianBlur(torch.nn.Module):
    """2D Gaussian blur, zero boundary, as a linear torch module.

    The kernel is symmetric with ``2 ceil(3 sigma) + 1`` taps per axis and
    sums to one; ``sigma`` is in pixels.

    Examples
    --------
    >>> blur = GaussianBlur(1.0)
    >>> float(blur.kernel.sum())
    1.0
    """

    def __init__(self, sigma, dtype=torch.float32):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f'sigma must be positive, got {sigma}')
        r = int(math.ceil(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        g = torch.exp(-0.5 * (t / sigma) ** 2)
        k = torch.outer(g, g)
        self.register_buffer('kernel', (k / k.sum()).to(dtype))

    def forward(self, x):
        k = self.kernel[None, None]
        return torch.nn.functional.conv2d(x, k, padding=k.shape[-1] // 2)


def _image_problem(size, phantom, seed, impl, device):
    rng = np.random.default_rng(seed)
    space = image_space(size, impl=impl, device=device)
    return rng, space, _phantom(space, phantom, rng)


def deblurring(size=64, blur_sigma=2.0, phantom='ellipses', noise='gaussian',
               noise_level=0.02, noise_std=None, seed=0, impl='numpy',
               device='cpu'):
    """Gaussian deblurring: ``A`` = `GaussianBlur` (``blur_sigma`` pixels).

    The operator is a linear `TorchOperator`; its adjoint is the blur's
    vector-Jacobian product (the same blur, by symmetry).

    Examples
    --------
    >>> p = deblurring(size=16, seed=0)
    >>> p.operator.is_linear
    True
    """
    rng, space, x = _image_problem(size, phantom, seed, impl, device)
    blur = GaussianBlur(blur_sigma, dtype=getattr(torch, space.dtype_identifier))
    blur.to(device if impl == 'pytorch' else 'cpu')
    A = TorchOperator(blur, space, space, in_shape=(1, 1) + space.shape,
                      linear=True)
    info = {'seed': seed, 'blur_sigma': blur_sigma, 'size': space.shape}
    return _make(A, x, 'deblurring', noise, noise_level, noise_std, None,
                 rng, info)


def inpainting(size=64, fraction_observed=0.5, phantom='ellipses',
               noise='gaussian', noise_level=0.02, noise_std=None, seed=0,
               impl='numpy', device='cpu'):
    """Inpainting: a random pixel mask (``fraction_observed`` kept).

    ``A`` is ``odl.MultiplyOperator(mask)``: missing pixels read zero, and
    noise is added only where pixels are observed.

    Examples
    --------
    >>> p = inpainting(size=16, fraction_observed=0.25, seed=0)
    >>> round(float(p.info['mask'].mean()), 2)
    0.25
    """
    rng, space, x = _image_problem(size, phantom, seed, impl, device)
    n = space.size
    keep = np.zeros(n, dtype=bool)
    keep[rng.choice(n, int(round(fraction_observed * n)), replace=False)] = True
    mask = keep.reshape(space.shape).astype(space.dtype_identifier)
    A = odl.MultiplyOperator(as_element(mask, space),
                             domain=space, range=space)
    info = {'seed': seed, 'fraction_observed': fraction_observed,
            'mask': mask, 'size': space.shape}
    p = _make(A, x, 'inpainting', noise, noise_level, noise_std, None, rng,
              info)
    p.data = A(p.data)  # unobserved pixels carry no noise
    p.noise_level = float((p.data - A(x)).norm())
    return p


def denoising(size=64, phantom='ellipses', noise='gaussian', noise_level=0.1,
              noise_std=None, seed=0, impl='numpy', device='cpu'):
    """Denoising: ``A`` is the identity on the image space.

    Examples
    --------
    >>> p = denoising(size=16, seed=0)
    >>> p.noise_level > 0
    True
    """
    rng, space, x = _image_problem(size, phantom, seed, impl, device)
    info = {'seed': seed, 'size': space.shape}
    return _make(odl.IdentityOperator(space), x, 'denoising', noise,
                 noise_level, noise_std, None, rng, info)


def phase_retrieval(num_measurements=100, size=32, phantom='gaussian',
                    complex_matrix=False, noise_std=0.0, seed=0, eps=1e-12,
                    impl='numpy', device='cpu', dtype='float64'):
    r"""Phase retrieval ``b = |A x| + e`` with a Gaussian matrix ``A``.

    The operator ``x -> |A x|`` is a nonlinear `TorchOperator` of
    `AbsMatrixMultiply`; its derivative
    and the derivative's adjoint come from torch autograd. ``|t|`` is
    smoothed to ``sqrt(t^2 + eps)`` so that the derivative exists
    everywhere (at ``A x = 0`` it is 0); ``eps`` is added to the squared
    modulus, so with the default the data differ from ``|A x|`` by at most
    ``1e-6``.

    Real case: ``A_ij ~ N(0, 1/m)``. Complex case (``complex_matrix=True``):
    ``A = A_r + i A_i`` with ``A_r, A_i`` independent with entries ``N(0,
    1/(2m))``, applied as two real matrices, ``|A x| = sqrt((A_r x)^2 +
    (A_i x)^2)``; in both cases ``E |A x|_i^2 = ||x||^2 / m``. The signal
    space is an unweighted tensor space (Euclidean inner product) of shape
    ``(size,)`` for ``phantom='gaussian'`` (standard normal entries), of
    ``(size, size)`` for ``'ellipses'``, or of the shape of a given array.
    For a real signal ``x`` and ``-x`` give the same data, so ``x`` can
    only be recovered up to its sign.

    Parameters
    ----------
    num_measurements : int
        ``m``, the number of magnitudes.
    size : int
        Signal length (``'gaussian'``) or image side (``'ellipses'``).
    phantom : {'gaussian', 'ellipses'} or array-like
    complex_matrix : bool
        Complex Gaussian ``A`` (two real matrices) instead of a real one.
    noise_std : float
        Standard deviation of additive Gaussian noise on ``b`` (0: exact
        data).
    seed : int
        Seed of the signal, the matrix and the noise.
    eps : float
        Smoothing of ``|.|`` (see above); positive.
    impl, device, dtype : str
        ODL backend and dtype of the spaces (float64 by default: the
        smoothed modulus needs precision near zero).

    Returns
    -------
    problem : ForwardProblem
        ``problem.operator.module`` holds ``matrix`` (and ``matrix_imag``
        for a complex ``A``); ``problem.info`` the sizes and seed.

    Examples
    --------
    >>> p = phase_retrieval(num_measurements=40, size=10, seed=0)
    >>> p.data.shape, p.operator.is_linear
    ((40,), False)
    >>> x = p.ground_truth
    >>> bool(np.allclose(p.operator(-x).asarray(), p.data.asarray()))
    True
    """
    if not float(eps) > 0:
        raise ValueError(f'eps must be positive, got {eps}')
    rng = np.random.default_rng(seed)
    kwargs = {'device': device} if impl == 'pytorch' else {}
    space, x = _unweighted_signal(phantom, size, rng, dtype, impl, kwargs,
                                  ('gaussian', rng.standard_normal))
    m, n = int(num_measurements), space.size
    if m < 1:
        raise ValueError(f'num_measurements must be positive, got {m}')
    tdtype = getattr(torch, dtype)
    if complex_matrix:
        scale = math.sqrt(2 * m)
        real = torch.from_numpy(rng.standard_normal((m, n)) / scale)
        imag = torch.from_numpy(rng.standard_normal((m, n)) / scale)
        module = AbsMatrixMultiply(real.to(tdtype), imag.to(tdtype), eps=eps)
    else:
        real = torch.from_numpy(rng.standard_normal((m, n)) / math.sqrt(m))
        module = AbsMatrixMultiply(real.to(tdtype), eps=eps)
    module.to(device if impl == 'pytorch' else 'cpu')
    A = TorchOperator(module, space,
                      odl.tensor_space((m,), dtype=dtype, impl=impl, **kwargs))
    info = {'seed': seed, 'num_measurements': m, 'signal_shape': space.shape,
            'complex_matrix': bool(complex_matrix), 'eps': float(eps)}
    noise = 'gaussian' if noise_std else None
    return _make(A, x, 'phase retrieval', noise, 0.0, noise_std, None, rng,
                 info)
