"""Generators: torch modules from a latent space to images or signals.

Each is a ``torch.nn.Module``; through `odl_genprior.TorchOperator` it is an
ODL operator from the latent space to an image (or 1D signal) space.
"""
from odl_genprior.generators.autoencoders import VAE, Autoencoder, gaussian_kl
from odl_genprior.generators.cgnn import (CGNN, injectivity_certificate,
                                          render, stability_constant)
from odl_genprior.generators.decoders import (ConvDecoder, ConvEncoder,
                                              MLPDecoder, MLPEncoder)
from odl_genprior.generators.signals1d import (CGNNDecoder, ConvDecoder1d,
                                               ConvEncoder1d, GaussianBlur1d)
from odl_genprior.generators.wgan import WGANGP, ConvCritic, gradient_penalty

__all__ = ('CGNN', 'injectivity_certificate', 'render', 'stability_constant',
           'VAE', 'Autoencoder', 'gaussian_kl', 'ConvDecoder', 'ConvEncoder',
           'MLPDecoder', 'MLPEncoder', 'WGANGP', 'ConvCritic',
           'gradient_penalty', 'CGNNDecoder', 'ConvDecoder1d', 'ConvEncoder1d',
           'GaussianBlur1d')

# Last: recipes builds on the modules above (and on the training loop).
from odl_genprior.generators.recipes import load_run  # noqa: E402

__all__ += ('load_run',)
