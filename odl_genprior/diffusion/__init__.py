"""Score-based diffusion priors: SDEs (`sde`), samplers (`samplers`), the
score U-Net (`score_unet`) and its training recipe (`score_recipe`); the
reconstruction methods that use them are in `odl_genprior.recon.diffusion`.
"""
