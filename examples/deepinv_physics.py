"""DIVal's ellipses ray transform as a deepinv physics.

`odl_genprior.interop.deepinv.as_physics` makes the ODL/ASTRA ray
transform of DIVal's ellipses protocol (here at 64x64, 30 angles) a deepinv
``LinearPhysics``; `protocol_dataset` gives the protocol's test pairs in
deepinv's layout. The script prints deepinv's adjointness test and operator
norm, then reconstructs four test images with deepinv's FISTA (TV prior)
through the physics, with plain gradient descent through the physics'
autograd (its backward is the transpose ``A^T``), and with the package's
FBP as a deepinv solver (`as_solver`), and prints their PSNR. Needs
``pip install ".[deepinv]"``; about 10 s on a CPU.

    python examples/deepinv_physics.py
"""
import time

import torch

from odl_genprior.interop import deepinv as interop
from odl_genprior.problems.ellipse_ct import DivalEllipses
from odl_genprior.recon import FBP

dinv = interop.import_deepinv()
torch.manual_seed(0)

bench = DivalEllipses(size=64, num_angles=30)
dataset, physics = interop.protocol_dataset(bench, 4, 'test')
x, y = dataset.x, dataset.y  # (4, 1, 64, 64) images, (4, 1, 30, 95) data
print(f'physics {type(physics).__name__}: x {tuple(x.shape)} -> '
      f'y {tuple(y.shape)}')

# deepinv's checks on the adapter (Euclidean inner products)
print(f'adjointness_test: {float(physics.adjointness_test(x)):.2e}')
sqnorm = float(physics.compute_sqnorm(x[:1], max_iter=200, tol=1e-6,
                                      verbose=False))
print(f'||A||^2 (power method): {sqnorm:.4g}')

psnr = dinv.metric.PSNR(max_pixel=1.0)


def report(name, x_hat, seconds):
    value = float(psnr(x_hat.clamp(0, 1), x).mean())
    print(f'{name:<28s} PSNR {value:6.2f} dB   {seconds:6.1f} s')


# The ray transform is not normalized (||A||^2 is about 2000), so both
# iterations start from zero rather than from deepinv's default A^T y.
def zero_init(y, physics):
    z = torch.zeros_like(physics.A_adjoint(y))
    return z, z.clone()


# 1. deepinv's FISTA with its TV prior
t = time.time()
model = dinv.optim.FISTA(data_fidelity=dinv.optim.L2(),
                         prior=dinv.optim.TVPrior(n_it_max=20),
                         stepsize=1.0 / sqnorm, lambda_reg=1.0, max_iter=100,
                         custom_init=zero_init)
with torch.no_grad():
    x_tv = model(y, physics)
report('deepinv FISTA + TV (100 it)', x_tv, time.time() - t)

# 2. plain gradient descent through the physics' autograd (backward: A^T)
t = time.time()
z = torch.zeros_like(x, requires_grad=True)
opt = torch.optim.SGD([z], lr=1.0 / sqnorm)
for _ in range(100):
    opt.zero_grad()
    loss = 0.5 * ((physics.A(z) - y) ** 2).sum()
    loss.backward()
    opt.step()
report('gradient descent (100 it)', z.detach(), time.time() - t)
print(f'  data misfit 0.5 ||A z - y||^2 = {loss.item():.4g} '
      f'(0.5 ||y||^2 = {0.5 * float((y ** 2).sum()):.4g})')

# 3. the package's FBP as a deepinv solver on the batch
t = time.time()
report('FBP (as_solver)', interop.as_solver(FBP())(y, physics),
       time.time() - t)
