"""The one training loop, its run folders and checkpoints (`loop`,
re-exported here)."""
from odl_genprior.training import loop as _loop
from odl_genprior.training.loop import *  # noqa: F401,F403

__all__ = _loop.__all__
