"""odl_genprior.diagnostics: the contract checks catch broken operators."""
import numpy as np
import odl
import pytest
import torch

from odl_genprior import diagnostics
from odl_genprior.bridge import TorchOperator
from odl_genprior.problems.ellipse_ct import EllipseCT


class _WrongAdjoint(odl.Operator):
    """A scaling whose adjoint is off by 10 %."""

    def __init__(self, space, factor):
        super().__init__(space, space, linear=True)
        self.factor = factor

    def _call(self, x):
        return self.factor * x

    @property
    def adjoint(self):
        return _WrongAdjoint(self.domain, 1.1 * self.factor)


class _WrongDerivative(odl.Operator):
    """x -> x^3 with the derivative of x^2."""

    def __init__(self, space):
        super().__init__(space, space)

    def _call(self, x):
        return x ** 3

    def derivative(self, x):
        return odl.MultiplyOperator(2 * x, domain=self.domain,
                                    range=self.range)


def test_the_checks_pass_on_true_operators():
    A = EllipseCT(size=16, num_angles=8).operator
    diagnostics.check_adjoint(A, rtol=1e-4)
    diagnostics.check_adjoint(A.adjoint, rtol=1e-4)
    space = odl.uniform_discr([0, 0], [1, 1], (6, 6), dtype='float32',
                              impl='pytorch')
    torch.manual_seed(0)
    net = TorchOperator(torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Tanh(),
        torch.nn.Conv2d(2, 1, 3, padding=1)), space, space)
    diagnostics.check_derivative(net, rtol=3e-2, eps=(1e-2, 1e-3))
    diagnostics.check_element_of(net(space.one()), space)


def test_the_checks_name_what_is_broken():
    space = odl.uniform_discr([0, 0], [1, 1], (5, 5))
    with pytest.raises(diagnostics.OperatorCheckError,
                       match=r'differ by 0\.0\d+ \(relative\)'):
        diagnostics.check_adjoint(_WrongAdjoint(space, 2.0))
    with pytest.raises(diagnostics.OperatorCheckError,
                       match='from central differences'):
        diagnostics.check_derivative(_WrongDerivative(space))
    with pytest.raises(diagnostics.OperatorCheckError, match='vacuous'):
        diagnostics.adjoint_error(odl.ZeroOperator(space))
    other = odl.uniform_discr([0, 0], [1, 1], (5, 5), dtype='float32')
    with pytest.raises(diagnostics.OperatorCheckError,
                       match='not of uniform_discr'):
        diagnostics.check_element_of(other.one(), space)


def test_random_elements_are_seeded_and_not_zero():
    space = odl.uniform_discr([0, 0], [1, 1], (4, 4))
    a = diagnostics.random_element(space, np.random.default_rng(3))
    b = diagnostics.random_element(space, np.random.default_rng(3))
    assert a.norm() > 0 and (a - b).norm() == 0
