r"""Networks with proximal activations, as the lifted Bregman methods see
them.

One layer ``sigma(W u + b)`` as an ODL operator (`network_operator`), a layer
of a multilayer or residual network (`NetworkLayer`), the whole network
(`multilayer_network_operator`, `network_forward`), its lifted objective
(`lifted_objective`), the conversion to and from the package's one lifted
network type (`lifted_network`, `network_layers`,
`odl_genprior.bregman.lifted.LiftedNetwork`) and the seed's random
perceptron weights (`perceptron_weights`). The methods that invert them are
`odl_genprior.recon.bregman_inversion`.
"""
import numpy as np
import odl
import torch
from odl.core.set.space import LinearSpaceElement

from odl_genprior.bregman import lifted
from odl_genprior.bregman.activations import get_activation
from odl_genprior.bridge import (OperatorLayer, TorchOperator, as_tensor,
                                 space_weight, to_numpy)

__all__ = ('network_operator', 'perceptron_weights', 'NetworkLayer',
           'multilayer_network_operator', 'network_forward',
           'lifted_objective', 'lifted_network', 'network_layers')


def _check_affine(W, b, domain=None, range=None, who='network'):
    """Check ``W`` (linear ODL operator) and ``b`` (in ``W.range``) against
    the expected spaces; return ``b`` as an element of ``W.range``."""
    if not isinstance(W, odl.Operator) or not W.is_linear:
        raise TypeError(f'{who}: `W` must be a linear ODL operator, got '
                        f'{W!r}')
    if domain is not None and W.domain != domain:
        raise odl.OpDomainError(f'{who}: `W` has domain {W.domain!r}, but the '
                                f'problem space is {domain!r}')
    if range is not None and W.range != range:
        raise odl.OpRangeError(f'{who}: `W` has range {W.range!r}, but the '
                               f'data lie in {range!r}')
    if b is None:
        return W.range.zero()
    if isinstance(b, LinearSpaceElement):
        if b.space != W.range:
            raise odl.OpRangeError(f'{who}: the bias `b` lies in '
                                   f'{b.space!r}, but `W` has range '
                                   f'{W.range!r}')
        return b
    arr = np.asarray(b)
    if arr.shape != W.range.shape:
        raise ValueError(f'{who}: the bias `b` has shape {arr.shape}, but '
                         f'`W` has range {W.range!r} of shape '
                         f'{W.range.shape}')
    return W.range.element(arr)


def network_operator(W, b, activation):
    """The one-layer network ``u -> sigma(W u + b)`` as an ODL operator.

    Assembled with ODL's operator algebra: ``act.operator(W.range) *
    odl.OperatorVectorSum(W, b)``, so ODL's chain rule gives its derivative.

    Parameters
    ----------
    W : odl.Operator
        Linear operator (e.g. ``odl.MatrixOperator``).
    b : ``W.range`` element-like or None
        The bias (None: zero).
    activation : str or ProximalActivation
        The activation ``sigma = prox_Psi`` (see `get_activation`).

    Returns
    -------
    odl.Operator
        Nonlinear, from ``W.domain`` to ``W.range``.

    Examples
    --------
    >>> W = odl.MatrixOperator(np.array([[1.0, -1.0], [2.0, 0.0]]))
    >>> N = network_operator(W, [0.0, -3.0], 'relu')
    >>> N(W.domain.element([1.0, 2.0]))  # relu([-1, -1])
    rn(2).element([ 0.,  0.])
    >>> N(W.domain.element([2.0, 0.0]))  # relu([2, 1])
    rn(2).element([ 2.,  1.])
    """
    b = _check_affine(W, b)
    act = get_activation(activation)
    return act.operator(W.range) * odl.OperatorVectorSum(W, b)


def perceptron_weights(size=64, num_outputs=512, seed=0, dtype='float64'):
    """Random ``W`` and ``b`` of the seed's perceptron, as ODL objects.

    The entries of ``W`` (a ``num_outputs x size^2`` matrix) and ``b`` are
    independent standard normal (zero mean, standard deviation one, as in
    the seed). The image space is ``uniform_discr([0, 0], [size, size])``
    with unit cells, so its inner product and ODL's ``Gradient`` are the
    plain Euclidean ones and forward differences of the seed; ``W`` is
    ``odl.MatrixOperator(M) * odl.FlatteningOperator(space)``.

    Parameters
    ----------
    size : int
        The image is ``size x size``.
    num_outputs : int
        ``m``, the length of ``W u + b``.
    seed : int
        Seed of the NumPy generator.
    dtype : str
        ``'float64'`` or ``'float32'``.

    Returns
    -------
    W : odl.Operator
        Linear, image space -> ``odl.rn(num_outputs)``.
    b : ``W.range`` element

    Examples
    --------
    >>> W, b = perceptron_weights(size=4, num_outputs=6, seed=1)
    >>> W.domain.shape, W.range.shape, b.shape
    ((4, 4), (6,), (6,))
    """
    rng = np.random.default_rng(seed)
    space = odl.uniform_discr([0, 0], [size, size], (size, size),
                              dtype=dtype)
    flat = odl.FlatteningOperator(space)
    matrix = rng.standard_normal((num_outputs, space.size)).astype(dtype)
    W = odl.MatrixOperator(matrix, domain=flat.range,
                           range=odl.rn(num_outputs, dtype=dtype)) * flat
    b = W.range.element(rng.standard_normal(num_outputs).astype(dtype))
    return W, b


class NetworkLayer:
    r"""One layer ``x -> sigma(W x + b)`` of a network to be inverted.

    In a feed-forward network the layer maps ``x_{l-1}`` to ``x_l =
    sigma(W x_{l-1} + b)``; in a residual network (``V`` given) it maps the
    state ``u_{l-1}`` to ``u_l = u_{l-1} + V sigma(W u_{l-1} + b)``.

    Parameters
    ----------
    W : odl.Operator
        Linear operator.
    b : ``W.range`` element-like or None
        Bias (None: zero).
    activation : str or ProximalActivation
        ``sigma = prox_Psi`` (see `get_activation`).
    V : odl.Operator, optional
        Residual layers only: linear, ``W.range -> W.domain`` (the seed's
        choice is ``V = W^*``).

    Examples
    --------
    >>> W = odl.MatrixOperator(np.eye(2))
    >>> layer = NetworkLayer(W, [0.0, -1.0], 'relu')
    >>> layer(W.domain.element([3.0, 0.5]))
    rn(2).element([ 3.,  0.])
    >>> res = NetworkLayer(W, None, 'relu', V=W.adjoint)
    >>> res(W.domain.element([3.0, -0.5]))  # u + relu(u)
    rn(2).element([ 6. , -0.5])
    """

    def __init__(self, W, b=None, activation='relu', V=None):
        self.b = _check_affine(W, b, who='NetworkLayer')
        self.W = W
        self.activation = get_activation(activation)
        if V is not None:
            if not isinstance(V, odl.Operator) or not V.is_linear:
                raise TypeError(f'NetworkLayer: `V` must be a linear ODL '
                                f'operator, got {V!r}')
            if V.domain != W.range or V.range != W.domain:
                raise odl.OpDomainError(
                    f'NetworkLayer: a residual layer needs `V`: {W.range!r} '
                    f'-> {W.domain!r} (from the range of `W` back to its '
                    f'domain), got `V`: {V.domain!r} -> {V.range!r}')
        self.V = V

    @property
    def residual(self):
        """True if the layer is residual (``V`` given)."""
        return self.V is not None

    def pre_activation(self, x):
        """``W x + b``."""
        return self.W(x) + self.b

    def activate(self, x):
        """``sigma(W x + b)``."""
        return self.activation.operator(self.W.range)(self.pre_activation(x))

    def __call__(self, x):
        s = self.activate(x)
        return x + self.V(s) if self.residual else s

    def operator(self):
        """The layer as an ODL operator whose derivative exists.

        The activation enters as a `TorchOperator` of the activation module
        (its derivative by torch autograd: ODL's ReLU, a projection, has
        none), the rest is ODL's operator algebra and chain rule.
        """
        act = TorchOperator(self.activation, self.W.range, self.W.range,
                            in_shape=self.W.range.shape)
        op = act * odl.OperatorVectorSum(self.W, self.b)
        if self.residual:
            op = odl.IdentityOperator(self.W.domain) + self.V * op
        return op

    def __repr__(self):
        kind = ', residual' if self.residual else ''
        return (f'NetworkLayer({self.W.domain!r} -> {self.W.range!r}, '
                f'{self.activation!r}{kind})')


def _check_layers(layers, residual=None, who='network', dtype='float64'):
    if isinstance(layers, lifted.LiftedNetwork):
        layers = network_layers(layers, dtype)
    layers = list(layers)
    if not layers:
        raise ValueError(f'{who}: `layers` is empty')
    for i, layer in enumerate(layers):
        if not isinstance(layer, NetworkLayer):
            raise TypeError(f'{who}: layers[{i}] must be a NetworkLayer, got '
                            f'{type(layer).__name__}')
    kinds = {layer.residual for layer in layers}
    if len(kinds) > 1:
        raise ValueError(f'{who}: mix of residual and feed-forward layers; '
                         'give all layers a `V` (residual) or none')
    is_res = kinds.pop()
    if residual is not None and residual != is_res:
        kind = 'residual' if residual else 'feed-forward'
        raise ValueError(f'{who}: expected {kind} layers')
    for i in range(1, len(layers)):
        prev = layers[i - 1].W.domain if is_res else layers[i - 1].W.range
        if layers[i].W.domain != prev:
            raise odl.OpDomainError(
                f'{who}: layers[{i}].W has domain {layers[i].W.domain!r}, '
                f'but layer {i - 1} outputs elements of {prev!r}')
    return layers, is_res


def multilayer_network_operator(layers, output=None):
    r"""The network of `NetworkLayer` s as one differentiable ODL operator.

    Feed-forward: ``N(u) = x_L``, ``x_l = sigma_l(W_l x_{l-1} + b_l)``,
    ``x_0 = u``. Residual: ``N(u) = K u_L`` with ``u_l = u_{l-1} + V_l
    sigma_l(W_l u_{l-1} + b_l)``, ``u_0 = u`` and the linear output map
    ``K`` (``output``, default the identity). Assembled with ODL's operator
    algebra (see `NetworkLayer.operator`), so ``N.derivative(u)`` and its
    adjoint come from ODL's chain rule.

    Parameters
    ----------
    layers : sequence of NetworkLayer
    output : odl.Operator, optional
        Residual networks: the linear map ``K`` applied to the last state.

    Examples
    --------
    >>> W = odl.MatrixOperator(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> N = multilayer_network_operator([NetworkLayer(W, None, 'relu'),
    ...                                  NetworkLayer(W, [0.0, -1.0], 'relu')])
    >>> N(W.domain.element([1.0, 1.0]))  # relu(W relu(W u) - (0, 1))
    rn(2).element([ 1.,  3.])
    """
    layers, is_res = _check_layers(layers)
    op = layers[0].operator()
    for layer in layers[1:]:
        op = layer.operator() * op
    if output is not None:
        if not is_res:
            raise ValueError('`output` applies to residual networks only')
        _check_affine(output, None, domain=layers[-1].W.domain,
                      who='multilayer_network_operator')
        op = output * op
    return op


def network_forward(layers, u):
    """All variables of the forward pass: ``[x_0 = u, x_1, ..., x_L]``
    (feed-forward), or ``(states [u_0, ..., u_L], activations [z_1, ...,
    z_L])`` (residual).

    Examples
    --------
    >>> W = odl.MatrixOperator(np.eye(2))
    >>> xs = network_forward([NetworkLayer(W, [-1.0, 0.0], 'relu')],
    ...                      W.domain.element([2.0, -1.0]))
    >>> xs[1]
    rn(2).element([ 1.,  0.])
    """
    layers, is_res = _check_layers(layers)
    if is_res:
        states, acts = [u.copy()], []
        for layer in layers:
            acts.append(layer.activate(states[-1]))
            states.append(states[-1] + layer.V(acts[-1]))
        return states, acts
    xs = [u.copy()]
    for layer in layers:
        xs.append(layer(xs[-1]))
    return xs


def lifted_objective(layers, variables, f=None):
    r"""The lifted Bregman objective of a feed-forward network.

    ``sum_{l=1}^{L} B_{Psi_l}(x_l, W_l x_{l-1} + b_l)`` for ``variables =
    [x_0, x_1, ..., x_L]`` (``x_L`` replaced by ``f`` if given): zero at the
    forward pass (`network_forward`), positive elsewhere, ``+inf`` if some
    ``x_l`` lies outside ``dom Psi_l``. It is the package's one lifted
    objective (`odl_genprior.bregman.lifted.lifted_objective`) on
    `lifted_network`, weighted by the cell volume of each layer space, so
    each term is ODL's ``BregmanLossY``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> layers = network_layers(lifted.LiftedNetwork(
    ...     [3, 5, 4], ['leaky_relu', 'leaky_relu']).double())
    >>> x0 = layers[0].W.domain.element([0.5, -1.0, 2.0])
    >>> xs = network_forward(layers, x0)
    >>> abs(lifted_objective(layers, xs)) < 1e-12
    True
    >>> lifted_objective(layers, xs, f=xs[-1] + 1.0) > 0
    True
    """
    layers, is_res = _check_layers(layers, residual=False)
    variables = list(variables)
    if len(variables) != len(layers) + 1:
        raise ValueError(f'{len(layers)} layers need {len(layers) + 1} '
                         f'variables [x_0, ..., x_L], got {len(variables)}')
    if f is not None:
        variables[-1] = f
    spaces = [layers[0].W.domain] + [layer.W.range for layer in layers]
    states = [as_tensor(space.element(v))[None]
              for space, v in zip(spaces, variables)]
    weights = [space_weight(space, constant=True) for space in spaces[1:]]
    with torch.no_grad():
        return float(lifted.lifted_objective(
            lifted_network(layers), states, weights=weights))


class _AffineLayer(torch.nn.Module):
    """``x -> W x + b`` of a `NetworkLayer` on batches of tensors."""

    def __init__(self, layer):
        super().__init__()
        self.W = OperatorLayer(layer.W)
        self.register_buffer('b', as_tensor(layer.b).clone())

    def forward(self, x):
        return self.W(x) + self.b


def lifted_network(layers):
    """Feed-forward `NetworkLayer` s as a
    `odl_genprior.bregman.lifted.LiftedNetwork` on tensors.

    Each affine map runs ``W`` through `odl_genprior.bridge.OperatorLayer`
    (autograd by ``W``'s adjoint), so the network can be evaluated,
    differentiated and fed to `odl_genprior.bregman.lifted.lifted_objective`
    on batches.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> layers = network_layers(lifted.LiftedNetwork(
    ...     [3, 5, 4], ['tanh', 'identity']).double())
    >>> x0 = layers[0].W.domain.element([0.5, -1.0, 2.0])
    >>> net = lifted_network(layers)
    >>> y = multilayer_network_operator(layers)(x0)
    >>> bool(torch.allclose(net(torch.tensor([[0.5, -1.0, 2.0]],
    ...     dtype=torch.float64))[0], torch.from_numpy(y.asarray())))
    True
    """
    layers, _ = _check_layers(layers, residual=False, who='lifted_network')
    return lifted.LiftedNetwork([_AffineLayer(layer) for layer in layers],
                                [layer.activation for layer in layers])


def network_layers(network, dtype='float64'):
    """A dense `odl_genprior.bregman.lifted.LiftedNetwork` (for example
    from `odl_genprior.bregman.lifted_training.train_lifted`) as
    `NetworkLayer` s on ``rn`` spaces, to invert it.

    The multilayer methods take the network itself as ``layers`` and
    convert it with this function.

    Parameters
    ----------
    network : LiftedNetwork
        Built from sizes (``torch.nn.Linear`` layers).
    dtype : str
        Data type of the ODL spaces.

    Examples
    --------
    >>> net = lifted.LiftedNetwork([3, 4, 2], ['relu', 'identity']).double()
    >>> layers = network_layers(net)
    >>> N = multilayer_network_operator(layers)
    >>> u = N.domain.element([0.5, -1.0, 2.0])
    >>> bool(np.allclose(N(u).asarray(), net(torch.from_numpy(
    ...     u.asarray())[None]).detach().numpy()[0]))
    True
    """
    if not isinstance(network, lifted.LiftedNetwork) or network.sizes is None:
        raise TypeError(f'network_layers needs a dense LiftedNetwork (built '
                        f'from sizes), got {network!r}')
    dom = odl.rn(network.sizes[0], dtype=dtype)
    layers = []
    for lin, act in zip(network.affine, network.activations):
        ran = odl.rn(lin.out_features, dtype=dtype)
        W = odl.MatrixOperator(to_numpy(lin.weight).astype(dtype),
                               domain=dom, range=ran)
        layers.append(NetworkLayer(W, ran.element(to_numpy(lin.bias)), act))
        dom = ran
    return layers
