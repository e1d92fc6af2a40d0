"""Reconstruction methods, all under one contract (`Reconstructor`)."""
from odl_genprior.recon.base import Reconstructor
from odl_genprior.recon.bregman_inversion import (LiftedBregmanInversion,
                                                  NetworkLeastSquares)
from odl_genprior.recon.classical import (FBP, TV, Lasso, Tikhonov,
                                          WaveletL1)
from odl_genprior.recon.latent import (LatentHard, LatentResult, LatentSoft,
                                       LatentSparseDeviation)
from odl_genprior.recon.diffusion import (DiffusionPosteriorSampling,
                                          ScoreProjection)
from odl_genprior.recon.dip import DeepImagePrior
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.recon.learned_svd import LearnedSVD
from odl_genprior.recon.phase_retrieval import (GenerativePhaseRetrieval,
                                                WirtingerFlow,
                                                relative_error_up_to_sign)

__all__ = ('Reconstructor', 'FBP', 'TV', 'Tikhonov', 'Lasso', 'WaveletL1',
           'LatentHard', 'LatentSparseDeviation', 'LatentSoft',
           'LatentResult', 'GenerativePhaseRetrieval', 'WirtingerFlow',
           'relative_error_up_to_sign', 'LiftedBregmanInversion',
           'NetworkLeastSquares', 'DeepImagePrior', 'LearnedSVD',
           'LearnedReconstructor', 'DiffusionPosteriorSampling',
           'ScoreProjection')
