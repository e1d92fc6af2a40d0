"""Proximal activations as ODL operators and torch modules; the Bregman loss.

Each activation is one object: a torch module, and (through ``psi(space)``)
the proximal map of an ODL functional. The Fenchel-Bregman loss
``B_Psi(y, z)`` vanishes exactly at ``y = sigma(z)`` and its z-gradient is
``sigma(z) - y``, without differentiating the activation. Runs in a second.

    python examples/bregman_loss.py
"""
import odl
import torch

from odl_genprior.bregman.activations import ACTIVATIONS, get_activation
from odl_genprior.bregman import BregmanLoss, bregman_loss

space = odl.uniform_discr(-3, 3, 7, impl='pytorch', dtype='float64')
z = space.element(torch.linspace(-3, 3, 7, dtype=torch.float64))
kwargs = {'soft_threshold': {'alpha': 0.5}, 'leaky_relu': {'slope': 0.1}}

print(f'z = {z.data.numpy()}')
for name in ACTIVATIONS:
    act = get_activation(name, **kwargs.get(name, {}))
    op = act.operator(space)          # ODL operator: psi(space).proximal(1.0)
    y = op(z)
    same = torch.allclose(y.data, act(z.data))  # ... equals the torch module
    loss = BregmanLoss(space, act)    # ODL functional on space ** 2
    at_prox = loss(loss.domain.element([y, z]))
    elsewhere = loss(loss.domain.element([0.5 * y, z]))
    print(f'{name:15s} Psi = {act.psi(space)}, Psi^* = '
          f'{type(act.psi_conj(space)).__name__}')
    print(f'{"":15s} sigma(z) = {y.data.numpy().round(3)}  module == ODL: '
          f'{same}')
    print(f'{"":15s} B(sigma(z), z) = {at_prox:.1e}   '
          f'B(sigma(z)/2, z) = {elsewhere:.3f}')

# Training signal in torch: the gradient in z is sigma(z) - y.
act = get_activation('tanh')
zt = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
target = torch.tanh(torch.randn(4, 7, dtype=torch.float64))
bregman_loss(target, zt, act, reduction='mean').backward()
print('grad_z B == (tanh(z) - y) / batch:',
      torch.allclose(zt.grad, (torch.tanh(zt) - target).detach() / 4))
