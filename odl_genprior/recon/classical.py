"""Classical baselines under the reconstruction contract.

FBP, TV (PDHG), Tikhonov (CG), Lasso (ISTA) and wavelet-L1 (PDHG). All are
ODL's own: ``odl.applications.tomo.fbp_op``, ``odl.solvers.pdhg``,
``conjugate_gradient``, ``proximal_gradient``, ``odl.trafos.WaveletTransform``
and ODL functionals; nothing is re-implemented.
"""
import numpy as np
import odl
from odl.applications import tomo

from odl_genprior.metrics import operator_norm
from odl_genprior.recon.base import (Reconstructor, check_choice,
                                     check_flag, check_option,
                                     progress_callback)

__all__ = ('FBP', 'TV', 'Tikhonov', 'Lasso', 'WaveletL1')


class FBP(Reconstructor):
    """Filtered back-projection (ODL ``fbp_op``) for ray-transform problems.

    Parameters
    ----------
    filter_type : str
        One of ODL's filters: 'Ram-Lak', 'Shepp-Logan', 'Cosine',
        'Hamming', 'Hann'.
    frequency_scaling : float in (0, 1]
        Relative cut-off frequency of the filter.

    Examples
    --------
    >>> from odl_genprior import problems, metrics
    >>> p = problems.ct(size=32, num_angles=30, noise=None, seed=0)
    >>> metrics.psnr(FBP()(p), p.ground_truth) > 15
    True
    """

    name = 'FBP'
    divergence_hint = 'frequency_scaling'
    FILTERS = ('Ram-Lak', 'Shepp-Logan', 'Cosine', 'Hamming', 'Hann')

    def __init__(self, filter_type='Hann', frequency_scaling=0.6):
        self.filter_type = check_choice('FBP', 'filter_type', filter_type,
                                        self.FILTERS)
        self.frequency_scaling = check_option(
            'FBP', 'frequency_scaling', frequency_scaling, minimum=0,
            maximum=1, open_minimum=True)

    def _reconstruct(self, problem, progress):
        A = problem.operator
        if not hasattr(A, 'geometry'):
            raise TypeError(f'FBP needs a RayTransform, got {A!r}')
        fbp = tomo.fbp_op(A, filter_type=self.filter_type,
                          frequency_scaling=self.frequency_scaling)
        return fbp(problem.data)


class TV(Reconstructor):
    """Total-variation regularisation solved by ODL's PDHG.

    Minimises ``||A x - y||^2 + alpha ||grad x||_{2,1}`` (isotropic TV,
    ODL's norms on the operator's spaces) over ``x >= 0`` if ``nonneg``,
    with ``odl.solvers.pdhg`` on ``L = (A, grad)`` and step sizes
    ``tau = sigma = 0.99 / ||L||``.

    ``odl.Gradient`` needs a ``uniform_discr`` space. On a plain 2D tensor
    space (e.g. `odl_genprior.problems.compressed_sensing` of an image) the
    gradient is applied to the same array seen in a ``uniform_discr`` with
    unit cells (as `WaveletL1` does): forward differences between
    neighbouring pixels, and ODL's unweighted norms of that space.

    Parameters
    ----------
    alpha : float, optional
        Regularisation weight. Default: ``1e-3`` on a domain of side 2 (the
        package's ``[-1, 1]^2``), scaled by ``(side / 2)^2`` for other
        physical sizes: with ODL's cell-volume weights the data term grows
        like ``side^3`` and TV like ``side``, so the same image is the
        minimiser at every scale (DIVal's ``[-64, 64]^2``: 4.1, 26.6 dB on 3
        validation images where 1e-3 gives 20 dB).
    niter : int
        PDHG iterations.
    nonneg : bool
        Constrain ``x >= 0``.
    callback : callable, optional
        An ODL callback, called with the iterate after every iteration
        (e.g. ``odl.solvers.CallbackStore``).

    Examples
    --------
    >>> from odl_genprior import problems, metrics
    >>> p = problems.ct(size=32, num_angles=20, seed=0)
    >>> x = TV(alpha=1e-3, niter=50)(p, progress=False)
    >>> x in p.space
    True

    On compressed sensing of a 16x16 image (a plain tensor space):

    >>> p = problems.compressed_sensing(100, size=16, seed=0)
    >>> x = TV(alpha=0.1, niter=100)(p, progress=False)
    >>> x in p.space, metrics.psnr(x, p.ground_truth) > 15
    (True, True)
    """

    name = 'TV'
    divergence_hint = 'alpha'

    def __init__(self, alpha=None, niter=300, nonneg=True, callback=None):
        self.alpha = None if alpha is None else check_option(
            'TV', 'alpha', alpha, minimum=0)
        self.niter = check_option('TV', 'niter', niter, minimum=1,
                                  integer=True)
        self.nonneg = check_flag('TV', 'nonneg', nonneg)
        self.callback = callback

    def _reconstruct(self, problem, progress):
        A, y = problem.operator, problem.data
        space = A.domain
        grad_space, R = _discretized(space)
        if grad_space.ndim < 2:
            raise ValueError(f'TV needs an image space (2D or more), got '
                             f'{space!r}')
        grad = odl.Gradient(grad_space)
        if R is not None:
            grad = grad * R
        # ||grad|| ~ 1/h is far larger than ||A||: scaling grad to A's norm
        # (and alpha by the inverse) is the same problem, but PDHG's single
        # step size then suits both blocks and converges far faster.
        norm_a = operator_norm(A, maxiter=30)
        # Upper bound of ||grad|| for forward differences (2 sqrt(sum
        # 1/h_i^2)); ODL 1.0's power method cannot run on Gradient's
        # adjoint on pytorch spaces (Divergence(out=...) asserts numpy).
        norm_g = 2.0 * sum(1.0 / float(h) ** 2
                           for h in grad_space.cell_sides) ** 0.5
        scale = float(norm_a / norm_g)
        L = odl.BroadcastOperator(A, scale * grad)
        alpha = (self.alpha if self.alpha is not None
                 else default_tv_alpha(space))
        g = odl.functionals.SeparableSum(
            odl.functionals.L2NormSquared(A.range).translated(y),
            (alpha / scale) * odl.functionals.GroupL1Norm(grad.range))
        f = (odl.functionals.IndicatorNonnegativity(space) if self.nonneg
             else odl.functionals.ZeroFunctional(space))
        step = 0.99 / (1.05 * float(norm_a) * 2 ** 0.5)
        x = space.zero()
        with progress_callback(progress, self.niter, 'TV-PDHG',
                               self.callback) as callback:
            odl.solvers.pdhg(x, f, g, L, niter=self.niter, tau=step,
                             sigma=step, callback=callback)
        return x


def default_tv_alpha(space, alpha_unit=1e-3):
    """`TV`'s default weight on ``space``: ``alpha_unit (side / 2)^2``.

    ``side`` is the mean side length of a ``uniform_discr`` domain (1 for
    other spaces' factor): the data term in ODL's weighted norms scales like
    ``side^3`` and TV like ``side``, so this keeps the minimiser of the
    package's ``[-1, 1]^2`` setting at any physical size.

    Examples
    --------
    >>> default_tv_alpha(odl.uniform_discr([-1, -1], [1, 1], (8, 8)))
    0.001
    >>> round(default_tv_alpha(odl.uniform_discr([-64, -64], [64, 64], (8, 8))), 3)
    4.096
    """
    if not hasattr(space, 'min_pt'):
        return float(alpha_unit)
    side = float(np.mean(np.asarray(space.max_pt) - np.asarray(space.min_pt)))
    return float(alpha_unit * (side / 2) ** 2)


def _linear(problem, who):
    A = problem.operator
    if not A.is_linear:
        raise ValueError(f'{who} needs a linear forward operator, got {A!r}')
    return A


class Tikhonov(Reconstructor):
    """Tikhonov regularisation solved by ODL's conjugate gradient.

    Minimises ``||A x - y||^2 + alpha ||x||^2`` (ODL's norms on the
    operator's spaces) through the normal equation ``(A^* A + alpha I) x =
    A^* y``, with ``odl.solvers.conjugate_gradient`` from ``x = 0``
    (``alpha = 0``: least squares by ``conjugate_gradient_normal``, CGLS,
    where the iteration count regularises).

    Parameters
    ----------
    alpha : float
        Regularisation weight (>= 0).
    niter : int
        CG iterations.
    callback : callable, optional
        An ODL callback, called with the iterate.

    Examples
    --------
    >>> from odl_genprior import problems, metrics
    >>> p = problems.deblurring(size=16, seed=0)
    >>> x = Tikhonov(alpha=1e-3, niter=30)(p, progress=False)
    >>> metrics.psnr(x, p.ground_truth) > metrics.psnr(p.data, p.ground_truth)
    True
    """

    name = 'Tikhonov'

    def __init__(self, alpha=1e-2, niter=100, callback=None):
        self.alpha = check_option('Tikhonov', 'alpha', alpha, minimum=0)
        self.niter = check_option('Tikhonov', 'niter', niter, minimum=1,
                                  integer=True)
        self.callback = callback

    def _reconstruct(self, problem, progress):
        A, y = _linear(problem, 'Tikhonov'), problem.data
        x = A.domain.zero()
        with progress_callback(progress, self.niter, 'Tikhonov-CG',
                               self.callback) as callback:
            try:
                if self.alpha > 0:
                    normal = (A.adjoint * A
                              + self.alpha * odl.IdentityOperator(A.domain))
                    odl.solvers.conjugate_gradient(normal, x, A.adjoint(y),
                                                   niter=self.niter,
                                                   callback=callback)
                else:
                    odl.solvers.conjugate_gradient_normal(A, x, y,
                                                          niter=self.niter,
                                                          callback=callback)
            except ZeroDivisionError:
                # ODL's CG divides by the previous squared residual norm, 0.0
                # once the residual vanishes: x is then already the solution.
                pass
        return x


class Lasso(Reconstructor):
    """L1 (sparsity in the pixel basis) solved by ODL's proximal gradient.

    Minimises ``||A x - y||^2 + alpha ||x||_1`` with
    ``odl.solvers.proximal_gradient`` (ISTA): a gradient step on the data
    fit, then the proximal operator of ODL's ``L1Norm`` (soft
    thresholding), step ``0.9 / ||A||^2`` (below the bound ``1 / ||A||^2``
    for the ``2 ||A||^2``-Lipschitz gradient), from ``x = 0``. ODL 1.0's
    accelerated variant (FISTA) cannot be used: it passes NumPy scalars to
    ``lincomb`` and fails on both backends (see ODL1_NOTES).

    Parameters
    ----------
    alpha : float
        Weight of the L1 norm (ODL's ``L1Norm`` of the space: on
        ``uniform_discr`` spaces it carries the cell volume).
    niter : int
        ISTA iterations.
    callback : callable, optional
        An ODL callback, called with the iterate.

    Examples
    --------
    >>> from odl_genprior import problems
    >>> p = problems.compressed_sensing(30, size=60, phantom='sparse',
    ...                                 sparsity=4, noise=None, seed=0)
    >>> x = Lasso(alpha=1e-2, niter=500)(p, progress=False)
    >>> float((x - p.ground_truth).norm() / p.ground_truth.norm()) < 0.1
    True
    """

    name = 'Lasso'

    def __init__(self, alpha=0.1, niter=500, callback=None):
        self.alpha = check_option('Lasso', 'alpha', alpha, minimum=0)
        self.niter = check_option('Lasso', 'niter', niter, minimum=1,
                                  integer=True)
        self.callback = callback

    def _reconstruct(self, problem, progress):
        A, y = _linear(problem, 'Lasso'), problem.data
        # 1.05: the power method approaches ||A|| from below.
        step = 0.9 / (1.05 * operator_norm(A)) ** 2
        f = self.alpha * odl.functionals.L1Norm(A.domain)
        g = odl.functionals.L2NormSquared(A.range).translated(y) * A
        x = A.domain.zero()
        with progress_callback(progress, self.niter, 'Lasso-ISTA',
                               self.callback) as callback:
            odl.solvers.proximal_gradient(x, f, g, gamma=step,
                                          niter=self.niter, callback=callback)
        return x


class _Reinterpret(odl.Operator):
    """The same array seen in another space of equal shape (internal).

    Used to apply ODL's ``WaveletTransform``, which needs a
    ``DiscretizedSpace``, on a plain tensor space: the target is a
    ``uniform_discr`` with unit cells, whose inner product equals the
    unweighted one, so the adjoint is the reverse reinterpretation.
    """

    def __init__(self, domain, range):
        super().__init__(domain, range, linear=True)

    def _call(self, x):
        return self.range.element(x.data)

    @property
    def adjoint(self):
        return _Reinterpret(self.range, self.domain)


def _discretized(space):
    """``(disc, R)``: ``space`` as a ``uniform_discr`` ``disc`` (internal).

    A ``DiscretizedSpace`` is returned as it is, with ``R = None``; a plain
    tensor space gets a ``uniform_discr`` with unit cells (the same inner
    product) and ``R`` the `_Reinterpret` operator ``space -> disc``.
    """
    if isinstance(space, odl.DiscretizedSpace):
        return space, None
    shape = space.shape
    disc = odl.uniform_discr([0.0] * len(shape), [float(n) for n in shape],
                             shape, dtype=space.dtype_identifier,
                             impl=space.impl, device=space.device)
    return disc, _Reinterpret(space, disc)


def _wavelet_operator(space, wavelet, nlevels, pad_mode):
    """ODL's ``WaveletTransform`` on ``space`` (checked), as ``W o R``."""
    disc, R = _discretized(space)
    try:
        W = odl.trafos.WaveletTransform(disc, wavelet=wavelet, nlevels=nlevels,
                                        pad_mode=pad_mode)
    except (ValueError, TypeError) as exc:
        raise ValueError(f'ODL WaveletTransform refuses space {space!r} '
                         f'(wavelet={wavelet!r}, nlevels={nlevels}, '
                         f'pad_mode={pad_mode!r}): {exc}') from exc
    # ODL takes the adjoint of an orthogonal wavelet to be the (scaled)
    # inverse; that is false for some pad modes and sizes (e.g. 'symmetric',
    # or 'pywt_periodic' with an odd size at some level), so check it.
    x = odl.core.phantom.white_noise(disc, seed=1)
    c = odl.core.phantom.white_noise(W.range, seed=2)
    lhs, rhs = float(W(x).inner(c)), float(x.inner(W.adjoint(c)))
    if abs(lhs - rhs) > 1e-3 * max(abs(lhs), abs(rhs), 1e-12):
        raise ValueError(
            f'ODL WaveletTransform(wavelet={wavelet!r}, nlevels={W.nlevels}, '
            f'pad_mode={pad_mode!r}) on shape {space.shape} has a wrong '
            f'adjoint (<Wx, c> = {lhs:.6g}, <x, W*c> = {rhs:.6g}); use '
            "pad_mode='constant', or fewer levels so that every level has "
            'an even size')
    return W if R is None else W * R


class WaveletL1(Reconstructor):
    """Wavelet sparsity (analysis L1) solved by ODL's PDHG.

    Minimises ``||A x - y||^2 + alpha ||W x||_1`` (over ``x >= 0`` if
    ``nonneg``) with ``W`` ODL's ``odl.trafos.WaveletTransform`` (PyWavelets)
    and ``odl.solvers.pdhg`` on ``L = (A, s W)``, ``s = ||A|| / ||W||`` (the
    block scaling of `TV`: the same problem, one step size for both), steps
    ``tau = sigma = 0.99 / (1.05 sqrt(2) ||A||)``.

    ``WaveletTransform`` needs a ``uniform_discr`` space; on a plain tensor
    space (compressed sensing) it is applied to the same array seen in a
    ``uniform_discr`` with unit cells. It runs on NumPy and on pytorch CPU
    spaces (measured; data passes through NumPy for PyWavelets, so on a CUDA
    space every call copies to the host). ODL's adjoint of the transform is
    the scaled inverse, which is correct for ``pad_mode='constant'`` and for
    ``'pywt_periodic'`` when every level has an even size; other cases are
    refused with an error (the adjoint is checked on random inputs).

    Parameters
    ----------
    alpha : float
        Weight of the L1 norm of the coefficients.
    wavelet : str
        A PyWavelets name ('haar', 'db2', 'sym4', ...); orthogonal ones.
    nlevels : int, optional
        Decomposition levels (default: PyWavelets' maximum).
    pad_mode : str
        ODL's pad mode: 'constant' (zero) or 'pywt_periodic'.
    niter : int
        PDHG iterations.
    nonneg : bool
        Constrain ``x >= 0``.
    callback : callable, optional
        An ODL callback, called with the iterate.

    Examples
    --------
    >>> from odl_genprior import problems, metrics
    >>> p = problems.deblurring(size=16, seed=0)
    >>> x = WaveletL1(alpha=1e-4, niter=50)(p, progress=False)
    >>> metrics.psnr(x, p.ground_truth) > metrics.psnr(p.data, p.ground_truth)
    True
    """

    name = 'wavelet-L1'

    def __init__(self, alpha=1e-2, wavelet='db2', nlevels=None,
                 pad_mode='constant', niter=300, nonneg=False, callback=None):
        self.alpha = check_option('WaveletL1', 'alpha', alpha, minimum=0)
        self.wavelet = wavelet
        self.nlevels = None if nlevels is None else check_option(
            'WaveletL1', 'nlevels', nlevels, minimum=1, integer=True)
        self.pad_mode = pad_mode
        self.niter = check_option('WaveletL1', 'niter', niter, minimum=1,
                                  integer=True)
        self.nonneg = check_flag('WaveletL1', 'nonneg', nonneg)
        self.callback = callback

    def wavelet_operator(self, space):
        """The (checked) wavelet transform ``space -> coefficients``.

        Examples
        --------
        >>> space = odl.tensor_space((8, 8), dtype='float32')
        >>> W = WaveletL1(wavelet='haar', nlevels=1).wavelet_operator(space)
        >>> W.domain == space, W.range.size
        (True, 64)
        """
        return _wavelet_operator(space, self.wavelet, self.nlevels,
                                 self.pad_mode)

    def _reconstruct(self, problem, progress):
        A, y = _linear(problem, 'WaveletL1'), problem.data
        space = A.domain
        W = self.wavelet_operator(space)
        norm_a = operator_norm(A)
        scale = float(norm_a / operator_norm(W))
        L = odl.BroadcastOperator(A, scale * W)
        g = odl.functionals.SeparableSum(
            odl.functionals.L2NormSquared(A.range).translated(y),
            (self.alpha / scale) * odl.functionals.L1Norm(W.range))
        f = (odl.functionals.IndicatorNonnegativity(space) if self.nonneg
             else odl.functionals.ZeroFunctional(space))
        step = 0.99 / (1.05 * norm_a * 2 ** 0.5)
        x = space.zero()
        with progress_callback(progress, self.niter, 'wavelet-L1-PDHG',
                               self.callback) as callback:
            odl.solvers.pdhg(x, f, g, L, niter=self.niter, tau=step,
                             sigma=step, callback=callback)
        return x
