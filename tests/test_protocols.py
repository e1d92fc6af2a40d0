"""Conformance of every registered protocol (problems.protocol.PROTOCOLS):
config round trip, seeded problems and pairs, split separation, shapes."""
import json

import numpy as np
import pytest
import torch

import odl_genprior.problems  # noqa: F401  (registers the protocols)
from odl_genprior.bridge import to_numpy
from odl_genprior.problems.protocol import (PROTOCOLS, Protocol,
                                            parallel_pairs,
                                            make_protocol, register)

pytestmark = pytest.mark.usefixtures('one_torch_thread')
NAMES = sorted(PROTOCOLS)


def test_the_three_protocols_are_registered():
    assert NAMES == ['dival', 'ellipse', 'htc2022']


@pytest.mark.parametrize('name', NAMES)
def test_config_round_trip(name):
    proto = PROTOCOLS[name].small()
    cfg = proto.config()
    json.dumps(cfg)  # what a run folder records
    again = make_protocol(cfg if name != 'ellipse' else
                          {**cfg, 'protocol': 'ellipse'})
    assert type(again) is type(proto) and again.config() == cfg
    with pytest.raises(ValueError, match=r"unknown .* option\(s\) \['bogus'\]"):
        make_protocol({**cfg, 'protocol': name, 'bogus': 1})


@pytest.mark.parametrize('name', NAMES)
def test_problems_are_seeded_and_fit_the_operator(name):
    proto = PROTOCOLS[name].small()
    A = proto.operator
    p, q = proto.problem(1, 'test'), proto.problem(1, 'test')
    np.testing.assert_array_equal(to_numpy(p.data), to_numpy(q.data))
    assert p.operator.domain.shape == A.domain.shape
    assert p.ground_truth in p.operator.domain
    assert not np.array_equal(to_numpy(p.data),
                              to_numpy(proto.problem(1, 'validation').data))
    with pytest.raises(ValueError, match='split must be one of'):
        proto.problem(0, 'dev')


@pytest.mark.parametrize('name', NAMES)
def test_pairs_are_seeded_shaped_and_split(name):
    proto = PROTOCOLS[name].small()
    A = proto.operator
    two = proto.pairs(2, 'train')
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32
               and len(t) == 2 for t in two)
    assert tuple(two[0].shape[1:]) == tuple(A.range.shape)
    assert tuple(two[-1].shape[1:]) == tuple(A.domain.shape)
    later = proto.pairs(1, 'train', start=1)
    for a, b in zip(two, later):
        torch.testing.assert_close(a[1:], b, rtol=0, atol=0)
    other = proto.pairs(1, 'validation')
    assert not torch.equal(other[-1][0], two[-1][0])


@pytest.mark.parametrize('name', NAMES)
def test_parallel_pairs_are_the_sequential_pairs_bit_for_bit(name):
    bench = PROTOCOLS[name].small()
    one = bench.pairs(5, 'train', start=2)
    two = parallel_pairs(bench, 5, 'train', start=2, workers=2)
    if bench.sample_wise:  # what lets parallel_pairs split the work
        three = bench.pairs(3, 'train', start=4)
        assert torch.equal(three[0], one[0][2:])
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
        assert float(a.abs().max()) > 0  # random samples, not zeros


def test_parallel_pairs_refuses_bad_workers_and_splits():
    bench = PROTOCOLS['dival'].small()
    with pytest.raises(ValueError, match='workers'):
        parallel_pairs(bench, 2, workers=0)
    with pytest.raises(ValueError, match='split'):
        parallel_pairs(bench, 2, split='tests', workers=2)


def test_register_refuses_non_protocols_and_second_names():
    with pytest.raises(TypeError, match='Protocol subclass'):
        register(dict)

    class Clash(Protocol):
        name = 'dival'
        summary = 'a second DIVal'
    with pytest.raises(ValueError, match="'dival' is registered already"):
        register(Clash)

    class Mute(Protocol):
        name = 'mute'
    with pytest.raises(TypeError, match='Mute needs a one-line summary'):
        register(Mute)
