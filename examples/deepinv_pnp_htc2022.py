"""deepinv plug-and-play on the HTC2022 limited-angle fan-beam operator.

A simulated HTC2022 problem (`odl_genprior.problems.htc2022_protocol.
simulated_problem`: the scanner's fan-beam ray transform over ``--level``
degrees, data simulated on a twice finer grid with the scanner's noise and
beam hardening) is made a deepinv physics by
`odl_genprior.interop.deepinv.as_physics` (the ODL/ASTRA fan-beam operator
through `OperatorLayer`), and reconstructed by deepinv's plug-and-play
proximal gradient descent (``deepinv.optim.optim_builder('PGD', prior=
deepinv.optim.PnP(denoiser))``, ``L2`` data fidelity, step ``1 / ||A||^2``,
from zero) with a denoiser as the prior. The images are divided by the
scanner's attenuation (so the disc is about 1, the range deepinv's
denoisers expect), which divides the data by it too (the operator is
linear). The script prints the PSNR and the Matthews correlation
coefficient (the challenge's score: the segmentation ``x > 1/2`` against
the truth's) of each reconstruction, beside the package's FBP (as a deepinv
solver, `as_solver`).

Denoisers (``--denoiser``):

* ``tv`` (default): ``deepinv.models.TVDenoiser`` (classical: PnP-TV);
* ``median``: ``deepinv.models.MedianFilter`` (classical);
* ``drunet`` / ``dncnn``: ``deepinv.models.DRUNet`` / ``DnCNN`` with one
  channel. Pretrained weights cannot be downloaded here, so without
  ``--weights`` they are untrained (random) and only show that the
  pipeline runs. With weights, pass the file:
  ``--denoiser drunet --weights drunet_gray.pth`` builds
  ``DRUNet(in_channels=1, out_channels=1, pretrained='drunet_gray.pth')``
  (deepinv's ``pretrained=`` takes a local path; ``'download'`` fetches
  deepinv's published weights where the network allows).

``--sigma`` is the denoiser's strength (deepinv's ``g_param``) for the
normalised image. At the default (64x64, 90 degrees, 100 iterations) it
takes well under a minute on a CPU.

    python examples/deepinv_pnp_htc2022.py [--size 64] [--level 90]
        [--iters 100] [--denoiser tv] [--sigma 0.02] [--weights FILE]
"""
import argparse
import time

import torch

from odl_genprior.bridge import as_tensor
from odl_genprior.interop import deepinv as interop
from odl_genprior.problems import htc2022, htc2022_sim
from odl_genprior.problems.htc2022_protocol import simulated_problem
from odl_genprior.recon import FBP

dinv = interop.import_deepinv()


def make_denoiser(name, weights=None):
    if name == 'tv':
        return dinv.models.TVDenoiser(n_it_max=50)
    if name == 'median':
        return dinv.models.MedianFilter()
    if name == 'drunet':
        return dinv.models.DRUNet(in_channels=1, out_channels=1,
                                  pretrained=weights)
    if name == 'dncnn':
        return dinv.models.DnCNN(in_channels=1, out_channels=1,
                                 pretrained=weights)
    raise ValueError(f'unknown denoiser {name!r}')


def scores(x_hat, truth, segmentation):
    """PSNR (data range of the truth) and MCC of ``x_hat > 1/2``."""
    psnr = dinv.metric.PSNR(max_pixel=float(truth.max()))
    value = float(psnr(x_hat, truth))
    seg = (x_hat[0, 0] > 0.5).numpy()
    return value, float(htc2022.mcc(seg, segmentation))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--level', type=float, default=90,
                        help='degrees of data (HTC2022: 30..90)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--denoiser', default='tv',
                        choices=('tv', 'median', 'drunet', 'dncnn'))
    parser.add_argument('--sigma', type=float, default=0.02,
                        help="denoiser strength (deepinv's g_param)")
    parser.add_argument('--weights', default=None,
                        help='a local weights file for drunet / dncnn')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    problem = simulated_problem(args.level, seed=args.seed, size=args.size)
    att = htc2022_sim.SCANNER.attenuation
    physics = interop.as_physics(problem.operator)
    y = as_tensor(problem.data, dtype=torch.float32)[None, None] / att
    truth = as_tensor(problem.ground_truth,
                      dtype=torch.float32)[None, None] / att
    segmentation = problem.info['reference_segmentation']
    print(f'simulated HTC2022, {args.level:g} degrees, {args.size}x'
          f'{args.size}, fan beam: y {tuple(y.shape)} '
          f'({type(physics).__name__})')
    sqnorm = float(physics.compute_sqnorm(torch.zeros_like(truth),
                                          max_iter=100, tol=1e-5,
                                          verbose=False))

    rows = []
    t = time.perf_counter()
    x_fbp = interop.as_solver(FBP())(y, physics)
    rows.append(('FBP (as_solver)', time.perf_counter() - t,
                 *scores(x_fbp, truth, segmentation)))

    def zero_init(y, physics):
        z = torch.zeros_like(truth)
        return z, z.clone()

    t = time.perf_counter()
    model = dinv.optim.optim_builder(
        'PGD', prior=dinv.optim.PnP(make_denoiser(args.denoiser,
                                                  args.weights)),
        data_fidelity=dinv.optim.L2(), max_iter=args.iters,
        params_algo={'stepsize': 1.0 / sqnorm, 'g_param': args.sigma},
        custom_init=zero_init)
    with torch.no_grad():
        x_pnp = model(y, physics)
    rows.append((f'PnP-PGD + {args.denoiser} ({args.iters} it)',
                 time.perf_counter() - t,
                 *scores(x_pnp, truth, segmentation)))

    width = max(len(r[0]) for r in rows)
    print(f'{"method":<{width}}  {"PSNR dB":>8}  {"MCC":>6}  {"time s":>7}')
    for name, seconds, psnr, mcc in rows:
        print(f'{name:<{width}}  {psnr:8.2f}  {mcc:6.3f}  {seconds:7.1f}')
    return rows


if __name__ == '__main__':
    main()
