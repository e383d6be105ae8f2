"""Vector-granularity pricing reproduces Timeloop/Accelergy totals on the dense reference cases.

Each case (tests/data/timeloop/tl_*.json, extracted from Accelergy-Project/timeloop-accelergy-exercises
@2d55108 reference outputs, MIT; see the case's ``source``) gives per-instance reads/fills/updates per
level and tensor, and the Accelergy ERT (pJ per vector action). We feed exactly those counts and
energies to ``price`` and must match the case's total energy within 0.5 % (tolerance of the case README).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.models.arch import validate_arch
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.energy import price

CASES = sorted((Path(__file__).parent / "data" / "timeloop").glob("tl_*.json"))
_ACTIONS = (("read", "reads_per_instance"), ("write", "fills_per_instance"), ("update", "updates_per_instance"))
_KINDS = {"DRAM": "dram", "SRAM": "sram", "regfile": "regfile"}
_TENSORS = {"Weights": "W", "Inputs": "I", "Outputs": "O"}


def _level(entry: dict, *, outermost: bool) -> dict:
    attrs = entry["attributes"]
    cls = str(entry["class"])
    kind = "dram" if outermost else _KINDS.get(cls, "regfile" if ("RF" in cls or "regfile" in cls) else "sram")
    level = {"name": entry["name"], "kind": kind, "word_bits": attrs["datawidth"], "width_bits": attrs["width"],
             "instances": entry["instances"]}
    if kind != "dram":
        level["size_bytes"] = attrs["depth"] * attrs["width"] // 8
    return level


def arch_from_case(case: dict):
    """An ArchSpec mirroring the case's flattened architecture, with its ERT pinned per level."""
    entries = case["architecture_flattened_outer_to_inner"]
    storage = [e for e in entries if e["class"] not in ("intmac", "dummy_storage")]  # dummy: a fan-out only
    memory = [_level(e, outermost=(i == 0)) for i, e in enumerate(storage)]
    if memory[0]["kind"] != "dram" or storage[0]["class"] == "regfile":
        memory = [{"name": "UnusedDRAM", "kind": "dram"}] + [_level(e, outermost=False) for e in storage]
    ert = case["ert_pJ_per_action"]
    levels = {e["name"]: {"read_pj": ert[e["name"]]["actions_pJ"]["read"],
                          "write_pj": ert[e["name"]]["actions_pJ"]["write"],
                          "update_pj": ert[e["name"]]["actions_pJ"]["update"],
                          "leak_pj_per_cycle": ert[e["name"]]["actions_pJ"].get("leak", 0.0),
                          "source": f"{case['id']} ERT"} for e in storage}
    mac = next(e for e in entries if e["class"] == "intmac")
    return validate_arch({
        "name": case["id"], "engine": "spatial", "clock_hz": 1e9, "technology_nm": 40, "memory": memory,
        "compute": {"units": mac["instances"], "weight_bits": 8, "act_bits": 8},
        "energy": {"table": "accelergy_40nm", "levels": levels, "mac_pj": ert[mac["name"]]["actions_pJ"]["compute"],
                   "mac_source": f"{case['id']} ERT"},
    }, origin=case["id"])


def counts_from_case(case: dict) -> LayerCounts:
    """The case's own per-instance access counts as hwsim ``Access`` records."""
    key = case["key_results"]
    instances = {e["name"]: e["instances"] for e in case["architecture_flattened_outer_to_inner"]}
    widths = {e["name"]: e["attributes"].get("datawidth", 8) for e in case["architecture_flattened_outer_to_inner"]}
    accesses = tuple(
        Access(level=level, tensor=_TENSORS[tensor], action=action, count=stats[field],
               instances=instances[level], word_bits=widths[level])
        for level, tensors in key["storage_accesses"].items()
        for tensor, stats in tensors.items()
        for action, field in _ACTIONS if stats[field] > 0)
    return LayerCounts(compute_cycles=key["cycles"], mac_ops=key["computes"], weight_bits=8, act_bits=8,
                       accesses=accesses, engine="spatial")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_vector_pricing_matches_timeloop_total(path):
    case = json.loads(path.read_text())
    energy = price(counts_from_case(case), arch_from_case(case))
    expected = case["key_results"]["total_energy_pJ"]
    assert energy.total_pj == pytest.approx(expected, rel=0.005)
    compute = next(e["name"] for e in case["architecture_flattened_outer_to_inner"] if e["class"] == "intmac")
    for level, pj in case["key_results"]["energy_pJ_by_level"].items():
        if level not in ("Total", compute):
            assert energy.level_pj(level) == pytest.approx(pj, rel=0.005), level
    assert energy.compute_pj == pytest.approx(case["key_results"]["energy_pJ_by_level"][compute], rel=0.005)


def test_dense_cases_are_all_present():
    assert len(CASES) == 13


def test_every_item_names_its_source():
    case = json.loads(CASES[-1].read_text())
    energy = price(counts_from_case(case), arch_from_case(case))
    assert all(item.source for item in energy.items)
    assert sum(item.total_pj for item in energy.items) == pytest.approx(energy.total_pj)
