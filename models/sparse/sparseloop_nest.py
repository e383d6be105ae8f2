"""Sparseloop's accounting on any mapping (tiled, spatial, untiled): the dense nest analysis, then the SAFs.

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
  turn, and as many of the per-instance compute cycles (a MAC whose operand never arrives does not run);
  the run takes the longest of those cycles and each level's bandwidth-throttled cycles for its actual
  accesses, gated ones included (``read_bandwidth``/``write_bandwidth`` or ``shared_bandwidth``, words per
  cycle; SUDU's gated output updates hold its 1-word write port for all 16 cycles).
Energy prices the actual counts as the untiled replay does (vector energy per ``ceil(n / block)``, the
statistical vector ratio of small compressed tiles, metadata and payload words of each pass over the
level's fibertree, at the level's metadata width).
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


def _fiber_ranks(problem: Any, mapping: Any, tensor_index: int, from_level: int,
                 inner_keepers: list[int], *, flattened: bool = False) -> list[int]:
    """Extents of the fibertree ranks of a tensor's tile at ``from_level``, outer to inner.

    By default every loop from ``from_level`` inward that indexes the tensor is a rank of its own (Sparseloop
    02.2.2's B at the backing store: N4 | K8 | N2; 03.2.3's weights: M4 | M4 (spatial) | S3). A format that
    flattens the tensor's dimensions (``flattened_rankIDs``) has one rank per tile boundary instead: the part
    above each inner level keeping the tensor, then that level's tile (04.2.3's glb inputs: 8 | 12).
    """
    def extent_of(levels: range) -> int:
        extent: dict[str, int] = {}
        for index in levels:
            lvl = mapping.levels[index]
            for dim, bound in (*lvl.temporal, *lvl.spatial_x, *lvl.spatial_y):
                extent[dim] = extent.get(dim, 1) * bound
        return math.prod(1 + sum(c * (extent.get(d, 1) - 1) for d, c in rank) for rank in problem.proj[tensor_index])

    n = len(mapping.levels)
    if flattened:
        cuts = [from_level] + [k for k in inner_keepers if k > from_level] + [n]
        tiles = [extent_of(range(a, n)) for a in cuts[:-1]]
        ranks = [max(1, round(outer / inner)) for outer, inner in zip(tiles, tiles[1:] + [1])]
        return [r for r in ranks if r > 1] or [1]
    ranks = []
    for index in range(from_level, n):
        lvl = mapping.levels[index]
        for dim, bound in (*lvl.temporal, *lvl.spatial_x, *lvl.spatial_y):
            coef = max((c for rank in problem.proj[tensor_index] for d, c in rank if d == dim), default=0)
            if coef and bound > 1:
                ranks.append(bound)
    return ranks or [1]


def _format_units(formats: list[str], extents: list[int], nonzeros: float) -> float:
    """Metadata plus payload words of one pass over a tile whose fibertree ranks are ``extents`` (outer to
    inner): UOP stores fiber length + 1 offsets per fiber, a bitmask one bit per coordinate, CP/RLE one
    coordinate per non-zero. The formats name the innermost ranks, outer to inner."""
    if len(extents) < len(formats):
        extents = [1] * (len(formats) - len(extents)) + extents
    sizes = extents[-len(formats):]
    fibers, units = 1.0, 0.0
    for i, fmt in enumerate(formats):
        if fmt == "UOP":
            units += fibers * (sizes[i] + 1)
            fibers *= sizes[i]
        elif fmt == "B":
            units += fibers * sizes[i]
            fibers *= sizes[i]
        elif fmt in ("CP", "RLE"):
            if i == len(formats) - 1:
                units += nonzeros
            else:
                raise ConfigError(f"a {fmt} rank above the innermost one is not modelled (formats {formats})")
    return units


def _bandwidth_cycles(level: dict[str, Any], counts: dict[tuple[str, str], dict[str, float]],
                      compute_cycles: int) -> int:
    """Cycles a level's ports need for its actual per-instance accesses (Timeloop's bandwidth throttling:
    ``compute_cycles / min(1, bandwidth / demanded words per cycle)``); 0 when it declares no bandwidth."""
    attrs = level.get("attributes", {})
    mine = [acc for (name, _), acc in counts.items() if name == level["name"]]
    # metadata words travel on the same ports, in data words (04.2.3: the glb's input metadata fills)
    meta = float(attrs.get("metadata_datawidth") or 0) / float(attrs.get("datawidth") or 1)
    reads = sum(acc["reads"] + acc.get("gated_reads", 0) + meta * acc.get("metadata_reads", 0) for acc in mine)
    writes = sum(acc["fills"] + acc["updates"] + acc.get("gated_updates", 0) + meta * acc.get("metadata_fills", 0)
                 for acc in mine)
    need = []
    if attrs.get("shared_bandwidth"):
        need.append((reads + writes, float(attrs["shared_bandwidth"])))
    else:
        need += [(reads, float(attrs.get("read_bandwidth") or 0)), (writes, float(attrs.get("write_bandwidth") or 0))]
    worst = compute_cycles
    for words, bandwidth in need:
        if bandwidth > 0 and words > 0 and compute_cycles > 0:
            throttling = min(1.0, bandwidth / (words / compute_cycles))
            worst = max(worst, math.ceil(compute_cycles / throttling))
    return worst


def evaluate_nest(data: dict[str, Any], *, origin: str) -> dict[str, Any]:
    """Cycles, computes, per-level actual accesses and energy of a Sparseloop case (any mapping)."""
    from hwsim.interop.timeloop import _tensor_roles, evaluate_reference_case
    from hwsim.models.sparse.sparseloop import _Case, _energy

    prob = data["problem"]
    density = {ds["name"]: float((prob.get("densities") or {}).get(ds["name"], {}).get("density", 1.0))
               for ds in prob["data_spaces"]}
    rw = {ds["name"]: bool(ds.get("read_write")) for ds in prob["data_spaces"]}
    dense_case = {**data, "problem": {k: v for k, v in prob.items() if k != "densities"}}
    dense_case.pop("sparse_optimizations", None)
    dense = evaluate_reference_case(dense_case)
    case = _Case(data, origin)
    names = [lvl["name"] for lvl in case.levels]
    roles = {name: "WIO".index(role) for name, role in _tensor_roles(prob["data_spaces"], where=origin).items()}
    keepers = {t: [i for i, n in enumerate(names) if t in dense["storage_accesses"].get(n, {})] for t in density}

    counts = {(n, t): {"reads": float(row["reads_per_instance"]), "fills": float(row["fills_per_instance"]),
                       "updates": float(row["updates_per_instance"])}
              for n, rows in dense["storage_accesses"].items() for t, row in rows.items()}
    algorithmic = {key: dict(value) for key, value in counts.items()}
    flattened = {(saf["target"], tensor): True for saf in data.get("sparse_optimizations") or []
                 for tensor in saf.get("flattened_ranks") or {}}
    for (level, tensor), acc in counts.items():           # compressed formats drop the zeros
        if (level, tensor) in case.formats:
            for action in acc:
                acc[action] -= _floor(acc[action] * (1.0 - density[tensor]))
            # metadata and payload words: per pass over the level's tile (the passes the dense reads and fills make)
            where = names.index(level)
            extents = _fiber_ranks(dense["problem"], dense["mapping"], roles[tensor], where, keepers[tensor],
                                   flattened=flattened.get((level, tensor), False))
            tile = max(1, _tile_elements(dense["problem"], dense["mapping"], roles[tensor], where))
            for action, meta in (("reads", "metadata_reads"), ("fills", "metadata_fills")):
                passes = algorithmic[(level, tensor)][action] / tile
                nonzeros = acc[action]                      # CP/RLE: one coordinate per non-zero moved
                acc[meta] = float(_floor(passes * (_format_units(case.formats[(level, tensor)], extents, 0.0))
                                         + _EPS) + nonzeros)

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
                for action in ("fills", "reads", "updates", "metadata_reads", "metadata_fills"):
                    if action in acc:
                        acc[action] -= _floor(acc[action] * upper)
            if (index, tensor) in safs:
                local = safs[(index, tensor)][0]
                p = 1.0 - (1.0 - local) / (1.0 - upper) if upper < 1.0 else 0.0
                removed = _ceil(acc["reads"] * p) if rw[tensor] else _floor(acc["reads"] * p)
                if "metadata_reads" in acc:     # the metadata of skipped reads goes unread too
                    payload_and_meta = acc["metadata_reads"]
                    acc["metadata_reads"] = payload_and_meta - _floor((payload_and_meta - acc["reads"]) * p) \
                        - removed
                gone_updates = _floor(acc["updates"] * p)
                if safs[(index, tensor)][1] == "gated":   # a gated access still takes its port's slot
                    acc["gated_reads"], acc["gated_updates"] = removed, gone_updates
                acc["reads"] -= removed
                acc["updates"] -= gone_updates
                upper = max(upper, local)

    actual = dense["computes"]
    compute_cycles = dense["cycles"]
    for tensor in density:
        innermost = keepers[tensor][-1] if keepers[tensor] else None
        if rw[tensor] or innermost is None or (innermost, tensor) not in safs:
            continue
        p, _ = safs[(innermost, tensor)]
        actual -= _floor(actual * p)
        compute_cycles -= _floor(compute_cycles * p)   # a MAC whose operand a SAF removed does not run
    cycles = max([compute_cycles] + [_bandwidth_cycles(level, counts, compute_cycles) for level in case.levels])

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
            acc.setdefault("metadata_reads", 0)
            acc.setdefault("metadata_fills", 0)
            acc["algorithmic_reads"] = int(algorithmic[(name, tensor)]["reads"])
            tile = _tile_elements(dense["problem"], dense["mapping"], roles[tensor], index)
            acc["energy_total_pJ"] = _energy(case, index, tensor, acc, tile) / int(level.get("instances", 1)) \
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
