"""ZigZag inputs -> hwsim (hwsim.interop.zigzag), and the search mapper on ZigZag-defined hardware."""

from __future__ import annotations

import importlib.util

import pytest

from hwsim.errors import ConfigError
from hwsim.interop.zigzag import load_zigzag_accelerator, load_zigzag_mapping, load_zigzag_workload
from hwsim.ir import Layer, Op
from hwsim.mappers import SearchMapper
from hwsim.models import spatial
from hwsim.models.energy import price

# a cut-down copy of ZigZag 3.9.1 inputs/hardware/tpu_like.yaml (same costs: rf_128B 0.095, rf_2B 0.021,
# sram_2MB 416.16/378.4 per 2048 b, dram 700/750 per 64 b, MAC 0.04 pJ), with a 4x4 array
ACCEL = """
name: tiny_tpu
memories:
  rf_128B:
    {size: 1024, r_cost: 0.095, w_cost: 0.095, area: 0, latency: 1, operands: [I2], served_dimensions: [],
     ports: [{name: r, type: read, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, tl]},
             {name: w, type: write, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, fh]}]}
  rf_2B:
    {size: 16, r_cost: 0.021, w_cost: 0.021, area: 0, latency: 1, operands: [O], served_dimensions: [],
     ports: [{name: r, type: read, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, tl]},
             {name: w, type: write, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, fh]}]}
  sram_2MB:
    {size: 16777216, r_cost: 416.16, w_cost: 378.4, area: 0, latency: 1, operands: [I1, O],
     served_dimensions: [D1, D2],
     ports: [{name: r, type: read, bandwidth_min: 64, bandwidth_max: 2048, allocation: [I1, tl]},
             {name: w, type: write, bandwidth_min: 64, bandwidth_max: 2048, allocation: [I1, fh]}]}
  dram:
    {size: 10000000000, r_cost: 700, w_cost: 750, area: 0, latency: 1, operands: [I1, I2, O],
     served_dimensions: [D1, D2],
     ports: [{name: rw, type: read_write, bandwidth_min: 64, bandwidth_max: 64, allocation: [I1, fh]}]}
operational_array: {unit_energy: 0.04, unit_area: 1, dimensions: [D1, D2], sizes: [4, 4]}
"""
MAPPING = """
- name: default
  spatial_mapping: {D1: ["K, 4"], D2: ["C, 4"]}
  memory_operand_links: {O: O, W: I2, I: I1}
- name: example_layer
  spatial_mapping: {D1: ["OX, 4"], D2: ["K, 4"]}
  temporal_ordering: [[OX, 2], [K, 2]]
"""
WORKLOAD = """
- id: 0
  operator_type: Conv
  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]
  dimension_relations: [ix=2*ox+1*fx, iy=2*oy+1*fy]
  loop_dims: [B, K, C, OY, OX, FY, FX]
  loop_sizes: [1, 16, 8, 7, 7, 3, 3]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
- id: 1
  operator_type: Conv
  equation: O[b][g][oy][ox]+=W[g][fy][fx]*I[b][g][iy][ix]
  loop_dims: [B, G, K, C, OY, OX, FY, FX]
  loop_sizes: [1, 32, 1, 1, 7, 7, 3, 3]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
"""


@pytest.fixture()
def files(tmp_path):
    paths = {}
    for name, text in (("accel", ACCEL), ("mapping", MAPPING), ("workload", WORKLOAD)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def test_accelerator_becomes_an_outer_to_inner_chain_with_zigzag_energies(files):
    arch = load_zigzag_accelerator(files["accel"], mapping=files["mapping"])
    assert [lvl.name for lvl in arch.memory] == ["dram", "sram_2MB", "rf_2B", "rf_128B"]
    assert [lvl.tensors for lvl in arch.memory] == [("W", "I", "O"), ("I", "O"), ("O",), ("W",)]
    assert [lvl.instances for lvl in arch.memory] == [1, 1, 16, 16]
    assert arch.compute.units == 16 and arch.energy.mac_pj == 0.04
    assert arch.energy.levels["sram_2MB"].read_pj == 416.16 and arch.memory[1].width_bits == 2048
    assert arch.spatial.spatial_dims_x == ("K",) and arch.spatial.mac_operand_reuse


def test_workload_layers_carry_strides_and_groups(files):
    conv, dw = load_zigzag_workload(files["workload"])
    assert (conv.op, conv.K, conv.C, conv.P, conv.stride) == (Op.CONV, 16, 8, 7, (2, 2))
    assert (dw.op, dw.G, dw.C, dw.K) == (Op.DEPTHWISE, 32, 32, 32)
    assert conv.acc_bits == 16 and conv.out_bits == 8


def test_mapping_entries_become_spatial_constraints(files):
    entries = load_zigzag_mapping(files["mapping"])
    assert entries["default"]["spatial"] == {"x": ["K"], "y": ["C"]}
    assert entries["example_layer"]["spatial"] == {"x": ["Q"], "y": ["K"]}
    assert entries["example_layer"]["temporal_ordering"] == [["OX", 2], ["K", 2]]


def test_search_on_zigzag_hardware_prices_with_zigzag_costs(files):
    arch = load_zigzag_accelerator(files["accel"], mapping=files["mapping"])
    conv, dw = load_zigzag_workload(files["workload"])
    for layer in (conv, dw):
        result = SearchMapper(max_candidates=100).search(layer, arch)
        counts = spatial.evaluate(layer, arch, result.mapping)
        breakdown = price(counts, arch)
        assert breakdown.total_pj == pytest.approx(result.energy_pj)
        assert breakdown.compute_pj == pytest.approx(0.04 * counts.mac_ops)
        # compulsory DRAM traffic priced at ZigZag's 700 pJ per 64-bit read: at least every weight once
        assert breakdown.level_pj("dram") >= layer.weight_elems / 8 * 700


@pytest.mark.parametrize("text, match", [
    ("memories: {}\noperational_array: {is_imc: true, unit_energy: 1, dimensions: [D1], sizes: [4]}", "is_imc"),
    ("memories: {}\noperational_array: {unit_energy: 1, dimensions: [D1, D2, D3], sizes: [2, 2, 2]}",
     "expected at least one memory"),
    ("name: x", "expected 'memories'"),
])
def test_unsupported_accelerators_are_config_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_zigzag_accelerator(path)


def test_unsupported_operator_is_a_config_error(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("- {id: 0, operator_type: Softmax, loop_dims: [K], loop_sizes: [4]}")
    with pytest.raises(ConfigError, match="operator_type 'Softmax' is not supported"):
        load_zigzag_workload(path)


@pytest.mark.peers
@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="zigzag-dse not installed")
@pytest.mark.parametrize("accel, mapping", [("tpu_like", "tpu_like"), ("eyeriss_like", "default")])
def test_shipped_zigzag_accelerators_load_and_map(accel, mapping):
    import os

    import zigzag
    root = os.path.join(os.path.dirname(zigzag.__file__), "inputs")
    arch = load_zigzag_accelerator(f"{root}/hardware/{accel}.yaml", mapping=f"{root}/mapping/{mapping}.yaml")
    layer = Layer("conv", Op.CONV, K=64, C=64, P=56, Q=56, R=3, S=3, padding=1)
    result = SearchMapper(max_candidates=100).search(layer, arch)
    assert result.cycles >= layer.macs / arch.compute.units
