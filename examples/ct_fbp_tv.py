"""Sparse-view CT on random ellipses: FBP and TV-PDHG, the classical baselines.

Every method follows one contract: ``method.reconstruct(problem)`` returns an
element of the reconstruction space. Runs in about 10 s on a CPU.

    python examples/ct_fbp_tv.py
"""
from odl_genprior import metrics, problems
from odl_genprior.recon import FBP, TV

problem = problems.ct(size=128, num_angles=30, noise_level=0.05, seed=0)
print(f'{problem.name}: data {problem.data.shape}, '
      f'noise level ||y - A x|| = {problem.noise_level:.3f}')
for method in (FBP(filter_type='Hann', frequency_scaling=0.6),
               TV(alpha=1e-3, niter=200)):
    x = method.reconstruct(problem)
    print(f'{method.name:>4}: PSNR {metrics.psnr(x, problem.ground_truth):.2f} dB,'
          f' SSIM {metrics.ssim(x, problem.ground_truth):.3f}')
