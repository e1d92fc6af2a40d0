"""Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

The generator is any decoder ``(B, latent_dim) -> (B, 1, H, W)``; the
critic any module ``(B, 1, H, W) -> (B, 1)`` (no batch normalisation: the
penalty is per sample). `WGANGP` holds both and gives the two losses; the
training loop alternates ``n_critic`` critic steps with one generator step.
"""
import torch
from torch import nn

__all__ = ('WGANGP', 'ConvCritic', 'gradient_penalty')


def gradient_penalty(critic, real, fake):
    """``E[(||grad_x critic(x_hat)|| - 1)^2]`` on random interpolates.

    Examples
    --------
    >>> critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    >>> gp = gradient_penalty(critic, torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2))
    >>> bool(gp >= 0)
    True
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1),
                     dtype=real.dtype, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat,
                                  create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


class ConvCritic(nn.Module):
    """Strided-convolution critic with layer normalisation, ``-> (B, 1)``.

    Examples
    --------
    >>> ConvCritic(size=28)(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 1])
    """

    def __init__(self, size=64, width=64):
        super().__init__()
        from odl_genprior.generators.decoders import ConvEncoder
        self.net = ConvEncoder(out_dim=1, size=size, width=width, norm=False)

    def forward(self, x):
        return self.net(x)


class WGANGP(nn.Module):
    """A generator and a critic with the WGAN-GP losses.

    Examples
    --------
    >>> from odl_genprior.generators.decoders import ConvDecoder
    >>> gan = WGANGP(ConvDecoder(8, 28, 16), ConvCritic(28, 16), latent_dim=8)
    >>> real = torch.rand(4, 1, 28, 28)
    >>> bool(torch.isfinite(gan.critic_loss(real))), gan.generator_loss(4).ndim
    (True, 0)
    """

    def __init__(self, generator, critic, latent_dim, gp_weight=10.0,
                 n_critic=5):
        super().__init__()
        self.generator, self.critic = generator, critic
        self.latent_dim = int(latent_dim)
        self.gp_weight = float(gp_weight)
        self.n_critic = int(n_critic)

    def _latent(self, n, like):
        return torch.randn(n, self.latent_dim, dtype=like.dtype,
                           device=like.device)

    def critic_loss(self, real):
        """``E[c(fake)] - E[c(real)] + gp_weight * GP`` (generator frozen)."""
        with torch.no_grad():
            fake = self.generator(self._latent(real.shape[0], real))
        loss = self.critic(fake).mean() - self.critic(real).mean()
        return loss + self.gp_weight * gradient_penalty(self.critic, real,
                                                        fake)

    def generator_loss(self, n):
        """``-E[c(G(z))]`` over ``n`` latent samples."""
        p = next(self.generator.parameters())
        return -self.critic(self.generator(self._latent(n, p))).mean()

    def wasserstein_estimate(self, real):
        """``E[c(real)] - E[c(fake)]``: the critic's distance estimate."""
        with torch.no_grad():
            fake = self.generator(self._latent(real.shape[0], real))
            return (self.critic(real).mean() - self.critic(fake).mean()).item()
