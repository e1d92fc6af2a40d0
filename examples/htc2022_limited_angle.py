"""HTC2022 limited angles: FBP, TV and the shipped learned network, 90 to 30 deg.

Cuts one measured HTC2022 teaching sinogram at the challenge's seven levels
(90, 80, ..., 30 degrees of data) from one start angle, reconstructs each on
a 128x128 grid with FBP (Hann), TV (weight tuned on simulated data) and the
shipped limited-angle network (`odl_genprior.recon.limited_angle.
LimitedAngleCT`: one learned primal-dual for every range, trained on
simulated discs only), segments them (Otsu for FBP and TV, the 1/2 level for
the network) and prints the MCC against the organisers' segmentation. About
a minute on a CPU; the full protocol (5 phantoms, 3 start angles) is
``python benchmarks/htc2022.py``.

Data: ``--data DIR`` or ``$ODL_GENPRIOR_HTC2022`` (default
``../shared/data/htc2022`` beside the repository)::

    python examples/htc2022_limited_angle.py --phantom tb --start 253.5
"""
import argparse
import os
import time
from pathlib import Path

from odl_genprior.problems import htc2022
from odl_genprior.problems import htc2022_protocol as protocol
from odl_genprior.recon.limited_angle import LimitedAngleCT, htc2022_baselines
from odl_genprior.models.limited_angle import list_pretrained_limited_angle

DEFAULT_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'htc2022'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.environ.get(htc2022.HTC2022_ENV)
                        or str(DEFAULT_DATA))
    parser.add_argument('--phantom', default='tb', choices=htc2022.PHANTOMS)
    parser.add_argument('--start', type=float, default=253.5,
                        help='first angle (degrees, a multiple of 0.5)')
    parser.add_argument('--levels', nargs='+', type=int,
                        default=list(protocol.LEVELS))
    args = parser.parse_args(argv)

    methods = list(htc2022_baselines().values())
    methods += [LimitedAngleCT(n) for n in list_pretrained_limited_angle()]
    print(f'{args.phantom} from {args.start:g} deg, MCC against the '
          "organisers' segmentation")
    print('| level (deg) | ' + ' | '.join(m.name for m in methods) + ' |')
    print('|---' * (len(methods) + 1) + '|')
    start = time.time()
    for level in args.levels:
        p = htc2022.load_htc2022(args.phantom, args.data, angular_range=level,
                                 start_angle=args.start, size=128,
                                 angle_step=2, det_binning=4)
        truth = p.info['reference_segmentation']
        scores = [htc2022.score(m(p, progress=False), truth,
                                getattr(m, 'threshold', None))
                  for m in methods]
        print(f'| {level} | ' + ' | '.join(f'{s:.3f}' for s in scores)
              + ' |', flush=True)
    print(f'total {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
