"""Sparseloop's accounting on multi-level tiled (and spatial) mappings: the dense nest analysis, then the SAFs.

The dense counts come from the spatial engine with Timeloop's semantics (``hwsim.interop.timeloop
.evaluate_reference_case``: identical-tile multicast, fan-out levels). Sparseloop then transforms them
(Wu et al., MICRO 2022; NVlabs/timeloop src/sparse-analysis, rounding as ``storage-optimization-combiner.cpp``):

* a compressed tensor at a level keeps ``n - floor(n x (1 - density))`` of its ``n`` reads, fills, updates;
* a skip/gate SAF on target T conditioned on C acts at T's level (the next keeper out when T bypasses it and
  is read-only). ``p`` = probability that the conditioning tile of C is empty: a scalar when T's child is the
  compute, else C's data inside one child tile of T; fixed-structured densities give
  ``P(empty) = 1 - n x d`` when ``n x d < 1``, else 0. It removes ``floor(reads x p)`` reads (``ceil`` for a
  read-modify-write output) and ``floor(updates x p)`` updates at that level, and ``floor(x x p)`` of every
  access of T at the levels inside it;
* each read-only tensor skipped or gated at its innermost level removes ``floor(computes x p)`` computes in
  turn; the per-instance compute cycles lose ``floor(cycles x p)`` for the skipped ones.
Energy prices the actual counts as the untiled replay does (vector energy per ``ceil(n / block)``, the
statistical vector ratio of small compressed tiles, one metadata word per compressed payload access).
"""

from __future__ import annotations

import math
from typing import Any

from hwsim.errors import ConfigError

_EPS = 1e-9


def _floor(x: float) -> int:
    return int(math.floor(x + _EPS))


def _ceil(x: float) -> int:
    return int(math.ceil(x - _EPS))


def _empty_probability(shape: int, density: float) -> float:
    """P(a fixed-structured tile of ``shape`` elements holds no non-zero)."""
    exact = shape * density
    return 1.0 - exact if exact < 1.0 - _EPS else 0.0


def _tile_elements(problem: Any, mapping: Any, tensor_index: int, from_level: int) -> int:
    """Elements of a tensor spanned by the loops at ``from_level`` and inside (its data in one such tile)."""
    extent: dict[str, int] = {}
    for index, lvl in enumerate(mapping.levels):
        if index < from_level:
            continue
        for dim, bound in (*lvl.temporal, *lvl.spatial_x, *lvl.spatial_y):
            extent[dim] = extent.get(dim, 1) * bound
    size = 1
    for rank in problem.proj[tensor_index]:
        size *= 1 + sum(coef * (extent.get(dim, 1) - 1) for dim, coef in rank)
    return size


def evaluate_tiled(data: dict[str, Any], *, origin: str) -> dict[str, Any]:
    """Cycles, computes, per-level actual accesses and energy of a tiled Sparseloop case."""
    from hwsim.interop.timeloop import evaluate_reference_case
    from hwsim.models.sparse.sparseloop import _Case, _energy

    prob = data["problem"]
    density = {ds["name"]: float((prob.get("densities") or {}).get(ds["name"], {}).get("density", 1.0))
               for ds in prob["data_spaces"]}
    rw = {ds["name"]: bool(ds.get("read_write")) for ds in prob["data_spaces"]}
    dense_case = {**data, "problem": {k: v for k, v in prob.items() if k != "densities"}}
    dense_case.pop("sparse_optimizations", None)
    dense = evaluate_reference_case(dense_case)
    case = _Case(data, origin, tiled=True)
    names = [lvl["name"] for lvl in case.levels]
    roles = {name: "WIO".index(role) for name, role in
             __import__("hwsim.interop.timeloop", fromlist=["_tensor_roles"])._tensor_roles(
                 prob["data_spaces"], where=origin).items()}
    keepers = {t: [i for i, n in enumerate(names) if t in dense["storage_accesses"].get(n, {})] for t in density}

    counts = {(n, t): {"reads": float(row["reads_per_instance"]), "fills": float(row["fills_per_instance"]),
                       "updates": float(row["updates_per_instance"])}
              for n, rows in dense["storage_accesses"].items() for t, row in rows.items()}
    algorithmic = {key: dict(value) for key, value in counts.items()}
    for (level, tensor), acc in counts.items():           # compressed formats drop the zeros
        if (level, tensor) in case.formats:
            for action in acc:
                acc[action] -= _floor(acc[action] * (1.0 - density[tensor]))

    # SAFs: (target level index, tensor) -> probability the conditioning tile is empty
    safs: dict[tuple[int, str], tuple[float, str]] = {}
    for saf in data.get("sparse_optimizations") or []:
        for act in saf.get("action_optimization") or []:
            target, where = act["target"], names.index(saf["target"])
            outer = [i for i in keepers[target] if i <= where]
            if target not in case.kept.get(saf["target"], {}):
                if rw[target] or not outer:
                    continue            # a read-write target bypassing the SAF's level is not optimized
                where = outer[-1]
            inner = [i for i in keepers[target] if i > where]
            child = inner[0] if inner else len(names)
            effectual = 1.0
            for cond in act["condition_on"]:
                shape = 1 if child == len(names) else _tile_elements(dense["problem"], dense["mapping"],
                                                                      roles[cond], child)
                effectual *= 1.0 - _empty_probability(shape, density[cond])
            safs[(where, target)] = (1.0 - effectual, "gated" if act["type"] == "gating" else "skipped")

    for tensor in density:                                  # apply outer to inner, as Sparseloop propagates
        upper = 0.0
        for index in keepers[tensor]:
            acc = counts[(names[index], tensor)]
            if upper > 0:
                for action in ("fills", "reads", "updates"):
                    acc[action] -= _floor(acc[action] * upper)
            if (index, tensor) in safs:
                local = safs[(index, tensor)][0]
                p = 1.0 - (1.0 - local) / (1.0 - upper) if upper < 1.0 else 0.0
                removed = _ceil(acc["reads"] * p) if rw[tensor] else _floor(acc["reads"] * p)
                acc["reads"] -= removed
                acc["updates"] -= _floor(acc["updates"] * p)
                upper = max(upper, local)

    instances = max(1, dense["arch"].compute.units)
    actual = dense["computes"]
    cycles = dense["cycles"]
    for tensor in density:
        innermost = keepers[tensor][-1] if keepers[tensor] else None
        if rw[tensor] or innermost is None or (innermost, tensor) not in safs:
            continue
        p, kind = safs[(innermost, tensor)]
        actual -= _floor(actual * p)
        if kind == "skipped":
            cycles -= _floor(cycles * p)
    del instances

    by_level: dict[str, float] = {case.mac["name"]: actual * case.ert[case.mac["name"]].get("compute", 0.0)}
    storage: dict[str, dict[str, dict[str, float]]] = {}
    utilized = {n: rows for n, rows in dense["storage_accesses"].items()}
    for index, level in enumerate(case.levels):
        name = level["name"]
        storage[name] = {}
        ert = case.ert.get(name, {})
        active = max((row["utilized_instances"] for row in utilized.get(name, {}).values()), default=0)
        total = cycles * ert.get("leak", 0.0) * active
        for tensor, row in utilized.get(name, {}).items():
            acc = {k: int(v) for k, v in counts[(name, tensor)].items()}
            compressed = (name, tensor) in case.formats
            acc.update(algorithmic_reads=int(algorithmic[(name, tensor)]["reads"]),
                       metadata_reads=acc["reads"] if compressed else 0,
                       metadata_fills=acc["fills"] if compressed else 0)
            acc["energy_total_pJ"] = _energy(case, index, tensor, acc) / int(level.get("instances", 1)) \
                * row["utilized_instances"]
            total += acc["energy_total_pJ"]
            storage[name][tensor] = acc
        by_level[name] = total
    by_level["Total"] = sum(by_level.values())
    if cycles <= 0:
        raise ConfigError(f"{origin}: no effectual compute left (every operand skipped)")
    return {"cycles": cycles, "computes": dense["computes"], "actual_computes": actual,
            "utilization_pct": 100.0 * actual / (cycles * dense["arch"].compute.units),
            "total_energy_pJ": by_level["Total"], "energy_pJ_by_level": by_level, "storage_accesses": storage}
