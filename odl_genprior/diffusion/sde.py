"""Forward SDEs of score-based diffusion and the denoising score-matching loss.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon and Poole (ICLR 2021) perturb
data ``x(0) ~ p_0`` by an Ito SDE ``dx = f(x, t) dt + g(t) dw`` on
``t in [0, 1]`` whose marginals ``p_t`` go from the data to a simple prior
``p_1``. With the score ``grad_x log p_t`` known, the reverse-time SDE and
the probability-flow ODE (`odl_genprior.diffusion.samplers`) run the other way.
Both SDEs here have affine drift, so the transition kernel is Gaussian::

    p_t(x_t | x_0) = N(alpha(t) x_0, std(t)^2 I).

* `VESDE` (variance exploding, NCSN++): ``f = 0``,
  ``g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min))`` with
  ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``; ``alpha = 1``,
  ``std(t)^2 = sigma(t)^2 - sigma_min^2`` (the exact variance of the SDE
  started at ``t = 0``); prior ``N(0, sigma_max^2 I)``.
* `VPSDE` (variance preserving, DDPM): ``f = -beta(t) x / 2``,
  ``g = sqrt(beta(t))``, ``beta(t) = beta_min + t (beta_max - beta_min)``;
  ``alpha(t) = exp(-t^2 (beta_max - beta_min) / 4 - t beta_min / 2)``,
  ``std(t)^2 = 1 - alpha(t)^2``; prior ``N(0, I)``.

`dsm_loss` is denoising score matching with Song et al.'s weighting
``lambda(t) = std(t)^2``; `gaussian_score` is the closed-form score of a
Gaussian data distribution, used for exact checks of the samplers.
"""
import abc
import math

import torch

__all__ = ('SDE', 'VESDE', 'VPSDE', 'dsm_loss', 'DSMLoss', 'gaussian_score',
           'tweedie_denoiser')


def _time(t, x):
    """``t`` as a tensor of shape ``(B,)`` on ``x``'s device and dtype."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.numel() == 1:
        t = t.reshape(()).expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f'time must be a scalar or of shape ({x.shape[0]},)'
                         f' (one per sample), got shape {tuple(t.shape)}')
    return t


def _bcast(v, x):
    """Reshape a per-sample ``(B,)`` tensor to broadcast against ``x``."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


class SDE(abc.ABC):
    """Base class: a forward SDE ``dx = f(x, t) dt + g(t) dw`` on ``[0, 1]``.

    Subclasses implement `drift`, `diffusion`, `mean_coeff`,
    `marginal_std` and set ``prior_std``. Times are tensors of shape
    ``(B,)`` (one per sample) or scalars; ``x`` has shape ``(B, ...)``.
    """

    #: Standard deviation of the prior ``p_1 = N(0, prior_std^2 I)``.
    prior_std = 1.0

    @abc.abstractmethod
    def drift(self, x, t):
        """The drift ``f(x, t)``, shaped like ``x``."""

    @abc.abstractmethod
    def diffusion(self, t):
        """The diffusion coefficient ``g(t)``, shape ``(B,)``."""

    @abc.abstractmethod
    def mean_coeff(self, t):
        """``alpha(t)``: ``E[x_t | x_0] = alpha(t) x_0``."""

    @abc.abstractmethod
    def marginal_std(self, t):
        """``std(t)``: the standard deviation of ``x_t`` given ``x_0``."""

    def marginal(self, x0, t):
        """Mean and std of ``p_t(x_t | x_0)``: ``(alpha(t) x0, std(t))``.

        ``std`` is returned broadcastable against ``x0``.
        """
        t = _time(t, x0)
        return (_bcast(self.mean_coeff(t), x0) * x0,
                _bcast(self.marginal_std(t), x0))

    def perturb(self, x0, t, noise):
        """``x_t = alpha(t) x0 + std(t) noise`` (a sample of ``p_t(.|x0)``)."""
        mean, std = self.marginal(x0, t)
        return mean + std * noise

    def prior_sample(self, shape, generator=None, device='cpu',
                     dtype=torch.float32):
        """Draw from the prior ``N(0, prior_std^2 I)`` of the given shape.

        Examples
        --------
        >>> g = torch.Generator().manual_seed(0)
        >>> VPSDE().prior_sample((2, 3), generator=g).shape
        torch.Size([2, 3])
        """
        z = torch.randn(shape, generator=generator, device=device,
                        dtype=dtype)
        return self.prior_std * z

    def reverse_drift(self, x, t, score):
        """Drift ``f - g^2 score`` of the reverse-time SDE (``score`` given)."""
        t = _time(t, x)
        return self.drift(x, t) - _bcast(self.diffusion(t) ** 2, x) * score

    def ode_drift(self, x, t, score):
        """Drift of the probability-flow ODE, ``f - g^2 score / 2``."""
        t = _time(t, x)
        return self.drift(x, t) - 0.5 * _bcast(self.diffusion(t) ** 2,
                                               x) * score


class VESDE(SDE):
    """Variance-exploding SDE: ``dx = sigma(t) sqrt(2 log(smax/smin)) dw``.

    Parameters
    ----------
    sigma_min, sigma_max : float
        ``0 < sigma_min < sigma_max``. ``sigma_max`` should be about the
        largest distance between two training images (Song & Ermon 2020).

    Examples
    --------
    >>> sde = VESDE(0.01, 50.0)
    >>> round(float(sde.marginal_std(torch.tensor([1.0]))), 3)
    50.0
    >>> float(sde.mean_coeff(torch.tensor([0.5])))
    1.0
    """

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f'need 0 < sigma_min < sigma_max, got '
                             f'sigma_min={sigma_min}, sigma_max={sigma_max}')
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.prior_std = self.sigma_max

    def sigma(self, t):
        """``sigma(t) = sigma_min (sigma_max / sigma_min)^t``."""
        return self.sigma_min * torch.exp(torch.as_tensor(t) * self._log_ratio)

    def drift(self, x, t):
        return torch.zeros_like(x)

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def mean_coeff(self, t):
        return torch.ones_like(torch.as_tensor(t))

    def marginal_std(self, t):
        s = self.sigma(t)
        return torch.sqrt(torch.clamp(s ** 2 - self.sigma_min ** 2, min=0))

    def __repr__(self):
        return f'VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})'


class VPSDE(SDE):
    """Variance-preserving SDE: ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``.

    Parameters
    ----------
    beta_min, beta_max : float
        ``0 <= beta_min < beta_max``; ``beta(t)`` is linear in ``t``.

    Examples
    --------
    >>> sde = VPSDE(0.1, 20.0)
    >>> t = torch.tensor([0.3])
    >>> bool(torch.allclose(sde.mean_coeff(t) ** 2 + sde.marginal_std(t) ** 2,
    ...                     torch.ones(1)))
    True
    """

    def __init__(self, beta_min=0.1, beta_max=20.0):
        if not 0 <= beta_min < beta_max:
            raise ValueError(f'need 0 <= beta_min < beta_max, got '
                             f'beta_min={beta_min}, beta_max={beta_max}')
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.prior_std = 1.0

    def beta(self, t):
        """``beta(t) = beta_min + t (beta_max - beta_min)``."""
        return self.beta_min + torch.as_tensor(t) * (self.beta_max
                                                     - self.beta_min)

    def drift(self, x, t):
        return -0.5 * _bcast(self.beta(_time(t, x)), x) * x

    def diffusion(self, t):
        return torch.sqrt(self.beta(t))

    def _log_mean_coeff(self, t):
        t = torch.as_tensor(t)
        return (-0.25 * t ** 2 * (self.beta_max - self.beta_min)
                - 0.5 * t * self.beta_min)

    def mean_coeff(self, t):
        return torch.exp(self._log_mean_coeff(t))

    def marginal_std(self, t):
        # -expm1(2 log alpha) = 1 - alpha^2 without cancellation at small t
        return torch.sqrt(-torch.expm1(2 * self._log_mean_coeff(t)))

    def __repr__(self):
        return f'VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max})'


def dsm_loss(model, sde, x0, eps=1e-5, generator=None):
    """Denoising score-matching loss with weighting ``lambda(t) = std(t)^2``.

    For ``t ~ U(eps, 1)``, ``z ~ N(0, I)`` and ``x_t = alpha(t) x0 +
    std(t) z`` the target score is ``-z / std(t)``; the loss is the batch
    mean of ``std(t)^2 ||s(x_t, t) + z / std(t)||^2 = ||std(t) s(x_t, t) +
    z||^2``, summed over pixels (Song et al. 2021, eq. 7).

    Parameters
    ----------
    model : callable
        ``model(x_t, t)`` with ``t`` of shape ``(B,)``, returns a tensor
        shaped like ``x_t``.
    sde : SDE
    x0 : torch.Tensor
        Batch of clean data, shape ``(B, ...)``.
    eps : float
        Smallest time drawn (the score is not learned below it).
    generator : torch.Generator, optional
        For ``t`` and ``z``; default the global torch RNG (which
        `odl_genprior.training.train` seeds).

    Returns
    -------
    torch.Tensor
        A scalar.

    Examples
    --------
    A zero model has loss ``E||z||^2`` (the dimension); the exact score
    of ``N(0, I)`` data does better (its loss is the irreducible part):

    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(4000, 2, generator=g)
    >>> zero = lambda x, t: torch.zeros_like(x)
    >>> round(float(dsm_loss(zero, VPSDE(), x0, generator=g)), 1)
    2.0
    >>> exact = gaussian_score(VPSDE(), torch.zeros(2), torch.ones(2))
    >>> float(dsm_loss(exact, VPSDE(), x0, generator=g)) < 1.0
    True
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim < 1:
        raise TypeError(f'x0 must be a batch tensor (B, ...), got '
                        f'{type(x0).__name__}')
    if not 0 < eps < 1:
        raise ValueError(f'eps must lie in (0, 1), got {eps}')
    b = x0.shape[0]
    t = eps + (1 - eps) * torch.rand(b, generator=generator,
                                     device=x0.device, dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=generator, device=x0.device,
                    dtype=x0.dtype)
    mean, std = sde.marginal(x0, t)
    score = model(mean + std * z, t)
    if score.shape != x0.shape:
        raise ValueError(f'the score model returned shape '
                         f'{tuple(score.shape)} for input {tuple(x0.shape)}')
    return (std * score + z).pow(2).reshape(b, -1).sum(1).mean()


class DSMLoss:
    """`dsm_loss` as the ``loss_fn(model, batch)`` of `training.train`.

    A batch that is a tuple or list uses its first entry (the images).

    Parameters
    ----------
    sde : SDE
    eps : float

    Examples
    --------
    >>> loss_fn = DSMLoss(VESDE(0.01, 5.0))
    >>> model = lambda x, t: -x
    >>> loss_fn(model, torch.randn(8, 1, 4, 4)).ndim
    0
    """

    def __init__(self, sde, eps=1e-5):
        if not isinstance(sde, SDE):
            raise TypeError(f'sde must be an odl_genprior.diffusion.sde.SDE, got '
                            f'{type(sde).__name__}')
        self.sde = sde
        self.eps = float(eps)

    def __call__(self, model, batch):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        return dsm_loss(model, self.sde, batch, eps=self.eps)

    def __repr__(self):
        return f'DSMLoss({self.sde!r}, eps={self.eps})'


def gaussian_score(sde, mean, var):
    """The exact score of ``p_t`` for Gaussian data ``N(mean, diag(var))``.

    ``p_t = N(alpha m, alpha^2 diag(var) + std^2 I)``, so ``score(x, t) =
    -(x - alpha m) / (alpha^2 var + std^2)``.

    Parameters
    ----------
    sde : SDE
    mean, var : torch.Tensor or float
        Mean and (diagonal) variance of the data, broadcastable against one
        sample.

    Returns
    -------
    callable
        ``score(x, t)`` for ``x`` of shape ``(B, ...)``.

    Examples
    --------
    >>> s = gaussian_score(VPSDE(), torch.zeros(3), torch.ones(3))
    >>> x = torch.ones(2, 3)
    >>> bool(torch.allclose(s(x, 0.5), -x))
    True
    """
    mean = torch.as_tensor(mean)
    var = torch.as_tensor(var)
    if torch.any(var < 0):
        raise ValueError('var must be non-negative')

    def score(x, t):
        t = _time(t, x)
        a = _bcast(sde.mean_coeff(t), x)
        s = _bcast(sde.marginal_std(t), x)
        m = mean.to(x)
        return -(x - a * m) / (a ** 2 * var.to(x) + s ** 2)

    return score


def tweedie_denoiser(score, sde, x, t):
    """Tweedie's formula: ``E[x_0 | x_t] = (x_t + std^2 score) / alpha``.

    Exact when ``score`` is the exact score of ``p_t``.

    Examples
    --------
    >>> sde = VPSDE()
    >>> s = gaussian_score(sde, torch.zeros(2), torch.zeros(2))  # x0 = 0
    >>> tweedie_denoiser(s, sde, torch.ones(1, 2), 0.5).abs().max() < 1e-6
    tensor(True)
    """
    t = _time(t, x)
    a = _bcast(sde.mean_coeff(t), x)
    s = _bcast(sde.marginal_std(t), x)
    return (x + s ** 2 * score(x, t)) / a
