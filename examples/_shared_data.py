"""Where the example scripts look for the project's real data.

An environment variable first, else the ``shared/data`` folder next to the
repository (the layout of the project's machines). The package itself never
looks there: its functions take a directory argument or the variable.
"""
import os
import sys
from pathlib import Path

from odl_genprior import data

SHARED_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def mnist_dir():
    """The MNIST folder: ``$ODL_GENPRIOR_MNIST`` or ``shared/data/mnist``.

    Exits with a message saying where to put the files when neither exists.
    """
    env = os.environ.get(data.MNIST_ENV)
    if env:
        return env
    shared = SHARED_DATA / 'mnist'
    if shared.is_dir():
        return str(shared)
    sys.exit(f'MNIST not found: set {data.MNIST_ENV} to the folder with the '
             'MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...)')
