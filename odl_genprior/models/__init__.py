"""Trainable model families above the networks, below the methods: how a
model is built, trained, loaded and shipped, one registry for all
(`registry`): `unrolled` (the unrolled CT networks), `limited_angle` (the
HTC2022 limited-angle networks), `generators` (VAE, AE, GAN, CGNN, score
networks), `learned_svd` (Boink and Brune's learned SVD). `pretrained(name)` loads any shipped model. Reconstruction
methods (`odl_genprior.recon`) use them; they never import a method."""
from odl_genprior.models.registry import (FAMILIES, Family, family_of,
                                          list_pretrained, load, pretrained,
                                          register, ship)
from odl_genprior.models import unrolled  # noqa: F401  (registers)
from odl_genprior.models import limited_angle  # noqa: F401
from odl_genprior.models import generators  # noqa: F401
from odl_genprior.models import learned_svd  # noqa: F401

__all__ = ('FAMILIES', 'Family', 'family_of', 'list_pretrained', 'load',
           'pretrained', 'register', 'ship')
