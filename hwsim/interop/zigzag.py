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

Unsupported: IMC arrays, operational arrays with more than two dimensions, memories serving only part of
an array dimension set that does not split into X/Y -> ``ConfigError`` naming the file and key.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
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


def _instances(served: list[str], sizes: dict[str, int], *, where: str) -> tuple[int, int, int]:
    """(instances, mesh_x, mesh_y) of a memory serving ``served`` array dimensions."""
    if unknown := sorted(set(served) - set(sizes)):
        raise ConfigError(f"{where}: served_dimensions {unknown} are not array dimensions {sorted(sizes)}")
    mesh_x = 1 if "D1" in served else sizes.get("D1", 1)
    mesh_y = 1 if "D2" in served else sizes.get("D2", 1)
    return mesh_x * mesh_y, mesh_x, mesh_y


def _level(name: str, mem: dict[str, Any], tensors: list[str], sizes: dict[str, int], *, outermost: bool,
           where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ports = mem.get("ports") or []
    width = max((int(p.get("bandwidth_max", 8)) for p in ports), default=8)
    read_bw = sum(int(p.get("bandwidth_max", 0)) for p in ports if p.get("type") in ("read", "read_write"))
    write_bw = sum(int(p.get("bandwidth_max", 0)) for p in ports if p.get("type") in ("write", "read_write"))
    instances, mesh_x, mesh_y = _instances(mem.get("served_dimensions") or [], sizes, where=f"{where}: {name}")
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
    energy = {"read_pj": float(mem["r_cost"]), "write_pj": float(mem["w_cost"]), "update_pj": float(mem["w_cost"]),
              "source": f"ZigZag {where} memories.{name}.r_cost/w_cost (pJ per {width}-bit access)"}
    return level, energy


def load_zigzag_accelerator(path: str | Path, *, mapping: str | Path | None = None, acc_bits: int = 16) -> ArchSpec:
    """An ``ArchSpec`` (engine spatial) with ZigZag's memories, array and per-access energies."""
    data = _read_yaml(path)
    where = Path(path).name
    if not isinstance(data, dict) or "memories" not in data or "operational_array" not in data:
        raise ConfigError(f"{where}: expected 'memories' and 'operational_array' keys")
    array = data["operational_array"]
    if array.get("is_imc"):
        raise ConfigError(f"{where}: operational_array.is_imc: in-memory-compute arrays are not supported")
    dims, sizes = list(array.get("dimensions", [])), [int(s) for s in array.get("sizes", [])]
    if len(dims) > 2 or len(dims) != len(sizes):
        raise ConfigError(f"{where}: operational_array.dimensions: only 1-D/2-D arrays are supported (got {dims})")
    size_of = dict(zip(dims, sizes))
    links = _operand_links(mapping)
    names = list(data["memories"])[::-1]                      # ZigZag lists inner -> outer
    memory, pinned = [], {}
    for i, name in enumerate(names):
        mem = data["memories"][name]
        tensors = sorted({links.get(op, op) for op in mem.get("operands", [])}, key="WIO".index)
        level, energy = _level(name, mem, tensors, size_of, outermost=(i == 0), where=where)
        memory.append(level)
        pinned[name] = energy
    memory.sort(key=lambda lvl: lvl["instances"])              # stable: shared levels first
    units = math.prod(sizes)
    spec = {"name": data.get("name", Path(path).stem), "engine": "spatial", "clock_hz": 1e9, "technology_nm": 28,
            "memory": memory,
            "compute": {"kind": "mac", "units": units, "weight_bits": 8, "act_bits": 8, "acc_bits": acc_bits},
            "spatial": {"mac_mesh_x": size_of.get("D1", 1) if memory[-1]["instances"] == 1 else None,
                        "mac_operand_reuse": True,    # ZigZag's access_same_data_considered_as_no_access
                        **_spatial_dims(mapping)},
            "energy": {"levels": pinned, "mac_pj": float(array["unit_energy"]),
                       "mac_source": f"ZigZag {where} operational_array.unit_energy"},
            "sources": {"memory": f"ZigZag 3.9.1 {where}", "clock_hz": "placeholder (ZigZag has no clock)",
                        "technology_nm": "placeholder (ZigZag energies carry no node; all energies pinned)"}}
    return validate_arch(spec, origin=where)


def _spatial_dims(mapping: str | Path | None) -> dict[str, list[str]]:
    if mapping is None:
        return {}
    entries = load_zigzag_mapping(mapping)
    default = entries.get("default")
    if not default:
        return {}
    return {"spatial_dims_x": default["spatial"]["x"], "spatial_dims_y": default["spatial"]["y"]}


def load_zigzag_mapping(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per entry name: SearchMapper constraints ``{"spatial": {"x": dims, "y": dims}}`` plus ZigZag's factors.

    ``temporal_ordering`` is kept verbatim under ``"temporal_ordering"`` (not used by the hwsim search).
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
            axis = {"D1": "x", "D2": "y"}.get(array_dim)
            if axis is None:
                raise ConfigError(f"{where}: entry {i} spatial_mapping.{array_dim}: only D1/D2 are supported")
            for item in items if isinstance(items, list) else [items]:
                dim, _, factor = str(item).partition(",")
                ours = DIM_NAMES.get(dim.strip())
                if ours is None:
                    raise ConfigError(f"{where}: entry {i} spatial_mapping.{array_dim}: unknown loop dim {dim!r}")
                axes[axis].append(ours)
                if factor.strip():
                    factors[(axis, ours)] = int(factor)
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
        "MaxPool": Op.POOL, "AveragePool": Op.POOL, "GlobalAveragePool": Op.POOL, "Add": Op.ELTWISE}


def zigzag_layer(entry: dict[str, Any], *, where: str = "workload") -> Layer:
    """One ZigZag workload entry as a ``Layer`` (ZigZag's C and K are per group; ours are totals)."""
    kind = entry.get("operator_type")
    if kind not in _OPS:
        raise ConfigError(f"{where}: layer {entry.get('id')}: operator_type {kind!r} is not supported "
                          f"(supported: {', '.join(_OPS)})")
    sizes = {DIM_NAMES.get(d, d): int(s) for d, s in zip(entry["loop_dims"], entry["loop_sizes"])}
    if unknown := sorted(set(sizes) - set(DIM_NAMES.values())):
        raise ConfigError(f"{where}: layer {entry.get('id')}: unknown loop dims {unknown}")
    groups = sizes.get("G", 1)
    rel = _strides(entry.get("dimension_relations", []))
    sy, dy = rel.get("iy", (1, 1))
    sx, dx = rel.get("ix", (1, 1))
    op = _OPS[kind]
    if op is Op.CONV and groups > 1 and sizes.get("C", 1) == 1:
        op = Op.DEPTHWISE
    prec = entry.get("operand_precision", {})
    return Layer(name=str(entry.get("name", entry.get("id"))), op=op, N=sizes.get("N", 1),
                 K=sizes.get("K", 1) * groups, C=sizes.get("C", 1) * groups, P=sizes.get("P", 1),
                 Q=sizes.get("Q", 1), R=sizes.get("R", 1), S=sizes.get("S", 1), G=groups,
                 stride=(sy, sx), dilation=(dy, dx), weight_bits=int(prec.get("W", 8)),
                 act_bits=int(prec.get("I", 8)), out_bits=int(prec.get("O_final", 8)),
                 acc_bits=int(prec.get("O", 16)), source=f"zigzag:{where}:{entry.get('id')}")


def load_zigzag_workload(path: str | Path) -> list[Layer]:
    """Layers of a ZigZag workload YAML (a list of einsum-style layer entries)."""
    entries = _read_yaml(path)
    where = Path(path).name
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of layers")
    return [zigzag_layer(entry, where=where) for entry in entries]
