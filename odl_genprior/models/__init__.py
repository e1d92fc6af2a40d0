"""Trainable model families above the networks, below the methods: how a
model is built, trained, loaded and shipped (`unrolled`: the unrolled CT
networks). Reconstruction methods (`odl_genprior.recon`) use them; they
never import a method."""
