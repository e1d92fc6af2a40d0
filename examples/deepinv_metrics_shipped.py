"""A shipped learned network scored by deepinv's metrics, beside FBP.

Loads one of the package's shipped networks
(``LearnedReconstructor.pretrained('dival-lpd-128')``: learned primal-dual
for DIVal's ellipses, 128x128, 30 angles), makes it and FBP deepinv solvers
(`odl_genprior.interop.deepinv.as_solver`), reconstructs the first ``--n``
DIVal test pairs (``protocol_dataset(DivalEllipses(), n, 'test')``, never
seen in training) and prints deepinv's ``PSNR`` and ``SSIM``
(``deepinv.loss.metric``, data range [0, 1], reconstructions clipped to it)
of each: per method the mean and the standard deviation over the images.
With ``--deepinv-test`` it also runs deepinv's own evaluation loop,
``deepinv.test(solver, loader, physics, metrics=[PSNR, SSIM])``, and prints
what it returns. About 10 s on a CPU for ``--n 4``.

    python examples/deepinv_metrics_shipped.py [--n 4] [--network
        dival-lpd-128] [--deepinv-test]
"""
import argparse
import time

import torch

from odl_genprior.interop import deepinv as interop
from odl_genprior.problems.ellipse_ct import DivalEllipses
from odl_genprior.recon import FBP
from odl_genprior.recon.learned import LearnedReconstructor

dinv = interop.import_deepinv()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=4, help='test pairs')
    parser.add_argument('--network', default='dival-lpd-128',
                        help='a shipped network for DIVal at 128x128')
    parser.add_argument('--deepinv-test', action='store_true',
                        help='also run deepinv.test on the solvers')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset, physics = interop.protocol_dataset(DivalEllipses(), args.n,
                                                'test')
    x, y = dataset.x, dataset.y
    metrics = {'PSNR': dinv.loss.metric.PSNR(max_pixel=1.0),
               'SSIM': dinv.loss.metric.SSIM(max_pixel=1.0)}
    solvers = {'FBP': interop.as_solver(FBP()),
               args.network: interop.as_solver(
                   LearnedReconstructor.pretrained(args.network))}
    print(f'DIVal ellipses, {args.n} test pairs: x {tuple(x.shape)}, '
          f'y {tuple(y.shape)}; deepinv metrics (data range [0, 1])')
    width = max(len(k) for k in solvers)
    print(f'{"method":<{width}}  {"PSNR dB":>13}  {"SSIM":>13}  '
          f'{"s / image":>9}')
    rows = []
    for name, solver in solvers.items():
        t = time.perf_counter()
        with torch.no_grad():
            x_hat = solver(y, physics).clamp(0, 1)
        seconds = (time.perf_counter() - t) / args.n
        values = {k: m(x_hat, x) for k, m in metrics.items()}
        cells = []
        for k in ('PSNR', 'SSIM'):
            v = values[k]
            sd = float(v.std()) if v.numel() > 1 else 0.0
            cells.append(f'{float(v.mean()):6.3f} +-{sd:5.3f}' if k == 'SSIM'
                         else f'{float(v.mean()):6.2f} +-{sd:5.2f}')
        print(f'{name:<{width}}  {cells[0]:>13}  {cells[1]:>13}  '
              f'{seconds:9.2f}')
        rows.append((name, float(values['PSNR'].mean()),
                     float(values['SSIM'].mean())))

    if args.deepinv_test:
        loader = torch.utils.data.DataLoader(dataset, batch_size=4)
        for name, solver in solvers.items():
            result = dinv.test(solver, loader, physics,
                               metrics=list(metrics.values()),
                               compare_no_learning=False, verbose=False,
                               show_progress_bar=False,
                               non_blocking_transfers=False)
            shown = ', '.join(f'{k} {v:.4g}' for k, v in result.items())
            print(f'deepinv.test({name}): {shown}')
    return rows


if __name__ == '__main__':
    main()
