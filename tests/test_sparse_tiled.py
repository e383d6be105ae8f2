"""Sparseloop's accounting on tiled and spatial mappings (hwsim.models.sparse.sparseloop_tiled).

Fixtures: tests/data/timeloop/slt_*.json, made with hwsim.interop.timeloop_outputs.case_from_outputs from the
Sparseloop reference outputs of Accelergy-Project/timeloop-accelergy-exercises @2d55108 (MIT; each file's
``source`` names its directory). Per-instance access counts are exact on every case; energy and cycles are
checked where the model reaches them, and the known gaps are strict xfails that say what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.models.sparse import evaluate_sparseloop_case

DATA = Path(__file__).parent / "data" / "timeloop"
CASES = sorted(DATA.glob("slt_*.json"))
# UOP payload words are priced at the metadata width; Sparseloop sizes them by the fiber length
METADATA_GAP = {"slt_02_2_2_spMspM_tiled", "slt_03_2_3_conv1d_oc_spatial"}
# Eyeriss-like runs: Sparseloop classifies the computes its SAFs remove (04.2.1: gated, yet the MAC's cycles
# fall to the actual computes, and the scratchpads' bandwidth bounds the run at 1,916,929; hwsim keeps the
# gated cycles, 3,833,856) and throttles by the actual accesses (04.2.3: 1,827,229 against hwsim's 1,713,255)
CYCLE_GAP = {"slt_04_2_1_eyeriss_like_gating", "slt_04_2_3_eyeriss_like_onchip_compression"}


def _case(path):
    return json.loads(path.read_text())["key_results"]


def test_five_tiled_cases_present():
    assert len(CASES) == 5


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_tiled_access_counts_and_computes_exact(path):
    ref = _case(path)
    got = evaluate_sparseloop_case(path)
    assert got["computes"] == ref["computes"]
    assert got["actual_computes"] == (ref["actual_computes"] or ref["computes"])
    for level, tensors in ref["storage_accesses"].items():
        for tensor, row in tensors.items():
            mine = got["storage_accesses"][level][tensor]
            assert (mine["reads"], mine["fills"], mine["updates"]) == (
                row["reads_per_instance"], row["fills_per_instance"], row["updates_per_instance"]), (level, tensor)


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="UOP payload width"))
                                  if p.stem in METADATA_GAP else p for p in CASES], ids=lambda p: p.stem)
def test_tiled_energy_within_5_percent(path):
    ref = _case(path)
    assert evaluate_sparseloop_case(path)["total_energy_pJ"] == pytest.approx(ref["total_energy_pJ"], rel=0.05)


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="gated-compute cycles"))
                                  if p.stem in CYCLE_GAP else p for p in CASES],
                         ids=lambda p: p.stem)
def test_tiled_cycles_exact(path):
    assert evaluate_sparseloop_case(path)["cycles"] == _case(path)["cycles"]


def test_tiled_energy_gap_is_bounded():
    # the two metadata gaps, measured: hwsim 0.83x and 0.92x of Sparseloop's total
    ratios = {p.stem: evaluate_sparseloop_case(p)["total_energy_pJ"] / _case(p)["total_energy_pJ"]
              for p in CASES if p.stem in METADATA_GAP}
    assert all(0.8 < r < 0.95 for r in ratios.values()), ratios
