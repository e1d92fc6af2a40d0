"""Autoencoder and variational autoencoder around any encoder/decoder pair.

The decoder is the generator: ``TorchOperator(vae.decoder, latent_space,
image_space)`` is the ODL operator used for reconstruction.
"""
import math

import torch
from torch import nn

__all__ = ('Autoencoder', 'VAE', 'gaussian_kl')


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, summed over dims.

    Examples
    --------
    >>> gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).tolist()
    [0.0, 0.0]
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def _reconstruction_error(x_hat, x, likelihood):
    if likelihood == 'bernoulli':
        err = nn.functional.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6),
                                                 x, reduction='none')
    elif likelihood == 'gaussian':
        err = (x_hat - x).pow(2)
    else:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', "
                         f'got {likelihood!r}')
    return err.flatten(1).sum(dim=1)


class Autoencoder(nn.Module):
    """Plain autoencoder ``x -> decoder(encoder(x))``.

    Examples
    --------
    >>> from odl_genprior.generators.decoders import MLPDecoder, MLPEncoder
    >>> ae = Autoencoder(MLPEncoder(8, (4, 4), (16,)), MLPDecoder(8, (4, 4), (16,)))
    >>> x = torch.rand(5, 1, 4, 4)
    >>> ae(x).shape, ae.loss(x).ndim
    (torch.Size([5, 1, 4, 4]), 0)
    """

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def loss(self, x):
        """Mean squared reconstruction error per sample (summed over pixels)."""
        return _reconstruction_error(self(x), x, 'gaussian').mean()


class VAE(nn.Module):
    """Variational autoencoder (Kingma and Welling) with Gaussian posterior.

    The encoder returns ``2 * latent_dim`` numbers (mean, log-variance);
    the decoder maps ``latent_dim`` numbers to an image. The loss is the
    negative ELBO per sample: reconstruction error (Bernoulli
    cross-entropy for images in [0, 1], or squared error) plus ``beta``
    times the KL divergence to N(0, I).

    Examples
    --------
    >>> from odl_genprior.generators.decoders import MLPDecoder, MLPEncoder
    >>> vae = VAE(MLPEncoder(6, (4, 4), (16,)), MLPDecoder(3, (4, 4), (16,)), 3)
    >>> x = torch.rand(5, 1, 4, 4)
    >>> x_hat, mu, logvar = vae(x)
    >>> x_hat.shape, mu.shape, bool(vae.loss(x) > 0)
    (torch.Size([5, 1, 4, 4]), torch.Size([5, 3]), True)
    """

    def __init__(self, encoder, decoder, latent_dim, likelihood='bernoulli',
                 beta=1.0):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.beta = float(beta)
        if likelihood not in ('bernoulli', 'gaussian'):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', "
                             f'got {likelihood!r}')

    def encode(self, x):
        """Posterior mean and log-variance, each ``(B, latent_dim)``."""
        h = self.encoder(x)
        if h.shape[-1] != 2 * self.latent_dim:
            raise ValueError(f'encoder gives {h.shape[-1]} numbers per sample;'
                             f' a VAE with latent_dim={self.latent_dim} needs '
                             f'{2 * self.latent_dim} (mean and log-variance)')
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0)

    def forward(self, x):
        mu, logvar = self.encode(x)
        if self.training:
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        else:
            z = mu
        return self.decoder(z), mu, logvar

    def loss(self, x):
        """Negative ELBO per sample (nats), averaged over the batch."""
        x_hat, mu, logvar = self(x)
        rec = _reconstruction_error(x_hat, x, self.likelihood)
        return (rec + self.beta * gaussian_kl(mu, logvar)).mean()

    def sample(self, n, generator=None):
        """``n`` images decoded from latent codes drawn from N(0, I)."""
        p = next(self.decoder.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator,
                        dtype=p.dtype).to(p.device)
        return self.decoder(z)

    def log_likelihood_bound(self, x):
        """The ELBO per sample in bits per dimension (lower is better)."""
        with torch.no_grad():
            x_hat, mu, logvar = self(x)
            nelbo = (_reconstruction_error(x_hat, x, self.likelihood)
                     + gaussian_kl(mu, logvar))
        return nelbo / (x[0].numel() * math.log(2.0))
