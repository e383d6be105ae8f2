"""simulate(): totals derive from layers; re-pricing and re-timing change only what they should."""

import math

import pytest

from conftest import tiny_graph
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate, simulate_graph


@pytest.fixture(scope="module")
def base():
    return simulate(tiny_graph(), "edge_tpu_like")


def test_totals_are_sums_of_layers(base):
    assert base.cycles == sum(layer.cycles for layer in base.layers)
    assert base.energy_pj == pytest.approx(sum(layer.energy_pj for layer in base.layers))
    assert base.latency_s == pytest.approx(base.cycles / 480e6)
    assert base.power_mw == pytest.approx(base.energy_pj * 1e-12 / base.latency_s * 1e3)
    assert base.utilization == pytest.approx(base.macs / (base.cycles * 64 * 64))
    assert base.peak_power_mw == max(layer.power_mw for layer in base.layers)
    assert base.edp_pj_s == pytest.approx(base.energy_pj * base.latency_s)
    assert base.tops_per_w == pytest.approx(2 * base.macs / (base.energy_pj * 1e-12) / 1e12)
    breakdown = base.energy_breakdown_pj
    assert sum(breakdown["by_op"].values()) == pytest.approx(base.energy_pj)
    assert base.area_mm2 > 0


def test_vector_unit_runs_non_mac_layers(base):
    rows = {layer.name: layer for layer in base.layers}
    # eltwise add of 16x16x16 on 64 lanes (the array width) -> 64 cycles; global pool 16*256 ops -> 64 cycles
    assert rows["add"].compute_cycles == math.ceil(16 * 16 * 16 / 64)
    assert rows["pool"].compute_cycles == math.ceil(16 * 16 * 16 / 64)
    assert rows["add"].engine == "vector" and rows["add"].macs == 0
    assert rows["conv"].engine == "systolic"


def test_free_data_movement_is_an_explicit_row():
    graph = LayerGraph("g")
    graph.add_layer(Layer("fc", Op.LINEAR, K=8, C=8))
    graph.add_layer(Layer("cat", Op.CONCAT, K=16), ["fc"])
    result = simulate_graph(graph, load_arch("edge_tpu_like"))
    cat = result.layers[1]
    assert cat.cycles == 0 and cat.energy_pj == 0 and cat.note == "free data movement (no compute)"


def test_retarget_reprices_without_changing_cycles(base):
    smaller = simulate(tiny_graph(), "edge_tpu_like", technology_nm=16)
    assert smaller.cycles == base.cycles
    assert smaller.energy_breakdown_pj["compute"] < base.energy_breakdown_pj["compute"]
    faster = simulate(tiny_graph(), "edge_tpu_like", clock_hz=960e6)
    assert faster.cycles == base.cycles
    assert faster.latency_s == pytest.approx(base.latency_s / 2)
    assert faster.energy_breakdown_pj["compute"] == pytest.approx(base.energy_breakdown_pj["compute"])


def test_to_dataframe_and_json(base):
    frame = base.to_dataframe()
    assert list(frame["name"]) == ["conv", "dw", "add", "pool", "fc"]
    assert frame["cycles"].sum() == base.cycles
    data = base.to_json()
    assert data["total"]["cycles"] == base.cycles and data["arch"] == "edge_tpu_like"


def test_batch_must_be_positive():
    from hwsim.errors import ConfigError

    with pytest.raises(ConfigError, match="batch must be >= 1"):
        simulate(tiny_graph(), "edge_tpu_like", batch=0)
