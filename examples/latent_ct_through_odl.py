"""Latent-space CT: ODL's adam on ``||A G(z) - y||^2`` with G a torch module.

The generator here is untrained (random weights) and the "ground truth" is
one of its outputs, so the example shows the mechanics: a torch module as an
ODL operator, composed with ASTRA's ray transform and minimised by ODL's own
solver. Trained generators (issue 3) plug in the same way. About 10 s on a
CPU.

    python examples/latent_ct_through_odl.py
"""
import odl
import torch

import odl_genprior as og
from odl_genprior import metrics, problems

torch.manual_seed(0)


class Decoder(torch.nn.Module):
    """R^16 -> (1, 1, 64, 64), DCGAN-like."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 32 * 4 * 4)
        ups = [torch.nn.ConvTranspose2d(a, b, 4, 2, 1)
               for a, b in ((32, 16), (16, 8), (8, 8), (8, 1))]
        self.ups = torch.nn.ModuleList(ups)

    def forward(self, z):
        h = torch.tanh(self.fc(z)).reshape(-1, 32, 4, 4)
        for i, up in enumerate(self.ups):
            h = up(h)
            h = torch.sigmoid(h) if i == len(self.ups) - 1 else torch.relu(h)
        return h


space = problems.image_space(64, impl='pytorch')
latent = odl.rn(16, dtype='float32', impl='pytorch')
G = og.TorchOperator(Decoder().eval(), latent, space)
x_true = G(latent.element(torch.randn(16)))
problem = problems.ct(size=64, num_angles=20, phantom=x_true, impl='pytorch',
                      noise_level=0.02, seed=1)
A, y = problem.operator, problem.data

objective = odl.functionals.L2NormSquared(A.range).translated(y) * (A * G)
z = latent.zero()
print(f'objective at z = 0: {objective(z):.4g}')
odl.solvers.adam(objective, z, learning_rate=0.05, maxiter=300,
                 callback=odl.solvers.CallbackProgressBar(niter=300))
x = G(z)
print(f'objective after 300 adam steps: {objective(z):.4g}')
print(f'PSNR of G(z) against the truth: {metrics.psnr(x, x_true):.2f} dB')
