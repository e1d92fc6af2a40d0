"""An ODL ray transform as a torch layer: fit an image by torch.optim.

``OperatorLayer(A)`` maps batches ``(B, 64, 64)`` to sinograms, and its
backward is the (Euclidean) back-projection, so any torch network can be
trained through the forward model. A few seconds on a CPU.

    python examples/ray_transform_as_torch_layer.py
"""
import torch

import odl_genprior as og
from odl_genprior import metrics, problems

problem = problems.ct(size=64, num_angles=40, noise_level=0.01, seed=0,
                      impl='pytorch')
layer = og.OperatorLayer(problem.operator)
y = og.as_tensor(problem.data)

x = torch.zeros(1, 64, 64, requires_grad=True)
opt = torch.optim.Adam([x], lr=0.02)
for it in range(200):
    opt.zero_grad()
    loss = ((layer(x)[0] - y) ** 2).sum() + 1e-2 * (x ** 2).sum()
    loss.backward()
    opt.step()
    with torch.no_grad():
        x.clamp_(min=0)
print(f'loss {loss.item():.4g}; PSNR '
      f'{metrics.psnr(x[0], problem.ground_truth):.2f} dB')
