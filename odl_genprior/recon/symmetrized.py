"""Average a method's reconstructions over the symmetries of the ray
transform.

For a symmetry ``A g = T_g A`` of the operator
(`odl_genprior.problems.ray_transform_symmetries`), ``g^{-1} R(T_g y)`` is
as good a reconstruction as ``R(y)`` when the images' distribution is
invariant under ``g`` (ellipse phantoms are: random centres and
orientations). Their mean over the group ``G``,

    ``R_G(y) = (1 / #G) sum_g g^{-1} R(T_g y)``,

is exactly equivariant, ``R_G(T_g y) = g R_G(y)``, and never worse than
``R`` in expected mean square error: for every image, its squared error is
the terms' mean squared error less their mean squared distance from
``R_G(y)``, and each term has ``R``'s expected error. This is the test-time
form of group averaging (deepinv's ``EquivariantDenoiser`` does
it for denoisers); it costs ``#G`` reconstructions, one batch for a
learned network.
"""
import torch

from odl_genprior.bridge import as_element, as_tensor, space_dtype
from odl_genprior.problems.forward import ForwardProblem
from odl_genprior.problems.symmetries import ray_transform_symmetries
from odl_genprior.recon.base import Reconstructor, check_batch

__all__ = ('SymmetryAveraged',)


class SymmetryAveraged(Reconstructor):
    """Another method, averaged over the symmetries of the ray transform.

    Parameters
    ----------
    method : Reconstructor
        Any method under the contract; one with ``reconstruct_batch``
        (`LearnedReconstructor`) reconstructs all transformed data in one
        batch.
    symmetries : sequence of RaySymmetry, optional
        Default: all of the problem's operator
        (`odl_genprior.problems.ray_transform_symmetries`, found once per
        operator); an operator that is not a 2D parallel-beam ray transform
        on a centred square grid is refused with the reason.

    Notes
    -----
    ``last_result`` holds ``symmetries`` (their names) and ``spread``: the
    root-mean-square distance of the transformed reconstructions from their
    mean, relative to the mean's norm (0 for an equivariant ``method``).

    Examples
    --------
    >>> from odl_genprior.problems.ellipse_ct import EllipseCT
    >>> from odl_genprior.recon import FBP
    >>> p = EllipseCT(size=32, num_angles=8).problem(0)
    >>> method = SymmetryAveraged(FBP())
    >>> x = method(p, progress=False)
    >>> x in p.space, len(method.last_result.symmetries)
    (True, 8)
    """

    def __init__(self, method, symmetries=None):
        if not isinstance(method, Reconstructor):
            raise TypeError(f'SymmetryAveraged: method must be a '
                            f'Reconstructor, got {type(method).__name__}')
        if symmetries is not None:
            symmetries = tuple(symmetries)
            if not symmetries:
                raise ValueError('SymmetryAveraged: symmetries is empty')
        self.method = method
        self.symmetries = symmetries
        self.name = f'{method.name}, symmetry-averaged'
        self._found = (None, None)  # (operator, its symmetries)
        self._spread = float('nan')
        self._names = ()

    def _symmetries_of(self, operator):
        if self.symmetries is not None:
            n = operator.range.shape[0]
            wrong = [s.name for s in self.symmetries if len(s.rows) != n]
            if wrong:
                raise ValueError(
                    f'{self.name}: symmetries {wrong} permute '
                    f'{len(self.symmetries[0].rows)} sinogram rows, the '
                    f'operator has {n} angles ({operator.range!r})')
            return self.symmetries
        if self._found[0] is not operator:
            self._found = (operator, ray_transform_symmetries(operator))
        return self._found[1]

    def reconstruct_batch(self, operator, y):
        """The averaged reconstructions of a batch ``y`` (a tensor ``(B,
        *operator.range.shape)``), as ``(B, *operator.domain.shape)``; the
        wrapped method's own ``reconstruct_batch`` when it has one.

        Examples
        --------
        >>> from odl_genprior.nn.unrolled import LearnedPrimalDual
        >>> from odl_genprior.problems.ellipse_ct import EllipseCT
        >>> from odl_genprior.recon import LearnedReconstructor
        >>> A = EllipseCT(size=16, num_angles=8).operator
        >>> net = LearnedPrimalDual(A, n_iter=1, hidden_channels=4)
        >>> method = SymmetryAveraged(LearnedReconstructor(net))
        >>> method.reconstruct_batch(A, torch.rand(3, *A.range.shape)).shape
        torch.Size([3, 16, 16])
        """
        return self._average(self.members(operator, y))

    def members(self, operator, y):
        """The terms whose mean `reconstruct_batch` returns: ``g^{-1}
        R(T_g y)`` for each symmetry g, as ``(#G, B, *operator.domain.shape)``;
        the first (the identity) is ``R(y)`` itself.

        Examples
        --------
        >>> from odl_genprior.problems.ellipse_ct import EllipseCT
        >>> from odl_genprior.recon import FBP
        >>> A = EllipseCT(size=16, num_angles=8).operator
        >>> y = torch.rand(2, *A.range.shape)
        >>> SymmetryAveraged(FBP()).members(A, y).shape
        torch.Size([8, 2, 16, 16])
        """
        sym = self._symmetries_of(operator)
        check_batch(self.name, operator, y)
        return self._members(operator, y, sym, float('nan'))

    def _average(self, members):
        mean = members.mean(0)
        self._spread = float(torch.sqrt(((members - mean) ** 2).mean())
                             / torch.sqrt((mean ** 2).mean()).clamp_min(
                                 1e-30))
        return mean

    def _members(self, operator, y, sym, noise_level):
        """``(|G|, B, *domain.shape)``: ``g^{-1} R(T_g y)`` for each g."""
        self._names = tuple(s.name for s in sym)
        batch = getattr(self.method, 'reconstruct_batch', None)
        if batch is not None:
            data = torch.cat([s.data(y) for s in sym])
            x = batch(operator, data).reshape(len(sym), *y.shape[:1],
                                              *operator.domain.shape)
        else:
            x = torch.stack([torch.stack([
                as_tensor(self.method.reconstruct(ForwardProblem(
                    operator, as_element(s.data(yb), operator.range),
                    noise_level=noise_level),
                    progress=False)).to(y.device, y.dtype)
                for yb in y]) for s in sym])
        return torch.stack([s.image_inverse(xs) for s, xs in zip(sym, x)])

    def _reconstruct(self, problem, progress):
        y = as_tensor(problem.data)[None]
        A = problem.operator
        x = self._average(self._members(A, y, self._symmetries_of(A),
                                        problem.noise_level))[0]
        return as_element(x.to(space_dtype(problem.space)), problem.space)

    def _extras(self):
        return {'symmetries': self._names, 'spread': self._spread}
