"""The score-model recipe: a `ScoreUNet` trained by denoising score matching.

A score recipe is a dict with ``kind='score'``, ``dataset`` ('ellipses' or
'mnist'), ``size`` and the SDE and network options of `SCORE_DEFAULTS`.
`odl_genprior.generators.recipes` builds, trains (`recipes.fit`, the
package's training loop with the loss `odl_genprior.diffusion.sde.DSMLoss`) and
reloads it (`recipes.load_run`, `odl_genprior.models.pretrained`) like every other
recipe; this module holds the parts that are particular to score models.
The model is an `EMAScore`: the trained `ScoreUNet` and the exponential
moving average of its weights, which is what it runs in eval mode.
"""
import torch

from odl_genprior.diffusion.score_unet import EMAScore, ScoreUNet
from odl_genprior.diffusion.sde import SDE, VESDE, VPSDE, DSMLoss, dsm_loss

__all__ = ('SCORE_DEFAULTS', 'SDE_KEYS', 'complete_score_recipe',
           'build_score_model', 'make_sde', 'score_training',
           'add_sde_arguments', 'add_score_arguments',
           'recipe_from_arguments')

#: Defaults of a score recipe; `complete_score_recipe` writes them out.
SCORE_DEFAULTS = {'sde': 'vp', 'channels': [32, 64], 'embed_dim': 64,
                  'embedding': 'fourier', 'ema': 0.999, 'dsm_eps': 1e-5}
#: The SDE parameters of each SDE and their defaults.
SDE_KEYS = {'vp': {'beta_min': 0.1, 'beta_max': 20.0},
            've': {'sigma_min': 0.01, 'sigma_max': 50.0}}


def complete_score_recipe(recipe):
    """The score recipe with its defaults written out and checked.

    Parameters
    ----------
    recipe : dict
        ``kind='score'``, ``dataset``, optionally ``size`` (ellipses; MNIST
        is 28) and any key of `SCORE_DEFAULTS` or of the chosen SDE's
        `SDE_KEYS`. Keys that are None take their defaults.

    Returns
    -------
    dict

    Examples
    --------
    >>> r = complete_score_recipe({'kind': 'score', 'dataset': 'ellipses',
    ...                            'size': 64, 'sde': 've'})
    >>> r['sigma_max'], r['channels'], 'beta_max' in r
    (50.0, [32, 64], False)
    >>> complete_score_recipe({'kind': 'score', 'dataset': 'mnist',
    ...                        'sde': 'sub-vp'})
    Traceback (most recent call last):
    ...
    ValueError: score recipe: sde must be 'vp' or 've', got 'sub-vp'
    """
    recipe = {k: v for k, v in dict(recipe).items() if v is not None}
    if recipe.get('kind') != 'score':
        raise ValueError(f"not a score recipe: kind={recipe.get('kind')!r}")
    if recipe.get('dataset') not in ('ellipses', 'mnist'):
        raise ValueError(f"score recipe: dataset must be 'ellipses' or "
                         f"'mnist', got {recipe.get('dataset')!r}")
    for key, value in SCORE_DEFAULTS.items():
        recipe.setdefault(key, value)
    sde = recipe['sde']
    if sde not in SDE_KEYS:
        raise ValueError(f"score recipe: sde must be 'vp' or 've', got "
                         f'{sde!r}')
    for other, keys in SDE_KEYS.items():
        for key, value in keys.items():
            if other == sde:
                recipe[key] = float(recipe.get(key, value))
            elif key in recipe:
                raise ValueError(f'score recipe: {key} belongs to the '
                                 f'{other!r} SDE, not to {sde!r}')
    recipe['size'] = 28 if recipe['dataset'] == 'mnist' else int(
        recipe.get('size', 64))
    recipe['channels'] = [int(c) for c in recipe['channels']]
    if len(recipe['channels']) != 2 or min(recipe['channels']) < 1:
        raise ValueError(f'score recipe: channels must be two positive ints '
                         f'(full and half resolution), got '
                         f'{recipe["channels"]}')
    if recipe['size'] % 2:
        raise ValueError(f'score recipe: the image side must be even, got '
                         f'{recipe["size"]}')
    return recipe


def make_sde(recipe):
    """The SDE a (completed) score recipe names.

    Examples
    --------
    >>> make_sde({'sde': 'vp', 'beta_min': 0.1, 'beta_max': 10.0})
    VPSDE(beta_min=0.1, beta_max=10.0)
    """
    if recipe['sde'] == 'vp':
        return VPSDE(recipe['beta_min'], recipe['beta_max'])
    if recipe['sde'] == 've':
        return VESDE(recipe['sigma_min'], recipe['sigma_max'])
    raise ValueError(f"sde must be 'vp' or 've', got {recipe['sde']!r}")


def build_score_model(recipe):
    """The untrained `EMAScore` (a `ScoreUNet` and its average) of a recipe.

    Its attribute ``image_size`` is the side of the training images (the
    fully convolutional network runs on any even size, but has learned only
    this one).

    Examples
    --------
    >>> m = build_score_model({'kind': 'score', 'dataset': 'ellipses',
    ...                        'size': 16, 'channels': [8, 16],
    ...                        'embed_dim': 16})
    >>> m.sde, m.image_size
    (VPSDE(beta_min=0.1, beta_max=20.0), 16)
    >>> m.eval()(torch.zeros(3, 16, 16), torch.full((3,), 0.5)).shape
    torch.Size([3, 16, 16])
    """
    recipe = complete_score_recipe(recipe)
    net = ScoreUNet(make_sde(recipe), channels=tuple(recipe['channels']),
                    embed_dim=int(recipe['embed_dim']),
                    embedding=recipe['embedding'])
    model = EMAScore(net, decay=float(recipe['ema']))
    model.image_size = recipe['size']  # the side of the training images
    return model


class _ValDSM:
    """Validation: the DSM loss of the EMA weights with fixed noise."""

    def __init__(self, sde, eps, seed=1234, batch=100):
        self.sde, self.eps, self.seed, self.batch = sde, eps, seed, batch

    def __call__(self, model, val):
        g = torch.Generator(device=val.device).manual_seed(self.seed)
        total, n = 0.0, val.shape[0]
        for i in range(0, n, self.batch):
            x = val[i:i + self.batch]
            total += float(dsm_loss(model, self.sde, x, eps=self.eps,
                                    generator=g)) * x.shape[0]
        return {'dsm': total / n}


def _ema_callback(info):
    info['model'].update()


def score_training(model, recipe):
    """Keyword arguments of `odl_genprior.training.train` for a score model.

    ``loss_fn`` (DSM), ``val_metric`` (DSM of the EMA weights with fixed
    noise), ``callback`` (the EMA update after every step) and
    ``clip_grad_norm=1`` (as Song et al.).

    Examples
    --------
    >>> r = {'kind': 'score', 'dataset': 'ellipses', 'size': 8,
    ...      'channels': [4, 8], 'embed_dim': 8}
    >>> sorted(score_training(build_score_model(r), r))
    ['callback', 'clip_grad_norm', 'loss_fn', 'val_metric']
    """
    if not isinstance(model, EMAScore) or not isinstance(model.sde, SDE):
        raise TypeError(f'model must be an EMAScore, got '
                        f'{type(model).__name__}')
    eps = float(complete_score_recipe(recipe)['dsm_eps'])
    return {'loss_fn': DSMLoss(model.sde, eps=eps),
            'val_metric': _ValDSM(model.sde, eps),
            'callback': _ema_callback, 'clip_grad_norm': 1.0}


def add_sde_arguments(parser, prefix=''):
    """Add the SDE and network options only score models have.

    ``--sde``, ``--beta-min``, ``--beta-max``, ``--sigma-min``,
    ``--sigma-max``, ``--embed-dim``, ``--ema``; ``prefix`` starts each help
    text (``odl-genprior train`` shares one parser among all kinds).

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_sde_arguments(p)
    >>> p.parse_args(['--sde', 've', '--sigma-max', '10']).sigma_max
    10.0
    """
    add = parser.add_argument
    add('--sde', choices=('vp', 've'), default='vp',
        help=f'{prefix}variance preserving or exploding SDE')
    add('--beta-min', type=float, default=None, help=f'{prefix}VP: default 0.1')
    add('--beta-max', type=float, default=None, help=f'{prefix}VP: default 20')
    add('--sigma-min', type=float, default=None,
        help=f'{prefix}VE: default 0.01')
    add('--sigma-max', type=float, default=None,
        help=f'{prefix}VE: default 50')
    add('--embed-dim', type=int, default=None,
        help=f'{prefix}time embedding size (default 64)')
    add('--ema', type=float, default=None,
        help=f'{prefix}decay of the weight average used for sampling '
             '(default 0.999)')


def add_score_arguments(parser):
    """Add the options of a score recipe to an ``argparse`` parser.

    ``--dataset``, ``--size``, ``--sde``, ``--beta-min``, ``--beta-max``,
    ``--sigma-min``, ``--sigma-max``, ``--channels``, ``--embed-dim``,
    ``--ema`` (see `SCORE_DEFAULTS`), and the training options
    ``--data-dir``, ``--out``, ``--n-train``, ``--n-val``, ``--epochs``,
    ``--batch-size``, ``--lr``, ``--seed``, ``--checkpoint-every``,
    ``--no-resume``, ``--quiet`` (with the defaults of ``odl-genprior
    train``).

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_score_arguments(p)
    >>> a = p.parse_args(['--out', 'run', '--sde', 've'])
    >>> recipe_from_arguments(a)['sigma_max']
    50.0
    """
    add = parser.add_argument
    add('--dataset', choices=('ellipses', 'mnist'), default='ellipses')
    add('--size', type=int, default=None,
        help='image side for ellipses (default 64; MNIST is 28)')
    add('--channels', type=int, nargs=2, default=None,
        help='U-Net channels at full and half resolution (default 32 64)')
    add_sde_arguments(parser)
    add('--data-dir', default=None,
        help='MNIST IDX folder (default: $ODL_GENPRIOR_MNIST)')
    add('--out', required=True, help='run folder')
    add('--n-train', type=int, default=10000)
    add('--n-val', type=int, default=500)
    add('--epochs', type=int, default=10)
    add('--batch-size', type=int, default=64)
    add('--lr', type=float, default=1e-3)
    add('--seed', type=int, default=0)
    add('--checkpoint-every', type=int, default=None,
        help='steps between checkpoints (default: each epoch)')
    add('--no-resume', action='store_true',
        help='refuse to continue a run already in --out')
    add('--quiet', action='store_true')


def recipe_from_arguments(args):
    """The completed score recipe of parsed `add_score_arguments` options.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_score_arguments(p)
    >>> r = recipe_from_arguments(p.parse_args(
    ...     ['--out', 'run', '--dataset', 'mnist', '--channels', '16', '32']))
    >>> r['size'], r['channels'], r['sde'], r['beta_max']
    (28, [16, 32], 'vp', 20.0)
    """
    recipe = {'kind': 'score', 'dataset': args.dataset, 'size': args.size,
              'sde': args.sde, 'channels': args.channels,
              'embed_dim': args.embed_dim, 'ema': args.ema}
    if args.sde == 'vp':
        recipe.update(beta_min=args.beta_min, beta_max=args.beta_max)
    else:
        recipe.update(sigma_min=args.sigma_min, sigma_max=args.sigma_max)
    if args.dataset == 'mnist':
        recipe['size'] = None
    return complete_score_recipe(recipe)
