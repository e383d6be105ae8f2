"""Replay a Sparseloop reference case (``sl_*.json``) with Sparseloop's accounting.

Scope: every temporal loop sits at the innermost storage level (outer levels hold whole tensors,
as in the shipped tutorial cases); fixed-structured densities; formats ``UOP``/``CP``/``B``/``RLE``
per rank (outer to inner, on the tensor's innermost projection ranks); gating/skipping SAFs with
leader tensors. Rules (Wu et al., MICRO 2022; checked against the shipped outputs):

* algorithmic reads of an operand feeding the MAC = computes; outputs are read-modify-write
  (reads = updates - distinct outputs); an inner level is filled once with its tile;
* a compressed format removes the zeros of its tensor: ``n - floor(n x (1 - density))`` of ``n`` accesses
  remain; a skip/gate SAF then removes the accesses whose leaders are zero, with ``p = 1 - leader
  densities``: ``floor(n x p)`` of them, ``ceil`` for the reads of the read-modify-write output (Sparseloop
  rounds the removed part, not the kept one: ``ProcessDataReprImpactOnStorageAccesses`` and
  ``ApplyLocalStorageSAFImpact`` in NVlabs/timeloop src/sparse-analysis/storage-optimization-combiner.cpp);
* each input tensor skipped (or gated) at the innermost level removes ``floor(computes x p)`` computes in
  turn; cycles count only the skipped ones (gating keeps the cycle);
* energy = ceil(accesses / block) x vector energy per action, metadata per metadata block,
  plus leakage x cycles per storage level; MAC energy = actual computes x compute energy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError

_EPS = 1e-9


def _floor(x: float) -> int:
    return int(math.floor(x + _EPS))


def _ceil(x: float) -> int:
    return int(math.ceil(x - _EPS))


def _kept(count: float, removed_fraction: float, *, round_up: bool = False) -> int:
    """Accesses left of ``count`` when ``removed_fraction`` of them go (Sparseloop rounds the removed part)."""
    removed = _ceil(count * removed_fraction) if round_up else _floor(count * removed_fraction)
    return int(count) - removed


def _load(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(path, dict):
        return path
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path.name}: cannot read Sparseloop case ({err})") from None


class _Case:
    """Parsed view of one case: bounds, tensors, levels, SAFs."""

    def __init__(self, data: dict[str, Any], origin: str, *, tiled: bool = False):
        prob = data["problem"]
        self.origin, self.instance = origin, dict(prob["instance"])
        self.bounds = {d: int(prob["instance"].get(d, 1)) for d in prob["dimensions"]}
        self.tensors = {ds["name"]: ds for ds in prob["data_spaces"]}
        dens = prob.get("densities") or {}
        self.density = {t: float(dens.get(t, {}).get("density", 1.0)) for t in self.tensors}
        self.levels = [lvl for lvl in data["architecture_flattened_outer_to_inner"] if lvl["class"] != "intmac"]
        self.mac = next(lvl for lvl in data["architecture_flattened_outer_to_inner"] if lvl["class"] == "intmac")
        self.ert = {name: v["actions_pJ"] for name, v in data["ert_pJ_per_action"].items()}
        self.kept = {m["level"]: m["tiles_kept"] for m in data["mapping_result_outer_to_inner"]}
        loops = [m for m in data["mapping_result_outer_to_inner"] if m["loops_outer_to_inner"]]
        self.tiled = any(m["level"] != self.levels[-1]["name"] for m in loops)
        if self.tiled and not tiled:
            raise ConfigError(f"{origin}: loops above the innermost storage level: evaluate it with "
                              f"hwsim.models.sparse.sparseloop_tiled")
        self.formats: dict[tuple[str, str], list[str]] = {}
        self.skip: dict[str, set[str]] = {}
        self.gate: dict[str, set[str]] = {}
        for saf in data.get("sparse_optimizations") or []:
            for tensor, ranks in (saf.get("representation_format") or {}).items():
                self.formats[(saf["target"], tensor)] = [r.upper() for r in ranks]
            for act in saf.get("action_optimization") or []:
                # a SAF whose read-only target bypasses its level acts at the next keeper out (02.2.1: A skipped
                # at BackingStorage); a read-write target that bypasses it is not optimized (03.2.2: Outputs
                # bypass the Buffer and Sparseloop reports all 432 updates) -- both as Sparseloop reports them
                rw = any(ds["name"] == act["target"] and ds.get("read_write") for ds in prob["data_spaces"])
                if rw and act["target"] not in self.kept.get(saf["target"], {}):
                    continue
                table = self.skip if act["type"] == "skipping" else self.gate
                table.setdefault(act["target"], set()).update(act["condition_on"])

    @property
    def computes(self) -> int:
        return math.prod(self.bounds.values())

    def rank_extents(self, tensor: str) -> list[int]:
        """Extent of each projection rank: 1 + sum of coefficient x (bound - 1) (``S + Q`` -> S + Q - 1)."""
        from hwsim.interop.timeloop import _parse_rank
        coefficients = {k: int(v) for k, v in self.instance.items() if k not in self.bounds}
        return [1 + sum(c * (self.bounds[d] - 1) for d, c in _parse_rank(rank, where=self.origin,
                                                                         coefficients=coefficients))
                for rank in self.tensors[tensor]["projection_ranks"]]

    def size(self, tensor: str) -> int:
        return math.prod(self.rank_extents(tensor))

    def is_output(self, tensor: str) -> bool:
        return bool(self.tensors[tensor].get("read_write"))

    def leader_factor(self, table: dict[str, set[str]], tensor: str) -> float:
        return math.prod(self.density[t] for t in table.get(tensor, ()) if t != tensor)

    def consumer(self, index: int, tensor: str) -> int | None:
        """Index of the next inner level keeping ``tensor`` (None: the MAC)."""
        for j in range(index + 1, len(self.levels)):
            if tensor in self.kept.get(self.levels[j]["name"], {}):
                return j
        return None


def _format_counts(case: _Case, level: str, tensor: str, traversals: float, factor: float) -> float:
    """Metadata words read for ``traversals`` passes over a tile, scaled by the leader factor."""
    ranks = case.formats.get((level, tensor))
    if not ranks:
        return 0.0
    # the fibertree's ranks run outer to inner from the *last* projection rank (Weights[M][S]: S outer, M
    # inner), and the formats name the innermost ones, outer to inner (Sparseloop 03.2.2: UOP on S, RLE on M)
    sizes = list(reversed(case.rank_extents(tensor)))[-len(ranks):]
    words = 0.0
    for i, fmt in enumerate(ranks):
        outer = math.prod(sizes[:i])
        if fmt == "UOP":
            words += _floor(traversals * outer * (sizes[i] + 1) * factor)
        elif fmt == "B":
            words += _floor(traversals * outer * sizes[i] * factor)
        elif fmt in ("CP", "RLE") and i == len(ranks) - 1:
            payload = _kept(traversals * case.size(tensor), 1.0 - case.density[tensor])
            words += _kept(payload, 1.0 - factor)
    return words


def _tensor_accesses(case: _Case, index: int, tensor: str) -> dict[str, float]:
    """Reads/fills/updates (actual and algorithmic) and metadata of one tensor at one level."""
    level = case.levels[index]["name"]
    size, dens = case.size(tensor), case.density[tensor]
    compressed = (level, tensor) in case.formats
    keep = dens if compressed else 1.0
    inner = case.consumer(index, tensor)
    fills = 0 if index == 0 or case.is_output(tensor) else size  # outputs: first update needs no fill
    if inner is None:
        factor = case.leader_factor(case.skip, tensor) * case.leader_factor(case.gate, tensor)
        alg_updates = case.computes if case.is_output(tensor) else 0
        alg_reads = case.computes - size if case.is_output(tensor) else case.computes
    else:
        factor = 1.0
        alg_updates = size if case.is_output(tensor) else 0
        alg_reads = 0 if case.is_output(tensor) else size
    gated = tensor in case.gate and inner is None
    reads = _kept(_kept(alg_reads, 1.0 - keep), 1.0 - factor, round_up=case.is_output(tensor))
    updates = _kept(alg_updates, 1.0 - factor)
    traversals = alg_reads / size if size else 0.0
    return {"algorithmic_reads": alg_reads, "reads": reads, "fills": _kept(fills, 1.0 - keep),
            "algorithmic_updates": alg_updates, "updates": updates, "gated": float(gated),
            "metadata_reads": _format_counts(case, level, tensor, traversals, factor),
            "metadata_fills": _format_counts(case, level, tensor, 1.0 if fills else 0.0, 1.0)}


# Tile shape / block size above which Sparseloop counts a compressed tile's vectors as plain
# ceil(accesses / block); rows: block size, columns: mean density 0.1, 0.2, ..., 1.0
# (VectorWidthCoefficientTable, NVlabs/timeloop include/model/buffer.hpp)
_VECTOR_WIDTH_THRESHOLD = {
    2: (251, 125, 84, 63, 51, 42, 36, 32, 28, 1),
    4: (375, 188, 125, 94, 75, 63, 54, 47, 42, 1),
    8: (438, 219, 146, 110, 88, 73, 63, 55, 49, 1),
    16: (469, 235, 157, 118, 94, 79, 67, 59, 52, 1),
    32: (485, 243, 162, 122, 97, 81, 70, 61, 52, 1),
}


def _vector_ratio(shape: int, density: float, block: int) -> float:
    """Vectors per naive ``accesses / block`` of a small compressed tile (Sparseloop's statistical count).

    A tile of ``shape`` elements at fixed-structured ``density`` holds floor or ceil of ``shape x density``
    non-zeros (the two weighted so the mean is exact); each read moves ``ceil(nnz / block)`` vectors, not the
    ``nnz / block`` of a dense stream. Large tiles (past the threshold table) are counted naively.
    """
    if shape == 0 or block <= 1 or density >= 1.0:
        return 1.0
    index = int(math.floor(density / 0.1 + _EPS)) - 1 if density >= 0.1 else 0
    if _VECTOR_WIDTH_THRESHOLD[block][max(index, 0)] <= shape / block:
        return 1.0
    exact = shape * density
    low, high = math.floor(exact + _EPS), math.ceil(exact - _EPS)
    p_high = exact - low
    expected = math.ceil(low / block) * (1.0 - p_high if high != low else 1.0)
    if high != low:
        expected += math.ceil(high / block) * p_high
    return expected / (exact / block)


def _energy(case: _Case, index: int, tensor: str, acc: dict[str, float], tile: int | None = None) -> float:
    """Energy of one tensor's actual accesses at one level (``tile``: its tile shape there; default the
    whole tensor, as every untiled case keeps it)."""
    attrs = case.levels[index]["attributes"]
    name = case.levels[index]["name"]
    ert = case.ert[name]
    block = max(1, int(attrs.get("width", 8)) // int(attrs.get("datawidth", 8)))
    meta_block = max(1, int(attrs.get("metadata_storage_width") or 1) // int(attrs.get("metadata_datawidth") or 1))
    compressed = (name, tensor) in case.formats
    shape = case.size(tensor) if tile is None else tile
    ratio = _vector_ratio(shape, case.density[tensor], block) if compressed else 1.0
    energy = math.ceil(acc["fills"] / block) * ratio * ert.get("write", 0.0)
    energy += math.ceil(acc["reads"] / block) * ratio * ert.get("read", 0.0)
    energy += math.ceil(acc["updates"] / block) * ratio * ert.get("update", 0.0)
    energy += math.ceil(acc["metadata_reads"] / meta_block) * ert.get("metadata_read", 0.0)
    energy += math.ceil(acc["metadata_fills"] / meta_block) * ert.get("metadata_write", 0.0)
    return energy * int(case.levels[index].get("instances", 1))


def evaluate_sparseloop_case(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Cycles, computes and energy of a Sparseloop case, keyed like its ``key_results``."""
    data = _load(path)
    origin = str(data.get("id", "case")) if isinstance(path, dict) else Path(path).name
    loops = [m for m in data["mapping_result_outer_to_inner"] if m["loops_outer_to_inner"]]
    storage_levels = [lvl for lvl in data["architecture_flattened_outer_to_inner"] if lvl["class"] != "intmac"]
    if any(m["level"] != storage_levels[-1]["name"] for m in loops):
        from hwsim.models.sparse.sparseloop_tiled import evaluate_tiled
        return evaluate_tiled(data, origin=origin)
    case = _Case(data, origin)
    actual = cycles = case.computes
    for tensor in (t for t in case.tensors if not case.is_output(t)):
        actual = _kept(actual, 1.0 - case.leader_factor(case.skip, tensor) * case.leader_factor(case.gate, tensor))
        cycles = _kept(cycles, 1.0 - case.leader_factor(case.skip, tensor))
    by_level: dict[str, float] = {case.mac["name"]: actual * case.ert[case.mac["name"]]["compute"]}
    storage: dict[str, dict[str, dict[str, float]]] = {}
    for i, lvl in enumerate(case.levels):
        name = lvl["name"]
        storage[name] = {}
        total = cycles * case.ert[name].get("leak", 0.0) * int(lvl.get("instances", 1))
        for tensor in case.kept.get(name, {}):
            acc = _tensor_accesses(case, i, tensor)
            acc["energy_total_pJ"] = _energy(case, i, tensor, acc)
            total += acc["energy_total_pJ"]
            storage[name][tensor] = acc
        by_level[name] = total
    by_level["Total"] = sum(by_level.values())
    return {"cycles": cycles, "computes": case.computes, "actual_computes": actual,
            "utilization_pct": 100.0 * actual / cycles if cycles else 0.0,
            "total_energy_pJ": by_level["Total"], "energy_pJ_by_level": by_level, "storage_accesses": storage}
