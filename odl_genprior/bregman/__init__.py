"""Proximal activations (`activations`), the Fenchel-Bregman loss
(`loss`, re-exported here), the one lifted network type and objective
(`lifted`), lifted Bregman training (`lifted_training`) and proximal neural
networks (`pnn`)."""
from odl_genprior.bregman import activations  # noqa: F401
from odl_genprior.bregman import loss as _loss
from odl_genprior.bregman.loss import *  # noqa: F401,F403

__all__ = _loss.__all__
