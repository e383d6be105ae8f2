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
DENSE = sorted(p for p in DATA.glob("tl_*.json"))
SPARSE = sorted(p for p in DATA.glob("sl_*.json") if json.loads(p.read_text())["problem"].get("densities"))


def test_all_seven_dense_cases_present():
    assert len(DENSE) == 7


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
