"""Shared fixtures: small spaces on both ODL backends, seeded torch."""
import numpy as np
import odl
import pytest
import torch

import odl_genprior  # noqa: F401  (installs the ODL speed fix)

IMPLS = ('numpy', 'pytorch')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=IMPLS)
def impl(request):
    return request.param


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(np=np, odl=odl, torch=torch)
