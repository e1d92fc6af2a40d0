"""Image quality metrics (PSNR with its data range, SSIM, relative error)
and the one pair search behind the Lipschitz and stability estimates.

Inputs may be ODL elements, torch tensors or NumPy arrays; they are compared
as NumPy arrays in float64.
"""
import numpy as np
from skimage.metrics import structural_similarity

from odl_genprior.bridge import to_numpy

__all__ = ('psnr', 'ssim', 'relative_error', 'mse', 'max_pair_ratio',
           'operator_norm')


def _pair(x, reference):
    x = np.asarray(to_numpy(x), dtype=np.float64)
    ref = np.asarray(to_numpy(reference), dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f'shapes differ: reconstruction {x.shape}, '
                         f'reference {ref.shape}')
    return x, ref


def _data_range(ref, data_range):
    if data_range is None:
        data_range = float(ref.max() - ref.min())
    if not data_range > 0:
        raise ValueError(f'data range must be positive, got {data_range} '
                         '(is the reference constant?)')
    return float(data_range)


def mse(x, reference):
    """Mean squared error per entry.

    Examples
    --------
    >>> mse(np.zeros(4), np.ones(4))
    1.0
    """
    x, ref = _pair(x, reference)
    return float(np.mean((x - ref) ** 2))


def psnr(x, reference, data_range=None):
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``.

    Parameters
    ----------
    x, reference : array-like, ODL element or tensor
    data_range : float, optional
        Peak-to-peak range of the signal. Default: ``reference.max() -
        reference.min()`` (the convention of DIVal and scikit-image when the
        reference is used).

    Examples
    --------
    >>> ref = np.array([0.0, 1.0, 0.0, 1.0])
    >>> round(psnr(ref + 0.1, ref), 6)
    20.0
    """
    x, ref = _pair(x, reference)
    err = np.mean((x - ref) ** 2)
    rng = _data_range(ref, data_range)
    if err == 0:
        return float('inf')
    return float(10 * np.log10(rng ** 2 / err))


def ssim(x, reference, data_range=None):
    """Structural similarity (scikit-image, Gaussian-free 7x7 window).

    ``data_range`` defaults to ``reference.max() - reference.min()``.

    Examples
    --------
    >>> ref = np.random.default_rng(0).random((16, 16))
    >>> ssim(ref, ref)
    1.0
    """
    x, ref = _pair(x, reference)
    return float(structural_similarity(x, ref,
                                       data_range=_data_range(ref, data_range)))


def relative_error(x, reference):
    """``||x - reference|| / ||reference||`` in the Euclidean norm.

    Examples
    --------
    >>> relative_error(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    1.0
    """
    x, ref = _pair(x, reference)
    nref = np.linalg.norm(ref)
    if nref == 0:
        raise ValueError('relative error of a zero reference is undefined')
    return float(np.linalg.norm(x - ref) / nref)


def max_pair_ratio(ratio, a, b, steps=100, lr=1e-2, project=None):
    """The largest ``ratio(a_i, b_i)`` seen while Adam ascends it over pairs.

    The one pair search behind the package's Lipschitz and stability
    estimates (`odl_genprior.nn.odenets.lipschitz_estimate`,
    `odl_genprior.generators.cgnn.stability_constant`): every step
    evaluates the batched ``ratio``, keeps the best pair seen, and moves
    both points of every pair by Adam on ``-log ratio`` (scale-free, so
    pairs far apart and close together move alike). The result is an
    attained value: a lower estimate of the supremum.

    Parameters
    ----------
    ratio : callable
        ``ratio(a, b) -> (r, stop)``: ``r`` of shape ``(B,)``, nonnegative
        (0 for a pair that says nothing, ``inf`` for an unbounded one);
        ``stop`` a bool, True to end the search after this evaluation
        (e.g. when a pair has collapsed and gradients would be NaN).
    a, b : torch.Tensor
        Starting pairs, batch axis first; not modified.
    steps : int
        Adam steps (``steps + 1`` evaluations, fewer if ``stop``).
    lr : float
    project : callable, optional
        ``project(a, b)`` puts the pairs back into the allowed set in place
        after every step (under ``torch.no_grad``).

    Returns
    -------
    best : float
    a_best, b_best : torch.Tensor
        The pair where ``best`` was attained (detached copies).
    index : int
        Its row in the batch.

    Examples
    --------
    >>> import torch
    >>> def ratio(a, b):  # |sin a - sin b| / |a - b|: sup 1 (a, b -> 0)
    ...     return (torch.sin(a) - torch.sin(b)).abs() / (a - b).abs(), False
    >>> best, *_ = max_pair_ratio(ratio, torch.tensor([1.0]),
    ...                           torch.tensor([1.5]), steps=200, lr=0.05)
    >>> 0.9 < best <= 1.0
    True
    """
    import torch

    a = a.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    best, index, pair = -float('inf'), 0, (a.detach().clone(),
                                           b.detach().clone())
    for step in range(int(steps) + 1):
        r, stop = ratio(a, b)
        rd = r.detach()
        k = int(torch.argmax(torch.nan_to_num(rd, nan=-1.0)))
        if float(rd[k]) > best:
            best, index = float(rd[k]), k
            pair = (a[k].detach().clone(), b[k].detach().clone())
        if stop or step == int(steps) or not np.isfinite(best):
            break
        opt.zero_grad()
        (-torch.log(r.clamp_min(1e-300)).sum()).backward()
        opt.step()
        if project is not None:
            with torch.no_grad():
                project(a, b)
    return best, pair[0], pair[1], index


def operator_norm(op, maxiter=50, safety=1.0):
    """``safety * ||op||`` by ODL's power method from a fixed start.

    The start is ODL's white noise of seed 0 on the domain, so the value
    (and every step size or scaling made from it) is the same on every
    call. The power method approaches the norm from below: ``safety``
    slightly above 1 makes it an upper bound in practice.

    Examples
    --------
    >>> import odl
    >>> space = odl.uniform_discr([0, 0], [1, 1], (4, 4))
    >>> round(operator_norm(3 * odl.IdentityOperator(space)), 6)
    3.0
    """
    import odl
    start = odl.core.phantom.white_noise(op.domain, seed=0)
    return safety * float(odl.power_method_opnorm(op, maxiter=maxiter,
                                                  xstart=start))
