"""The generators (VAE, AE, WGAN-GP, CGNN, score networks) as a trainable
family of the registry: `odl_genprior.generators.recipes` builds, trains
and reloads them; their shipped models lie in the one root,
``odl_genprior/models/pretrained``."""
from odl_genprior.generators import recipes
from odl_genprior.models.registry import Family, register

__all__ = ()


def _is_generator(user):
    return isinstance(user.get('recipe'), dict)


register(Family('generator', build=recipes.build_model, fit=recipes.fit,
                load=recipes.load_run, recognizes=_is_generator,
                commands=recipes.KIND_HELP))
