"""Forward problems (operator, noisy data, ground truth) and benchmark
protocols: `forward` (CT, compressed sensing, deblurring, inpainting,
denoising, phase retrieval), `protocol` (the protocols' base class and
registry), `ellipse_ct` (the ellipse benchmark and DIVal's ellipses),
`htc2022` (the measured HTC2022 data) and `htc2022_protocol` (its
limited-angle protocol)."""
from odl_genprior.problems import forward as _forward
from odl_genprior.problems.forward import *  # noqa: F401,F403
# The protocols register themselves (problems.protocol.PROTOCOLS).
from odl_genprior.problems import ellipse_ct as _ellipse_ct  # noqa: F401
from odl_genprior.problems import htc2022_protocol as _htc  # noqa: F401

__all__ = _forward.__all__
