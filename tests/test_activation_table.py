"""The one table of pointwise activations (`odl_genprior.activations`)."""
import pytest
import torch

from odl_genprior.activations import ACTIVATIONS, activation, lipschitz
from odl_genprior.generators.decoders import ConvDecoder, MLPDecoder
from odl_genprior.generators.skip_net import SkipNet
from odl_genprior.nn.odenets import DenseField, GradientField


@pytest.mark.parametrize('name', sorted(ACTIVATIONS))
def test_slope_between_zero_and_lipschitz_constant(name):
    # Difference quotients on random pairs: 0 <= (s(a) - s(b)) / (a - b) <= S.
    g = torch.Generator().manual_seed(0)
    a = 4 * torch.randn(10000, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.randn(10000, generator=g, dtype=torch.float64)
    f = activation(name)
    q = (f(a) - f(b)) / (a - b)
    assert float(q.min()) >= -1e-12
    assert float(q.max()) <= lipschitz(name) + 1e-12
    # The constant is attained (not just an upper bound) near the origin.
    assert float(q.max()) > 0.9 * lipschitz(name)


def test_none_is_identity():
    x = torch.randn(5)
    assert torch.equal(activation(None)(x), x)
    assert torch.equal(activation('none')(x), x)


@pytest.mark.parametrize('build', [
    lambda a: ConvDecoder(4, 16, width=8, out_activation=a),
    lambda a: MLPDecoder(4, (1, 8, 8), out_activation=a),
    lambda a: SkipNet(out_activation=a),
    lambda a: DenseField(3, activation=a),
    lambda a: GradientField(3, activation=a),
], ids=['ConvDecoder', 'MLPDecoder', 'SkipNet', 'DenseField',
        'GradientField'])
def test_every_network_refuses_an_unknown_name_the_same_way(build):
    with pytest.raises(ValueError, match=r"unknown activation 'softplus'; "
                       r"choose one of \['none', 'relu', 'sigmoid', 'tanh'\]"):
        build('softplus')
    build('tanh')  # and accepts a known one
