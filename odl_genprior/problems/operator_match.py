"""What a forward operator is, field by field, and how two operators differ.

A trained network carries the operator it was trained with; before it runs
on a problem, `operator_differences` lists in words where the problem's
operator is another one (grid, angles, detector, beam geometry, noise is
not the operator's), so that a mismatch is refused by name instead of
giving a silent wrong image.
"""
import numpy as np

__all__ = ('operator_summary', 'operator_differences')


def _interval(space):
    lo, hi = np.asarray(space.min_pt, float), np.asarray(space.max_pt, float)
    return ' x '.join(f'[{a:g}, {b:g}]' for a, b in zip(lo, hi))


def operator_summary(op):
    """The fields that fix a linear forward operator, as readable strings.

    Type, domain grid (extent and shape), range shape, and for a ray
    transform its beam geometry: angles (count and span in degrees),
    detector (extent and pixels) and source/detector radii.

    Examples
    --------
    >>> from odl_genprior.problems.forward import image_space, ray_transform
    >>> s = operator_summary(ray_transform(image_space(32), 10))
    >>> s['angles']
    '10 angles over [0, 180] degrees'
    >>> s['domain']
    '[-1, 1] x [-1, 1] on 32x32 pixels'
    """
    dom, ran = op.domain, op.range
    out = {'type': type(op).__name__}
    if hasattr(dom, 'min_pt'):
        out['domain'] = (f'{_interval(dom)} on '
                         f'{"x".join(map(str, dom.shape))} pixels')
    else:
        out['domain'] = f'{type(dom).__name__} of shape {dom.shape}'
    out['range shape'] = 'x'.join(map(str, ran.shape))
    geom = getattr(op, 'geometry', None)
    if geom is not None and hasattr(geom, 'angles'):
        out['geometry'] = type(geom).__name__
        # the interval the angles sample (not their cell midpoints)
        part = geom.motion_partition
        lo, hi = np.rad2deg([float(part.min_pt[0]), float(part.max_pt[0])])
        out['angles'] = (f'{part.size} angles over [{lo:.4g}, {hi:.4g}] '
                         'degrees')
        det = geom.det_partition
        out['detector'] = (f'{_interval(det)} on '
                           f'{"x".join(map(str, det.shape))} pixels')
        for name in ('src_radius', 'det_radius'):
            r = getattr(geom, name, None)
            if r is not None:
                out[name.replace('_', ' ')] = f'{float(r):g}'
    return out


def operator_differences(trained, given):
    """``['angles: 30 angles over [0, 174] degrees (trained) against ...']``
    for every field of `operator_summary` that differs; empty if none.

    Fields are compared as strings (4 significant digits): a rebuilt
    operator of the same configuration has no difference.

    Examples
    --------
    >>> from odl_genprior.problems.forward import image_space, ray_transform
    >>> A = ray_transform(image_space(32), 10)
    >>> operator_differences(A, ray_transform(image_space(32), 10))
    []
    >>> for line in operator_differences(A, ray_transform(image_space(32), 12)):
    ...     print(line)
    range shape: 10x47 (trained) against 12x47
    angles: 10 angles over [0, 180] degrees (trained) against 12 angles over [0, 180] degrees
    """
    a, b = operator_summary(trained), operator_summary(given)
    return [f'{k}: {a.get(k, "none")} (trained) against {b.get(k, "none")}'
            for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
