"""ZigZag readers (hwsim.interop.zigzag): N-D operational arrays, multi-port memories, workloads with
pooling/Add/einsum GEMMs, the ``zigzag:`` arch spelling and the CLI path a ZigZag user takes."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import pytest
from conftest import run_cli

from hwsim.errors import ConfigError
from hwsim.interop.zigzag import (array_axis, load_zigzag_accelerator, load_zigzag_graph, load_zigzag_mapping,
                                  load_zigzag_workload)
from hwsim.ir import Layer, Op
from hwsim.mappers import SearchMapper
from hwsim.models import spatial
from hwsim.models.arch import load_arch
from hwsim.models.spatial.default import spatial_candidates
from hwsim.models.spatial.nest import fanouts, problem_from_layer
from hwsim.simulate import simulate

# a 4x4x2x4 cut-down of ZigZag 3.9.1 inputs/hardware/edge_tpu_like.yaml (same costs and port layout):
# the weight register serves D3/D4 (one per 4x4 (D1, D2) position), the output register serves D2
EDGE = """
name: tiny_edge
memories:
  rf_1B:
    {size: 8, r_cost: 0.01, w_cost: 0.01, area: 0, latency: 1, operands: [I2], served_dimensions: [D3, D4],
     ports: [{name: r_port_1, type: read, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, tl]},
             {name: w_port_1, type: write, bandwidth_min: 8, bandwidth_max: 8, allocation: [I2, fh]}]}
  rf_2B:
    {size: 16, r_cost: 0.02, w_cost: 0.02, area: 0, latency: 1, operands: [O], served_dimensions: [D2],
     ports: [{name: r_port_1, type: read, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, tl]},
             {name: r_port_2, type: read, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, th]},
             {name: w_port_1, type: write, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, fh]},
             {name: w_port_2, type: write, bandwidth_min: 16, bandwidth_max: 16, allocation: [O, fl]}]}
  sram_32KB:
    {size: 262144, r_cost: 22.9, w_cost: 52.01, area: 0, latency: 1, operands: [I2],
     served_dimensions: [D1, D2, D3, D4],
     ports: [{name: r_port_1, type: read, bandwidth_min: 64, bandwidth_max: 512, allocation: [I2, tl]},
             {name: w_port_1, type: write, bandwidth_min: 64, bandwidth_max: 512, allocation: [I2, fh]}]}
  sram_2MB:
    {size: 16777216, r_cost: 416.16, w_cost: 378.4, area: 0, latency: 1, operands: [I1, O],
     served_dimensions: [D1, D2, D3, D4],
     ports: [{name: r_port_1, type: read, bandwidth_min: 64, bandwidth_max: 2048, allocation: [I1, tl, O, tl]},
             {name: w_port_1, type: write, bandwidth_min: 64, bandwidth_max: 2048, allocation: [I1, fh, O, fh]}]}
  dram:
    {size: 10000000000, r_cost: 700, w_cost: 750, area: 0, latency: 1, operands: [I1, I2, O],
     served_dimensions: [D1, D2, D3, D4],
     ports: [{name: rw_port_1, type: read_write, bandwidth_min: 64, bandwidth_max: 64, allocation: [I1, fh]}]}
operational_array: {unit_energy: 0.04, unit_area: 1, dimensions: [D1, D2, D3, D4], sizes: [4, 4, 2, 4]}
"""
EDGE_MAPPING = """
- name: default
  spatial_mapping: {D1: ["K, 4"], D2: ["C, 4"], D3: ["OX, 2"], D4: ["OY, 4"]}
  memory_operand_links: {O: O, W: I2, I: I1}
"""
# ZigZag's resnet18.yaml layers 0 (conv), 1 (max pool, W precision 0) and 4 (Add), shrunk; and its gemm_layer.yaml
WORKLOAD = """
- id: 0
  name: conv
  operator_type: Conv
  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]
  dimension_relations: [ix=2*ox+1*fx, iy=2*oy+1*fy]
  loop_dims: [B, K, C, OY, OX, FY, FX]
  loop_sizes: [1, 16, 3, 8, 8, 3, 3]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
  operand_source: {I: 0, W: 0}
- id: 1
  operator_type: Pooling
  equation: O[b][g][oy][ox]+=W[fx][fy]*I[b][g][iy][ix]
  dimension_relations: [ix=2*ox+1*fx, iy=2*oy+1*fy]
  loop_dims: [B, G, OY, OX, FX, FY]
  loop_sizes: [1, 16, 4, 4, 3, 3]
  operand_precision: {I: 8, W: 0, O: 16, O_final: 8}
  operand_source: {I: 0, W: 1}
- id: 2
  operator_type: Add
  equation: O[b][g][oy][ox]=W[b][g][oy][ox]+I[b][g][oy][ox]
  loop_dims: [B, G, OY, OX]
  loop_sizes: [1, 16, 4, 4]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
  operand_source: {W: 1, I: 1}
- id: 3
  operator_type: Gemm
  equation: O[d0][d1]+=I[d0][d2]*W[d2][d1]
  dimension_relations: []
  loop_dims: [D0, D1, D2]
  loop_sizes: [16, 32, 64]
  operand_precision: {W: 8, I: 8, O: 32, O_final: 8}
  operand_source: {I: 2, W: 3}
"""


@pytest.fixture()
def files(tmp_path):
    paths = {}
    for name, text in (("edge", EDGE), ("mapping", EDGE_MAPPING), ("workload", WORKLOAD)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def _write(tmp_path, text, name="hw.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("dim, axis", [("D1", "x"), ("D2", "y"), ("D3", "x"), ("D4", "y")])
def test_array_dimensions_alternate_between_mesh_axes(dim, axis):
    assert array_axis(dim) == axis


def test_four_dimensional_array_nests_into_one_chain(files):
    arch = load_zigzag_accelerator(files["edge"], mapping=files["mapping"])
    assert [lvl.name for lvl in arch.memory] == ["dram", "sram_2MB", "sram_32KB", "rf_1B", "rf_2B"]
    # rf_1B: one per (D1, D2) = 4 x 4; rf_2B serves D2 only (4*2*4 = 32 copies in ZigZag) but must nest under
    # rf_1B, so it gets one per MAC, and the arch says so (X = D1*D3 = 8, Y = D2*D4 = 16)
    assert [(lvl.instances, lvl.mesh_x, lvl.mesh_y) for lvl in arch.memory] == [
        (1, 1, 1), (1, 1, 1), (1, 1, 1), (16, 4, 4), (128, 8, 16)]
    assert "rf_2B: one copy per position of ['D1', 'D2', 'D3', 'D4']" in arch.sources["memory.nesting"]
    assert fanouts(arch) == [(1, 1), (1, 1), (4, 4), (2, 4), (1, 1)]
    assert math.prod(x * y for x, y in fanouts(arch)) == arch.compute.units == 128
    # multi-port memories: per-direction bandwidth sums the ports, a read_write port counts both ways
    sram, dram = arch.memory[1], arch.memory[0]
    assert (sram.width_bits, sram.read_bw_bytes_per_cycle, sram.write_bw_bytes_per_cycle) == (2048, 256, 256)
    assert (dram.read_bw_bytes_per_cycle, dram.write_bw_bytes_per_cycle) == (8, 8)
    assert arch.memory[4].read_bw_bytes_per_cycle == 4          # two 16-bit read ports
    assert arch.spatial.spatial_dims_x == ("K", "Q") and arch.spatial.spatial_dims_y == ("C", "P")


def test_mapping_places_d3_d4_on_the_axes_with_their_factors(files):
    entry = load_zigzag_mapping(files["mapping"])["default"]
    assert entry["spatial"] == {"x": ["K", "Q"], "y": ["C", "P"]}
    assert entry["factors"] == {("x", "K"): 4, ("y", "C"): 4, ("x", "Q"): 2, ("y", "P"): 4}


def test_every_spatial_candidate_fits_the_per_operand_registers(files):
    """The 1-byte weight register sits above the D3/D4 fan-out: an unrolling that puts a weight dim there
    needs more than one weight per register and can never map, so no candidate may do it."""
    arch = load_zigzag_accelerator(files["edge"], mapping=files["mapping"])
    layer = Layer("conv", Op.CONV, K=16, C=16, P=8, Q=8, R=3, S=3, padding=1)
    problem = problem_from_layer(layer, arch)
    candidates = spatial_candidates(problem, arch, limit=32)
    rf = [lvl.name for lvl in arch.memory].index("rf_1B")
    assert candidates
    for _, chosen in candidates:
        below_rf = [d for x, y in chosen[rf:] for d, f in x + y if f > 1]
        assert set(below_rf) <= {"N", "P", "Q"}, chosen              # only dims W does not depend on
    result = SearchMapper(max_candidates=300).search(layer, arch)
    assert result.cycles >= layer.macs / 128
    counts = spatial.evaluate(layer, arch, spatial.default_mapping(layer, arch))
    assert counts.compute_cycles >= layer.macs / 128


def test_outermost_memory_with_copies_is_one_backing_store(tmp_path):
    text = EDGE.replace("operands: [I1, I2, O],\n     served_dimensions: [D1, D2, D3, D4]",
                        "operands: [I1, I2, O],\n     served_dimensions: [D1, D2]")
    arch = load_zigzag_accelerator(_write(tmp_path, text))
    assert arch.memory[0].name == "dram" and arch.memory[0].instances == 1
    assert "dram (outermost) modelled as one copy (ZigZag: one per position of ['D3', 'D4'])" in \
        arch.sources["memory.nesting"]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("dimensions: [D1, D2, D3, D4]", "is_imc: true, imc_type: analog, dimensions: [D1, D2, D3, D4]"),
     r"is_imc: in-memory-compute arrays \(analog\) are not modelled"),
    (lambda t: t.replace("sizes: [4, 4, 2, 4]", "sizes: [4, 4, 2]"), r"operational_array: dimensions .* must pair up"),
    (lambda t: t.replace("dimensions: [D1, D2, D3, D4]", "dimensions: [D1, D2, D3, X4]"), r"'X4' is not of the form D1"),
    (lambda t: t.replace("r_cost: 22.9, ", ""), r"memories\.sram_32KB\.r_cost: required"),
    (lambda t: t.replace("served_dimensions: [D3, D4]", "served_dimensions: [D5]"), r"rf_1B: served_dimensions \['D5'\]"),
    (lambda t: "name: x", "expected 'memories' and 'operational_array'"),
])
def test_bad_zigzag_hardware_is_one_config_error(tmp_path, edit, match):
    with pytest.raises(ConfigError, match=match):
        load_zigzag_accelerator(_write(tmp_path, edit(EDGE)))


def test_workload_reads_pooling_add_and_einsum_gemm(files):
    conv, pool, add, gemm = load_zigzag_workload(files["workload"])
    assert (conv.name, conv.op, conv.K, conv.C, conv.stride, conv.macs) == ("conv", Op.CONV, 16, 3, (2, 2),
                                                                            16 * 3 * 8 * 8 * 9)
    # pooling's W precision 0 is ZigZag's constant operand: no weights, so the width is the activations'
    assert (pool.name, pool.op, pool.G, pool.R, pool.weight_bits, pool.macs) == ("Layer1", Op.POOL, 16, 3, 8, 0)
    assert (add.op, add.P, add.Q) == (Op.ELTWISE, 4, 4)
    # d0 indexes O and I (rows), d1 O and W (K), d2 I and W (the reduction)
    assert (gemm.op, gemm.P, gemm.K, gemm.C, gemm.acc_bits, gemm.macs) == (Op.LINEAR, 16, 32, 64, 32, 16 * 32 * 64)


def test_workload_graph_follows_operand_sources(files):
    graph = load_zigzag_graph(files["workload"])
    assert graph.predecessors("conv") == []                        # its own id: the network input
    assert graph.predecessors("Layer1") == ["conv"] and graph.predecessors("Layer3") == ["Layer2"]


@pytest.mark.parametrize("entry, match", [
    ("{id: 0, operator_type: Conv, equation: 'O[k]+=W[k][c]*I[c]', loop_dims: [K, C], loop_sizes: [4, 4],"
     " operand_precision: {W: 0, I: 8, O: 16, O_final: 8}}", r"operand_precision\.W: a Conv layer needs weights"),
    ("{id: 0, operator_type: Gemm, equation: 'O[a]+=W[a]*I[a]', loop_dims: [A, Z], loop_sizes: [4, 4]}",
     r"loop dim 'Z' has no hwsim counterpart"),
    ("{id: 0, operator_type: Conv, loop_dims: [K, C], loop_sizes: [4]}", "loop_dims and loop_sizes differ"),
    ("{id: 0, operator_type: Softmax, loop_dims: [K], loop_sizes: [4]}", "operator_type 'Softmax' is not supported"),
])
def test_bad_workload_entries_are_config_errors(tmp_path, entry, match):
    with pytest.raises(ConfigError, match=match):
        load_zigzag_workload(_write(tmp_path, f"- {entry}\n", "w.yaml"))


def test_zigzag_spelling_loads_and_plain_path_gets_a_hint(files):
    assert load_arch(f"zigzag:{files['edge']}").name == "tiny_edge"
    with pytest.raises(ConfigError, match=r"edge\.yaml: this is a ZigZag hardware file; pass it as 'zigzag:"):
        load_arch(str(files["edge"]))


def test_simulate_zigzag_workload_on_zigzag_hardware(files):
    arch = load_zigzag_accelerator(files["edge"], mapping=files["mapping"])
    result = simulate(str(files["workload"]), arch)
    assert [row.name for row in result.layers] == ["conv", "Layer1", "Layer2", "Layer3"]
    assert result.macs == 16 * 3 * 8 * 8 * 9 + 16 * 32 * 64
    assert result.energy_pj > 0.04 * result.macs                    # MACs at ZigZag's 0.04 pJ plus memory


def test_cli_zigzag_user_path(files, tmp_path):
    out = tmp_path / "r.json"
    ok = run_cli("simulate", str(files["workload"]), "--arch", f"zigzag:{files['edge']}", "--zigzag-mapping",
                 str(files["mapping"]), "--json", str(out), "-q")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(out.read_text())
    assert data["total"]["macs"] == 16 * 3 * 8 * 8 * 9 + 16 * 32 * 64
    plain = run_cli("simulate", str(files["workload"]), "--arch", str(files["edge"]))
    assert plain.returncode == 2 and "pass it as 'zigzag:" in plain.stderr
    wrong = run_cli("simulate", str(files["workload"]), "--arch", "eyeriss", "--zigzag-mapping", str(files["mapping"]))
    assert wrong.returncode == 2 and "--zigzag-mapping mapping.yaml: applies to a ZigZag accelerator" in wrong.stderr


ZIGZAG = importlib.util.find_spec("zigzag")
SHIPPED = {"tpu_like": "tpu_like", "eyeriss_like": "default", "edge_tpu_like": "edge_tpu_like",
           "meta_prototype": "meta_prototype_like", "ascend_like": "ascend_like", "tesla_npu_like": "tesla_npu_like",
           "gemm_l1": "gemm_l1", "gemm_l1_l3": "gemm_l1_l3", "generic_array_cacti": "default"}


def _inputs() -> str:
    return os.path.join(os.path.dirname(ZIGZAG.origin), "inputs")


@pytest.mark.skipif(ZIGZAG is None, reason="zigzag-dse not installed (the [peers] extra)")
@pytest.mark.parametrize("accel", sorted(SHIPPED))
def test_every_shipped_non_imc_accelerator_loads_and_maps(accel):
    root = _inputs()
    arch = load_zigzag_accelerator(f"{root}/hardware/{accel}.yaml", mapping=f"{root}/mapping/{SHIPPED[accel]}.yaml")
    layer = Layer("conv", Op.CONV, K=64, C=64, P=14, Q=14, R=3, S=3, padding=1)
    counts = spatial.evaluate(layer, arch, spatial.default_mapping(layer, arch))
    assert math.prod(x * y for x, y in fanouts(arch)) == arch.compute.units
    assert counts.compute_cycles >= layer.macs / arch.compute.units and counts.mac_ops >= layer.macs  # padded


@pytest.mark.skipif(ZIGZAG is None, reason="zigzag-dse not installed (the [peers] extra)")
@pytest.mark.parametrize("accel", ["aimc", "dimc"])
def test_shipped_imc_accelerators_are_not_modelled(accel):
    with pytest.raises(ConfigError, match="in-memory-compute arrays .* are not modelled"):
        load_zigzag_accelerator(f"{_inputs()}/hardware/{accel}.yaml")


@pytest.mark.skipif(ZIGZAG is None, reason="zigzag-dse not installed (the [peers] extra)")
def test_shipped_shape_only_resnet18_onnx_lowers():
    from hwsim.lower import load_graph

    graph = load_graph(f"{_inputs()}/workload/resnet18.onnx")
    # ResNet-18 at 224 x 224: 1.814 GMAC (ZigZag's own ONNX run, /work/shared/research/zigzag.md §2.2)
    assert graph.macs == 1_814_073_344
    assert all(layer.weight_density == 1.0 for layer in graph)
