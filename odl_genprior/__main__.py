"""``python -m odl_genprior`` is the ``odl-genprior`` command."""
import sys

from odl_genprior.cli import main

if __name__ == '__main__':  # not on import (the API reference imports it)
    sys.exit(main())
