"""The spatial loop-nest kernel against a literal simulation (tests/reference/spatial_ref.py)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwsim.ir import Layer, Op
from hwsim.mappers.mapping import DIMS, LevelMapping, Mapping
from hwsim.models.spatial import NestStats
from hwsim.models.spatial._kernels import _nest_stats_kernel
from hwsim.models.spatial.nest import flatten, problem_from_layer
from tests.reference.spatial_ref import simulate_nest_ref


def _divisor_split(draw, value, parts):
    """A random ordered factorization of ``value`` into ``parts`` factors."""
    out = []
    for _ in range(parts - 1):
        divisors = [d for d in range(1, value + 1) if value % d == 0]
        pick = draw(st.sampled_from(divisors))
        out.append(pick)
        value //= pick
    return out + [value]


@st.composite
def nest_case(draw):
    groups = draw(st.sampled_from([1, 2]))
    layer = Layer("rand", Op.CONV, N=draw(st.sampled_from([1, 2])), G=groups,
                  K=groups, C=groups, P=draw(st.integers(1, 4)), Q=draw(st.integers(1, 3)),
                  R=draw(st.integers(1, 3)), S=draw(st.integers(1, 2)),
                  stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                  dilation=(draw(st.integers(1, 2)), 1))
    kg, cg = draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 2, 3]))
    layer = layer.with_changes(K=kg * layer.G, C=cg * layer.G)
    assume(layer.macs <= 200)                 # the literal simulation is slow
    n_levels = draw(st.integers(1, 3))
    slots = n_levels * 2                      # per level: temporal, spatial
    factors = {}
    for dim, bound in problem_from_layer(layer).bounds:
        factors[dim] = _divisor_split(draw, bound, slots)
    levels = []
    for lvl in range(n_levels):
        temporal = [(d, factors[d][2 * lvl]) for d in DIMS]
        temporal = draw(st.permutations(temporal))
        spatial = [(d, factors[d][2 * lvl + 1]) for d in DIMS if factors[d][2 * lvl + 1] > 1]
        split = draw(st.integers(0, len(spatial)))
        keep = ("W", "I", "O") if lvl == 0 else tuple(t for t in "WIO" if draw(st.booleans()))
        levels.append(LevelMapping(level=f"L{lvl}", temporal=tuple(temporal), spatial_x=tuple(spatial[:split]),
                                   spatial_y=tuple(spatial[split:]), keep=keep))
    return layer, Mapping(levels=tuple(levels)), draw(st.booleans()), draw(st.booleans())


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=nest_case())
def test_nest_kernel_matches_literal_simulation(case):
    layer, mapping, mac_reuse, identical = case
    problem = problem_from_layer(layer)
    nest = flatten(mapping)
    proj, nranks = problem.proj_array()
    stats = _nest_stats_kernel(loop_dim=nest.loop_dim, loop_bound=nest.loop_bound, loop_level=nest.loop_level,
                               loop_spatial=nest.loop_spatial, proj=proj, nranks=nranks, keep=nest.keep,
                               n_levels=len(mapping.levels), rw_tensor=2, mac_reuse=mac_reuse,
                               identical_multicast=identical)
    result = NestStats(levels=tuple(l.level for l in mapping.levels), stats=stats, instances=(1,) * len(mapping.levels),
                       compute_cycles=0, level_cycles=(), padded_macs=0, utilized_macs=0)
    expected = simulate_nest_ref(problem, mapping, mac_reuse, identical)
    for (level, tensor), want in expected.items():
        name = mapping.levels[level].level
        for action, key in (("read", "reads"), ("write", "fills"), ("update", "updates"), ("tile", "tile")):
            assert result.count(name, tensor, action) == want[key], (name, tensor, action)
        if tensor == "O":
            assert result.count(name, tensor, "partition") == want["partition"]
    assert math.prod(b for b in nest.loop_bound) == layer.macs
