r"""The lifted-Bregman network type and its objective.

Every network of the lifted Bregman framework is a `LiftedNetwork`: ``L``
layers ``x_l = sigma_l(a_l(x_{l-1}))`` with an affine pre-activation
``a_l`` and a proximal activation ``sigma_l = prox_{Psi_l}``
(`odl_genprior.bregman.activations`). Its one objective is

    lifted_objective(X) = sum_{l=1}^L B_{Psi_l}(x_l, a_l(x_{l-1}))

over layer variables ``X = (x_0, ..., x_L)``, with the Fenchel-Bregman loss
``B_Psi`` (`odl_genprior.bregman.bregman_loss`): zero exactly at the
forward pass, positive elsewhere, and with the ``z``-gradient
``prox_Psi(z) - y`` (no derivative of an activation). The three users:

* lifted training (`odl_genprior.bregman.lifted_training`): a dense
  network, ``a_l(x) = W_l x + b_l`` (``LiftedNetwork(sizes,
  activations)``);
* the proximal neural network (`odl_genprior.bregman.pnn`), a subclass
  whose ``a_k(u) = u - tau_k L_k (L_k^* u - z)`` takes the input ``z`` as
  *context* and whose activations clip to ``[-alpha, alpha]``;
* lifted inversion (`odl_genprior.recon.bregman_inversion`): ODL layers
  ``W x + b`` run through `odl_genprior.bridge.OperatorLayer`, with the
  cell volumes of the layer spaces as per-layer ``weights``.
"""
import numbers

import torch

from odl_genprior.bregman.activations import Identity, get_activation
from odl_genprior.bregman.loss import bregman_loss

__all__ = ('LiftedNetwork', 'lifted_objective')

_REDUCTIONS = ('mean', 'sum', 'sample', 'layers')


def _activation(act):
    if isinstance(act, str) and act.lower() == 'none':
        return Identity()
    return get_activation(act)


def _is_sizes(layers):
    return bool(layers) and all(isinstance(n, numbers.Integral)
                                and not isinstance(n, bool) for n in layers)


class LiftedNetwork(torch.nn.Module):
    r"""A network ``x_l = sigma_l(a_l(x_{l-1}))``, ``l = 1, ..., L``, of
    affine maps and proximal activations.

    Parameters
    ----------
    layers : sequence of int, or sequence of torch.nn.Module
        Sizes ``(n_0, n_1, ..., n_L)``: a dense network, ``a_l =
        torch.nn.Linear(n_{l-1}, n_l)`` on flat vectors (a batch is ``(s,
        n_0)``). Modules: the affine maps ``a_1, ..., a_L`` themselves
        (any shapes). A subclass that defines `pre_activations` itself
        passes ``()``.
    activations : sequence of str or ProximalActivation
        ``sigma_1, ..., sigma_L`` (names as in `get_activation`).

    Attributes
    ----------
    affine : torch.nn.ModuleList
        The maps ``a_l``.
    activations : torch.nn.ModuleList of ProximalActivation
    sizes : list of int or None
        The sizes of a dense network.

    Examples
    --------
    >>> net = LiftedNetwork([4, 3, 2], ['relu', 'identity'])
    >>> net(torch.randn(5, 4)).shape
    torch.Size([5, 2])
    >>> xs = net.forward_states(torch.randn(5, 4))  # x_0, x_1, x_2
    >>> len(xs), lifted_objective(net, xs).item()
    (3, 0.0)
    >>> conv = LiftedNetwork([torch.nn.Conv1d(1, 2, 3, padding=1)], ['relu'])
    >>> conv(torch.randn(5, 1, 8)).shape
    torch.Size([5, 2, 8])
    """

    def __init__(self, layers, activations):
        super().__init__()
        layers, activations = list(layers), list(activations)
        if not activations:
            raise ValueError('a lifted network needs at least one layer '
                             '(one activation)')
        self.sizes = None
        if _is_sizes(layers):
            sizes = [int(n) for n in layers]
            if len(sizes) < 2 or min(sizes) < 1:
                raise ValueError(f'`sizes` needs at least two positive '
                                 f'sizes, got {sizes}')
            if len(activations) != len(sizes) - 1:
                raise ValueError(f'{len(sizes) - 1} layers ({sizes}) need '
                                 f'{len(sizes) - 1} activations, got '
                                 f'{len(activations)}')
            self.sizes = sizes
            layers = [torch.nn.Linear(a, b)
                      for a, b in zip(sizes[:-1], sizes[1:])]
        else:
            for i, m in enumerate(layers):
                if not isinstance(m, torch.nn.Module):
                    raise TypeError(f'layers[{i}] must be a size (int) or a '
                                    f'torch.nn.Module, got '
                                    f'{type(m).__name__}')
            own = type(self).pre_activations is not \
                LiftedNetwork.pre_activations
            if not (own and not layers) and len(layers) != len(activations):
                raise ValueError(f'{len(layers)} affine maps need as many '
                                 f'activations, got {len(activations)}')
        self.affine = torch.nn.ModuleList(layers)
        self.activations = torch.nn.ModuleList(
            _activation(a) for a in activations)
        self._register_load_state_dict_pre_hook(_renamed_linears)

    @property
    def num_layers(self):
        """``L``."""
        return len(self.activations)

    def __len__(self):
        return self.num_layers

    def pre_activation(self, l, x, context=None):
        """``a_{l+1}(x)`` (``l = 0, ..., L-1``), the argument of activation
        ``l``."""
        return self.affine[l](x)

    def pre_activations(self, states, context=None):
        """``[a_1(x_0), ..., a_L(x_{L-1})]`` for ``states = [x_0, ...]``;
        a subclass overrides this to share work between the layers."""
        return [self.pre_activation(l, states[l], context)
                for l in range(self.num_layers)]

    def forward_states(self, x, context=None):
        """``[x_0 = x, x_1, ..., x_L]``, ``x_l = sigma_l(a_l(x_{l-1}))``."""
        states = [x]
        for l, act in enumerate(self.activations):
            states.append(act(self.pre_activation(l, states[-1], context)))
        return states

    def forward(self, x):
        """``x_L``, the last of `forward_states`."""
        return self.forward_states(x)[-1]


def _renamed_linears(state_dict, prefix, *args):
    """Checkpoints written before the maps were called ``affine``."""
    old = prefix + 'linears.'
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + 'affine.' + key[len(old):]] = state_dict.pop(key)


def lifted_objective(network, states, context=None, reduction='mean',
                     weights=None):
    r"""``sum_l B_{Psi_l}(x_l, a_l(x_{l-1}))``: the lifted Bregman objective.

    The one objective of lifted training, the PNN and lifted inversion.
    Differentiable in the parameters and the layer variables (closed-form
    ``z``-gradients, see `odl_genprior.bregman.bregman_loss`); ``+inf``
    where some ``x_l`` lies outside ``dom Psi_l``.

    Parameters
    ----------
    network : LiftedNetwork
    states : sequence of torch.Tensor
        ``[x_0, x_1, ..., x_L]`` with a leading batch axis: the input, the
        hidden layer variables and the output layer variable (the target
        in training, the data in inversion).
    context : optional
        Passed to ``network.pre_activations`` (the PNN's input ``z``).
    reduction : {'mean', 'sum', 'sample', 'layers'}
        Mean over samples of the per-sample objective, their sum, the
        per-sample values, or the ``L`` per-layer means.
    weights : sequence of float, optional
        A factor per layer (the cell volume of a discretised layer space,
        so the value is the ODL functional's).

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> net = LiftedNetwork([3, 4, 2], ['relu', 'identity'])
    >>> xs = net.forward_states(torch.randn(5, 3))
    >>> lifted_objective(net, xs).item()
    0.0
    >>> lifted_objective(net, xs[:-1] + [xs[-1] + 1]).item() > 0
    True
    """
    if not isinstance(network, LiftedNetwork):
        raise TypeError(f'expected a LiftedNetwork, got '
                        f'{type(network).__name__}')
    if reduction not in _REDUCTIONS:
        raise ValueError(f'`reduction` must be one of {_REDUCTIONS}, got '
                         f'{reduction!r}')
    states = list(states)
    L = network.num_layers
    if len(states) != L + 1:
        raise ValueError(f'a network of {L} layers needs {L + 1} layer '
                         f'variables [x_0, ..., x_L], got {len(states)}')
    if weights is None:
        weights = [1.0] * L
    elif len(weights) != L:
        raise ValueError(f'{L} layers need {L} weights, got {len(weights)}')
    pres = network.pre_activations(states, context)
    terms = []
    for l, (x, z, act) in enumerate(zip(states[1:], pres,
                                        network.activations)):
        if x.shape != z.shape:
            raise ValueError(f'layer variable x_{l + 1} has shape '
                             f'{tuple(x.shape)} but layer {l + 1} gives '
                             f'{tuple(z.shape)}')
        terms.append(weights[l] * bregman_loss(x, z, act, reduction='sample'))
    if reduction == 'layers':
        return torch.stack([t.mean() for t in terms])
    per_sample = sum(terms)
    if reduction == 'sample':
        return per_sample
    return per_sample.mean() if reduction == 'mean' else per_sample.sum()
