"""The Sparseloop tutorial cases replayed by hwsim.models.sparse.evaluate_sparseloop_case.

Fixtures: tests/data/timeloop/sl_*.json (Accelergy-Project/timeloop-accelergy-exercises @2d55108,
MIT; numbers extracted from the shipped reference outputs). Tolerances from the shared README:
cycles and effectual computes exact, energy within 5 %; per-level access counts are also exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.models.sparse import evaluate_sparseloop_case

CASES = sorted((Path(__file__).parent / "data" / "timeloop").glob("sl_*.json"))
CONV1D = Path(__file__).parent / "data" / "timeloop" / "sl_03_2_1_conv1d.json"


def test_sparse_conv1d_fractional_density_follows_sparseloops_rounding():
    # density 0.43 of 3 weights: 1.29 expected non-zeros. Sparseloop rounds the *removed* part: weight fills
    # 3 - floor(3 x 0.57) = 2, computes 27 - floor(27 x 0.57) = 12, output reads (read-modify-write) lose
    # ceil(18 x 0.57) = 11 -> 7; the reference's own counts
    got = evaluate_sparseloop_case(CONV1D)
    buffer = got["storage_accesses"]["Buffer"]
    assert (got["actual_computes"], got["cycles"]) == (12, 12)
    assert (buffer["Weights"]["fills"], buffer["Weights"]["reads"]) == (2, 12)
    assert (buffer["Outputs"]["reads"], buffer["Outputs"]["updates"]) == (7, 12)


@pytest.mark.parametrize("density", [0.1, 0.25, 0.43, 0.5, 0.77, 1.0])
def test_conv1d_counts_follow_the_density(tmp_path, density):
    # other members of the family: the same conv1d at other weight densities
    data = json.loads(CONV1D.read_text())
    data["problem"]["densities"]["Weights"]["density"] = density
    path = tmp_path / "conv1d.json"
    path.write_text(json.dumps(data))
    got = evaluate_sparseloop_case(path)
    removed = int(27 * (1 - density) + 1e-9)
    assert got["actual_computes"] == got["cycles"] == 27 - removed
    assert got["storage_accesses"]["Buffer"]["Inputs"]["reads"] == 27 - removed
    assert got["storage_accesses"]["BackingStorage"]["Weights"]["reads"] == 3 - int(3 * (1 - density) + 1e-9)


def test_energy_falls_with_density(tmp_path):
    energies = []
    for density in (1.0, 0.77, 0.43, 0.1):
        data = json.loads(CONV1D.read_text())
        data["problem"]["densities"]["Weights"]["density"] = density
        path = tmp_path / f"conv1d_{density}.json"
        path.write_text(json.dumps(data))
        energies.append(evaluate_sparseloop_case(path)["total_energy_pJ"])
    assert energies == sorted(energies, reverse=True) and energies[-1] < 0.6 * energies[0]


@pytest.fixture(params=CASES, ids=[c.stem for c in CASES])
def case(request):
    return request.param, json.loads(request.param.read_text())["key_results"]


def test_cycles_and_computes_exact(case):
    path, ref = case
    got = evaluate_sparseloop_case(path)
    assert got["cycles"] == ref["cycles"]
    assert got["computes"] == ref["computes"]
    assert got["actual_computes"] == (ref["actual_computes"] if ref["actual_computes"] is not None else ref["computes"])
    assert got["utilization_pct"] == pytest.approx(ref["utilization_pct"])


def test_energy_within_5_percent(case):
    path, ref = case
    got = evaluate_sparseloop_case(path)
    assert got["total_energy_pJ"] == pytest.approx(ref["total_energy_pJ"], rel=0.05)
    for level, pj in ref["energy_pJ_by_level"].items():
        assert got["energy_pJ_by_level"][level] == pytest.approx(pj, rel=0.05, abs=0.01)


def test_access_counts_exact(case):
    path, ref = case
    got = evaluate_sparseloop_case(path)["storage_accesses"]
    for level, tensors in ref["storage_accesses"].items():
        for tensor, row in tensors.items():
            mine = got[level][tensor]
            assert mine["reads"] == row["reads_per_instance"], (level, tensor)
            assert mine["fills"] == row["fills_per_instance"], (level, tensor)
            assert mine["updates"] == row["updates_per_instance"], (level, tensor)
            assert mine["energy_total_pJ"] == pytest.approx(row["energy_total_pJ"], abs=0.01)


def test_gating_keeps_cycles_skipping_removes_them():
    by_id = {p.stem: evaluate_sparseloop_case(p) for p in CASES}
    dense, gated, skipped = (by_id["sl_01_2_1_DUDU_dot"], by_id["sl_01_2_2_SUDU_dot_gating"],
                             by_id["sl_01_2_3_SCDU_dot_skipping"])
    assert dense["cycles"] == gated["cycles"] == 16 and skipped["cycles"] == 4
    assert skipped["total_energy_pJ"] < gated["total_energy_pJ"] < dense["total_energy_pJ"]


def test_unreadable_case_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        evaluate_sparseloop_case(bad)
