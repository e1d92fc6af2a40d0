"""Reconstruction by a trained learned SVD (Boink and Brune):
`LearnedSVD` runs ``x = D_x(M(E_y(y)))`` under the reconstruction contract.
The network, its losses, training and loading are the model family
`odl_genprior.models.learned_svd`.
"""
from pathlib import Path

import torch

from odl_genprior.bridge import TorchOperator, as_element, as_tensor
from odl_genprior.models.learned_svd import (LearnedSVDNet, check_operator,
                                             load_learned_svd)
from odl_genprior.recon.base import Reconstructor

__all__ = ('LearnedSVD',)


class LearnedSVD(Reconstructor):
    """Reconstruction by a trained learned SVD: ``x = D_x(M(E_y(y)))``.

    One forward pass of the network (no iterations, so no progress bar).
    The problem's operator must be the one the model was trained for: the
    shapes are checked (a mismatch is an error naming both) and, when the
    model records it, the geometry.

    Parameters
    ----------
    model : LearnedSVDNet or str or Path
        A trained model or the run folder of `train_learned_svd`.
    device : str
        Where the network runs.
    check_geometry : bool
        Also compare the operator's geometry with the recorded one (shapes
        are always compared).

    Examples
    --------
    >>> from odl_genprior import problems
    >>> net = LearnedSVDNet((16, 16), (4, 25), latent_dim=4, hidden=())
    >>> p = problems.ct(size=16, num_angles=4, seed=0)
    >>> LearnedSVD(net)(p) in p.space
    True
    >>> LearnedSVD(net)(problems.ct(size=16, num_angles=6, seed=0))
    Traceback (most recent call last):
    ...
    ValueError: LearnedSVD: the model was trained for data of shape (4, 25) but the operator's range has shape (6, 25)
    """

    name = 'LearnedSVD'

    def __init__(self, model, device='cpu', check_geometry=True):
        if isinstance(model, (str, Path)):
            model = load_learned_svd(model, device=device)
        if not isinstance(model, LearnedSVDNet):
            raise TypeError(f'model must be a LearnedSVDNet or a run folder, '
                            f'got {type(model).__name__}')
        self.model = model.to(device).eval()
        self.device = str(device)
        self.check_geometry = bool(check_geometry)

    def check(self, operator):
        """Raise ``ValueError`` if ``operator`` is not the trained one."""
        check_operator(self.model, operator, self.name,
                       geometry=self.check_geometry)

    def as_operator(self, operator):
        """The learned inverse as an ODL operator ``A.range -> A.domain``.

        A nonlinear `TorchOperator` (derivative and its adjoint by
        autograd), for composing with ODL, e.g. as a starting point.
        """
        self.check(operator)
        return TorchOperator(self.model, operator.range, operator.domain,
                             in_shape=(1,) + tuple(operator.range.shape))

    def _reconstruct(self, problem, progress):
        self.check(problem.operator)
        y = as_tensor(problem.data, device=self.device, dtype=torch.float32)
        with torch.no_grad():
            x = self.model(y[None])[0]
        return as_element(x, problem.space)
