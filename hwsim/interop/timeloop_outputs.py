"""Read a Timeloop run's output folder (v0.4 front end) as a reference case, and replay it with hwsim.

A Timeloop/Sparseloop run writes, next to ``timeloop-mapper.stats.txt``: the processed input
(``parsed-processed-input.yaml``: the problem), the flattened hierarchy
(``*.flattened_architecture.yaml``: every level outer to inner with its instance count, the
``inter_*_spatial`` fan-out levels included), the chosen mapping (``*.map.yaml``) and Accelergy's
energy table (``*.ERT.yaml``). ``case_from_outputs`` turns them into the reference-case schema of
``tests/data/timeloop/*.json`` (``problem``, ``architecture_flattened_outer_to_inner``,
``mapping_result_outer_to_inner``, ``ert_pJ_per_action``, ``key_results``), so
``hwsim.interop.timeloop.evaluate_reference_case`` (dense) or ``hwsim.models.sparse`` (sparse) can
evaluate Timeloop's own mapping and compare with Timeloop's own counts. ``replay_outputs`` does both.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError
from hwsim.interop.timeloop import mapping_from_map, problem_from_v04, read_timeloop_yaml

_INSTANCES = re.compile(r"^(?:.*\.)?([^.\[]+)\[(\d+)\.\.(\d+)\]$")
_STAT = re.compile(r"^\s*(.+?)\s*:\s*(\S+)")


def _find(folder: Path, suffix: str) -> Path:
    hits = sorted(folder.glob(f"*{suffix}"))
    if not hits:
        raise ConfigError(f"{folder}: no *{suffix} (is this a Timeloop output folder?)")
    return hits[0]


def _short(name: str) -> tuple[str, int]:
    """``system_top_level.shared_glb[1..14]`` -> (``shared_glb``, 14)."""
    match = _INSTANCES.match(str(name))
    if not match:
        return str(name).rsplit(".", 1)[-1], 1
    return match.group(1), int(match.group(3)) - int(match.group(2)) + 1


def arch_from_flattened(data: dict[str, Any], *, where: str) -> list[dict[str, Any]]:
    """Levels outer to inner (compute last) from Timeloop's flattened architecture."""
    levels = []
    for comp in (data.get("architecture") or {}).get("local") or []:
        name, instances = _short(comp["name"])
        levels.append({"name": name, "instances": instances, "class": comp.get("class", ""),
                       "attributes": dict(comp.get("attributes") or {})})
    if not levels:
        raise ConfigError(f"{where}: architecture.local lists no component")
    return levels


def ert_fromread_timeloop_yaml(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per level name: pJ per (vector) action, from Accelergy's ERT."""
    tables = (data.get("ERT") or data).get("tables") or []
    return {_short(t["name"])[0]: {"actions_pJ": {a["name"]: float(a["energy"]) for a in t.get("actions", [])}}
            for t in tables}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def stats_from_text(text: str) -> dict[str, Any]:
    """Per level (and per tensor within it) the ``key : value`` figures of ``timeloop-*.stats.txt``."""
    levels: dict[str, dict[str, Any]] = {}
    summary: dict[str, float] = {}
    fj: dict[str, float] = {}
    level = tensor = None
    section, in_stats = "", False
    for line in text.splitlines():
        if line.startswith("Networks") or line.startswith("Operational Intensity"):
            level = None
        if line.startswith("Summary Stats"):
            section = "summary"
            continue
        if section == "summary":
            if line.startswith("fJ/Compute"):
                section = "fj"
            elif match := _STAT.match(line.replace("=", ":")):
                summary[match.group(1)] = _number(match.group(2))
            continue
        if section == "fj":
            if match := re.match(r"^\s+(\S+)\s*=\s*(\S+)", line):
                fj[match.group(1)] = _number(match.group(2))
            continue
        if match := re.match(r"^=== (.+) ===$", line):
            level, tensor, in_stats = match.group(1), None, False
            levels.setdefault(level, {"tensors": {}})
            continue
        if level is None:
            continue
        if line.strip() in ("SPECS", "MAPPING", "STATS"):
            in_stats = line.strip() == "STATS"
            continue
        if in_stats and (match := re.match(r"^    (\w[\w ]*):\s*$", line)):
            tensor = match.group(1)
            levels[level]["tensors"][tensor] = {}
            continue
        if match := _STAT.match(line):
            key, value = match.group(1), _number(match.group(2))
            (levels[level]["tensors"][tensor] if tensor and line.startswith("        ") else levels[level])[key] = value
    return {"levels": levels, "summary": summary, "fJ_per_compute": fj}


def key_results(stats: dict[str, Any], compute_name: str) -> dict[str, Any]:
    """Timeloop's own cycles, computes, energy per level and per-instance access counts."""
    summary = stats["summary"]
    # a sparse run prints algorithmic and actual computes; fJ/Compute is per actual compute
    actual = int(summary.get("Computes", summary.get("Actual Computes", 0)))
    computes = int(summary.get("Algorithmic Computes", actual))
    by_level = {name: fj * actual / 1000.0 for name, fj in stats["fJ_per_compute"].items()}

    def count(s: dict[str, float], action: str) -> int:
        return int(s.get(f"Actual scalar {action} (per-instance)", s.get(f"Scalar {action} (per-instance)", 0)))

    accesses = {}
    for name, level in stats["levels"].items():
        if name == compute_name or not level["tensors"]:
            continue
        accesses[name] = {t: {"reads_per_instance": count(s, "reads"), "fills_per_instance": count(s, "fills"),
                              "updates_per_instance": count(s, "updates"),
                              "utilized_instances": int(s.get("Utilized instances (max)", 0)),
                              "energy_total_pJ": float(s.get("Energy (total)", 0.0))}
                          for t, s in level["tensors"].items()}
    return {"cycles": int(summary.get("Cycles", 0)), "computes": computes,
            "actual_computes": actual if actual != computes else None,
            "total_energy_pJ": by_level.get("Total", 0.0), "energy_pJ_by_level": by_level,
            "storage_accesses": accesses}


def case_from_outputs(folder: str | Path) -> dict[str, Any]:
    """A reference case (the schema of ``tests/data/timeloop/*.json``) from a Timeloop output folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    processed = read_timeloop_yaml(_find(folder, "parsed-processed-input.yaml"))
    where = folder.name
    problem = problem_from_v04(processed.get("problem") or {}, where=f"{where}/parsed-processed-input.yaml")
    levels = arch_from_flattened(read_timeloop_yaml(_find(folder, ".flattened_architecture.yaml")), where=where)
    names = [lvl["name"] for lvl in levels[:-1]]
    maps = sorted(folder.glob("*.map.yaml"))     # the mapper's choice; timeloop-model runs echo theirs in the input
    tensors = [ds["name"] for ds in problem["data_spaces"]]
    mapping = mapping_from_map(read_timeloop_yaml(maps[0]) if maps else processed.get("mapping"), names, tensors,
                               where=f"{where}/{maps[0].name if maps else 'parsed-processed-input.yaml'}")
    ert = ert_fromread_timeloop_yaml(read_timeloop_yaml(_find(folder, ".ERT.yaml")))
    stats = stats_from_text(_find(folder, ".stats.txt").read_text())
    case = {"id": where, "source": {"ref_output_dir": str(folder)}, "tool": "timeloop",
            "problem": problem, "architecture_flattened_outer_to_inner": levels,
            "mapping_result_outer_to_inner": mapping, "ert_pJ_per_action": ert,
            "key_results": key_results(stats, levels[-1]["name"])}
    if sparse := sparse_from_v04(processed.get("sparse_optimizations") or {}):
        case["sparse_optimizations"] = sparse
    return case


def sparse_from_v04(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Timeloop v0.4 ``sparse_optimizations.targets`` in the reference-case form: per target level its
    ``representation_format`` (tensor -> rank formats, outer to inner) and ``action_optimization``
    (``{type, target, condition_on}`` per option)."""
    out = []
    for target in data.get("targets") or []:
        entry: dict[str, Any] = {"target": target["name"]}
        formats = (target.get("representation_format") or {}).get("data_spaces") or []
        if formats:
            entry["representation_format"] = {ds["name"]: [r["format"] for r in ds.get("ranks") or []]
                                              for ds in formats}
            # ranks that flatten several dimensions into one fiber (``flattened_rankIDs``)
            flat = {ds["name"]: True for ds in formats
                    if any(len(ids) > 1 for r in ds.get("ranks") or [] for ids in r.get("flattened_rankIDs") or [])}
            if flat:
                entry["flattened_ranks"] = flat
        actions = [{"type": act["type"], "target": opt["target"], "condition_on": list(opt.get("condition_on") or [])}
                   for act in target.get("action_optimization") or [] for opt in act.get("options") or []]
        if actions:
            entry["action_optimization"] = actions
        out.append(entry)
    return out


def replay_outputs(folder: str | Path) -> dict[str, Any]:
    """hwsim's evaluation of the mapping Timeloop chose, beside Timeloop's own ``key_results``.

    Dense runs go to the spatial engine (``evaluate_reference_case``), runs with densities or sparse
    optimizations to the Sparseloop model (``hwsim.models.sparse.evaluate_sparseloop_case``).
    """
    case = case_from_outputs(folder)
    if case["problem"].get("densities") or case.get("sparse_optimizations"):
        from hwsim.models.sparse import evaluate_sparseloop_case
        return {"hwsim": evaluate_sparseloop_case(case), "timeloop": case["key_results"], "engine": "sparse"}
    from hwsim.interop.timeloop import evaluate_reference_case
    return {"hwsim": evaluate_reference_case(case), "timeloop": case["key_results"], "engine": "spatial"}


__all__ = ["case_from_outputs", "replay_outputs", "arch_from_flattened", "stats_from_text"]
