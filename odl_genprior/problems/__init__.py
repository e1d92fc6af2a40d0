"""Forward problems (operator, noisy data, ground truth) and benchmark
protocols: `forward` (CT, compressed sensing, deblurring, inpainting,
denoising, phase retrieval), `protocol` (the protocols' base class and
registry), `ellipse_ct` (the ellipse benchmark and DIVal's ellipses),
`htc2022` (the measured HTC2022 data), `htc2022_protocol` (its
limited-angle protocol) and `symmetries` (the pixel permutations a
parallel-beam ray transform commutes with)."""
from odl_genprior.problems import forward as _forward
from odl_genprior.problems.forward import *  # noqa: F401,F403
from odl_genprior.problems.symmetries import (RaySymmetry,
                                              ray_transform_symmetries)
# The protocols register themselves (problems.protocol.PROTOCOLS).
from odl_genprior.problems import ellipse_ct as _ellipse_ct  # noqa: F401
from odl_genprior.problems import htc2022_protocol as _htc  # noqa: F401

__all__ = _forward.__all__ + ('RaySymmetry', 'ray_transform_symmetries')
