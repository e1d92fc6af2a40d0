"""The one training loop (`loop`), its run folders (`runs`), seeding
(`seeding`) and data parallelism (`distributed`); the public names are
re-exported here."""
from odl_genprior.training import loop, runs, seeding
from odl_genprior.training.loop import *  # noqa: F401,F403
from odl_genprior.training.runs import *  # noqa: F401,F403
from odl_genprior.training.seeding import *  # noqa: F401,F403

__all__ = loop.__all__ + runs.__all__ + seeding.__all__
