"""``SearchMapper``: pruned search over the spatial engine's mapspace, deterministic for a seed, memoized.

Mapspace: spatial unrollings of every fan-out over the dims the preset allows (padding a dim when it raises
utilization; ``G`` wherever ``K`` is, so depthwise layers fill the array), factorizations of each dim's
remaining trip count over the levels, loop orders (pruned to the three stationarity orders plus adjacent
swaps: orders that differ only in unit loops are the same mapping and are evaluated once), and bypass
choices. Small spaces are enumerated exhaustively; larger ones are searched from the greedy seeds by a
seeded hill climb with restarts within ``max_candidates`` evaluations. Results are memoized by (mapper
parameters, layer shape, architecture), so repeated layers and sweeps pay once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from hwsim.errors import ConfigError
from hwsim.mappers.mapping import Mapping

Objective = Literal["energy", "latency", "edp", "weighted"]
Cost = Literal["engine", "zigzag"]
Space = Literal["chain", "per_operand"]
_CACHE: "OrderedDict[tuple, SearchResult]" = OrderedDict()
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SearchResult:
    """The best mapping found, its energy (pJ, as ``price`` gives it) and cycles, and the search effort."""

    mapping: Mapping
    energy_pj: float
    cycles: int
    evaluated: int
    padded_macs: int
    macs: int


@dataclass(frozen=True)
class SearchMapper:
    """Search the spatial mapspace for the mapping minimizing ``objective``.

    ``weights`` (energy, latency) weigh the normalized terms of the ``weighted`` objective. ``constraints``
    restricts the mapspace: a dict (``{"spatial": {"x": [dims] | {dim: n}, ...}, "levels": {LEVEL: {"keep":
    [tensors], "bypass": [tensors], "factors": {dim: n}, "permutation": "RS", "spatial": {...}}}}``), a
    ``ConstraintSet``, or the path of a YAML file (hwsim's spelling or Timeloop's mapspace constraints); see
    ``hwsim.mappers.constraints``. It is stored as canonical JSON, so equal constraints share cache entries.

    ``cost`` picks what ranks the candidates: ``"engine"`` (default) hwsim's spatial engine (Timeloop-style
    accounting, Numba kernels); ``"zigzag"`` ZigZag's accounting (``hwsim.interop.zigzag_score``, the
    replay's code path, in Python) on an arch read by ``load_zigzag_accelerator`` -- the mapspace is the
    same, searched on the arch with sibling levels ordered larger-outside (``zigzag_search_arch``), a
    candidate is valid when each memory holds its operands' tiles (ZigZag has no bypass), and
    ``SearchResult`` carries ZigZag-accounting energy and latency. Its mappings are for ZigZag scoring: their
    level order is the reordered arch's.

    ``space`` picks the mapspace: ``"chain"`` (default) hwsim's one chain of levels above; ``"per_operand"``
    (with ``cost="zigzag"``) ZigZag's own space, where every operand cuts the loop order at its own memories
    -- a LOMA-like search (``hwsim.mappers.loma.LomaMapper``: the mapping file's spatial mapping, loop
    orders of the prime-factor loops, the best feasible cut points per operand). ``search`` then returns a
    ``LomaResult`` (per-operand nests, ``energy_pj``, ``cycles``); objectives energy, latency or edp.
    """

    objective: Objective = "edp"
    weights: tuple[float, float] = (1.0, 1.0)
    seed: int = 0
    max_candidates: int = 400
    spatial_limit: int = 4
    allow_padding: bool = True
    constraints: Any = None
    cost: Cost = "engine"
    space: Space = "chain"

    def __post_init__(self) -> None:
        if self.cost not in ("engine", "zigzag"):
            raise ConfigError(f"SearchMapper: cost must be engine or zigzag (got {self.cost!r})")
        if self.space not in ("chain", "per_operand"):
            raise ConfigError(f"SearchMapper: space must be chain or per_operand (got {self.space!r})")
        if self.space == "per_operand" and (self.cost != "zigzag" or self.objective == "weighted"):
            raise ConfigError("SearchMapper(space='per_operand') searches ZigZag's per-operand mapspace: it needs "
                              "cost='zigzag' and objective energy, latency or edp")
        if self.objective not in ("energy", "latency", "edp", "weighted"):
            raise ConfigError(f"SearchMapper: objective must be energy, latency, edp or weighted "
                              f"(got {self.objective!r})")
        if self.max_candidates < 1:
            raise ConfigError(f"SearchMapper: max_candidates must be >= 1 (got {self.max_candidates})")
        from hwsim.mappers.constraints import load_constraints, parse_constraints
        raw = self.constraints
        if isinstance(raw, Path) or (isinstance(raw, str) and raw.strip()[:1] not in ("{", "")):
            cons = load_constraints(raw)
        else:
            cons = parse_constraints(raw or None)
        # canonical JSON keeps the dataclass hashable and makes equal constraint sets one cache key
        object.__setattr__(self, "constraints", None if cons.empty else cons.to_json())
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    def with_params(self, **changes: object) -> "SearchMapper":
        """A copy with some parameters replaced (unknown names are rejected)."""
        valid = {f.name for f in fields(self)}
        if unknown := sorted(changes.keys() - valid):
            raise ValueError(f"unknown SearchMapper parameter(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **changes)

    def map(self, layer: Any, arch: Any) -> Any:
        """The best mapping of ``layer`` on a spatial ``arch``; other engines keep their fixed dataflow."""
        if arch.engine != "spatial":
            if self.constraints:
                raise ConfigError(f"SearchMapper constraints steer the spatial engine's mapping search; arch "
                                  f"{arch.name!r} uses the {arch.engine} engine's fixed dataflow")
            from hwsim.models import get_engine
            return get_engine(arch.engine).default_mapping(layer, arch)
        if self.space == "per_operand":
            raise ConfigError("SearchMapper(space='per_operand') finds per-operand ZigZag nests, not a hwsim "
                              "Mapping; use .search(layer, arch).nests")
        return self.search(layer, arch).mapping

    def search(self, layer: Any, arch: Any) -> Any:
        """Search (or recall) the best mapping with its energy and cycles (``SearchResult``; with
        ``space="per_operand"`` a ``hwsim.mappers.loma.LomaResult``)."""
        if self.space == "per_operand":
            if self.constraints:
                raise ConfigError("SearchMapper(space='per_operand'): constraints are not supported there (the "
                                  "spatial mapping comes from the ZigZag mapping file)")
            from hwsim.mappers.loma import LomaMapper
            return LomaMapper(objective=self.objective).search(layer, arch)
        key = (self, _layer_key(layer), arch.model_dump_json())
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        from hwsim.mappers._search_core import run_search
        result = run_search(self, layer, arch)
        _CACHE[key] = result
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return result

    @property
    def constraint_dict(self) -> dict[str, Any]:
        """The constraints in their canonical dict spelling (``{}``: none)."""
        return json.loads(self.constraints) if self.constraints else {}

    @property
    def constraint_set(self) -> Any:
        """The constraints as a ``hwsim.mappers.constraints.ConstraintSet``."""
        from hwsim.mappers.constraints import parse_constraints
        return parse_constraints(self.constraints)


def _layer_key(layer: Any) -> tuple:
    """Everything about a layer that can change its mapping (not its name)."""
    return (layer.op.value, layer.N, layer.K, layer.C, layer.P, layer.Q, layer.R, layer.S, layer.G,
            layer.stride, layer.dilation, layer.weight_bits, layer.act_bits, layer.out_bits, layer.acc_bits,
            layer.number_format, layer.act_density)


def clear_cache() -> None:
    """Forget every memoized search result (the per-operand search's too)."""
    from hwsim.mappers.loma import clear_cache as clear_loma
    _CACHE.clear()
    clear_loma()


__all__ = ["SearchMapper", "SearchResult", "clear_cache"]
