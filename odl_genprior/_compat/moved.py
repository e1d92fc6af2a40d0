"""Old module paths and names of odl_genprior, from before the layered
layout.

``import odl_genprior.ct_benchmark`` (and ``from odl_genprior import
unrolled``) still work for one release: a finder on ``sys.meta_path`` gives
the module at its new place, with a DeprecationWarning that names it. A
name that moved to a higher layer (``signals1d.latent_deblur``, now in
``recon``) resolves through `moved_names`, the module's ``__getattr__``:
the lower module never imports the higher one itself.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter('ignore')
...     import odl_genprior.unrolled as old
>>> import odl_genprior.nn.unrolled as new
>>> old is new
True
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module -> new module (both full dotted names)
MOVED = {f'odl_genprior.{old}': f'odl_genprior.{new}' for old, new in {
    '_odl_compat': '_compat.odl_fixes',
    'ct_benchmark': 'problems.ellipse_ct',
    'htc2022': 'problems.htc2022',
    'toy_data': 'data.toy',
    'unrolled': 'nn.unrolled',
    'equivariant': 'nn.equivariant',
    'odenets': 'nn.odenets',
    'certified': 'nn.certified',
    'activations': 'bregman.activations',
    'lifted_training': 'bregman.lifted_training',
    'pnn': 'bregman.pnn',
    'sde': 'diffusion.sde',
    'samplers': 'diffusion.samplers',
    'generators.score_unet': 'diffusion.score_unet',
    'generators.score_recipe': 'diffusion.score_recipe',
}.items()}


#: module -> {old name: module that now holds it}
MOVED_NAMES = {
    'odl_genprior.generators.signals1d': {
        'latent_deblur': 'odl_genprior.recon.latent',
        'LatentFit': 'odl_genprior.recon.latent',
    },
}


def moved_names(module):
    """A module ``__getattr__`` that finds the names of ``module`` that
    moved (`MOVED_NAMES`), with a DeprecationWarning.

    Examples
    --------
    >>> import warnings
    >>> from odl_genprior.generators import signals1d
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter('always')
    ...     f = signals1d.latent_deblur
    >>> from odl_genprior.recon.latent import latent_deblur
    >>> f is latent_deblur, 'recon.latent' in str(w[0].message)
    (True, True)
    """
    moved = MOVED_NAMES.get(module, {})

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f'module {module!r} has no attribute '
                                 f'{name!r}')
        warnings.warn(f'{module}.{name} moved to {moved[name]}; import it '
                      'from there', DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(moved[name]), name)

    return __getattr__


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module at its new place (one object)."""

    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f'{spec.name} moved to {self.new}; import it from '
                      'there', DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        # already executed at its new place; importlib has just set
        # __spec__ to the old name's spec: give the module its own back
        module.__spec__ = self._spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install():
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
