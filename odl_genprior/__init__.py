"""odl_genprior: learned models as first-class ODL operators and functionals.

``import odl_genprior`` also installs a small, version-guarded speed fix for
ODL 1.0 on ``impl='pytorch'`` spaces (see `odl_genprior._compat.odl_fixes`).

Layers, from the ground up: `bridge`, `metrics`, `training`; `problems`,
`data`; the model families `generators`, `nn`, `bregman`, `diffusion`;
`recon` (reconstruction methods); `cli`. Nothing imports upwards.
"""
from odl_genprior._compat import odl_fixes as _odl_fixes

_odl_fixes.apply()

from odl_genprior.bridge import (  # noqa: E402
    OperatorLayer, TorchOperator, as_element, as_tensor, to_numpy)
from odl_genprior import bregman, metrics, problems  # noqa: E402
from odl_genprior.bregman import activations  # noqa: E402

__version__ = '0.1.0'

__all__ = ('TorchOperator', 'OperatorLayer', 'as_tensor', 'as_element',
           'to_numpy', 'activations', 'bregman', 'metrics', 'problems',
           '__version__')
