"""Samplers of score-based diffusion models: reverse SDE and probability flow.

All samplers integrate from ``t = 1`` (a draw of the SDE's prior) down to
``t = eps`` on the uniform grid ``t_i = 1 - i (1 - eps) / steps`` and take
a score function ``score(x, t)`` (``x`` of shape ``(B, ...)``, ``t`` of
shape ``(B,)``), so a trained network and a closed-form score
(`odl_genprior.diffusion.sde.gaussian_score`) are used alike. With ``dt = t_{i+1} -
t_i < 0`` (Song et al. 2021):

* `euler_maruyama`: the reverse-time SDE
  ``dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dw_bar``, one step
  ``x <- x + [f - g^2 score] dt + g sqrt(|dt|) z``;
* `predictor_corrector`: at every ``t_i`` first ``n_corrector`` Langevin
  steps ``x <- x + e score + sqrt(2 e) z`` with ``e = 2 (r ||z|| /
  ||score||)^2`` (``r`` the signal-to-noise ratio, norms averaged over the
  batch as in Song's code), then one Euler-Maruyama predictor step;
* `probability_flow`: the ODE ``dx/dt = f(x, t) - g(t)^2 score(x, t) / 2``
  with Euler or Heun (second order) steps; deterministic given ``x(1)``.

The stochastic samplers return the noise-free mean of their last step
(Song's "denoise" step). Every sampler accepts ``hook(x, t) -> x``, called
after each step with the new time (data-consistency projections use it),
a ``generator`` (a ``torch.Generator`` or an int seed) and shows a tqdm bar
when ``progress=True``.
"""
import math

import torch
from tqdm.auto import tqdm

from odl_genprior.diffusion.sde import SDE

__all__ = ('euler_maruyama', 'predictor_corrector', 'probability_flow',
           'time_grid', 'make_generator')


def make_generator(generator, device='cpu'):
    """A ``torch.Generator`` from None (fresh, seeded 0), an int or itself.

    Examples
    --------
    >>> g = make_generator(3)
    >>> torch.equal(torch.randn(2, generator=g),
    ...             torch.randn(2, generator=make_generator(3)))
    True
    """
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:
        generator = 0
    if isinstance(generator, bool) or not isinstance(generator, int) or (
            generator < 0):
        raise ValueError(f'generator must be a torch.Generator or a '
                         f'non-negative int seed, got {generator!r}')
    return torch.Generator(device=device).manual_seed(generator)


def time_grid(steps, eps=1e-3):
    """The ``steps + 1`` times from ``t_0 = 1`` down to ``t_steps = eps``.

    Examples
    --------
    >>> time_grid(2, eps=0.5).tolist()
    [1.0, 0.75, 0.5]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f'steps must be a positive int, got {steps!r}')
    if not 0 < eps < 1:
        raise ValueError(f'eps must lie in (0, 1), got {eps}')
    return torch.linspace(1.0, eps, steps + 1, dtype=torch.float64)


def _start(sde, shape, x_init, generator, device, dtype):
    if not isinstance(sde, SDE):
        raise TypeError(f'sde must be an odl_genprior.diffusion.sde.SDE, got '
                        f'{type(sde).__name__}')
    if x_init is not None:
        x = torch.as_tensor(x_init)
        if shape is not None and tuple(x.shape) != tuple(shape):
            raise ValueError(f'x_init has shape {tuple(x.shape)}, expected '
                             f'{tuple(shape)}')
        x = x.to(device=device or x.device, dtype=dtype or x.dtype).clone()
    else:
        if shape is None:
            raise ValueError('give shape (B, ...) or x_init')
        x = sde.prior_sample(tuple(shape), generator=generator,
                             device=device or 'cpu',
                             dtype=dtype or torch.float32)
    if x.ndim < 1:
        raise ValueError('samples need a leading batch axis: shape (B, ...)')
    return x


def _score(score, x, t):
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    s = score(x, tt)
    if s.shape != x.shape:
        raise ValueError(f'score returned shape {tuple(s.shape)} for samples'
                         f' of shape {tuple(x.shape)}')
    return s, tt


def _bcast(v, x):
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device,
                       dtype=x.dtype)


def _em_step(score, sde, x, t, t_next, generator, last):
    dt = t_next - t
    s, tt = _score(score, x, t)
    x_mean = x + sde.reverse_drift(x, tt, s) * dt
    if last:
        return x_mean
    g = _bcast(sde.diffusion(tt), x)
    return x_mean + g * math.sqrt(-dt) * _noise(x, generator)


def _langevin_step(score, x, t, snr, generator):
    s, _ = _score(score, x, t)
    z = _noise(x, generator)
    b = x.shape[0]
    grad_norm = s.reshape(b, -1).norm(dim=1).mean()
    noise_norm = z.reshape(b, -1).norm(dim=1).mean()
    step = 2 * (snr * noise_norm / grad_norm) ** 2
    return x + step * s + torch.sqrt(2 * step) * z


def _prepare(sde, shape, steps, eps, generator, x_init, device, dtype):
    """Initial samples, the generator that drew them, and the time grid."""
    device = torch.device(device) if device is not None else None
    if x_init is not None and device is None:
        device = torch.as_tensor(x_init).device
    gen = make_generator(generator, device or 'cpu')
    if gen.device.type != (device or torch.device('cpu')).type:
        raise ValueError(f'the generator is on {gen.device} but the samples '
                         f'are on {device or "cpu"}')
    x = _start(sde, shape, x_init, gen, device, dtype)
    return x, gen, time_grid(steps, eps).tolist()


def _loop(step, x, ts, gen, hook, progress, desc):
    steps = len(ts) - 1
    with torch.no_grad():
        for i in tqdm(range(steps), disable=not progress, desc=desc,
                      leave=False):
            x = step(x, ts[i], ts[i + 1], gen, i == steps - 1)
            if hook is not None:
                x = hook(x, ts[i + 1])
    return x


_COMMON = """
    Parameters
    ----------
    score : callable
        ``score(x, t)``, ``x`` of shape ``(B, ...)``, ``t`` of shape
        ``(B,)``; returns a tensor shaped like ``x``. It is called under
        ``torch.no_grad()`` (a score that needs autograd enables it).
    sde : odl_genprior.diffusion.sde.SDE
    shape : tuple of int
        ``(B, ...)``: the number of samples and the shape of one. Ignored
        (may be None) when ``x_init`` is given.
    steps : int
        Number of time steps from 1 to ``eps``.
    eps : float
        Final time (the score is not trusted below it).
    generator : torch.Generator or int, optional
        Source of the prior draw and of all noise (an int is a seed;
        default seed 0), so that a run is reproducible.
    x_init : torch.Tensor, optional
        Samples at ``t = 1`` instead of a prior draw.
    device, dtype : optional
        Of the prior draw (default CPU, float32).
    hook : callable, optional
        ``x = hook(x, t)`` after every step, ``t`` the new time.
    progress : bool
        Show a tqdm bar.
"""


def euler_maruyama(score, sde, shape, steps=500, *, eps=1e-3,
                   generator=None, x_init=None, device=None, dtype=None,
                   hook=None, progress=False):
    """Sample by the Euler-Maruyama scheme of the reverse-time SDE.
    {common}
    Returns
    -------
    torch.Tensor
        The samples, shape ``(B, ...)`` (the mean of the last step).

    Examples
    --------
    Samples of ``N(1, 0.25)`` from its exact perturbed score:

    >>> from odl_genprior.diffusion.sde import VPSDE, gaussian_score
    >>> sde = VPSDE()
    >>> s = gaussian_score(sde, 1.0, 0.25)
    >>> x = euler_maruyama(s, sde, (2000, 1), steps=100, generator=0)
    >>> abs(float(x.mean()) - 1.0) < 0.05, abs(float(x.var()) / 0.25 - 1) < 0.1
    (True, True)
    """
    x, gen, ts = _prepare(sde, shape, steps, eps, generator, x_init, device,
                          dtype)

    def step(x, t, t_next, gen, last):
        return _em_step(score, sde, x, t, t_next, gen, last)

    return _loop(step, x, ts, gen, hook, progress, 'reverse SDE (EM)')


def predictor_corrector(score, sde, shape, steps=500, *, snr=0.16,
                        n_corrector=1, eps=1e-3, generator=None, x_init=None,
                        device=None, dtype=None, hook=None, progress=False):
    """Sample by predictor-corrector: Langevin corrector, EM predictor.
    {common}
    snr : float
        Signal-to-noise ratio ``r`` of the Langevin step size (Song et al.
        use 0.16 for images; smaller is more conservative).
    n_corrector : int
        Langevin steps per time step.

    Returns
    -------
    torch.Tensor
        The samples, shape ``(B, ...)``.

    Examples
    --------
    >>> from odl_genprior.diffusion.sde import VESDE, gaussian_score
    >>> sde = VESDE(0.01, 10.0)
    >>> s = gaussian_score(sde, -1.0, 1.0)
    >>> x = predictor_corrector(s, sde, (2000, 1), steps=100, generator=0)
    >>> abs(float(x.mean()) + 1.0) < 0.1, abs(float(x.var()) - 1) < 0.1
    (True, True)
    """
    if snr <= 0:
        raise ValueError(f'snr must be positive, got {snr}')
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or (
            n_corrector < 0):
        raise ValueError(f'n_corrector must be an int >= 0, got '
                         f'{n_corrector!r}')
    x, gen, ts = _prepare(sde, shape, steps, eps, generator, x_init, device,
                          dtype)

    def step(x, t, t_next, gen, last):
        for _ in range(n_corrector):
            x = _langevin_step(score, x, t, snr, gen)
        return _em_step(score, sde, x, t, t_next, gen, last)

    return _loop(step, x, ts, gen, hook, progress, 'predictor-corrector')


def probability_flow(score, sde, shape, steps=500, *, method='heun',
                     eps=1e-3, generator=None, x_init=None, device=None,
                     dtype=None, hook=None, progress=False):
    """Sample by integrating the probability-flow ODE from ``t = 1``.
    {common}
    method : {'heun', 'euler'}
        Heun's method (second order, two score evaluations per step) or
        explicit Euler.

    Returns
    -------
    torch.Tensor
        The samples, shape ``(B, ...)``.

    Examples
    --------
    >>> from odl_genprior.diffusion.sde import VPSDE, gaussian_score
    >>> sde = VPSDE()
    >>> s = gaussian_score(sde, 0.5, 4.0)
    >>> x = probability_flow(s, sde, (2000, 1), steps=30, generator=0)
    >>> abs(float(x.mean()) - 0.5) < 0.2, abs(float(x.var()) / 4 - 1) < 0.1
    (True, True)
    """
    if method not in ('heun', 'euler'):
        raise ValueError(f"method must be 'heun' or 'euler', got {method!r}")
    x, gen, ts = _prepare(sde, shape, steps, eps, generator, x_init, device,
                          dtype)

    def drift(x, t):
        s, tt = _score(score, x, t)
        return sde.ode_drift(x, tt, s)

    def step(x, t, t_next, gen, last):
        dt = t_next - t
        d1 = drift(x, t)
        if method == 'euler':
            return x + d1 * dt
        d2 = drift(x + d1 * dt, t_next)
        return x + 0.5 * (d1 + d2) * dt

    return _loop(step, x, ts, gen, hook, progress, 'probability flow')


for _f in (euler_maruyama, predictor_corrector, probability_flow):
    _f.__doc__ = _f.__doc__.replace('{common}', _COMMON.rstrip('\n'))
del _f
