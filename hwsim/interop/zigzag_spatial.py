"""The spatial mapping ZigZag (zigzag-dse 3.9.1) derives from a mapping file, in per-operand form.

ZigZag's LOMA searches temporal mappings under one spatial mapping per layer; when the mapping file gives
every array dimension (all six ResNet-18 accelerators do), that mapping is the file's, adjusted to the layer.
The rules, as ZigZag's ``SpatialMappingGeneratorStage`` and ``SpatialMappingConversionStage`` apply them
(learnt from their source, reimplemented):

* the mapping entry is the one named like the layer, else like its operator type (``Gemm``), else ``default``;
  dims the layer does not have are dropped;
* a factor is at most the array dimension and the layer dim; on an array dimension served by an innermost
  memory it is at most that memory's port width over the operand's precision (for every operand the dim is
  not irrelevant to: inputs' read-to-low port, the output's write-from-low port);
* an innermost memory must hold one operand element per non-irrelevant unrolled index: its largest factor
  shrinks by one until the product fits;
* a factor that does not divide its dim becomes fractional, ``size / ceil(size / factor)`` (the energy
  view); the rounded-down integer times latency (the dumped form, ``OperandNest.spatial``);
* per operand, spatial level ``m`` holds the loops of the array dimensions its ``m``-th memory serves (not
  claimed by an inner one); what no memory serves sits above the outermost.

``zigzag_spatial(layer, hardware, links, entries)`` returns a ``SpatialZ``: per-operand spatial levels,
the fractional factors, the temporal loop sizes left (``ceil``), and the unrolling per array dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwsim.errors import ConfigError
from hwsim.models.spatial.zigzag_nest import LayerZ, Loop

_OUTPUT_DIRECTION, _INPUT_DIRECTION = "from_low", "to_low"


@dataclass(frozen=True)
class SpatialZ:
    """One layer's spatial mapping in ZigZag's per-operand form."""

    per_operand: dict[str, tuple[tuple[Loop, ...], ...]]   # operand -> spatial levels (integer factors)
    decimal: dict[str, tuple[tuple[tuple[str, float], ...], ...]]   # the same, fractional (tile sizes)
    factors: dict[str, float]                              # layer dim -> total (fractional) unrolling
    temporal: dict[str, int]                               # layer dim -> temporal trip count left (> 1 only)
    unrolling: dict[str, float]                            # array dimension -> its unrolling (systolic drain)
    user: dict[str, dict[str, int]]                        # array dimension -> {dim: factor}, as adjusted


def mapping_entry(entries: list[dict[str, Any]], *, name: str, operator: str) -> dict[str, Any]:
    """The mapping file's entry for a layer: by name, by operator type, else ``default``."""
    by_name = {str(e.get("name")): e for e in entries}
    entry = by_name.get(name) or by_name.get(operator) or by_name.get("default")
    if entry is None:
        raise ConfigError(f"mapping file: no entry for layer {name!r} ({operator}) and no 'default' entry")
    return entry


def _entry_factors(entry: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for array_dim, items in (entry.get("spatial_mapping") or {}).items():
        per = out.setdefault(str(array_dim), {})
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                pairs = list(item.items())
            else:
                dim, _, factor = str(item).partition(",")
                pairs = [(dim, factor)]
            for dim, factor in pairs:
                if str(factor).strip():
                    per[str(dim).strip().upper()] = per.get(str(dim).strip().upper(), 1) * int(factor)
    return out


def _inner_memories(hardware: Any, chains: dict[str, list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Memories first in the chain of every operand they hold (ZigZag's graph nodes without a parent)."""
    out = []
    for name, mem in hardware.memories:
        held = [t for t, chain in chains.items() if name in chain]
        if held and all(chains[t][0] == name for t in held):
            out.append((name, mem))
    return out


def zigzag_spatial(layer: LayerZ, hardware: Any, links: dict[str, str], entry: dict[str, Any]) -> SpatialZ:
    """ZigZag's spatial mapping of ``layer`` from a mapping-file ``entry`` (see the module docstring)."""
    sizes = {d: int(s) for d, s in layer.sizes.items()}
    array = hardware.array
    chains = hardware.chains(links)
    to_layer = {mem_op: t for t, mem_op in links.items()}
    _, width, _, _, _ = hardware.ports(links)
    user = {oa: {d: f for d, f in per.items() if d in sizes} for oa, per in _entry_factors(entry).items()
            if oa in array}
    missing = [oa for oa in array if oa not in user]
    if missing:
        raise ConfigError(f"mapping file: the entry gives no spatial mapping for array dimension(s) {missing}; "
                          "only complete spatial mappings are searched (ZigZag would generate the rest)")
    inner = _inner_memories(hardware, chains)
    # cap: array dimension, layer dim, bandwidth of the innermost memories
    for oa, per in user.items():
        for d in per:
            cap = min(sizes[d], array[oa])
            for name, mem in inner:
                if oa not in (mem.get("served_dimensions") or []):
                    continue
                for mem_op in mem.get("operands") or []:
                    t = to_layer.get(mem_op)
                    if t is None or layer.is_irrelevant(t, d):
                        continue
                    direction = _OUTPUT_DIRECTION if t == layer.output else _INPUT_DIRECTION
                    bw = width.get((t, 0, direction))
                    if bw and layer.precision[t] > 0:
                        cap = min(cap, bw // layer.precision[t])
            per[d] = min(per[d], cap)
    # capacity of the innermost memories
    for name, mem in inner:
        served = [oa for oa in (mem.get("served_dimensions") or []) if oa in user]
        for mem_op in mem.get("operands") or []:
            t = to_layer.get(mem_op)
            if t is None or layer.precision[t] <= 0:
                continue
            keys = [(oa, d) for oa in served for d in user[oa] if not layer.is_irrelevant(t, d)]
            limit = int(mem["size"]) / layer.precision[t]
            values = [user[oa][d] for oa, d in keys]
            while math.prod(values) > limit and any(v > 1 for v in values):
                values[values.index(max(values))] -= 1
            for (oa, d), v in zip(keys, values):
                user[oa][d] = v
    # fractional factors where a factor does not divide its dim (on the first array dim with the largest)
    decimal: dict[str, dict[str, float]] = {oa: {} for oa in user}
    integer: dict[str, dict[str, int]] = {oa: {} for oa in user}
    for oa, per in user.items():
        for d, f in per.items():
            largest = max(p.get(d, 0) for p in user.values())
            first = next(o for o, p in user.items() if p.get(d) == largest)
            if oa == first:
                earlier = math.prod(decimal[o].get(d, 1) for o in user if o != oa and list(user).index(o) <
                                    list(user).index(oa))
                remainder = math.ceil(sizes[d] / (f * earlier))
                exact = sizes[d] / remainder / earlier
                decimal[oa][d], integer[oa][d] = exact, int(exact)
            else:
                decimal[oa][d], integer[oa][d] = f, f
    factors: dict[str, float] = {}
    temporal = dict(sizes)
    for oa in user:
        for d, f in decimal[oa].items():
            factors[d] = factors.get(d, 1) * f
            if d in temporal:
                q = math.ceil(temporal[d] / f)
                if q == 1:
                    del temporal[d]
                else:
                    temporal[d] = q
    temporal = {d: q for d, q in temporal.items() if q > 1}
    served = {name: list(mem.get("served_dimensions") or []) for name, mem in hardware.memories}
    per_operand, per_operand_decimal = {}, {}
    for t in layer.operands:
        for table, out in ((integer, per_operand), (decimal, per_operand_decimal)):
            left = list(user)
            levels: list[tuple] = []
            for name in chains[t] + [None]:
                loops: dict[str, float] = {}
                for oa in list(left):
                    if name is None or oa in served[name]:
                        left.remove(oa)
                        for d, f in table[oa].items():
                            loops[d] = loops.get(d, 1) * f
                levels.append(tuple(loops.items()))
            out[t] = tuple(levels)
    unrolling = {oa: math.prod(per.values()) for oa, per in user.items()}
    return SpatialZ(per_operand=per_operand, decimal=per_operand_decimal, factors=factors, temporal=temporal,
                    unrolling=unrolling,
                    user={oa: dict(per) for oa, per in user.items()})


__all__ = ["SpatialZ", "mapping_entry", "zigzag_spatial"]
