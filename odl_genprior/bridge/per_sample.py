"""An ODL operator on each sample of a torch batch, one ODL call each.

The slowest and surest way to batch an operator: `OperatorLayer`'s
``'loop'`` mode, and what `operator_matrix` assembles a matrix with (on
unit vectors). Both look it up here, as ``per_sample.apply_per_sample``, so
that a test can count the ODL calls of either.
"""
import torch

from odl_genprior.bridge.convert import (_is_pytorch, as_tensor,
                                         space_device, space_dtype)

__all__ = ('apply_per_sample',)


def apply_per_sample(op, x):
    """Apply ``op`` to each of the ``(B, *domain.shape)`` samples of ``x``.

    Returns a tensor ``(B, *range.shape)`` on the range's device (NumPy
    spaces: the CPU) in the range's dtype.

    Examples
    --------
    >>> import odl
    >>> op = odl.ScalingOperator(odl.rn(3), 2.0)
    >>> apply_per_sample(op, torch.ones(2, 3, dtype=torch.float64)).tolist()
    [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """
    dom, ran = op.domain, op.range
    dev, dt = space_device(ran), space_dtype(ran)
    out = torch.empty((x.shape[0],) + tuple(ran.shape), dtype=dt, device=dev)
    xs = x.detach()
    if not _is_pytorch(dom):
        xs = xs.cpu().numpy()
    for i in range(x.shape[0]):
        y = op(dom.element(xs[i]))
        out[i] = as_tensor(y, device=dev)
    return out
