"""``python -m odl_genprior`` is the ``odl-genprior`` command."""
import sys

from odl_genprior.cli import main

sys.exit(main())
