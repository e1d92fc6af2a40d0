r"""Certified learned reconstruction: a learned gradient scheme with a
computed Lipschitz constant with respect to the data.

`CertifiedLearnedGradient` unrolls

.. math::
    x_0 = 0,\qquad x_{k+1} = R_k\bigl(x_k - \tau_k A^*(A x_k - y)\bigr),
    \quad k = 0, \dots, K-1,

where every ``R_k`` (`NonexpansiveBlock`) is a stack of convolutional
gradient-flow layers (`ConvexPotentialLayer`)

.. math::
    z \mapsto z - h\, W^T \sigma(W z + b) + c,\qquad
    0 \le h \le 2 / (S \|W\|^2),

the explicit Euler step of ``z' = -\nabla V(z)`` for the convex potential
``V(z) = sum psi(W z + b)`` (``psi' = sigma``, ``0 <= sigma' <= S``), which
is nonexpansive (``grad V`` is ``1/(S ||W||^2)``-cocoercive). ``W`` is a
convolution; ``||W||`` is bounded from above by `conv_norm_bound` (the exact
norm of the circular convolution on a padded grid, from the FFT of the
kernel, which contains the zero-padded one), and the step is
``h = 2 sigmoid(a) / (S ||W||_bound^2)``, so the constraint holds after any
optimizer step. Like `odl_genprior.nn.unrolled.LearnedGradientDescent` the
state carries ``memory`` extra channels (``s_0 = 0``); the gradient step
acts on channel 0 only, so each step is nonexpansive in the whole state.

The step sizes are ``tau_k = (2 / ||A^* A||) sigmoid(t_k)``, with
``||A^* A||`` from a power method (times ``1 + margin``): the gradient step
``x -> x - tau_k A^*(A x - y)`` is nonexpansive in ``x`` and
``tau_k ||A^*||``-Lipschitz in ``y``. Hence (`lipschitz_bound`)

.. math::
    \operatorname{Lip}(y \mapsto x_K) \le \sum_k \tau_k \|A^*\|
    \prod_{j \ge k} \operatorname{Lip}(R_j)
    = \|A^*\| \sum_k \tau_k ,

computed from the actual parameters; `odl_genprior.nn.odenets.lipschitz_estimate`
gives the matching lower estimate (Jacobian power iteration and an
adversarial search over pairs of data). Norms are the Euclidean norms of the
tensors the network sees (``norm='space'``: the ``L^2`` norms of the ODL
spaces). `train_certified` trains any data-to-image network with the
package's training loop, `as_operator` makes a trained network an ODL
operator from the data space to the image space.
"""
import math
import numbers

import numpy as np
import odl
import torch
import torch.nn.functional as F

from odl_genprior import metrics
from odl_genprior.bridge import TorchOperator, space_dtype, space_weight
from odl_genprior.nn.odenets import _activation, rk_step
from odl_genprior.training import train
from odl_genprior.nn.unrolled import _Unrolled

__all__ = ('conv_norm_bound', 'ConvexPotentialLayer', 'NonexpansiveBlock',
           'CertifiedLearnedGradient', 'lipschitz_bound', 'train_certified',
           'as_operator')


def _check_image_batch(z, channels, who):
    if not isinstance(z, torch.Tensor):
        raise TypeError(f'{who} expects a torch.Tensor, got '
                        f'{type(z).__name__}')
    if z.ndim != 4 or z.shape[1] != channels:
        raise ValueError(f'{who} expects images of shape (batch, {channels}, '
                         f'H, W), got {tuple(z.shape)}')


def conv_norm_bound(weight, image_shape):
    r"""Upper bound of ``||conv2d(., weight, padding=k // 2)||_2`` on images.

    The zero-padded ('same') convolution on ``H x W`` images is a
    restriction of the circular convolution on the
    ``(H + k_h - 1) x (W + k_w - 1)`` grid, whose norm is exactly
    ``max_omega sigma_max(K_hat(omega))`` over the grid's frequencies
    (``K_hat(omega)`` the ``C_out x C_in`` matrix of the kernel's 2D DFT,
    Sedghi et al. 2019). So the returned value is a certified upper bound,
    and close to the true norm. Differentiable in ``weight`` (the gradient
    of the maximum: recomputed at the maximizing frequency only).

    Parameters
    ----------
    weight : torch.Tensor
        Kernel ``(C_out, C_in, k_h, k_w)``, odd ``k_h, k_w``.
    image_shape : tuple of int
        ``(H, W)``.

    Returns
    -------
    bound : torch.Tensor
        A scalar.

    Examples
    --------
    A kernel with a single 1 (a shift) has norm 1:

    >>> w = torch.zeros(1, 1, 3, 3); w[0, 0, 1, 2] = 1.0
    >>> round(float(conv_norm_bound(w, (8, 8))), 6)
    1.0
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        got = getattr(weight, 'shape', type(weight).__name__)
        raise ValueError(f'`weight` must be a (C_out, C_in, k_h, k_w) tensor, '
                         f'got {got}')
    cout, cin, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'kernel size must be odd, got {(kh, kw)}')
    h, w = (int(n) for n in image_shape)
    grid = (h + kh - 1, w + kw - 1)
    with torch.no_grad():  # all frequencies: find the largest
        top = torch.linalg.eigvalsh(_gram(weight.detach(), grid))[..., -1]
        best = int(top.flatten().argmax())
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return top.flatten()[best].clamp_min(0).sqrt()
    # the same value, differentiably, at the maximizing frequency only
    freq = divmod(best, grid[1] // 2 + 1)
    top = torch.linalg.eigvalsh(_gram(weight, grid, freq))[..., -1]
    return top.clamp_min(0).sqrt()


def _gram(weight, grid, freq=None):
    """``K_hat^H K_hat`` (or ``K_hat K_hat^H``, the smaller) per frequency.

    ``K_hat(f) = sum_{a,b} weight[:, :, a, b] exp(-2 pi i (f_0 a / n_0 +
    f_1 b / n_1))`` on the half grid ``f_0 < n_0``, ``f_1 <= n_1 // 2`` (a
    real kernel has ``K_hat(-f) = conj K_hat(f)``: the same singular
    values), or at the single frequency ``freq``.
    """
    cout, cin, kh, kw = weight.shape
    if freq is None:
        f0 = torch.arange(grid[0], dtype=torch.float64)
        f1 = torch.arange(grid[1] // 2 + 1, dtype=torch.float64)
    else:
        f0 = torch.tensor([float(freq[0])], dtype=torch.float64)
        f1 = torch.tensor([float(freq[1])], dtype=torch.float64)
    a = torch.arange(kh, dtype=torch.float64)
    b = torch.arange(kw, dtype=torch.float64)
    phase = ((torch.outer(f0, a) / grid[0])[:, None, :, None]
             + (torch.outer(f1, b) / grid[1])[None, :, None, :])
    ctype = torch.complex128 if weight.dtype == torch.float64 \
        else torch.complex64
    dft = torch.exp(-2j * math.pi * phase).to(ctype).reshape(-1, kh * kw)
    khat = (dft @ weight.reshape(cout * cin, kh * kw).T.to(ctype)).reshape(
        -1, cout, cin)
    return khat.mH @ khat if cin <= cout else khat @ khat.mH


class ConvexPotentialLayer(torch.nn.Module):
    r"""Nonexpansive ``z -> z - h W^T sigma(W z + b) + c`` on images.

    ``W`` is a convolution ``channels -> hidden`` (zero padding, odd
    ``kernel_size``), ``W^T`` its adjoint (the transposed convolution with
    the same kernel), ``c`` a learned per-channel offset, and
    ``h = 2 sigmoid(a) / (S ||W||_bound^2)`` with ``||W||_bound`` from
    `conv_norm_bound` for the input's image size and ``S`` the
    activation's Lipschitz constant. The step is one explicit Euler step
    (`odl_genprior.nn.odenets.rk_step`) of the gradient flow of a convex
    potential, so the layer is 1-Lipschitz whatever the parameters.

    Parameters
    ----------
    channels : int
        Channels of the state ``z``.
    hidden : int, optional
        Output channels of ``W``.
    kernel_size : int, optional
        Odd.
    activation : {'relu', 'tanh', 'sigmoid'}, optional
        Any of `odl_genprior.activations.ACTIVATIONS` (``0 <= sigma' <= S``).
    step_fraction : float, optional
        Initial ``h / h_max`` in ``(0, 1)``.

    Examples
    --------
    >>> layer = ConvexPotentialLayer(2, hidden=4)
    >>> z, w = torch.randn(2, 3, 2, 8, 8)
    >>> bool((layer(z) - layer(w)).norm() <= (z - w).norm())
    True
    """

    def __init__(self, channels, hidden=32, kernel_size=3, activation='relu',
                 step_fraction=0.9):
        super().__init__()
        k = int(kernel_size)
        if k % 2 == 0 or k < 1:
            raise ValueError(f'kernel_size must be odd and positive, got {k}')
        if not 0 < step_fraction < 1:
            raise ValueError(f'step_fraction must be in (0, 1), got '
                             f'{step_fraction}')
        self.channels, self.hidden, self.kernel_size = int(channels), int(
            hidden), k
        self.activation = activation
        self._sigma, self.sigma_lipschitz = _activation(activation)
        self.weight = torch.nn.Parameter(
            torch.randn(self.hidden, self.channels, k, k)
            * math.sqrt(2.0 / (self.channels * k * k)))
        self.bias = torch.nn.Parameter(torch.zeros(self.hidden))
        self.step_logit = torch.nn.Parameter(
            torch.tensor(math.log(step_fraction / (1 - step_fraction))))
        self.offset = torch.nn.Parameter(torch.zeros(self.channels))
        self._norm_cache = None

    def norm_bound(self, image_shape):
        """`conv_norm_bound` of ``W`` on ``image_shape`` images.

        Cached while the kernel is unchanged and no gradient is recorded
        (evaluation); recomputed, differentiably, in training.
        """
        w = self.weight
        key = (w._version, w.data_ptr(), tuple(image_shape), w.dtype)
        if not (torch.is_grad_enabled() and w.requires_grad):
            if self._norm_cache is not None and self._norm_cache[0] == key:
                return self._norm_cache[1]
            with torch.no_grad():
                value = conv_norm_bound(w, image_shape)
            self._norm_cache = (key, value)
            return value
        return conv_norm_bound(w, image_shape)

    def max_step(self, image_shape):
        """``2 / (S ||W||_bound^2)``, the largest nonexpansive step."""
        return 2.0 / (self.sigma_lipschitz
                      * self.norm_bound(image_shape) ** 2)

    def step(self, image_shape):
        """The step ``h = sigmoid(a) max_step`` used in `forward`."""
        return torch.sigmoid(self.step_logit) * self.max_step(image_shape)

    def field(self, z):
        """``-W^T sigma(W z + b)``, minus the gradient of the potential."""
        p = self.kernel_size // 2
        u = self._sigma(F.conv2d(z, self.weight, self.bias, padding=p))
        return -F.conv_transpose2d(u, self.weight, padding=p)

    def forward(self, z):
        _check_image_batch(z, self.channels, type(self).__name__)
        if z.dtype != self.weight.dtype:
            raise TypeError(f'{type(self).__name__}: input has dtype '
                            f'{z.dtype}, the layer {self.weight.dtype}')
        h = self.step(z.shape[-2:])
        return (rk_step(self.field, z, h, 'euler')
                + self.offset[:, None, None])

    def lipschitz(self):
        """Certified Lipschitz constant: 1 (``0 <= h <= 2/(S ||W||^2)``)."""
        return 1.0

    def extra_repr(self):
        return (f'channels={self.channels}, hidden={self.hidden}, '
                f'kernel_size={self.kernel_size}, '
                f'activation={self.activation!r}')


class NonexpansiveBlock(torch.nn.Module):
    """``n_layers`` `ConvexPotentialLayer` s in a row: 1-Lipschitz.

    Examples
    --------
    >>> block = NonexpansiveBlock(3, hidden=4, n_layers=2)
    >>> block(torch.randn(1, 3, 6, 6)).shape
    torch.Size([1, 3, 6, 6])
    >>> block.lipschitz()
    1.0
    """

    def __init__(self, channels, hidden=32, n_layers=2, kernel_size=3,
                 activation='relu', step_fraction=0.9):
        super().__init__()
        if int(n_layers) < 1:
            raise ValueError(f'n_layers must be positive, got {n_layers}')
        self.channels = int(channels)
        self.layers = torch.nn.ModuleList(
            ConvexPotentialLayer(channels, hidden, kernel_size, activation,
                                 step_fraction)
            for _ in range(int(n_layers)))

    def forward(self, z):
        for layer in self.layers:
            z = layer(z)
        return z

    def lipschitz(self):
        """Product of the layers' certified constants."""
        return float(np.prod([layer.lipschitz() for layer in self.layers]))


def _power_norm(apply, shape, iters, seed, dtype, transpose=False):
    """Power-method estimate of the Euclidean norm of a linear map.

    ``apply`` maps a batch ``(1, *shape)``; with ``transpose=False`` it must
    be symmetric positive semidefinite (its norm is returned), otherwise
    the iteration runs on ``apply^T apply`` (vector-Jacobian products) and
    ``||apply||`` is returned.
    """
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn((1,) + tuple(shape), generator=gen, dtype=dtype)
    v = v / v.norm()
    est = 0.0
    for _ in range(int(iters)):
        if transpose:
            vg = v.detach().requires_grad_(True)
            with torch.enable_grad():
                mv = apply(vg)
                (w,) = torch.autograd.grad(mv, vg, mv.detach())
            est = float(mv.detach().norm())  # ||M v|| for the unit v
        else:
            with torch.no_grad():
                w = apply(v)
            est = float(w.norm())
        n = w.norm()
        if n == 0:
            return 0.0
        v = w / n
    return est


class CertifiedLearnedGradient(_Unrolled):
    r"""Learned gradient descent with nonexpansive blocks (certified).

    ``z_0 = 0`` (image channel and ``memory`` channels); for ``k < n_iter``:
    ``x <- x - tau_k A^*(A x - y)`` on channel 0, then
    ``z <- R_k(z)`` with a `NonexpansiveBlock` ``R_k``; the result is
    channel 0. The operator is scaled by ``1 / ||A||`` as in
    `odl_genprior.nn.unrolled` (the step is unchanged by that scaling).

    Parameters
    ----------
    operator : odl.Operator
        Linear forward operator on images ``(H, W)``.
    n_iter : int, optional
        Unrolled steps ``K`` (separate weights).
    memory : int, optional
        Extra state channels.
    hidden_channels : int, optional
        Output channels of each layer's convolution ``W``.
    n_layers : int, optional
        `ConvexPotentialLayer` s per block.
    kernel_size : int, optional
    activation : str, optional
        ``'relu'``, ``'tanh'`` or ``'sigmoid'``.
    step_fraction : float, optional
        Initial ``h / h_max`` of every layer, in ``(0, 1)`` (small: the
        blocks start near the identity).
    opnorm : float, optional
        ``||A||`` for the scaling; default ODL's power method.
    margin : float, optional
        The power-method norms of ``A^* A`` and ``A^*`` are multiplied by
        ``1 + margin`` (a power method approaches the norm from below).
    power_iter : int, optional
        Power-method iterations.
    group : None
        Only None: the other unrolled schemes' equivariance option, taken
        so that `odl_genprior.models.unrolled.build_unrolled` treats every
        scheme alike; a group is refused.

    Attributes
    ----------
    normal_norm : torch.Tensor
        ``||A_s^* A_s||`` (scaled operator, Euclidean, with the margin):
        ``tau_k <= 2 / normal_norm``.
    data_norm : torch.Tensor
        Euclidean norm of ``y -> A_s^* (y / ||A||)`` (with the margin): the
        step ``k`` is ``tau_k data_norm``-Lipschitz in ``y``.

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = CertifiedLearnedGradient(odl.IdentityOperator(space),
    ...                                n_iter=2, memory=1, hidden_channels=4)
    >>> net(torch.rand(3, 8, 8)).shape
    torch.Size([3, 8, 8])
    >>> bool((net.step_sizes() <= 2 / net.normal_norm).all())
    True
    """

    scheme = 'certified'
    display_name = 'certified LG'

    def __init__(self, operator, n_iter=10, memory=5, hidden_channels=32,
                 n_layers=2, kernel_size=3, activation='relu',
                 step_fraction=0.9, opnorm=None, margin=1e-2,
                 power_iter=100, group=None):
        super().__init__(operator, opnorm)
        if group is not None:  # the other schemes' option, refused by name
            raise ValueError(f'the certified scheme has no equivariant '
                             f'blocks; got group={group!r}')
        if int(n_iter) < 1 or int(memory) < 0:
            raise ValueError(f'n_iter must be positive and memory >= 0, got '
                             f'{n_iter}, {memory}')
        if not isinstance(margin, numbers.Real) or margin < 0:
            raise ValueError(f'margin must be a number >= 0, got {margin!r}')
        self.n_iter, self.memory, self.group = int(n_iter), int(memory), None
        self.margin = float(margin)
        self.blocks = torch.nn.ModuleList(
            NonexpansiveBlock(1 + self.memory, hidden_channels, n_layers,
                              kernel_size, activation, step_fraction)
            for _ in range(self.n_iter))
        dtype = space_dtype(operator.domain)
        normal = _power_norm(lambda x: self.gradient(x[:, None], 0.0)[:, 0],
                             self.image_shape, power_iter, 0, dtype)
        data = _power_norm(lambda y: self.At(y[:, None] / self.opnorm),
                           self.data_shape, power_iter, 1, dtype,
                           transpose=True)
        self.register_buffer('normal_norm', torch.tensor(
            normal * (1 + self.margin), dtype=dtype))
        self.register_buffer('data_norm', torch.tensor(
            data * (1 + self.margin), dtype=dtype))
        # tau_k = 1 / ||A^* A|| at the start (sigmoid(0) = 1/2)
        self.step_logits = torch.nn.Parameter(
            torch.zeros(self.n_iter, dtype=dtype))
        self.to(dtype)

    def step_sizes(self):
        """``tau_k = (2 / normal_norm) sigmoid(t_k)``, always in range."""
        return 2.0 / self.normal_norm * torch.sigmoid(self.step_logits)

    def _check(self, y):
        ys = super()._check(y)
        if y.dtype != self.step_logits.dtype:
            raise TypeError(f'{type(self).__name__}: data has dtype '
                            f'{y.dtype}, the network (and the operator) '
                            f'{self.step_logits.dtype}')
        return ys

    def forward(self, y):
        y = self._check(y)
        z = y.new_zeros((y.shape[0], 1 + self.memory) + self.image_shape)
        tau = self.step_sizes()
        for k, block in enumerate(self.blocks):
            x = z[:, :1]
            x = x - tau[k] * self.gradient(x, y)
            z = block(torch.cat([x, z[:, 1:]], dim=1))
        return z[:, 0]


def lipschitz_bound(net, norm='tensor'):
    r"""Certified Lipschitz constant of ``y -> net(y)``.

    The recursion ``L_0 = 0``,
    ``L_{k+1} = Lip(R_k) (L_k + tau_k data_norm)``: ``x_0`` does not depend
    on ``y``, each gradient step is nonexpansive in ``x`` (``tau_k <=
    2 / ||A^* A||``) and ``tau_k data_norm``-Lipschitz in ``y``, each block
    ``R_k`` is ``Lip(R_k)``-Lipschitz (1 for `NonexpansiveBlock`). With
    1-Lipschitz blocks ``L_K = data_norm sum_k tau_k``.

    Parameters
    ----------
    net : CertifiedLearnedGradient
    norm : {'tensor', 'space'}, optional
        ``'tensor'``: Euclidean norms of the tensors (data ``(B, *range)``,
        images ``(B, H, W)``). ``'space'``: the norms of the operator's
        ODL spaces (``||x||^2 = w_D sum x_i^2``), i.e. the tensor constant
        times ``sqrt(w_D / w_R)``.

    Returns
    -------
    bound : float

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = CertifiedLearnedGradient(odl.IdentityOperator(space),
    ...                                n_iter=3, memory=0, hidden_channels=2)
    >>> round(lipschitz_bound(net), 4)  # 3 steps of tau = 1, margin 1%
    3.0
    """
    if not isinstance(net, CertifiedLearnedGradient):
        raise TypeError(f'no certified bound for {type(net).__name__}; '
                        'expected a CertifiedLearnedGradient')
    if norm not in ('tensor', 'space'):
        raise ValueError(f"norm must be 'tensor' or 'space', got {norm!r}")
    with torch.no_grad():
        tau = net.step_sizes().double().cpu().numpy()
        beta = float(net.data_norm)
    L = 0.0
    for t, block in zip(tau, net.blocks):
        L = block.lipschitz() * (L + float(t) * beta)
    if norm == 'space':
        L *= math.sqrt(space_weight(net.operator.domain, constant=True)
                       / space_weight(net.operator.range, constant=True))
    return float(L)


def _mse_loss(model, batch):
    y, x = batch
    return torch.mean((model(y) - x) ** 2)


def _psnr_metric(model, val):
    y, x = val
    x_hat = torch.cat([model(y[i:i + 8]) for i in range(0, len(y), 8)])
    psnr = np.mean([metrics.psnr(a.numpy(), b.numpy())
                    for a, b in zip(x_hat.cpu(), x.cpu())])
    return {'mse': torch.mean((x_hat - x) ** 2).item(), 'psnr': float(psnr)}


def train_certified(model, data, *, out_dir=None, val_data=None, epochs=10,
                    batch_size=4, lr=1e-3, seed=0, config=None,
                    progress=True, resume=True, log_every=10):
    """Train a data-to-image network (mean squared error, Adam, cosine).

    The same protocol as `odl_genprior.models.unrolled.train_unrolled`
    (Adam, cosine schedule over all steps, validation PSNR) on given
    pairs, for any network mapping data batches to image batches — a
    `CertifiedLearnedGradient` or, for a comparison with the same budget,
    an ordinary unrolled network. Built on `odl_genprior.training.train`:
    seeded, checkpointed, resumable.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, *data_shape) -> (B, H, W)``.
    data : tuple of torch.Tensor
        ``(data, images)``, e.g. ``EllipseCT.pairs(n, 'train')`` (the
        package's trainers all take ``(model, data, *, out_dir, ...)``).
    out_dir : str, Path or None, optional
        Run folder (``None``, the default: no files).
    val_data : tuple of torch.Tensor, optional
        Validation pairs (PSNR and MSE are logged).
    epochs, batch_size, lr, seed : optional
    config : dict, optional
        Recorded in ``config.json``.
    progress, resume : bool, optional
    log_every : int, optional

    Returns
    -------
    model : torch.nn.Module
        Trained, in eval mode.

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = CertifiedLearnedGradient(odl.IdentityOperator(space),
    ...                                n_iter=2, memory=1, hidden_channels=4)
    >>> x = torch.rand(4, 8, 8)
    >>> net = train_certified(net, (x, x), epochs=1, batch_size=2,
    ...                       progress=False)
    >>> net.training
    False
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f'model must be a torch.nn.Module, got '
                        f'{type(model).__name__}')
    if (not isinstance(data, (tuple, list)) or len(data) != 2
            or len(data[0]) != len(data[1])):
        raise ValueError('data must be a pair (data, images) of '
                         'tensors with the same number of samples')
    n = len(data[0])
    steps = int(epochs) * (n // int(batch_size))
    if steps < 1:
        raise ValueError(f'no training step: {n} samples < batch_size='
                         f'{batch_size}')
    train(model, _mse_loss, tuple(data), out_dir=out_dir,
          epochs=epochs, batch_size=batch_size, lr=lr,
          scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(
              opt, T_max=steps),
          seed=seed, val_data=val_data,
          val_metric=_psnr_metric if val_data is not None else None,
          config=config, resume=resume, progress=progress,
          log_every=log_every)
    return model.eval()


def as_operator(net):
    """A reconstruction network as an ODL operator, data -> image.

    `odl_genprior.bridge.TorchOperator` from ``net.operator.range`` to
    ``net.operator.domain``; its ``derivative(y)`` is the Jacobian (forward
    mode) with the vector-Jacobian product as adjoint.

    Examples
    --------
    >>> space = odl.uniform_discr([0, 0], [1, 1], (8, 8), dtype='float32')
    >>> net = CertifiedLearnedGradient(odl.IdentityOperator(space),
    ...                                n_iter=2, memory=1, hidden_channels=4)
    >>> op = as_operator(net)
    >>> op(space.one()).shape
    (8, 8)
    """
    op = getattr(net, 'operator', None)
    if not isinstance(op, odl.Operator):
        raise TypeError(f'{type(net).__name__} carries no forward operator '
                        '(`net.operator`)')
    return TorchOperator(net, op.range, op.domain,
                         in_shape=(1,) + tuple(op.range.shape))
