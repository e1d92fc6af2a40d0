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
from odl_genprior.recon.symmetrized import SymmetryAveraged
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
           'ScoreProjection', 'LimitedAngleCT', 'SymmetryAveraged')


class MethodEntry(typing.NamedTuple):
    """One method of the registry: its class, its docs page, whether
    ``odl-genprior reconstruct`` runs it on its problems, the line its
    ``--help`` gives, and the trained model it reads there (``'prior'``: a
    generator or score model, ``--prior``; ``'model'``: a trained network,
    ``--model``; None)."""

    cls: type
    page: str
    cli: bool = True
    help: str = ''
    reads: typing.Optional[str] = None


#: Every reconstruction method by its command-line name. The CLI's
#: ``reconstruct`` choices and the method table of docs/reconstruction.md
#: come from here (tests/test_reconstructor_contract.py checks both).
METHODS = {
    'fbp': MethodEntry(FBP, 'reconstruction.md', help=(
        'filtered back-projection (ray-transform problems)')),
    'tv': MethodEntry(TV, 'reconstruction.md', help=(
        "total-variation regularisation by ODL's PDHG")),
    'tikhonov': MethodEntry(Tikhonov, 'baselines.md', help=(
        "Tikhonov regularisation by ODL's conjugate gradient")),
    'lasso': MethodEntry(Lasso, 'baselines.md', help=(
        "L1 sparsity in the pixel basis by ODL's proximal gradient")),
    'wavelet-l1': MethodEntry(WaveletL1, 'baselines.md', help=(
        "wavelet sparsity (analysis L1) by ODL's PDHG")),
    'latent-hard': MethodEntry(LatentHard, 'latent.md', reads='prior', help=(
        'in the range of a generator (Bora et al. 2017); needs --prior')),
    'latent-soft': MethodEntry(LatentSoft, 'latent.md', reads='prior', help=(
        'a free image near the range of a generator (Duff et al. 2022); '
        'needs --prior')),
    'latent-sparse': MethodEntry(
        LatentSparseDeviation, 'latent.md', reads='prior', help=(
            'generator plus a sparse deviation (Dhar et al. 2018); needs '
            '--prior')),
    'learned': MethodEntry(LearnedReconstructor, 'unrolled.md', reads='model',
                           help='a trained unrolled network on test samples '
                                'of its benchmark; needs --model'),
    'dip': MethodEntry(DeepImagePrior, 'dip.md', help=(
        "deep image prior: fit a network's parameters to the data")),
    'learned-svd': MethodEntry(LearnedSVD, 'learned_svd.md', reads='model',
                               help='a trained learned SVD (Boink and '
                                    'Brune); needs --model'),
    'dps': MethodEntry(DiffusionPosteriorSampling, 'diffusion.md',
                       reads='prior', help='diffusion posterior sampling '
                                           'with a score model (--prior)'),
    'score-projection': MethodEntry(
        ScoreProjection, 'diffusion.md', reads='prior', help=(
            "score sampling with Song et al.'s data projection (--prior)")),
    'generative-phase-retrieval': MethodEntry(GenerativePhaseRetrieval,
                                              'phase_retrieval.md', False),
    'wirtinger-flow': MethodEntry(WirtingerFlow, 'phase_retrieval.md', False),
    'lifted-bregman': MethodEntry(LiftedBregmanInversion,
                                  'activations_bregman.md', False),
    'network-least-squares': MethodEntry(NetworkLeastSquares,
                                         'activations_bregman.md', False),
    'multilayer-bregman': MethodEntry(MultilayerBregmanInversion,
                                      'activations_bregman.md', False),
    # A wrapper of another method; on the CLI: ``learned --symmetrize``.
    'symmetry-averaged': MethodEntry(SymmetryAveraged,
                                     'symmetry_averaging.md', False),
    # Its command is ``odl-genprior htc2022 FILE.mat`` (HTC2022 files).
    'limited-angle': MethodEntry(LimitedAngleCT, 'htc2022.md', False),
}
