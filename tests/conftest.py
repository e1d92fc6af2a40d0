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


@pytest.fixture(scope='module')
def one_torch_thread():
    """One torch thread for a module's tests (``pytestmark =
    pytest.mark.usefixtures('one_torch_thread')``): on 2 shared cores the
    thread pool costs more than it gives on small tensors (measured 3x slower
    with 2 threads under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=IMPLS)
def impl(request):
    return request.param


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(np=np, odl=odl, torch=torch)
