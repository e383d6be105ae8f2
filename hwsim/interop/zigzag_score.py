"""Score hwsim ``Mapping``s on a ZigZag accelerator with ZigZag's accounting (the replay's code path).

hwsim's mapper writes one chain of levels (outer -> inner, each with temporal loops, spatial x/y loops and
a keep set); ZigZag's model (``models/spatial/zigzag_nest.py``) wants one ``OperandNest`` per operand: its
own chain of memories (the hardware file's memories that list it, inner -> outer) and the loops each of
them runs. The conversion:

* **temporal**: a loop of hwsim level ``L`` belongs, for operand ``t``, to the nearest memory at or outside
  ``L`` (in hwsim's chain order) that holds ``t`` in the hardware file and that the mapping keeps ``t`` in.
  ZigZag has no bypass: a memory that lists an operand holds at least its spatial tile; a hwsim "bypass"
  of ``t`` at such a memory means that memory runs none of ``t``'s temporal loops (it is refilled for every
  tile of the level below), which is how ZigZag writes a register that holds one word.
* **spatial**: a spatial loop sits on an array dimension (hwsim's x axis is D1, D3; y is D2, D4 --
  ``hwsim.interop.zigzag.array_axis``); for operand ``t`` it unrolls below the innermost memory of ``t``
  that serves that dimension (``served_dimensions``), as ZigZag places it.

``nests_to_mapping`` is the inverse for mappings whose per-operand chains nest into hwsim's chain (each
loop goes to the innermost hwsim level among its operands' memories). ``ZigZagScorer`` evaluates with
``zigzag_replay.evaluate_nests`` -- the same function the replay uses -- so there is one copy of the
accounting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError
from hwsim.interop.zigzag_replay import _Hardware, evaluate_nests, hardware_of
from hwsim.mappers.mapping import LevelMapping, Mapping
from hwsim.models.spatial.zigzag_nest import LayerZ, OperandNest

CONV_DIMS = {"N": "B", "G": "G", "K": "K", "C": "C", "P": "OY", "Q": "OX", "R": "FY", "S": "FX"}
GEMM_DIMS = {"N": "B", "G": "G", "K": "K", "C": "C", "P": "D", "Q": "OX", "R": "FY", "S": "FX"}
_LINKS = {"O": "O", "W": "I2", "I": "I1"}


def _is_gemm(layer: Any) -> bool:
    return getattr(layer.op, "value", str(layer.op)) in ("linear", "matmul")


def layer_z(layer: Any, *, psum_bits: int) -> LayerZ:
    """A hwsim ``Layer`` as ZigZag's ONNX parser describes it (equation, windows, precisions).

    Convolutions: ``O[b][g][k][oy][ox] += W[g][k][c][fy][fx] * I[b][g][c][iy][ix]`` with ``ix = s*ox + d*fx``
    clipped to the unpadded input; GEMMs: ``O[d][k] += I[d][c] * W[c][k]`` (``P`` rows -> ``D``). Partial sums
    are ``psum_bits`` wide (the hardware's accumulator; ZigZag's ``O`` precision), final outputs ``out_bits``.
    """
    g = max(1, int(layer.G))
    dims = GEMM_DIMS if _is_gemm(layer) else CONV_DIMS
    values = {"N": layer.N, "G": g, "K": layer.K // g, "C": layer.C // g, "P": layer.P, "Q": layer.Q,
              "R": layer.R, "S": layer.S}
    sizes = {dims[d]: int(v) for d, v in values.items()}
    precision = {"O": int(psum_bits), "W": int(layer.weight_bits), "I": int(layer.act_bits)}
    if _is_gemm(layer):
        if layer.R * layer.S * layer.Q * g * layer.N != 1:
            raise ConfigError(f"layer {layer.name!r}: a GEMM scored on ZigZag's model needs N = G = Q = R = S = 1")
        sizes = {"D": sizes["D"], "C": sizes["C"], "K": sizes["K"]}
        relevant = {"O": frozenset({"D", "K"}), "I": frozenset({"D", "C"}), "W": frozenset({"C", "K"})}
        return LayerZ(name=layer.name, sizes=sizes, operands=("O", "I", "W"), relevant=relevant, windows={},
                      window_limit={}, precision=precision, final_precision=int(layer.out_bits))
    (sy, sx), (dy, dx) = tuple(layer.stride), tuple(layer.dilation)
    if layer.input_size is not None:
        h, w = (int(v) for v in layer.input_size)
    else:
        pad_h, pad_w = tuple(layer.padding)
        h = (layer.P - 1) * sy + (layer.R - 1) * dy + 1 - 2 * pad_h
        w = (layer.Q - 1) * sx + (layer.S - 1) * dx + 1 - 2 * pad_w
    windows = {"IX": (("OX", sx), ("FX", dx)), "IY": (("OY", sy), ("FY", dy))}
    relevant = {"O": frozenset({"B", "G", "K", "OY", "OX"}), "W": frozenset({"G", "K", "C", "FY", "FX"}),
                "I": frozenset({"B", "G", "C"})}
    return LayerZ(name=layer.name, sizes=sizes, operands=("O", "W", "I"), relevant=relevant,
                  windows={"O": {}, "W": {}, "I": windows}, window_limit={"O": {}, "W": {}, "I": {"IX": w, "IY": h}},
                  precision=precision, final_precision=int(layer.out_bits))


def onnx_layers(workload: str | Path) -> dict[str, Any]:
    """hwsim's MAC layers of an ONNX file, per node name as ZigZag prints it -- the pairing the replay uses.

    The lowering records each conv's real (unpadded) input extent (``Layer.input_size``), which is what
    ZigZag clips its windows to (a stride-2 conv's 56-wide input, not the 55 its output implies)."""
    from hwsim.interop.onnx_import import lower_onnx
    import onnx
    model = onnx.load(str(workload), load_external_data=False)
    nodes = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    layers = [layer for layer in lower_onnx(workload).layers() if layer.op.has_macs]
    if len(nodes) != len(layers):
        raise ConfigError(f"{Path(workload).name}: hwsim lowers {len(layers)} MAC layers from {len(nodes)} "
                          "Conv/Gemm/MatMul nodes; cannot pair them with ZigZag's layers")
    return dict(zip(nodes, layers))


def _axis_dims(array: dict[str, int]) -> dict[str, list[str]]:
    from hwsim.interop.zigzag import array_axis
    out: dict[str, list[str]] = {"x": [], "y": []}
    for dim in array:
        out[array_axis(dim)].append(dim)
    return out


def level_axis_dims(arch: Any, array: dict[str, int]) -> dict[tuple[str, str], list[str]]:
    """Per (level name, axis): the array dimensions that level's fan-out on that axis spans.

    hwsim's fan-out below each level (``models.spatial.nest.fanouts``) is a product of ZigZag array
    dimensions of that axis (ascend_like: x 32 = D1 x D3 below its output register's parent, y 2 = D4 there,
    y 16 = D2 below). Dimensions are matched to levels outer to inner, first by the smallest set of
    unused dimensions whose sizes multiply to the fan-out.
    """
    import itertools

    from hwsim.models.spatial.nest import fanouts
    axes = _axis_dims(array)
    unused = {axis: list(dims) for axis, dims in axes.items()}
    out: dict[tuple[str, str], list[str]] = {}
    for level, fan in zip(arch.memory, fanouts(arch)):
        for axis, size in zip(("x", "y"), fan):
            if size <= 1:
                continue
            match = next((list(c) for k in range(1, len(unused[axis]) + 1)
                          for c in itertools.combinations(unused[axis], k)
                          if math.prod(array[d] for d in c) == size), None)
            if match is None:
                raise ConfigError(f"{arch.name}: fan-out {size} on {axis} below {level.name} is no product of the "
                                  f"array dimensions {unused[axis]} left on that axis")
            out[(level.name, axis)] = match
            unused[axis] = [d for d in unused[axis] if d not in match]
    return out


def spatial_by_array_dim(mapping: Mapping, array: dict[str, int],
                         spans: dict[tuple[str, str], list[str]] | None = None) -> list[tuple[str, int, str]]:
    """The mapping's spatial loops as ``(hwsim dim, factor, array dim)``.

    A level's loops on an axis fill the array dimensions that level's fan-out spans (``spans``, from
    ``level_axis_dims``; without it each axis's dimensions in order, D1 then D3 on x, D2 then D4 on y), in
    order: a loop takes all of it when it fits the current dimension's room, else what divides that room
    (``gcd``) and the rest moves on, so ``K32`` over edge_tpu_like's 8 x 4 is ``K8`` on D1 and ``K4`` on D3,
    as ZigZag would unroll it. A unit loop stays on the current dimension unless it is full. What no
    dimension has room for stays on the last.
    """
    axes = _axis_dims(array)
    room = {d: int(n) for d, n in array.items()}
    out = []
    for level in mapping.levels:
        for axis, loops in (("x", level.spatial_x), ("y", level.spatial_y)):
            if not loops:
                continue
            dims = (spans or {}).get((level.level, axis)) or axes[axis]
            if not dims:
                raise ConfigError(f"mapping level {level.level!r}: spatial {axis} loops {loops} but the array has "
                                  f"no {axis} dimension ({sorted(array)})")
            current = next((k for k, d in enumerate(dims) if room[d] > 1), len(dims) - 1)
            for dim, factor in loops:
                left = int(factor)
                while True:
                    target = dims[current]
                    last = current + 1 == len(dims)
                    if left == 1:
                        if room[target] <= 1 and not last:
                            current += 1
                            continue
                        if factor == 1:
                            out.append((dim, 1, target))
                        break
                    part = left if (last or left <= room[target]) else math.gcd(left, room[target])
                    if part == 1 and not last:
                        current += 1
                        continue
                    room[target] = max(1, room[target] // part)
                    out.append((dim, part, target))
                    left //= part
    return out


def mapping_to_nests(mapping: Mapping, layer: Any, hardware: _Hardware, links: dict[str, str], *,
                     gemm: bool | None = None, spans: dict[tuple[str, str], list[str]] | None = None
                     ) -> tuple[dict[str, OperandNest], dict[str, float]]:
    """Per-operand nests (ZigZag's form) of a hwsim mapping, and the spatial unrolling per array dimension.

    ``layer`` (a hwsim ``Layer``) only says whether the dims are a GEMM's; ``gemm`` overrides it."""
    dims = GEMM_DIMS if (gemm if gemm is not None else _is_gemm(layer)) else CONV_DIMS
    names = [lvl.level for lvl in mapping.levels]               # outer -> inner
    chains = hardware.chains(links)
    tensor_of = {mem_op: t for t, mem_op in links.items()}
    served = {name: set(mem.get("served_dimensions") or []) for name, mem in hardware.memories}
    nests = {}
    for t, chain in chains.items():
        if missing := [m for m in chain if m not in names]:
            raise ConfigError(f"mapping: levels {missing} of the hardware file are not in the mapping ({names})")
        pos = [names.index(m) for m in chain]                   # chain inner -> outer: positions decrease
        if pos != sorted(pos, reverse=True):
            raise ConfigError(f"mapping: operand {t}'s memories {chain} are not nested in the mapping's level "
                              f"order {names}; ZigZag's chain cannot be expressed")
        temporal: list[list[tuple[str, int]]] = [[] for _ in chain]
        tensor = tensor_of.get(links[t], t)
        active = [k == len(chain) - 1 or tensor in mapping.levels[p].keep for k, p in enumerate(pos)]
        for i, level in enumerate(mapping.levels):
            keeper = next((k for k, p in enumerate(pos) if p <= i and active[k]), len(chain) - 1)
            # hwsim lists loops outer -> inner; ZigZag inner -> outer, and inner hwsim levels come first
            temporal[keeper][:0] = [(dims[d], b) for d, b in reversed(level.temporal) if b > 1]
        spatial: list[list[tuple[str, int]]] = [[] for _ in range(len(chain) + 1)]
        placed = spatial_by_array_dim(mapping, hardware.array, spans)       # array dims in ZigZag's order
        for dim, factor, array_dim in sorted(placed, key=lambda p: int(p[2][1:]) if p[2][1:].isdigit() else 0):
            m = next((k for k, mem in enumerate(chain) if array_dim in served[mem]), len(chain))
            spatial[m].append((dims[dim], factor))
        nests[t] = OperandNest(operand=t, temporal=tuple(tuple(v) for v in temporal),
                               spatial=tuple(tuple(v) for v in spatial))
    unrolling: dict[str, float] = {}
    for _, factor, array_dim in spatial_by_array_dim(mapping, hardware.array, spans):
        unrolling[array_dim] = unrolling.get(array_dim, 1) * factor
    return nests, unrolling


def canonical(nest: OperandNest) -> OperandNest:
    """``nest`` with each spatial level's loops sorted (their order within a level changes no figure)."""
    return OperandNest(operand=nest.operand, temporal=nest.temporal,
                       spatial=tuple(tuple(sorted(level)) for level in nest.spatial))


def level_order(nests: dict[str, OperandNest], arch: Any, hardware: _Hardware, links: dict[str, str]) -> list[str]:
    """``arch``'s level names (outer -> inner) with each run of sibling levels (equal copy counts, no fan-out
    between them) reordered so that the memory whose operand's cut is higher sits outside.

    ZigZag's per-PE registers of different operands are parallel, not nested; a single chain can hold a
    ZigZag nest only if the operand cutting lower is the inner one (tpu_like: the 2-byte output register
    inside the 128-byte weight register).
    """
    chains = hardware.chains(links)
    height: dict[str, int] = {}
    for t, chain in chains.items():
        total = 0
        for m, level in enumerate(nests[t].temporal):
            total += len(level)
            height[chain[m]] = max(height.get(chain[m], 0), total)
    names = [lvl.name for lvl in arch.memory]
    copies = [lvl.instances for lvl in arch.memory]
    out, i = [], 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and copies[j + 1] == copies[i]:
            j += 1
        group = names[i:j + 1] if i else names[i:i + 1]
        if not i and j > i:                         # the backing store stays outermost
            out.append(names[0])
            group = names[1:j + 1]
        out += sorted(group, key=lambda n: -height.get(n, 0))
        i = j + 1
    return out


def nests_to_mapping(nests: dict[str, OperandNest], user_spatial: dict[str, dict[str, int]], arch: Any,
                     hardware: _Hardware, links: dict[str, str], *, gemm: bool = False) -> Mapping:
    """A hwsim ``Mapping`` holding per-operand nests (ZigZag's form), levels in ``level_order``.

    Each temporal loop goes to the innermost level among the memories its operands run it at; the spatial
    loops (from the nests; ``user_spatial``, ZigZag's ``{"D1": {"K": 32}, ...}``, says which array dimension
    each dim is unrolled on) go on hwsim's axis of that dimension. Keep sets are ZigZag's memberships.
    A nest that no single chain holds raises ``ConfigError``.
    """
    from hwsim.interop.zigzag import array_axis
    back = {v: k for k, v in (GEMM_DIMS if gemm else CONV_DIMS).items()}
    names = level_order(nests, arch, hardware, links)
    chains = hardware.chains(links)
    flat = {t: [(loop, chains[t][m]) for m, level in enumerate(nests[t].temporal) for loop in level] for t in nests}
    lengths = {len(v) for v in flat.values()}
    if len(lengths) != 1:
        raise ConfigError("nests: operands run different numbers of temporal loops")
    temporal: dict[str, list[tuple[str, int]]] = {n: [] for n in names}
    last = len(names) - 1
    for k in range(lengths.pop()):
        loops = {flat[t][k][0] for t in flat}
        if len(loops) != 1:
            raise ConfigError(f"nests: operands disagree on temporal loop {k} ({sorted(loops)})")
        level = max(names.index(flat[t][k][1]) for t in flat)
        if level > last:
            raise ConfigError(f"nests: temporal loop {k} {sorted(loops)} sits inside a loop of an inner level; "
                              "no single chain of levels holds this nest")
        last = level
        dim, bound = loops.pop()
        temporal[names[level]].insert(0, (back[dim], int(bound)))
    array_dim_of = {dim: d for d, factors in user_spatial.items() for dim, f in factors.items()}
    factor_of: dict[str, int] = {}
    for t, nest in nests.items():
        for level in nest.spatial:
            for dim, factor in level:
                if dim not in array_dim_of:
                    raise ConfigError(f"nests: spatial loop {dim} is on no array dimension of {user_spatial}")
                factor_of[dim] = int(factor)
    spans = level_axis_dims(arch, hardware.array)
    home = {d: key for key, dims in spans.items() for d in dims}
    spatial: dict[str, dict[str, list[tuple[str, int]]]] = {n: {"x": [], "y": []} for n in names}
    for dim, d in sorted(array_dim_of.items(), key=lambda item: int(item[1][1:])):
        if dim in factor_of:
            level, axis = home.get(d, (names[0], array_axis(d)))
            spatial[level][axis].append((back[dim], factor_of[dim]))
    keep: dict[str, list[str]] = {n: [] for n in names}
    for t, chain in chains.items():                 # a memory that runs none of t's loops: t bypasses it
        for m, mem in enumerate(chain):
            if nests[t].temporal[m] or m == len(chain) - 1:
                keep[mem].append(t)
    keep = {n: sorted(v, key="WIO".index) for n, v in keep.items()}
    levels = [LevelMapping(level=n, temporal=tuple(temporal[n]), spatial_x=tuple(spatial[n]["x"]),
                           spatial_y=tuple(spatial[n]["y"]), keep=tuple(keep[n])) for n in names]
    mapping = Mapping(levels=tuple(levels), source="zigzag nests")
    again, _ = mapping_to_nests(mapping, None, hardware, links, gemm=gemm, spans=spans)
    if any(canonical(again[t]) != canonical(nests[t]) for t in nests):
        bad = sorted(t for t in nests if canonical(again[t]) != canonical(nests[t]))
        raise ConfigError(f"nests: operand(s) {bad} cut their loops where no single chain of levels can (a "
                          "memory holds loops above a memory with more copies); not expressible as a Mapping")
    return mapping


def zigzag_search_arch(arch: Any) -> Any:
    """``arch`` with each run of sibling levels (equal copy counts) ordered larger-outside, for the search.

    hwsim's chain puts one of two parallel per-PE registers inside the other; the larger one outside
    lets the smaller one's operand cut lower, as ZigZag's mappings do (tpu_like: 128 B weight register
    outside the 2 B output register). Equal sizes keep ZigZag's listing order (listed first: outside).
    """
    from hwsim.models.arch import validate_arch
    spec = arch.model_dump(mode="json", exclude_none=True)
    levels = spec["memory"]
    listed = [name for name, _ in _Hardware(Path(arch.sources["zigzag.hardware"]), energy={}).memories]
    size = {lvl["name"]: lvl.get("size_bytes", float("inf")) for lvl in levels}
    out, i = [levels[0]], 1
    while i < len(levels):
        j = i
        while j + 1 < len(levels) and levels[j + 1]["instances"] == levels[i]["instances"]:
            j += 1
        out += sorted(levels[i:j + 1], key=lambda lvl: (-size[lvl["name"]], listed.index(lvl["name"])
                                                         if lvl["name"] in listed else 0))
        i = j + 1
    spec["memory"] = out
    return validate_arch(spec, origin=f"{arch.name} (sibling levels ordered for ZigZag scoring)")


def loma_spatial(arch: Any, bounds: dict[str, int], *, gemm: bool = False) -> tuple | None:
    """The spatial unrolling ZigZag's mapping file gives (its ``default`` entry, or ``Gemm`` for GEMMs), as a
    hwsim ``Plan.spatial`` on ``arch``: each array dimension's loops at the level whose fan-out spans it,
    factors clipped to the layer (``bounds``: hwsim dims). ``None`` if the arch has no mapping file."""
    from hwsim.interop.zigzag import DIM_NAMES, _read_yaml
    path = arch.sources.get("zigzag.mapping")
    if not path:
        return None
    entries = {str(e.get("name")): e for e in _read_yaml(path) or []}
    entry = (entries.get("Gemm") if gemm else None) or entries.get("default")
    if not entry or not entry.get("spatial_mapping"):
        return None
    hardware = _Hardware(Path(arch.sources["zigzag.hardware"]), energy={})
    spans = level_axis_dims(arch, hardware.array)
    names = [lvl.name for lvl in arch.memory]
    remaining = dict(bounds)
    per_level = {n: {"x": [], "y": []} for n in names}
    for (level, axis), dims in spans.items():
        for d in dims:
            for item in entry["spatial_mapping"].get(d) or []:
                dim, _, factor = str(item).partition(",")
                ours = ("P" if dim.strip() == "D" and gemm else DIM_NAMES.get(dim.strip(), dim.strip()))
                if ours not in remaining or not factor.strip():
                    continue
                f = min(int(factor), remaining[ours])
                if f > 1:
                    per_level[level][axis].append((ours, f))
                    remaining[ours] = math.ceil(remaining[ours] / f)
    return tuple((tuple(per_level[n]["x"]), tuple(per_level[n]["y"])) for n in names)


@dataclass(frozen=True)
class ZigZagScore:
    """ZigZag-accounting figures of one mapping; ``fits`` is False when a memory's tiles exceed its size."""

    energy_pj: float
    latency_cycles: float
    fits: bool
    detail: dict[str, Any]


class ZigZagScorer:
    """Scores hwsim mappings of layers on one ZigZag accelerator (hardware read once)."""

    def __init__(self, arch: Any, hardware_yaml: str | Path | None = None) -> None:
        path = hardware_yaml or arch.sources.get("zigzag.hardware")
        if not path:
            raise ConfigError(f"arch {arch.name!r}: not loaded from a ZigZag hardware file (no "
                              "sources['zigzag.hardware']); pass hardware_yaml")
        self.arch = arch
        self.hardware = hardware_of(arch, path)
        from hwsim.interop.zigzag import _operand_links
        mem_to_tensor = _operand_links(arch.sources.get("zigzag.mapping"))
        tensors_of = {tensor: mem_op for mem_op, tensor in mem_to_tensor.items()}
        self.links = {t: tensors_of.get(t, _LINKS[t]) for t in ("O", "W", "I")}
        self.mac_pj = float(arch.energy.mac_pj)
        self.psum_bits = int(arch.compute.acc_bits)
        self.sizes = {name: int(mem["size"]) for name, mem in self.hardware.memories}
        self.spans = level_axis_dims(arch, self.hardware.array)

    def score(self, layer: Any, mapping: Mapping) -> ZigZagScore:
        lz = layer_z(layer, psum_bits=self.psum_bits)
        nests, unrolling = mapping_to_nests(mapping, layer, self.hardware, self.links, spans=self.spans)
        row = evaluate_nests(lz, nests, self.hardware, self.links, unrolling, mac_pj=self.mac_pj)
        flows = row.pop("_flows")
        chains = self.hardware.chains(self.links)
        used: dict[str, int] = {}
        for t, flow in flows.items():
            for m, mem in enumerate(chains[t]):
                used[mem] = used.get(mem, 0) + int(flow.tile_bits[m + 1])
        fits = all(bits <= self.sizes[mem] for mem, bits in used.items())
        return ZigZagScore(energy_pj=float(row["energy_pj"]), latency_cycles=float(row["latency_cycles"]),
                           fits=fits, detail=row)


def score_zigzag(layer: Any, arch_yaml: str | Path, mapping: Mapping, *, mapping_yaml: str | Path | None = None
                 ) -> tuple[float, float]:
    """``(energy_pj, latency_cycles)`` of a hwsim ``mapping`` of ``layer`` on the ZigZag accelerator
    ``arch_yaml`` (with ZigZag mapping file ``mapping_yaml`` for the operand links), ZigZag's accounting."""
    from hwsim.interop.zigzag import load_zigzag_accelerator
    arch = load_zigzag_accelerator(arch_yaml, mapping=mapping_yaml)
    result = ZigZagScorer(arch, arch_yaml).score(layer, mapping)
    return result.energy_pj, result.latency_cycles


__all__ = ["ZigZagScore", "ZigZagScorer", "layer_z", "level_order", "mapping_to_nests", "nests_to_mapping",
           "onnx_layers", "loma_spatial", "score_zigzag", "zigzag_search_arch"]
