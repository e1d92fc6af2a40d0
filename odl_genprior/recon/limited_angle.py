"""Learned limited-angle CT of the HTC2022 scanner, one network for all ranges.

An unrolled network (`odl_genprior.nn.unrolled`: learned primal-dual or
forward-backward, ordinary or C_N-equivariant) runs over one fixed
operator, the scanner's fan-beam ray transform at ``0, 1, ..., 90``
degrees (`odl_genprior.problems.htc2022_sim.limited_angle_operator`); a
range of ``r`` degrees is the row mask ``angle <= r`` (``M A`` and ``A^T
M``), so one network serves every level of the challenge. Measured data
starting at an angle ``s`` are reconstructed in the frame where they start
at 0 and the image is turned back by ``s`` (a rotation of the object is a
shift of the angles).

`LimitedAngleCT` is the reconstruction method; training, loading and
shipping the networks is the model family
`odl_genprior.models.limited_angle` (shipped networks load by name).
"""
from pathlib import Path

import numpy as np
import torch

from odl_genprior.bridge import as_element, to_numpy
from odl_genprior.problems import htc2022, htc2022_protocol, htc2022_sim
from odl_genprior.recon.base import Reconstructor, check_flag
from odl_genprior.recon.classical import FBP, TV
from odl_genprior.models.limited_angle import (DEFAULT_NETWORK,
                                                build_limited_angle,
                                                list_pretrained_limited_angle,
                                                load_limited_angle)
from odl_genprior.models.unrolled import _display_name

__all__ = ('LimitedAngleCT', 'htc2022_baselines')


def htc2022_baselines(tv_alpha=htc2022_protocol.TV_ALPHA, tv_iter=200):
    """The model-based methods of the HTC2022 protocol, by name.

    ``'fbp'``: FBP with the Hann filter at frequency scaling 0.8; ``'tv'``:
    nonnegative TV, ``tv_iter`` PDHG iterations, the weight tuned on
    simulated data (`htc2022_protocol.TV_ALPHA`). Both are segmented by
    Otsu's threshold. What the benchmark, the example and ``odl-genprior
    htc2022`` run.

    Examples
    --------
    >>> sorted(htc2022_baselines())
    ['fbp', 'tv']
    """
    return {'fbp': FBP(filter_type='Hann', frequency_scaling=0.8),
            'tv': TV(alpha=tv_alpha, niter=tv_iter, nonneg=True)}


class LimitedAngleCT(Reconstructor):
    """A trained limited-angle network applied to HTC2022-scanner data.

    Accepts a `~odl_genprior.problems.ForwardProblem` whose operator is
    the scanner's fan-beam ray transform
    (`odl_genprior.problems.htc2022.htc2022_ray_transform`) at equally
    spaced angles over any start angle and range; data past the network's
    ``max_range`` (90 degrees) are left out. The result is the acrylic
    fraction (1 acrylic, 0 air), resampled to the problem's grid; its
    segmentation is ``x > threshold`` (``threshold = 0.5``).

    Parameters
    ----------
    model : torch.nn.Module or str
        A network of `build_limited_angle`, a run folder or a shipped name
        (`list_pretrained_limited_angle`).
    name : str, optional
        Default: the scheme and the folder or shipped name, e.g. 'learned
        PD (htc-lpd-128)'.
    device : str, optional
        Where a network given by name or folder is loaded.
    allow_other_range : bool, optional
        Data covering less than the network's ``min_range`` (30 degrees for
        the shipped ones) are refused by name; True runs the network on
        them anyway (outside its training).

    Examples
    --------
    >>> net = build_limited_angle({'scheme': 'lfb', 'n_iter': 1,
    ...     'hidden_channels': 4, 'htc2022': {'size': 16}})
    >>> space = htc2022.htc2022_space(16)
    >>> A = htc2022.htc2022_ray_transform(space, np.arange(10, 71, 1.0),
    ...                                   det_binning=4)
    >>> from odl_genprior.problems import ForwardProblem
    >>> p = ForwardProblem(A, A.range.one(), name='toy')
    >>> LimitedAngleCT(net)(p, progress=False).shape
    (16, 16)
    """

    threshold = 0.5

    def __init__(self, model, name=None, device='cpu',
                 allow_other_range=False):
        self.allow_other_range = check_flag('LimitedAngleCT',
                                            'allow_other_range',
                                            allow_other_range)
        source = None
        if isinstance(model, (str, Path)):
            source = Path(model).name  # a shipped name or a run folder
            model = load_limited_angle(model, device=device)
        if not hasattr(model, 'config') or 'htc2022' not in model.config:
            raise TypeError(f'LimitedAngleCT needs a network of '
                            f'build_limited_angle, got {type(model).__name__}')
        self.model = model.eval()
        self.name = name or (f'{_display_name(model.config)} '
                             f'({source or "limited angle"})')

    @classmethod
    def pretrained(cls, name, device='cpu'):
        """A shipped network by name (`list_pretrained_limited_angle`)."""
        return cls(name, device=device)

    def __repr__(self):
        return f'LimitedAngleCT(name={self.name!r})'

    def _reconstruct(self, problem, progress):
        geometry = getattr(problem.operator, 'geometry', None)
        if geometry is None or not np.isclose(
                getattr(geometry, 'src_radius', np.nan),
                htc2022.SOURCE_ORIGIN):
            raise ValueError(f'{self.name} needs data of the HTC2022 scanner '
                             f'(a fan-beam ray transform with source radius '
                             f'{htc2022.SOURCE_ORIGIN} mm), got '
                             f'{problem.operator!r}')
        config = self.model.config['htc2022']
        angles = np.rad2deg(np.asarray(geometry.angles, dtype=np.float64))
        span = float(angles.max() - angles.min()) if angles.size else 0.0
        if span < config['min_range'] - 1e-6 and not self.allow_other_range:
            raise ValueError(
                f'{self.name} was trained for {config["min_range"]:g}-'
                f'{config["max_range"]:g} degrees of data; these cover '
                f'{span:g} degrees ({angles.size} angles). Use TV, or pass '
                'allow_other_range=True (--allow-other-range) to run it '
                'outside its training')
        y, mask, start = htc2022_sim.to_model_frame(
            to_numpy(problem.data), angles, config['max_range'],
            config['angle_step'], config['det_binning'])
        param = next(self.model.parameters())
        with torch.no_grad():
            out = self.model(torch.from_numpy(y)[None].to(param),
                             torch.from_numpy(mask)[None].to(param))
        image = htc2022.resample(out[0].float().cpu().numpy(),
                                 problem.space.shape)
        image = htc2022_sim.rotate_image(image, start)
        return as_element(image, problem.space)
