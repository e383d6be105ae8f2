"""Zero input activations on the spatial engine: gating, skipping, and run-length coded DRAM traffic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.models.spatial.zeros import rle_bits_per_value, rle_pairs_per_value
from hwsim.simulate import simulate_graph

EYERISS = load_arch("eyeriss")


def rle_pairs_ref(values: np.ndarray, run_bits: int) -> int:
    """(run, level) pairs of Eyeriss-style RLC, encoded the plain way: a pair closes on a non-zero level
    or when its run is full (the level is then a zero)."""
    pairs, run = 0, 0
    for v in values:
        if v != 0 or run == 2 ** run_bits - 1:
            pairs, run = pairs + 1, 0
        else:
            run += 1
    return pairs + (run > 0)


@settings(deadline=None, max_examples=30)
@given(density=st.floats(0.02, 1.0), run_bits=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_expected_rle_pairs_match_encoding_random_activations(density, run_bits, seed):
    n = 20_000
    values = (np.random.default_rng(seed).random(n) < density).astype(np.int8)
    got = rle_pairs_per_value(density, run_bits) * n
    ref = rle_pairs_ref(values, run_bits)
    assert abs(got - ref) <= 5 * np.sqrt(max(ref, 1.0)) + 2      # within sampling noise of the iid model


@pytest.mark.parametrize("density, expected_bits", [
    (1.0, 64 / 3),          # every value a pair: 21.3 b (the coding costs 33 % on a dense ifmap)
    (0.0, 64 / 3 / 32),     # all zeros: one pair per 32 values
])
def test_rle_bits_at_the_extremes(density, expected_bits):
    assert rle_bits_per_value(density, act_bits=16, run_bits=5, word_bits=64) == pytest.approx(expected_bits)


def _graph(density: float) -> LayerGraph:
    graph = LayerGraph("z", input_shape=(2, 64, 15, 15))
    graph.add_layer(Layer("conv", Op.CONV, N=2, K=64, C=64, P=13, Q=13, R=3, S=3, padding=1, weight_bits=16,
                          act_bits=16, out_bits=16, acc_bits=16, act_density=density), inputs=[])
    return graph


def _dram_i_words(result) -> float:
    return result.layers[0].counts.accesses_of(level="DRAM", tensor="I", action="read")


def test_eyeriss_gates_zeros_energy_falls_cycles_stay():
    dense, sparse = (simulate_graph(_graph(d), EYERISS).layers[0] for d in (1.0, 0.3))
    assert sparse.cycles == dense.cycles
    assert sparse.energy_pj < dense.energy_pj
    assert sparse.counts.gated_mac_ops == pytest.approx(0.7 * dense.counts.mac_ops)
    pe_w = lambda c: c.accesses_of(level="PESpad", tensor="W", action="read")  # noqa: E731
    assert pe_w(sparse.counts) == pytest.approx(0.3 * pe_w(dense.counts), rel=1e-9)


def test_eyeriss_run_length_codes_input_activations_on_the_dram_link():
    dense, sparse = (simulate_graph(_graph(d), EYERISS) for d in (1.0, 0.3))
    ratio = rle_bits_per_value(0.3, act_bits=16, run_bits=5, word_bits=64) / rle_bits_per_value(
        1.0, act_bits=16, run_bits=5, word_bits=64)
    assert _dram_i_words(sparse) / _dram_i_words(dense) == pytest.approx(ratio, rel=1e-6)
    plain = EYERISS.with_overrides({"spatial.act_dram_format": "none"})
    assert _dram_i_words(sparse) < 0.5 * _dram_i_words(simulate_graph(_graph(0.3), plain))   # 0.3 x 21.3/16 = 0.4
    assert _dram_i_words(simulate_graph(_graph(1.0), plain)) < _dram_i_words(dense)          # dense: RLC costs more


def test_skipping_removes_the_zero_cycles():
    arch = EYERISS.with_overrides({"spatial.act_zeros": "skip"})
    dense, sparse = (simulate_graph(_graph(d), arch).layers[0] for d in (1.0, 0.5))
    assert sparse.compute_cycles == pytest.approx(0.5 * dense.compute_cycles, abs=1)
    assert sparse.counts.gated_mac_ops == 0


def test_without_declarations_zeros_change_nothing():
    arch = load_arch("simba_like")
    dense, sparse = (simulate_graph(_graph(d), arch).layers[0] for d in (1.0, 0.3))
    assert (sparse.cycles, sparse.energy_pj) == (dense.cycles, dense.energy_pj)


def test_rle_fields_without_rle_are_rejected():
    with pytest.raises(ConfigError, match=r"spatial\.rle_run_bits"):
        load_arch("simba_like").with_overrides({"spatial.rle_run_bits": 4})


def test_rle_word_too_small_for_one_pair_is_rejected():
    with pytest.raises(ConfigError, match=r"rle_word_bits"):
        EYERISS.with_overrides({"spatial.rle_word_bits": 16})


def test_unknown_zero_handling_is_rejected():
    with pytest.raises(ConfigError, match=r"spatial\.act_zeros"):
        EYERISS.with_overrides({"spatial.act_zeros": "compress"})
