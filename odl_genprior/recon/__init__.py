"""Reconstruction methods, all under one contract (`Reconstructor`)."""
import typing

from odl_genprior.recon.base import Reconstructor, Result
from odl_genprior.recon.bregman_inversion import (LiftedBregmanInversion,
                                                  MultilayerBregmanInversion,
                                                  NetworkLeastSquares)
from odl_genprior.recon.classical import (FBP, TV, Lasso, Tikhonov,
                                          WaveletL1)
from odl_genprior.recon.latent import (LatentHard, LatentResult, LatentSoft,
                                       LatentSparseDeviation)
from odl_genprior.recon.diffusion import (DiffusionPosteriorSampling,
                                          ScoreProjection)
from odl_genprior.recon.dip import DeepImagePrior
from odl_genprior.recon.learned import LearnedReconstructor
from odl_genprior.recon.limited_angle import LimitedAngleCT
from odl_genprior.recon.learned_svd import LearnedSVD
from odl_genprior.recon.phase_retrieval import (GenerativePhaseRetrieval,
                                                WirtingerFlow,
                                                relative_error_up_to_sign)

__all__ = ('Reconstructor', 'Result', 'METHODS', 'MethodEntry', 'FBP', 'TV', 'Tikhonov', 'Lasso', 'WaveletL1',
           'LatentHard', 'LatentSparseDeviation', 'LatentSoft',
           'LatentResult', 'GenerativePhaseRetrieval', 'WirtingerFlow',
           'relative_error_up_to_sign', 'LiftedBregmanInversion',
           'NetworkLeastSquares', 'MultilayerBregmanInversion',
           'DeepImagePrior', 'LearnedSVD',
           'LearnedReconstructor', 'DiffusionPosteriorSampling',
           'ScoreProjection', 'LimitedAngleCT')


class MethodEntry(typing.NamedTuple):
    """One method of the registry: its class, its docs page and whether
    ``odl-genprior reconstruct`` runs it on its problems."""

    cls: type
    page: str
    cli: bool = True


#: Every reconstruction method by its command-line name. The CLI's
#: ``reconstruct`` choices and the method table of docs/reconstruction.md
#: come from here (tests/test_reconstructor_contract.py checks both).
METHODS = {
    'fbp': MethodEntry(FBP, 'reconstruction.md'),
    'tv': MethodEntry(TV, 'reconstruction.md'),
    'tikhonov': MethodEntry(Tikhonov, 'baselines.md'),
    'lasso': MethodEntry(Lasso, 'baselines.md'),
    'wavelet-l1': MethodEntry(WaveletL1, 'baselines.md'),
    'latent-hard': MethodEntry(LatentHard, 'latent.md'),
    'latent-soft': MethodEntry(LatentSoft, 'latent.md'),
    'latent-sparse': MethodEntry(LatentSparseDeviation, 'latent.md'),
    'learned': MethodEntry(LearnedReconstructor, 'unrolled.md'),
    'dip': MethodEntry(DeepImagePrior, 'dip.md'),
    'learned-svd': MethodEntry(LearnedSVD, 'learned_svd.md'),
    'dps': MethodEntry(DiffusionPosteriorSampling, 'diffusion.md'),
    'score-projection': MethodEntry(ScoreProjection, 'diffusion.md'),
    'generative-phase-retrieval': MethodEntry(GenerativePhaseRetrieval,
                                              'phase_retrieval.md', False),
    'wirtinger-flow': MethodEntry(WirtingerFlow, 'phase_retrieval.md', False),
    'lifted-bregman': MethodEntry(LiftedBregmanInversion,
                                  'activations_bregman.md', False),
    'network-least-squares': MethodEntry(NetworkLeastSquares,
                                         'activations_bregman.md', False),
    'multilayer-bregman': MethodEntry(MultilayerBregmanInversion,
                                      'activations_bregman.md', False),
    # Its command is ``odl-genprior htc2022 FILE.mat`` (HTC2022 files).
    'limited-angle': MethodEntry(LimitedAngleCT, 'htc2022.md', False),
}
