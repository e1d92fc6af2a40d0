"""Classical baselines under the reconstruction contract: FBP and TV (PDHG).

Both are ODL's own: ``odl.applications.tomo.fbp_op`` and
``odl.solvers.pdhg`` with ODL functionals; nothing is re-implemented.
"""
import odl
from odl.applications import tomo

from odl_genprior.recon.base import Reconstructor

__all__ = ('FBP', 'TV')


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

    def __init__(self, filter_type='Hann', frequency_scaling=0.6):
        self.filter_type = filter_type
        self.frequency_scaling = float(frequency_scaling)

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

    Parameters
    ----------
    alpha : float
        Regularisation weight.
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
    """

    name = 'TV'

    def __init__(self, alpha=1e-3, niter=300, nonneg=True, callback=None):
        self.alpha = float(alpha)
        self.niter = int(niter)
        self.nonneg = bool(nonneg)
        self.callback = callback

    def _reconstruct(self, problem, progress):
        A, y = problem.operator, problem.data
        space = A.domain
        # A fixed start makes the step sizes (and so the result)
        # reproducible.
        start = odl.core.phantom.white_noise(space, seed=0)
        grad = odl.Gradient(space)
        # ||grad|| ~ 1/h is far larger than ||A||: scaling grad to A's norm
        # (and alpha by the inverse) is the same problem, but PDHG's single
        # step size then suits both blocks and converges far faster.
        norm_a = odl.power_method_opnorm(A, maxiter=30, xstart=start)
        # Upper bound of ||grad|| for forward differences (2 sqrt(sum
        # 1/h_i^2)); ODL 1.0's power method cannot run on Gradient's
        # adjoint on pytorch spaces (Divergence(out=...) asserts numpy).
        norm_g = 2.0 * sum(1.0 / float(h) ** 2 for h in space.cell_sides) ** 0.5
        scale = float(norm_a / norm_g)
        L = odl.BroadcastOperator(A, scale * grad)
        g = odl.functionals.SeparableSum(
            odl.functionals.L2NormSquared(A.range).translated(y),
            (self.alpha / scale) * odl.functionals.GroupL1Norm(grad.range))
        f = (odl.functionals.IndicatorNonnegativity(space) if self.nonneg
             else odl.functionals.ZeroFunctional(space))
        step = 0.99 / (1.05 * float(norm_a) * 2 ** 0.5)
        x = space.zero()
        callback = self.callback
        if progress:
            bar = odl.solvers.CallbackProgressBar(niter=self.niter,
                                                  desc='TV-PDHG')
            callback = bar if callback is None else bar & callback
        odl.solvers.pdhg(x, f, g, L, niter=self.niter, tau=step, sigma=step,
                         callback=callback)
        return x
