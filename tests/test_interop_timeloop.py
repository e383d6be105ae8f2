"""The spatial engine against Timeloop's reference outputs (tests/data/timeloop/*.json).

Cases are summaries of the ref-output directories shipped with Accelergy-Project/timeloop-accelergy-exercises
(MIT; repo, commit and directory are in each file's ``source`` field). Tolerances from the cases' README:
cycles and access counts exact, energy within 0.5 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.interop.timeloop import evaluate_reference_case

DATA = Path(__file__).parent / "data" / "timeloop"
DENSE = sorted(p for p in [*DATA.glob("tl_*.json"), *DATA.glob("ex_*.json")])
SPARSE = sorted(p for p in DATA.glob("sl_*.json") if json.loads(p.read_text())["problem"].get("densities"))


def test_all_fifteen_dense_cases_present():
    assert len(DENSE) == 15


@pytest.mark.parametrize("path", DENSE, ids=lambda p: p.stem)
def test_dense_case_matches_timeloop(path):
    expected = json.loads(path.read_text())["key_results"]
    got = evaluate_reference_case(path)
    assert got["cycles"] == expected["cycles"]
    assert got["computes"] == expected["computes"]
    for level, tensors in expected["storage_accesses"].items():
        assert set(got["storage_accesses"][level]) == set(tensors), level
        for tensor, counts in tensors.items():
            mine = got["storage_accesses"][level][tensor]
            for key in ("reads_per_instance", "fills_per_instance", "updates_per_instance", "utilized_instances"):
                assert mine[key] == counts[key], (level, tensor, key)
            assert mine["energy_total_pJ"] == pytest.approx(counts["energy_total_pJ"], rel=5e-3, abs=0.01)
    for level, pj in expected["energy_pJ_by_level"].items():
        assert got["energy_pJ_by_level"][level] == pytest.approx(pj, rel=5e-3), level
    assert got["energy_pj"] == pytest.approx(expected["total_energy_pJ"], rel=5e-3)


def test_dense_dot_product_from_the_sparse_tutorial():
    # sl_01_2_1 (dense A and B, uncompressed) is an ordinary dense loop nest: 16 cycles, 16 computes
    path = DATA / "sl_01_2_1_DUDU_dot.json"
    expected = json.loads(path.read_text())["key_results"]
    got = evaluate_reference_case(path)
    assert got["cycles"] == expected["cycles"] == 16
    assert got["energy_pj"] == pytest.approx(expected["total_energy_pJ"], rel=5e-3)


@pytest.mark.parametrize("path", SPARSE, ids=lambda p: p.stem)
def test_sparse_cases_are_rejected_clearly(path):
    with pytest.raises(ConfigError, match="sparse engine"):
        evaluate_reference_case(path)


def test_missing_case_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        evaluate_reference_case(tmp_path / "nope.json")


# Timeloop v0.3 YAML of exercise 03 (conv1d + output channels, 3 levels, bypass), written from the case's
# flattened architecture and mapping (tests/data/timeloop/tl_ex03_conv1d_oc_3level_bypass.json).
ARCH_YAML = """
architecture:
  version: 0.3
  subtree:
  - name: System
    local:
    - {name: MainMemory, class: DRAM, attributes: {width: 256, datawidth: 8}}
    - {name: GlobalBuffer, class: SRAM, attributes: {depth: 32768, width: 64, datawidth: 8}}
    subtree:
    - name: PE
      local:
      - {name: RegisterFile, class: regfile, attributes: {depth: 64, width: 8, datawidth: 8}}
      - {name: MACC, class: intmac, attributes: {datawidth: 8}}
"""
PROBLEM_YAML = """
problem:
  shape:
    name: Conv1D_OC
    dimensions: [K, R, P]
    data-spaces:
    - {name: Weights, projection: [[[K]], [[R]]]}
    - {name: Inputs, projection: [[[R], [P]]]}
    - {name: Outputs, projection: [[[K]], [[P]]], read-write: True}
  instance: {K: 32, R: 3, P: 16}
"""
MAPPING_YAML = """
mapping:
- {target: GlobalBuffer, type: temporal, factors: K=16 P=16, permutation: PK}
- {target: GlobalBuffer, type: datatype, keep: [Weights, Inputs], bypass: [Outputs]}
- {target: RegisterFile, type: temporal, factors: K=2 R=3, permutation: RK}
- {target: RegisterFile, type: datatype, keep: [Outputs], bypass: [Weights, Inputs]}
"""


def test_timeloop_yaml_reproduces_exercise_03(tmp_path):
    from hwsim.interop.timeloop import load_timeloop_yaml
    from hwsim.models.spatial import analyze
    paths = []
    for name, text in (("arch", ARCH_YAML), ("problem", PROBLEM_YAML), ("map", MAPPING_YAML)):
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(text)
    arch, problem, mapping = load_timeloop_yaml(*paths)
    result = analyze(problem, arch, mapping)
    expected = json.loads((DATA / "tl_ex03_conv1d_oc_3level_bypass.json").read_text())["key_results"]
    assert result.cycles == expected["cycles"]
    names = {"Weights": "W", "Inputs": "I", "Outputs": "O"}
    for level, tensors in expected["storage_accesses"].items():
        for tensor, counts in tensors.items():
            assert result.count(level, names[tensor], "read") == counts["reads_per_instance"]
            assert result.count(level, names[tensor], "fill") == counts["fills_per_instance"]
            assert result.count(level, names[tensor], "update") == counts["updates_per_instance"]


def test_timeloop_v04_architecture_without_compute_is_rejected_clearly(tmp_path):
    from hwsim.interop.timeloop import load_timeloop_yaml
    (tmp_path / "p.yaml").write_text(PROBLEM_YAML)
    (tmp_path / "m.yaml").write_text(MAPPING_YAML)
    (tmp_path / "a.yaml").write_text("architecture: {version: 0.4, nodes: []}")
    with pytest.raises(ConfigError, match="a.yaml: expected one arithmetic component"):
        load_timeloop_yaml(tmp_path / "a.yaml", tmp_path / "p.yaml", tmp_path / "m.yaml")
    (tmp_path / "a.yaml").write_text("architecture:\n  version: 0.4\n  nodes:\n  - !Component {name: x}\n")
    with pytest.raises(ConfigError, match=r"nodes\[0\]: a !Component needs name and class"):
        load_timeloop_yaml(tmp_path / "a.yaml", tmp_path / "p.yaml", tmp_path / "m.yaml")


def test_projection_terms_take_named_coefficients_from_the_problem():
    from hwsim.interop.timeloop import _parse_rank
    coefs = {"Wstride": 2, "Wdilation": 3}
    assert _parse_rank("R*Wdilation + P*Wstride", where="p", coefficients=coefs) == [("R", 3), ("P", 2)]
    assert _parse_rank("S + Q", where="p") == [("S", 1), ("Q", 1)]
    assert _parse_rank("2*P + Wstride*R*2", where="p", coefficients=coefs) == [("P", 2), ("R", 4)]
    with pytest.raises(ConfigError, match="Hstride"):
        _parse_rank("Q*Hstride", where="p", coefficients=coefs)


def test_strided_dilated_conv_projection_reaches_the_engine(tmp_path):
    # ex00 rewritten with stride 2 and dilation 3: the input rank carries both coefficients, and the
    # one-level nest still reads one input word per MAC (48 computes)
    case = json.loads((DATA / "tl_ex00_conv1d_1level.json").read_text())
    prob = case["problem"]
    prob["coefficients"] = {"Wstride": 1, "Wdilation": 1}
    prob["instance"].update({"Wstride": 2, "Wdilation": 3})          # the instance value wins
    prob["data_spaces"][1]["projection_ranks"] = ["R*Wdilation + P*Wstride"]
    path = tmp_path / "strided.json"
    path.write_text(json.dumps(case))
    got = evaluate_reference_case(path)
    assert sorted(got["problem"].proj[1][0]) == [("P", 2), ("R", 3)]
    assert got["computes"] == 48
    assert got["storage_accesses"]["Buffer"]["Inputs"]["reads_per_instance"] == 48
