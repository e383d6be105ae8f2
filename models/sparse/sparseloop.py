"""Replay a Sparseloop case (``sl_*.json``, ``slt_*.json`` or a Timeloop output folder's case) with
Sparseloop's accounting.

The case is parsed here (levels, Accelergy energies, formats per level and tensor) and priced here; the
counts come from ``hwsim.models.sparse.sparseloop_nest``: the dense nest analysis with Timeloop's semantics,
then Sparseloop's transformations (compression, skip/gate SAFs, their propagation, compute removal and
bandwidth throttling). Fixed-structured densities; formats ``UOP``/``CP``/``B``/``RLE`` per rank; rounding as
Sparseloop does it (Wu et al., MICRO 2022; NVlabs/timeloop src/sparse-analysis, src/model/buffer.cpp).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError

_EPS = 1e-9


def _load(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(path, dict):
        return path
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path.name}: cannot read Sparseloop case ({err})") from None


class _Case:
    """Parsed view of one case: storage levels, compute, Accelergy energies, kept tiles, formats, densities."""

    def __init__(self, data: dict[str, Any], origin: str):
        prob = data["problem"]
        self.origin = origin
        dens = prob.get("densities") or {}
        self.density = {ds["name"]: float(dens.get(ds["name"], {}).get("density", 1.0)) for ds in prob["data_spaces"]}
        self.levels = [lvl for lvl in data["architecture_flattened_outer_to_inner"] if lvl["class"] != "intmac"]
        self.mac = next(lvl for lvl in data["architecture_flattened_outer_to_inner"] if lvl["class"] == "intmac")
        self.ert = {name: v["actions_pJ"] for name, v in data["ert_pJ_per_action"].items()}
        self.kept = {m["level"]: m["tiles_kept"] for m in data["mapping_result_outer_to_inner"]}
        self.formats: dict[tuple[str, str], list[str]] = {}
        for saf in data.get("sparse_optimizations") or []:
            for tensor, ranks in (saf.get("representation_format") or {}).items():
                self.formats[(saf["target"], tensor)] = [r.upper() for r in ranks]


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


def _energy(case: _Case, index: int, tensor: str, acc: dict[str, float], tile: int) -> float:
    """Energy of one tensor's actual accesses (and metadata words) at one level, whose tile holds ``tile``
    elements: vector energy per ``ceil(n / block)`` (times the statistical ratio of small compressed tiles),
    metadata per ``ceil(words / metadata block)``, all instances of the level."""
    attrs = case.levels[index]["attributes"]
    name = case.levels[index]["name"]
    ert = case.ert[name]
    block = max(1, int(attrs.get("width", 8)) // int(attrs.get("datawidth", 8)))
    meta_block = max(1, int(attrs.get("metadata_storage_width") or 1) // int(attrs.get("metadata_datawidth") or 1))
    compressed = (name, tensor) in case.formats
    ratio = _vector_ratio(tile, case.density[tensor], block) if compressed else 1.0
    energy = math.ceil(acc["fills"] / block) * ratio * ert.get("write", 0.0)
    energy += math.ceil(acc["reads"] / block) * ratio * ert.get("read", 0.0)
    energy += math.ceil(acc["updates"] / block) * ratio * ert.get("update", 0.0)
    energy += math.ceil(acc["metadata_reads"] / meta_block) * ert.get("metadata_read", 0.0)
    energy += math.ceil(acc["metadata_fills"] / meta_block) * ert.get("metadata_write", 0.0)
    return energy * int(case.levels[index].get("instances", 1))


def evaluate_sparseloop_case(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Cycles, computes, per-level actual accesses and energy of a Sparseloop case, keyed like its ``key_results``."""
    from hwsim.models.sparse.sparseloop_nest import evaluate_nest
    data = _load(path)
    origin = str(data.get("id", "case")) if isinstance(path, dict) else Path(path).name
    try:
        return evaluate_nest(data, origin=origin)
    except KeyError as err:
        raise ConfigError(f"{origin}: the case lacks {err} (see tests/data/timeloop/README.md for the schema)") from None
