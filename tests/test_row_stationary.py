"""Eyeriss row-stationary mapping and ``spatial.dataflow`` driving the spatial engine's default mapping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
from hwsim.models.arch import load_arch
from hwsim.models.spatial import STATIONARY_ORDER, default_mapping, evaluate, problem_from_layer
from hwsim.models.spatial.default import ORDERS
from hwsim.models.spatial.row_stationary import rs_candidates

EYERISS = load_arch("eyeriss")

# AlexNet CONV1-5 at batch 4 as Eyeriss ran it (shapes: Chen et al., JSSC 2017, Table III; AlexNet's two
# groups on CONV2/4/5). Active PEs: the same paper, Table V (154/135/156/156/156, also R*e*r*t of Table III).
ALEXNET = [
    (Layer("conv1", Op.CONV, N=4, K=96, C=3, P=55, Q=55, R=11, S=11, stride=4), 154),
    (Layer("conv2", Op.CONV, N=4, K=256, C=96, G=2, P=27, Q=27, R=5, S=5, padding=2), 135),
    (Layer("conv3", Op.CONV, N=4, K=384, C=256, P=13, Q=13, R=3, S=3, padding=1), 156),
    (Layer("conv4", Op.CONV, N=4, K=384, C=384, G=2, P=13, Q=13, R=3, S=3, padding=1), 156),
    (Layer("conv5", Op.CONV, N=4, K=256, C=384, G=2, P=13, Q=13, R=3, S=3, padding=1), 156),
]


@pytest.mark.parametrize("layer, active", ALEXNET, ids=lambda x: getattr(x, "name", x))
def test_rs_reproduces_eyeriss_active_pes_on_alexnet(layer, active):
    mapping = default_mapping(layer, EYERISS)
    assert mapping.source == "row_stationary"
    counts = evaluate(layer, EYERISS, mapping)
    assert counts.active_pes == active
    notes = dict(mapping.notes)
    assert layer.R * notes["rs_e"] * notes["rs_r"] * notes["rs_t"] == active   # Table III's R*e*r*t
    # compute-bound: every active PE does one MAC per cycle, padding only where E or K do not divide
    assert counts.compute_cycles >= layer.macs / active
    assert counts.compute_cycles <= 1.05 * layer.macs / active


def test_conv2_folds_its_27_output_rows_into_two_stacked_segments():
    notes = dict(default_mapping(ALEXNET[1][0], EYERISS).notes)
    assert (notes["rs_e"], notes["rs_r"], notes["rs_t"]) == (27, 1, 1)      # one 5x27 set in 10 x 14 PEs


def test_rs_spad_capacities_bound_p_and_q():
    for layer, _ in ALEXNET:
        for tier in rs_candidates(problem_from_layer(layer, EYERISS), EYERISS):
            for params in tier:
                assert params.q * layer.S <= 12                  # ifmap spad: 12 words (24 B)
                assert params.p * params.q * layer.S <= 224      # filter spad: 224 words (448 B)
                assert params.p <= 24                            # psum spad: 24 words (48 B)


@settings(deadline=None, max_examples=25)
@given(R=st.integers(1, 7), P=st.integers(1, 60), C=st.integers(1, 64), K=st.integers(1, 96), N=st.integers(1, 2))
def test_rs_mapping_is_valid_and_never_exceeds_the_array(R, P, C, K, N):
    layer = Layer("conv", Op.CONV, N=N, K=K, C=C, P=P, Q=5, R=R, S=min(R, 3))
    mapping = default_mapping(layer, EYERISS)
    counts = evaluate(layer, EYERISS, mapping)
    assert 1 <= counts.active_pes <= 168
    assert counts.compute_cycles * counts.active_pes >= layer.macs
    if mapping.source == "row_stationary":
        notes = dict(mapping.notes)
        whole_set = math.ceil(P / 14) * R <= 12
        assert notes["rs_e"] == (P if whole_set else notes["rs_e"]) and notes["rs_e"] <= max(P, 14)
        assert counts.active_pes <= R * notes["rs_e"] * notes["rs_r"] * notes["rs_t"]


def test_filter_taller_than_the_array_falls_back_to_the_greedy_mapping():
    layer = Layer("tall", Op.CONV, K=8, C=4, P=8, Q=8, R=13, S=1)
    assert default_mapping(layer, EYERISS).source == "default"


def test_unknown_dataflow_is_rejected_naming_the_key():
    with pytest.raises(ConfigError, match=r"spatial\.dataflow"):
        EYERISS.with_overrides({"spatial.dataflow": "diagonal_stationary"})


@pytest.mark.parametrize("dataflow", sorted(STATIONARY_ORDER))
def test_stationary_dataflows_use_their_loop_order(dataflow):
    arch = EYERISS.with_overrides({"spatial.dataflow": dataflow})
    layer = ALEXNET[2][0]
    mapping = default_mapping(layer, arch)
    order = ORDERS[STATIONARY_ORDER[dataflow]]
    dims = [d for d, _ in mapping.levels[-1].temporal]    # the PEs' own storage keeps the stationary tensor
    assert dims == [d for d in order if d in dims]
    counts = evaluate(layer, arch, mapping)
    assert counts.active_pes >= 1


def test_the_declared_dataflow_changes_the_eyeriss_mapping():
    layer = ALEXNET[2][0]
    results = {}
    for dataflow in ("row_stationary", *sorted(STATIONARY_ORDER)):
        arch = EYERISS.with_overrides({"spatial.dataflow": dataflow})
        counts = evaluate(layer, arch, default_mapping(layer, arch))
        results[dataflow] = (counts.cycles, round(counts.accesses_of(level="DRAM")))
    # the stationary orders differ from row-stationary; among themselves they order only the PEs' own
    # loops (models/spatial/default.py), which on this layer's spad-sized tiles move the same data
    assert all(results[name] != results["row_stationary"] for name in STATIONARY_ORDER), results
