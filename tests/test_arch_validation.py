"""No silent fields, sane ranges, redundant fields that agree (hand-named cases, one line each)."""

from __future__ import annotations

import json

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import LayerGraph
from hwsim.models.arch import load_arch


@pytest.mark.parametrize("preset, overrides, message", [
    ("edge_tpu_like", {"compute.acc_bits": 2}, "acc_bits=2 is narrower than the operands"),
    ("edge_tpu_like", {"compute.weight_bits": 1000}, "compute.weight_bits: Input should be less than or equal to 64"),
    ("edge_tpu_like", {"systolic.cores": 1_000_000}, "systolic.cores: Input should be less than or equal to 4096"),
    ("edge_tpu_like", {"compute.units": 8192}, "compute.units=8192 disagrees with the systolic engine's multiplier "
                                               "count 4096"),
    ("scnn", {"compute.units": 999}, "compute.units=999 disagrees with the sparse engine's multiplier count 1024"),
    ("scnn", {"sparse.pes": 16, "sparse.multipliers_per_pe": 64}, "sparse.pes=16 disagrees with sparse.pe_grid"),
    ("eie", {"sparse.act_lanes": 4}, "sparse.act_lanes: not read by the 'column_broadcast' dataflow"),
    ("sparse_tc_2_4", {"sparse.skip": "both"}, "the nm_dense array skips the pruned weights"),
    ("sparse_tc_2_4", {"sparse.pes": 32}, "disagrees with sparse.pe_grid"),
    ("stripes", {"compute.precision": "fixed"}, "bit-serial engines scale with operand width"),
    ("edge_tpu_like", {"compute.precision": "scalable"}, "scalable is modelled by the bit-serial engine only"),
    ("eyeriss", {"memory.PESpad.mesh_y": 24}, r"mesh_x x mesh_y = 14 x 24 must equal instances=168"),
    ("edge_tpu_like", {"memory.SRAM.instances": 4, "memory.SRAM.mesh_x": 2, "memory.SRAM.mesh_y": 2},
     "only the spatial engine models a PE mesh"),
    ("eyeriss", {"memory.DRAM.banks": 4}, "DRAM is modelled as one off-chip channel"),
    ("eyeriss", {"memory.DRAM.size_bytes": 1 << 30}, "DRAM capacity is unbounded"),
    ("eyeriss", {"memory.DRAM.double_buffered": False}, "double_buffered applies to on-chip buffers"),
    ("eyeriss", {"memory.GLB.dram_type": "LPDDR4"}, "dram_type applies to the DRAM level"),
    ("eie", {"sparse.gate": "activations"}, "zero activations are already skipped"),
    ("cambricon_x", {"sparse.gate": "both"}, "zero weights are already skipped"),
    ("xnor_bnn", {"compute.weight_bits": 2}, "the binary engine's XNOR datapath is 1 x 1 bit"),
    ("eyeriss", {"memory.GLB.banks": 27}, "energy.levels.GLB pins this level's energy"),
])
def test_impossible_or_ignored_fields_are_rejected(preset, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_arch(preset).with_overrides(overrides)


def test_a_foreign_engine_section_is_rejected(tmp_path):
    data = load_arch("edge_tpu_like").model_dump(mode="json")
    data["bitserial"] = {"design": "stripes"}
    path = tmp_path / "a.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="bitserial: the systolic engine does not read a 'bitserial' section"):
        load_arch(path)


def test_units_follow_the_engine_section_in_overrides():
    arch = load_arch("edge_tpu_like").with_overrides({"systolic.cols": 128})
    assert arch.compute.units == 64 * 128
    assert load_arch("scnn").with_overrides({"sparse.multipliers_per_pe": 32}).compute.units == 64 * 32


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["layers"][0].pop("K"), "missing required field"),
    (lambda d: d.update(layers=[]), "no layers"),
    (lambda d: d["layers"][0].update(weight_bits=1000), r"weight_bits must be an integer in \[1, 64\]"),
])
def test_bad_graph_json_names_the_layer_and_field(tmp_path, edit, message):
    from hwsim.ir import Layer, Op

    graph = LayerGraph("g")
    graph.add_layer(Layer("conv", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3, padding=1))
    data = graph.to_json()
    edit(data)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        LayerGraph.load(path)


def test_cli_bad_inputs_exit_2_with_one_sentence(tmp_path):
    import subprocess
    import sys

    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    store = tmp_path / "s.sqlite"
    store.write_text("this is not a database " * 100)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hwsim_ir_version": 1, "name": "e", "layers": []}))
    for args, words in ((["simulate", str(binary)], "not a text"), (["report", str(store), "-o", str(tmp_path / "r.html")],
                                                                     "not an hwsim results store"),
                        (["simulate", str(empty)], "no layers")):
        proc = subprocess.run([sys.executable, "-m", "hwsim.cli", *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr and "Error:" not in proc.stderr
