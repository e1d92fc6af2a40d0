"""Decoders, VAE, autoencoder, WGAN-GP: maths, and as ODL operators."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import TorchOperator
from odl_genprior.generators import (VAE, WGANGP, Autoencoder, ConvCritic,
                                     ConvDecoder, ConvEncoder, MLPDecoder,
                                     MLPEncoder, gaussian_kl,
                                     gradient_penalty)
from odl_genprior.generators.decoders import base_size


@pytest.mark.parametrize('size', [28, 32, 64, 128])
def test_decoder_encoder_shapes(size):
    dec = ConvDecoder(latent_dim=10, size=size, width=32)
    enc = ConvEncoder(out_dim=20, size=size, width=32)
    with torch.no_grad():
        x = dec(torch.randn(2, 10))
    assert x.shape == (2, 1, size, size)
    assert enc(x).shape == (2, 20)
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_base_size_errors():
    with pytest.raises(ValueError, match='301'):
        base_size(301)
    with pytest.raises(ValueError):
        base_size(7)


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(2)
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4, 5), torch.ones(4, 5))
    ref = torch.distributions.kl_divergence(q, p).sum(dim=1)
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-6)


def test_vae_loss_is_negative_elbo():
    torch.manual_seed(3)
    vae = VAE(MLPEncoder(8, (4, 4), (16,)), MLPDecoder(4, (4, 4), (16,)), 4,
              likelihood='gaussian').eval()
    x = torch.rand(6, 1, 4, 4)
    x_hat, mu, logvar = vae(x)
    expected = ((x_hat - x) ** 2).flatten(1).sum(1) + gaussian_kl(mu, logvar)
    assert torch.allclose(vae.loss(x), expected.mean())
    # Train mode samples z: the decoded images change between calls.
    vae.train()
    assert not torch.equal(vae(x)[0], vae(x)[0])
    with pytest.raises(ValueError, match='needs 8'):
        VAE(MLPEncoder(5, (4, 4), (16,)), MLPDecoder(4, (4, 4), (16,)),
            4).loss(x)
    with pytest.raises(ValueError, match='likelihood'):
        VAE(MLPEncoder(8, (4, 4)), MLPDecoder(4, (4, 4)), 4, likelihood='l1')


def test_vae_and_autoencoder_learn():
    """A few hundred Adam steps lower the loss on structured data."""
    torch.manual_seed(4)
    t = torch.linspace(0, 1, 4)
    data = torch.stack([torch.outer(torch.sin(3 * t + p), torch.cos(2 * t))
                        for p in torch.rand(64) * 3]).reshape(64, 1, 4, 4)
    data = (data - data.min()) / (data.max() - data.min())
    for model in (VAE(MLPEncoder(4, (4, 4), (32,)),
                      MLPDecoder(2, (4, 4), (32,)), 2),
                  Autoencoder(MLPEncoder(2, (4, 4), (32,)),
                              MLPDecoder(2, (4, 4), (32,)))):
        # The Bernoulli loss cannot go below the data's own entropy.
        floor = 0.0
        if isinstance(model, VAE):
            d = data.clamp(1e-6, 1 - 1e-6)
            floor = -(d * d.log() + (1 - d) * (1 - d).log()).flatten(1).sum(
                1).mean().item()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        first = model.loss(data).item() - floor
        for _ in range(300):
            opt.zero_grad()
            loss = model.loss(data)
            loss.backward()
            opt.step()
        assert model.loss(data).item() - floor < 0.5 * first


def test_gradient_penalty_linear_critic_exact():
    """A linear critic has gradient w everywhere: GP = (||w|| - 1)^2."""
    torch.manual_seed(5)
    lin = torch.nn.Linear(16, 1)
    critic = torch.nn.Sequential(torch.nn.Flatten(), lin)
    gp = gradient_penalty(critic, torch.rand(8, 1, 4, 4),
                          torch.rand(8, 1, 4, 4))
    expected = (lin.weight.norm() - 1) ** 2
    assert torch.allclose(gp, expected, atol=1e-6)


def test_wgan_losses_and_gradients_flow_to_the_right_net():
    torch.manual_seed(6)
    gan = WGANGP(ConvDecoder(8, 28, 16), ConvCritic(28, 16), latent_dim=8)
    real = torch.rand(4, 1, 28, 28)
    gan.critic_loss(real).backward()
    assert all(p.grad is None for p in gan.generator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in gan.critic.parameters())
    gan.zero_grad(set_to_none=True)
    gan.generator_loss(4).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in gan.generator.parameters())
    assert np.isfinite(gan.wasserstein_estimate(real))
