"""Reconstruction methods, all under one contract (`Reconstructor`)."""
from odl_genprior.recon.base import Reconstructor
from odl_genprior.recon.classical import FBP, TV

__all__ = ('Reconstructor', 'FBP', 'TV')
