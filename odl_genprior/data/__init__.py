"""Data sets: random ellipses, Shepp-Logan, MNIST, 1D signals
(`datasets`) and the toy 2D point clouds (`toy`)."""
from odl_genprior.data import datasets as _datasets
from odl_genprior.data.datasets import *  # noqa: F401,F403

__all__ = _datasets.__all__
