"""ZigZag interop: read ZigZag (zigzag-dse 3.x) accelerator, workload and mapping YAML into hwsim objects.

* ``load_zigzag_accelerator(path, mapping=...)`` -> ``ArchSpec`` for the spatial engine. ZigZag lists memories
  inner to outer, each serving some operands (``I1``/``I2``/``O``, linked to I/W/O by the mapping's
  ``memory_operand_links``) with ``served_dimensions`` saying how many copies exist. Reversing that list gives
  an outer-to-inner chain in which every operand keeps its own hierarchy (a level keeps only its operands,
  the others bypass it). ZigZag's per-access costs (``r_cost``/``w_cost`` per ``bandwidth_max`` bits) are
  pinned as per-vector energies (``width_bits = bandwidth_max``) and ``unit_energy`` as the MAC energy, so
  hwsim prices with ZigZag's own numbers.
* ``load_zigzag_workload(path)`` -> list of ``Layer`` (Conv/Gemm/Pooling/Add entries).
* ``load_zigzag_mapping(path)`` -> per-entry spatial constraints usable as ``SearchMapper(constraints=...)``.
* ``replay(hardware, mapping, workload, dump_folder)`` -> per layer, hwsim's energy and latency of the mapping
  ZigZag chose (its dump), with ZigZag's accounting (``hwsim.interop.zigzag_replay``).
* ``score_zigzag(layer, hardware, mapping)`` -> ``(energy_pj, latency_cycles)`` of a hwsim ``Mapping`` with the
  same accounting (``hwsim.interop.zigzag_score``; ``SearchMapper(cost="zigzag")`` ranks with it). The arch
  records the files it was read from in ``sources["zigzag.hardware"]`` / ``["zigzag.mapping"]``.

Operational arrays of up to four dimensions are laid out on hwsim's X x Y mesh (D1, D3 on X; D2, D4 on Y);
when ZigZag's per-operand memories do not nest into one chain the arch's ``sources["memory.nesting"]``
says which copy counts were changed. In-memory-compute arrays (aimc/dimc) -> ``ConfigError`` ("not
modelled"), as is any malformed file, naming the file and key.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.mappers.mapping import DIMS
from hwsim.models.arch import ArchSpec, validate_arch

DIM_NAMES = {"B": "N", "K": "K", "C": "C", "OY": "P", "OX": "Q", "FY": "R", "FX": "S", "G": "G", "D": "P"}
DEFAULT_LINKS = {"O": "O", "W": "I2", "I": "I1"}


def _read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path.name}: malformed YAML: {str(err).splitlines()[0]}") from None


def _operand_links(mapping: str | Path | None) -> dict[str, str]:
    """Memory operand -> hwsim tensor, from the mapping's ``default`` entry (ZigZag's usual links otherwise)."""
    links = DEFAULT_LINKS
    if mapping is not None:
        entries = _read_yaml(mapping) or []
        default = next((e for e in entries if e.get("name") == "default"), entries[0] if entries else {})
        links = default.get("memory_operand_links", links)
    return {mem_op: tensor for tensor, mem_op in links.items()}


def array_axis(dim: str) -> str:
    """The mesh axis an operational-array dimension lies on: D1, D3 on X; D2, D4 on Y.

    hwsim's spatial engine lays instances out on an X x Y mesh; ZigZag's arrays have up to four named
    dimensions. Alternating them keeps the two axes balanced (edge_tpu_like 8x8x4x4 -> 32 x 32).
    """
    index = int(dim[1:]) if dim[:1] == "D" and dim[1:].isdigit() else 0
    if index < 1:
        raise ConfigError(f"operational-array dimension {dim!r} is not of the form D1, D2, ...")
    return "x" if index % 2 else "y"


def _unserved(served: list[str], sizes: dict[str, int], *, where: str) -> frozenset[str]:
    """Array dimensions a memory has one copy per position of (those it does not serve)."""
    if unknown := sorted(set(served) - set(sizes)):
        raise ConfigError(f"{where}: served_dimensions {unknown} are not array dimensions {sorted(sizes)}")
    return frozenset(sizes) - set(served)


def _mesh(unserved: frozenset[str], sizes: dict[str, int]) -> tuple[int, int, int]:
    """(instances, mesh_x, mesh_y) of a memory with one copy per position of ``unserved``."""
    mesh_x = math.prod(sizes[d] for d in unserved if array_axis(d) == "x")
    mesh_y = math.prod(sizes[d] for d in unserved if array_axis(d) == "y")
    return mesh_x * mesh_y, mesh_x, mesh_y


def _ports(mem: dict[str, Any]) -> tuple[int, float, float]:
    """(access width bits, read bits/cycle, write bits/cycle) over all ports of a memory.

    A ``read_write`` port counts towards both directions; the access width is the widest port's
    ``bandwidth_max`` (ZigZag's ``r_cost``/``w_cost`` are per access of that many bits).
    """
    ports = mem.get("ports") or []
    width = max((int(p.get("bandwidth_max", 8)) for p in ports), default=8)
    read_bw = sum(int(p.get("bandwidth_max", 0)) for p in ports if p.get("type") in ("read", "read_write"))
    write_bw = sum(int(p.get("bandwidth_max", 0)) for p in ports if p.get("type") in ("write", "read_write"))
    return width, read_bw, write_bw


def _level(name: str, mem: dict[str, Any], tensors: list[str], mesh: tuple[int, int, int], *, outermost: bool,
           where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    width, read_bw, write_bw = _ports(mem)
    instances, mesh_x, mesh_y = mesh
    size_bytes = max(1, int(mem["size"]) // 8)
    level = {"name": name, "kind": "dram" if outermost else ("regfile" if size_bytes <= 1024 else "sram"),
             "word_bits": 8, "width_bits": width if width % 8 == 0 else 8 * math.ceil(width / 8),
             "tensors": tensors, "instances": instances, "mesh_x": mesh_x, "mesh_y": mesh_y}
    if not outermost:
        level["size_bytes"] = size_bytes
    if read_bw:
        level["read_bw_bytes_per_cycle"] = read_bw / 8
    if write_bw:
        level["write_bw_bytes_per_cycle"] = write_bw / 8
    for key in ("r_cost", "w_cost"):
        if key not in mem:
            raise ConfigError(f"{where}: memories.{name}.{key}: required (hwsim does not run CACTI for "
                              "auto_cost_extraction; give the per-access costs)")
    energy = {"read_pj": float(mem["r_cost"]), "write_pj": float(mem["w_cost"]), "update_pj": float(mem["w_cost"]),
              "source": f"ZigZag {where} memories.{name}.r_cost/w_cost (pJ per {width}-bit access)"}
    return level, energy


def _chain(data: dict[str, Any], links: dict[str, str], sizes: dict[str, int], *, where: str
           ) -> tuple[list[tuple[str, list[str], frozenset[str]]], list[str]]:
    """Memories outer -> inner as ``(name, tensors, unserved dims)``, nested, plus a note per adjustment.

    ZigZag gives every operand its own hierarchy; hwsim's engine needs one chain in which each level's
    copies subdivide the copies of the levels above it. The memories are ordered by copy count (stable,
    so ZigZag's own outer-to-inner order breaks ties), the outermost is a single copy (the engine's
    backing store), and a level whose copies do not subdivide those above it is given the union of the
    two dimension sets (one copy per position of either) -- each such change is reported.
    """
    names = list(data["memories"])[::-1]                      # ZigZag lists inner -> outer
    entries, notes = [], []
    for name in names:
        mem = data["memories"][name]
        if not isinstance(mem, dict) or "size" not in mem:
            raise ConfigError(f"{where}: memories.{name}: expected a memory with 'size', 'operands', 'ports'")
        tensors = sorted({links.get(op, op) for op in mem.get("operands", [])}, key="WIO".index)
        if bad := sorted(set(tensors) - set("WIO")):
            raise ConfigError(f"{where}: memories.{name}.operands: {bad} are not linked to W/I/O by the mapping's "
                              "memory_operand_links")
        entries.append((name, tensors, _unserved(mem.get("served_dimensions") or [], sizes,
                                                 where=f"{where}: memories.{name}")))
    if entries[0][2]:
        notes.append(f"{entries[0][0]} (outermost) modelled as one copy (ZigZag: one per position of "
                     f"{sorted(entries[0][2])})")
        entries[0] = (entries[0][0], entries[0][1], frozenset())
    entries.sort(key=lambda e: math.prod(sizes[d] for d in e[2]))
    out, above = [], frozenset()
    for name, tensors, unserved in entries:
        if not above <= unserved:
            notes.append(f"{name}: one copy per position of {sorted(above | unserved)} (ZigZag: {sorted(unserved)}),"
                         " to nest under the levels above it")
        above = above | unserved
        out.append((name, tensors, above))
    return out, notes


def load_zigzag_accelerator(path: str | Path, *, mapping: str | Path | None = None, acc_bits: int = 16) -> ArchSpec:
    """An ``ArchSpec`` (engine spatial) with ZigZag's memories, array and per-access energies.

    Operational arrays of any number of dimensions (D1..D4) are laid out on hwsim's X x Y mesh by
    ``array_axis``; ``mapping`` (ZigZag's mapping YAML) supplies the operand links and the dims each axis
    may unroll. In-memory-compute arrays (``is_imc``: aimc/dimc) are not modelled and raise ``ConfigError``.
    """
    data = _read_yaml(path)
    where = Path(path).name
    if not isinstance(data, dict) or "memories" not in data or "operational_array" not in data:
        raise ConfigError(f"{where}: expected 'memories' and 'operational_array' keys (a ZigZag hardware file)")
    array = data["operational_array"]
    if array.get("is_imc"):
        raise ConfigError(f"{where}: operational_array.is_imc: in-memory-compute arrays "
                          f"({array.get('imc_type', 'imc')}) are not modelled by hwsim")
    dims, sizes = list(array.get("dimensions", [])), [int(s) for s in array.get("sizes", [])]
    if not dims or len(dims) != len(sizes) or min(sizes) < 1:
        raise ConfigError(f"{where}: operational_array: dimensions {dims} and sizes {sizes} must pair up "
                          "(positive sizes)")
    for dim in dims:
        try:
            array_axis(dim)
        except ConfigError as err:
            raise ConfigError(f"{where}: operational_array.dimensions: {err}") from None
    size_of = dict(zip(dims, sizes))
    if not isinstance(data["memories"], dict) or not data["memories"]:
        raise ConfigError(f"{where}: memories: expected at least one memory")
    chain, notes = _chain(data, _operand_links(mapping), size_of, where=where)
    memory, pinned = [], {}
    for i, (name, tensors, unserved) in enumerate(chain):
        level, energy = _level(name, data["memories"][name], tensors, _mesh(unserved, size_of), outermost=(i == 0),
                               where=where)
        memory.append(level)
        pinned[name] = energy
    units = math.prod(sizes)
    x_total = math.prod(s for d, s in size_of.items() if array_axis(d) == "x")
    sources = {"memory": f"ZigZag 3.9.1 {where}", "clock_hz": "placeholder (ZigZag has no clock)",
               "technology_nm": "placeholder (ZigZag energies carry no node; all energies pinned)",
               "zigzag.hardware": str(Path(path).resolve())}    # read by hwsim.interop.zigzag_score
    if mapping is not None:
        sources["zigzag.mapping"] = str(Path(mapping).resolve())
    if notes:
        sources["memory.nesting"] = "; ".join(notes)
    spec = {"name": data.get("name", Path(path).stem), "engine": "spatial", "clock_hz": 1e9, "technology_nm": 28,
            "memory": memory,
            "compute": {"kind": "mac", "units": units, "weight_bits": 8, "act_bits": 8, "acc_bits": acc_bits},
            "spatial": {"mac_mesh_x": max(1, x_total // memory[-1]["mesh_x"]),
                        "mac_operand_reuse": True,    # ZigZag's access_same_data_considered_as_no_access
                        **_spatial_dims(mapping)},
            "energy": {"levels": pinned, "mac_pj": float(array["unit_energy"]),
                       "mac_source": f"ZigZag {where} operational_array.unit_energy"},
            "sources": sources}
    return validate_arch(spec, origin=where)


def _spatial_dims(mapping: str | Path | None) -> dict[str, list[str]]:
    if mapping is None:
        return {}
    entries = load_zigzag_mapping(mapping)
    default = entries.get("default")
    if not default:
        return {}
    known = {axis: [d for d in dims if d in DIMS] for axis, dims in default["spatial"].items()}
    return {f"spatial_dims_{axis}": dims for axis, dims in known.items() if dims}


def load_zigzag_mapping(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per entry name: SearchMapper constraints ``{"spatial": {"x": dims, "y": dims}}`` plus ZigZag's factors.

    Array dimensions D1..D4 go to the mesh axis ``array_axis`` names; ZigZag's CNN loop dims become hwsim's,
    and a workload's own dim names (``D0`` in ``gemm_l1.yaml``) stay as written (an arch built from the file
    then leaves that axis unconstrained). ``temporal_ordering`` is kept verbatim under ``"temporal_ordering"``.
    """
    entries = _read_yaml(path)
    where = Path(path).name
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of mapping entries")
    out = {}
    for i, entry in enumerate(entries):
        spatial = entry.get("spatial_mapping") or entry.get("spatial_mapping_hint") or {}
        axes, factors = {"x": [], "y": []}, {}
        for array_dim, items in spatial.items():
            try:
                axis = array_axis(str(array_dim))
            except ConfigError as err:
                raise ConfigError(f"{where}: entry {i} spatial_mapping: {err}") from None
            for item in items if isinstance(items, list) else [items]:
                dim, _, factor = str(item).partition(",")
                ours = DIM_NAMES.get(dim.strip(), dim.strip())   # a workload's own dim names stay as they are
                if ours not in axes[axis]:
                    axes[axis].append(ours)
                if factor.strip():
                    factors[(axis, ours)] = factors.get((axis, ours), 1) * int(factor)
        out[str(entry.get("name", i))] = {"spatial": axes, "factors": factors,
                                          "temporal_ordering": entry.get("temporal_ordering")}
    return out


def _strides(relations: list[str]) -> dict[str, tuple[int, int]]:
    """``ix=2*ox+1*fx`` -> {"ix": (2, 1)} (stride, dilation)."""
    out = {}
    for rel in relations or []:
        match = re.fullmatch(r"\s*(\w+)\s*=\s*(\d+)\s*\*\s*(\w+)\s*\+\s*(\d+)\s*\*\s*(\w+)\s*", rel)
        if not match:
            raise ConfigError(f"dimension_relations: cannot parse {rel!r} (expected like 'ix=1*ox+1*fx')")
        out[match.group(1).lower()] = (int(match.group(2)), int(match.group(4)))
    return out


_OPS = {"Conv": Op.CONV, "Conv_downsample": Op.CONV, "Gemm": Op.LINEAR, "Pooling": Op.POOL, "Pool": Op.POOL,
        "MaxPool": Op.POOL, "AveragePool": Op.POOL, "GlobalAveragePool": Op.POOL, "Add": Op.ELTWISE,
        "Max": Op.ELTWISE}
# a loop dim not named like ZigZag's CNN dims takes its role from the operands it indexes
_ROLE = {frozenset("OW"): "K", frozenset("IW"): "C", frozenset("OI"): "P", frozenset("OIW"): "G"}


def _operand_indices(equation: str, relations: list[str]) -> dict[str, set[str]]:
    """Loop dims (lower case) each operand ``O``/``W``/``I`` of an einsum equation depends on."""
    out: dict[str, set[str]] = {}
    for operand, index in re.findall(r"([OWI])((?:\[\w+\])+)", equation or ""):
        out.setdefault(operand, set()).update(re.findall(r"\[(\w+)\]", index.lower()))
    for rel in relations or []:            # ix=1*ox+1*fx: I depends on ox and fx
        lhs, _, rhs = rel.lower().partition("=")
        for operand, dims in out.items():
            if lhs.strip() in dims:
                dims.update(re.findall(r"[a-z_]\w*", rhs))
    return out


def _dim_names(entry: dict[str, Any], *, where: str) -> dict[str, str]:
    """ZigZag loop dim -> hwsim dim: CNN names directly, any other name by the operands it indexes."""
    indices = _operand_indices(entry.get("equation", ""), entry.get("dimension_relations", []))
    out = {}
    for dim in entry["loop_dims"]:
        ours = DIM_NAMES.get(dim) or _ROLE.get(frozenset(op for op, dims in indices.items() if dim.lower() in dims))
        if ours is None or ours in out.values():
            raise ConfigError(f"{where}: layer {entry.get('id')}: loop dim {dim!r} has no hwsim counterpart "
                              f"(equation {entry.get('equation')!r}; CNN dims: {', '.join(DIM_NAMES)})")
        out[dim] = ours
    return out


def zigzag_layer_name(entry: dict[str, Any]) -> str:
    """The layer's name as ZigZag prints it: its ``name``, else ``Layer<id>``."""
    return str(entry["name"]) if entry.get("name") is not None else f"Layer{entry.get('id')}"


def zigzag_layer(entry: dict[str, Any], *, where: str = "workload") -> Layer:
    """One ZigZag workload entry as a ``Layer`` (ZigZag's C and K are per group; ours are totals).

    Pooling and Add entries run on hwsim's vector unit; their ``W`` precision 0 (ZigZag's constant
    operand) has no weights to store, so their weight width is taken as the activation width.
    """
    kind = entry.get("operator_type")
    if kind not in _OPS:
        raise ConfigError(f"{where}: layer {entry.get('id')}: operator_type {kind!r} is not supported "
                          f"(supported: {', '.join(_OPS)})")
    if len(entry.get("loop_dims", [])) != len(entry.get("loop_sizes", [])):
        raise ConfigError(f"{where}: layer {entry.get('id')}: loop_dims and loop_sizes differ in length")
    names = _dim_names(entry, where=where)
    sizes = {names[d]: int(s) for d, s in zip(entry["loop_dims"], entry["loop_sizes"])}
    groups = sizes.get("G", 1)
    rel = _strides(entry.get("dimension_relations", []))
    sy, dy = rel.get("iy", (1, 1))
    sx, dx = rel.get("ix", (1, 1))
    op = _OPS[kind]
    if op is Op.CONV and groups > 1 and sizes.get("C", 1) == 1:
        op = Op.DEPTHWISE
    prec = entry.get("operand_precision", {})
    act_bits = int(prec.get("I", 8))
    weight_bits = int(prec.get("W", 8)) or (act_bits if not op.has_macs else 0)
    if weight_bits < 1:
        raise ConfigError(f"{where}: layer {entry.get('id')}: operand_precision.W: a {kind} layer needs weights "
                          f"of at least 1 bit (got {prec.get('W')})")
    return Layer(name=zigzag_layer_name(entry), op=op, N=sizes.get("N", 1),
                 K=sizes.get("K", 1) * groups, C=sizes.get("C", 1) * groups, P=sizes.get("P", 1),
                 Q=sizes.get("Q", 1), R=sizes.get("R", 1), S=sizes.get("S", 1), G=groups,
                 stride=(sy, sx), dilation=(dy, dx), weight_bits=weight_bits,
                 act_bits=act_bits, out_bits=int(prec.get("O_final", 8)),
                 acc_bits=int(prec.get("O", 16)), source=f"zigzag:{where}:{entry.get('id')}")


def load_zigzag_workload(path: str | Path) -> list[Layer]:
    """Layers of a ZigZag workload YAML (a list of einsum-style layer entries)."""
    entries = _read_yaml(path)
    where = Path(path).name
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of layers")
    return [zigzag_layer(entry, where=where) for entry in entries]


def load_zigzag_graph(path: str | Path) -> LayerGraph:
    """A ZigZag workload YAML as a ``LayerGraph``: its layers, with edges from ``operand_source``.

    A source naming the layer itself (ZigZag's constant operand, e.g. a pooling layer's ``W``) is not an edge.
    """
    path = Path(path)
    entries = _read_yaml(path)
    if not isinstance(entries, list):
        raise ConfigError(f"{path.name}: expected a list of layers")
    graph = LayerGraph(path.stem, meta={"frontend": "zigzag"})
    names = {entry.get("id"): zigzag_layer_name(entry) for entry in entries}
    for entry in entries:
        layer = zigzag_layer(entry, where=path.name)
        sources = (entry.get("operand_source") or {}).values()
        inputs = [names[src] for src in sources if src != entry.get("id") and src in names]
        if late := [name for name in inputs if name not in graph.graph]:
            raise ConfigError(f"{path.name}: layer {entry.get('id')}: operand_source names {late}, which come later "
                              "(list layers producers first)")
        graph.add_layer(layer, inputs=list(dict.fromkeys(inputs)))
    return graph


def replay(hardware_yaml: str | Path, mapping_yaml: str | Path, workload: str | Path,
           dump_folder: str | Path) -> list[dict[str, Any]]:
    """Evaluate the mappings ZigZag chose (its ``dump_folder``) on hwsim's model; see ``zigzag_replay.replay``."""
    from hwsim.interop.zigzag_replay import replay as _replay

    return _replay(hardware_yaml, mapping_yaml, workload, dump_folder)


def score_zigzag(layer: Layer, arch_yaml: str | Path, mapping: Any, *, mapping_yaml: str | Path | None = None
                 ) -> tuple[float, float]:
    """``(energy_pj, latency_cycles)`` of a hwsim ``Mapping`` with ZigZag's accounting (the replay's code path);
    see ``zigzag_score.score_zigzag``."""
    from hwsim.interop.zigzag_score import score_zigzag as _score

    return _score(layer, arch_yaml, mapping, mapping_yaml=mapping_yaml)
