"""The symmetries of a 2D parallel-beam ray transform.

A pixel permutation ``g`` of the image (a quarter turn, a half turn, a
mirror, a transpose) is a symmetry of a ray transform ``A`` when another
permutation ``T_g`` of the sinogram rows, with some rows reversed, satisfies
``A(g x) = T_g(A x)`` for every image ``x``. For parallel beams with angles
evenly spread over 180 degrees, a detector centred on the rotation axis and
a square image grid centred on it, the mirrors always are; the quarter turns
are when the number of angles is even. `ray_transform_symmetries` finds
them from the geometry and checks each one on a random image.

Used to average a learned reconstruction over the symmetries
(`odl_genprior.recon.SymmetryAveraged`): a network that was not built
equivariant becomes so, and usually better.
"""
import dataclasses

import numpy as np
import torch

__all__ = ('RaySymmetry', 'ray_transform_symmetries')

#: The eight signed permutations of the plane (the dihedral group of the
#: square), as the coordinate maps ``Q`` of ``(g x)(p) = x(Q p)``.
_SQUARE = {
    'identity': ((1, 0), (0, 1)),
    'quarter turn': ((0, 1), (-1, 0)),
    'half turn': ((-1, 0), (0, -1)),
    'three quarter turns': ((0, -1), (1, 0)),
    'mirror 0': ((-1, 0), (0, 1)),
    'mirror 1': ((1, 0), (0, -1)),
    'transpose': ((0, 1), (1, 0)),
    'anti-transpose': ((0, -1), (-1, 0)),
}


@dataclasses.dataclass(frozen=True)
class RaySymmetry:
    """One symmetry ``A(g x) = T_g(A x)`` of a ray transform ``A``.

    Both maps are permutations (orthogonal), so their inverses are their
    adjoints. They act on the last two axes of torch tensors, so a batch
    goes through at once.

    Attributes
    ----------
    name : str
        ``'identity'``, ``'quarter turn'``, ``'mirror 0'``, ...
    matrix : tuple of tuple of int
        The coordinate map ``Q`` of ``(g x)(p) = x(Q p)``.
    rows : tuple of int
        Row ``k`` of ``T_g y`` is row ``rows[k]`` of ``y``...
    reversed_rows : tuple of bool
        ... read backwards along the detector where ``reversed_rows[k]``.

    Examples
    --------
    >>> s = RaySymmetry('mirror 0', ((-1, 0), (0, 1)), (1, 0), (True, True))
    >>> x = torch.arange(4.).reshape(2, 2)
    >>> s.image(x)
    tensor([[2., 3.],
            [0., 1.]])
    >>> bool((s.image_inverse(s.image(x)) == x).all())
    True
    """

    name: str
    matrix: tuple
    rows: tuple
    reversed_rows: tuple

    def image(self, x):
        """``g x``: the image transform, on the last two axes of ``x``."""
        (a, b), (c, d) = self.matrix
        if a == 0:  # (g x)[i, j] = x[+-j, +-i]
            x = x.transpose(-1, -2)
            a, d = c, b  # the signs of the new axes
        flips = [ax for ax, s in ((-2, a), (-1, d)) if s < 0]
        return x.flip(flips) if flips else x

    def image_inverse(self, x):
        """``g^{-1} x`` (the adjoint of `image`)."""
        q = np.asarray(self.matrix)
        return dataclasses.replace(self, matrix=tuple(map(tuple, q.T))).image(x)

    def data(self, y):
        """``T_g y``: the sinogram transform, on the last two axes of ``y``
        (angles, detector pixels)."""
        rows = torch.as_tensor(self.rows, device=y.device)
        out = y.index_select(-2, rows)
        rev = torch.as_tensor(self.reversed_rows, device=y.device)
        return torch.where(rev[:, None], out.flip(-1), out)

    def data_inverse(self, y):
        """``T_g^{-1} y`` (the adjoint of `data`)."""
        rev = torch.as_tensor(self.reversed_rows, device=y.device)
        y = torch.where(rev[:, None], y.flip(-1), y)
        inverse = np.argsort(self.rows)
        return y.index_select(-2, torch.as_tensor(inverse, device=y.device))


def ray_transform_symmetries(operator, tol=1e-3, seed=0):
    """The pixel permutations that a 2D parallel-beam ray transform commutes
    with, each with its sinogram permutation.

    Parameters
    ----------
    operator : odl.applications.tomo.RayTransform
        On a square grid centred on the rotation axis (equal cell sides),
        with a 2D parallel-beam geometry whose detector partition is
        symmetric about 0.
    tol : float, optional
        Each symmetry is checked on a random image: ``||A(g x) - T_g(A x)||``
        must be at most ``tol ||A x||`` (the discretisation is exactly
        symmetric; float32 rounding is about 1e-4).
    seed : int, optional
        Of that random image.

    Returns
    -------
    symmetries : tuple of RaySymmetry
        The identity first; between 1 and 8 of them.

    Raises
    ------
    ValueError
        Naming what rules the operator out (its type, geometry, grid or
        detector), or a symmetry that the check refutes.

    Examples
    --------
    >>> from odl_genprior.problems.ellipse_ct import EllipseCT
    >>> A = EllipseCT(size=16, num_angles=8).operator
    >>> [s.name for s in ray_transform_symmetries(A)][:3]
    ['identity', 'quarter turn', 'half turn']
    >>> len(ray_transform_symmetries(EllipseCT(size=16, num_angles=7).operator))
    4
    """
    from odl.applications.tomo.geometry.parallel import Parallel2dGeometry

    from odl_genprior.bridge import as_element, as_tensor

    geo = getattr(operator, 'geometry', None)
    if not isinstance(geo, Parallel2dGeometry):
        raise ValueError(f'ray_transform_symmetries: needs a ray transform '
                         f'with a 2D parallel-beam geometry, got '
                         f'{type(operator).__name__} with geometry '
                         f'{type(geo).__name__}')
    space = operator.domain
    lo, hi = np.asarray(space.min_pt), np.asarray(space.max_pt)
    if (len(set(space.shape)) != 1 or not np.allclose(lo, -hi)
            or not np.allclose(hi, hi[0])):
        raise ValueError(f'ray_transform_symmetries: needs a square image '
                         f'grid centred on the rotation axis, got {space!r}')
    det = geo.det_partition
    if (not det.is_uniform or not np.allclose(det.min_pt, -det.max_pt)
            or np.any(np.asarray(geo.translation) != 0)):
        raise ValueError(f'ray_transform_symmetries: needs a detector '
                         f'centred on the rotation axis and no translation, '
                         f'got detector {det!r}, translation '
                         f'{geo.translation}')
    angles = np.asarray(geo.angles)
    axes = np.asarray(geo.det_axis(angles)).reshape(len(angles), 2)
    # a line at angle i, offset s, in the image g x is the line at angle
    # rows[i], offset +-s, in x: the detector axis u_i maps to +-u_rows[i]
    found = []
    for name, q in _SQUARE.items():
        moved = axes @ np.asarray(q, float).T
        dots = moved @ axes.T  # (n, n): +-1 where the axes are parallel
        rows = np.argmax(np.abs(dots), axis=1)
        best = dots[np.arange(len(angles)), rows]
        if not np.allclose(np.abs(best), 1, atol=1e-6):
            continue  # some line has no partner among the angles
        found.append(RaySymmetry(name, q, tuple(int(r) for r in rows),
                                 tuple(bool(b < 0) for b in best)))

    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.random(space.shape).astype('float32'))
    ax = as_tensor(operator(as_element(x, space))).float().cpu()
    for s in found:
        agx = as_tensor(operator(as_element(s.image(x).contiguous(), space))
                        ).float().cpu()
        err = float(torch.linalg.norm(agx - s.data(ax))
                    / torch.linalg.norm(ax))
        if err > tol:
            raise ValueError(f'ray_transform_symmetries: the {s.name} of '
                             f'{space!r} does not commute with {operator!r} '
                             f'(relative error {err:.2g} > tol {tol:g})')
    return tuple(found)
