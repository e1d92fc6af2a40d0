"""Forward problems (operator, noisy data, ground truth) and benchmark
protocols: `forward` (CT, compressed sensing, deblurring, inpainting,
denoising, phase retrieval), `ellipse_ct` (DIVal's ellipses protocol) and
`htc2022` (the measured HTC2022 data)."""
from odl_genprior.problems import forward as _forward
from odl_genprior.problems.forward import *  # noqa: F401,F403

__all__ = _forward.__all__
