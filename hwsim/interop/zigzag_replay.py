"""Replay the mappings ZigZag chose (its ``dump_folder``) on hwsim's model of the same hardware.

``replay(hardware_yaml, mapping_yaml, workload, dump_folder)`` reads, per layer, the complete per-operand,
per-level mapping ZigZag wrote (``zigzag_layer_json/*_complete.json``, or the same files directly in
``dump_folder``; ``loop_ordering.txt`` gives the layer order), evaluates it with
``hwsim.models.spatial.zigzag_nest`` (traffic and energy) and ``zigzag_latency`` (stalls, onload, offload,
drain) on the hardware as hwsim reads it (``load_zigzag_accelerator``: its per-access energies and MAC
energy; the ports, widths and sizes from the hardware file), and returns one dict per layer with hwsim's
figures beside ZigZag's own (``zigzag_*``, read from the same dump, never used in the computation).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from hwsim.errors import ConfigError
from hwsim.models.spatial.zigzag_latency import (LatencyZ, PortZ, double_buffered, drain_cycles, loading_cycles,
                                                  offload_cycles, onload_cycles, stall_cycles)
from hwsim.models.spatial.zigzag_nest import (FROM_HIGH, FROM_LOW, READ_DIRECTIONS, TO_HIGH, TO_LOW, LayerZ,
                                              OperandNest, operand_flow, word_accesses)

_DIRECTION = {"tl": TO_LOW, "fl": FROM_LOW, "th": TO_HIGH, "fh": FROM_HIGH}
_LOOP = re.compile(r"\(\s*(\w+)\s*,\s*([0-9.]+)\s*\)")


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def _loops(items: list[str], *, where: str) -> tuple[tuple[str, Any], ...]:
    out = []
    for item in items:
        match = _LOOP.fullmatch(str(item).strip())
        if not match:
            raise ConfigError(f"{where}: cannot parse loop {item!r} (expected like '(K, 32)')")
        out.append((match.group(1), _number(match.group(2))))
    return tuple(out)


def _dump_files(dump_folder: Path) -> list[Path]:
    if not dump_folder.is_dir():
        raise ConfigError(f"{dump_folder}: dump folder not found (the folder ZigZag's API wrote with dump_folder=)")
    order = dump_folder / "loop_ordering.txt"
    if not order.is_file():
        raise ConfigError(f"{dump_folder}: loop_ordering.txt not found (not a ZigZag dump folder)")
    files = sorted((dump_folder / "zigzag_layer_json").glob("*_complete.json")) or \
        sorted(dump_folder.glob("*_complete.json"))
    if not files:
        raise ConfigError(f"{dump_folder}: no zigzag_layer_json/*_complete.json files (ZigZag's per-layer dumps)")
    return files


def _layer_order(dump_folder: Path) -> list[str]:
    text = (dump_folder / "loop_ordering.txt").read_text()
    return re.findall(r"^Loop ordering for (.+?);", text, flags=re.M)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return {"layer": data["inputs"]["layer"], "spatial": data["inputs"]["spatial_mapping"],
                "temporal": data["inputs"]["temporal_mapping"], "outputs": data["outputs"]}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path.name}: not a ZigZag complete dump ({type(err).__name__}: {err})") from None


def _equation_operands(equation: str) -> dict[str, list[str]]:
    """Operand -> its index names (upper case), in the equation's order (output first)."""
    return {op: [i.upper() for i in re.findall(r"\[(\w+)\]", idx)]
            for op, idx in re.findall(r"([A-Za-z]\w*)((?:\[\w+\])+)", equation)}


def _windows(relations: list[str], *, where: str) -> dict[str, tuple[tuple[str, int], tuple[str, int]]]:
    out = {}
    for rel in relations or []:
        match = re.fullmatch(r"\s*(\w+)\s*=\s*(\d+)\s*\*\s*(\w+)\s*\+\s*(\d+)\s*\*\s*(\w+)\s*", rel)
        if not match:
            raise ConfigError(f"{where}: equation_relations: cannot parse {rel!r} (expected like 'IX = 1*OX + 1*FX')")
        out[match.group(1).upper()] = ((match.group(3).upper(), int(match.group(2))),
                                       (match.group(5).upper(), int(match.group(4))))
    return out


def layer_from_dump(layer: dict[str, Any], limits: dict[str, int], *, where: str) -> LayerZ:
    """A ``LayerZ`` from the ``inputs.layer`` record of a complete dump; ``limits``: real extents (IX, IY)."""
    sizes = {str(k).upper(): int(v) for k, v in layer["loop_dimensions"].items()}
    indices = _equation_operands(layer["equation"])
    if len(indices) < 2:
        raise ConfigError(f"{where}: equation {layer['equation']!r} names fewer than two operands")
    windows = _windows(layer.get("equation_relations", []), where=where)
    relevant, op_windows, op_limits = {}, {}, {}
    for op, idx in indices.items():
        relevant[op] = frozenset(d for d in idx if d in sizes)
        op_windows[op] = {d: windows[d] for d in idx if d not in sizes and d in windows}
        op_limits[op] = {d: limits[d] for d in op_windows[op] if d in limits}
    prec = {str(k): int(v) for k, v in layer["operand_precision"].items()}
    output = next(iter(indices))
    precision = {op: prec.get(op, 8) for op in indices}
    return LayerZ(name=str(layer["name"]), sizes=sizes, operands=tuple(indices), relevant=relevant,
                  windows=op_windows, window_limit=op_limits, precision=precision,
                  final_precision=prec.get(f"{output}_final", prec.get(output, 8)))


def _allocations(items: list[Any]) -> list[str]:
    """``["I2, tl", ...]``; a flow-style ``[I2, tl]`` (YAML reads two strings) is paired up."""
    items = [str(item) for item in items]
    if items and all("," not in item for item in items) and len(items) % 2 == 0:
        return [f"{items[i]}, {items[i + 1]}" for i in range(0, len(items), 2)]
    return items


class _Hardware:
    """The parts of a ZigZag hardware file the replay needs beyond hwsim's ArchSpec (ports, sharing)."""

    def __init__(self, path: Path, *, energy: dict[str, tuple[float, float]]):
        data = yaml.safe_load(path.read_text())
        where = path.name
        if not isinstance(data, dict) or "memories" not in data or "operational_array" not in data:
            raise ConfigError(f"{where}: expected 'memories' and 'operational_array' keys (a ZigZag hardware file)")
        self.where = where
        self.memories = list(data["memories"].items())              # inner -> outer
        array = data["operational_array"]
        self.systolic = frozenset(array.get("systolic_dimensions") or [])
        self.array = {str(d): int(n) for d, n in zip(array.get("dimensions") or [], array.get("sizes") or [])}
        self.energy = energy

    def chains(self, links: dict[str, str]) -> dict[str, list[str]]:
        return {t: [name for name, mem in self.memories if mem_op in mem.get("operands", [])]
                for t, mem_op in links.items()}

    def ports(self, links: dict[str, str]) -> tuple[list[PortZ], dict, dict, dict, list]:
        """Ports (serving layer operands), max/min width per link direction, sizes, sharing groups."""
        to_layer = {mem_op: t for t, mem_op in links.items()}
        chains = self.chains(links)
        ports, width, min_width, size_bits, groups = [], {}, {}, {}, []
        for name, mem in self.memories:
            level_of = {t: chain.index(name) for t, chain in chains.items() if name in chain}
            groups.append([(t, m) for t, m in level_of.items()])
            for t, m in level_of.items():
                size_bits[(t, m)] = int(mem["size"])
            for port in mem.get("ports") or []:
                serves, mem_ops = [], set()
                for alloc in _allocations(port.get("allocation") or []):
                    mem_op, _, code = (s.strip() for s in alloc.partition(","))
                    if code not in _DIRECTION:
                        raise ConfigError(f"{self.where}: memories.{name}.ports.{port.get('name')}: allocation "
                                          f"{alloc!r} (expected 'OPERAND, tl|fl|th|fh')")
                    mem_ops.add(mem_op)
                    t = to_layer.get(mem_op)
                    if t is None or t not in level_of:
                        continue
                    key = (t, level_of[t], _DIRECTION[code])
                    serves.append(key)
                    width[key] = int(port["bandwidth_max"])
                    min_width[key] = int(port.get("bandwidth_min", port["bandwidth_max"]))
                ports.append(PortZ(name=f"{name}.{port.get('name')}", bw_min=int(port.get("bandwidth_min", 0)),
                                   bw_max=int(port["bandwidth_max"]), serves=tuple(serves),
                                   memory_operands=frozenset(mem_ops)))
        return ports, width, min_width, size_bits, groups


def hardware_of(arch: Any, hardware_yaml: str | Path) -> _Hardware:
    """The replay's reader of a ZigZag hardware file, priced with the per-access energies of ``arch``."""
    energy = {name: (lvl.read_pj, lvl.write_pj if lvl.write_pj is not None else lvl.read_pj)
              for name, lvl in arch.energy.levels.items()}
    return _Hardware(Path(hardware_yaml), energy=energy)


def _nests(record: dict[str, Any], layer: LayerZ, chains: dict[str, list[str]], *, where: str
           ) -> dict[str, OperandNest]:
    out = {}
    for t in layer.operands:
        if t not in record["temporal"] or t not in record["spatial"]:
            raise ConfigError(f"{where}: the mapping has no operand {t} (has {sorted(record['temporal'])})")
        temporal = tuple(_loops(level, where=where) for level in record["temporal"][t])
        spatial = tuple(_loops(level, where=where) for level in record["spatial"][t])
        if len(temporal) != len(chains[t]):
            raise ConfigError(f"{where}: operand {t} has {len(temporal)} memory levels in the mapping, "
                              f"{len(chains[t])} in the hardware file ({chains[t]})")
        out[t] = OperandNest(operand=t, temporal=temporal, spatial=spatial)
    return out


def fractional_spatial(nest: OperandNest, sizes: dict[str, int]) -> OperandNest:
    """The nest with each spatial factor that over-covers its dim set to the exact fraction (energy view).

    ZigZag unrolls a dim that the array does not divide by a fractional factor for energy (K = 1000 over
    32 temporal steps -> 31.25 per step) and dumps the rounded factor, which times latency; the fraction
    is the dim's size over the product of its other loops.
    """
    loops = [loop for level in nest.temporal + nest.spatial for loop in level]
    spatial = [list(level) for level in nest.spatial]
    for dim, size in sizes.items():
        product = math.prod(b for d, b in loops if d == dim)
        if product == size:
            continue
        for level in spatial:
            hits = [i for i, (d, _) in enumerate(level) if d == dim]
            if hits:
                i = hits[0]
                level[i] = (dim, level[i][1] * size / product)
                break
    return OperandNest(operand=nest.operand, temporal=nest.temporal, spatial=tuple(tuple(lv) for lv in spatial))


def flow_energy(flow: Any, chain: list[str], hardware: _Hardware, width: dict, min_width: dict, memory_operand: str
                ) -> tuple[float, dict[str, float]]:
    """Memory energy (pJ) of one operand's flow (its energy view), in total and per memory of its chain.

    ``width`` / ``min_width``: port widths per (operand, level, direction), from ``_Hardware.ports``. An
    operand's memory energy depends on its own nest only, so searches may price operands separately.
    """
    t = flow.operand
    total = 0.0
    per_level: dict[str, float] = {}
    for m, link in enumerate(flow.links):
        read_pj, write_pj = hardware.energy[chain[m]]
        for direction in link.amount:
            key = (t, m, direction)
            if link.amount[direction] and link.precision[direction] and key not in width:
                raise ConfigError(f"{hardware.where}: memory {chain[m]} has no port for {memory_operand} "
                                  f"{direction} (operand {t})")
            if key not in width:
                continue
            accesses = word_accesses(link, direction, min_bw=min_width[key], max_bw=width[key],
                                     units=flow.unit_count[m + 1])
            pj = accesses * (read_pj if direction in READ_DIRECTIONS else write_pj)
            total += pj
            per_level[chain[m]] = per_level.get(chain[m], 0.0) + pj
    return total, per_level


def evaluate_nests(layer: LayerZ, nests: dict[str, OperandNest], hardware: _Hardware, links: dict[str, str],
                   unrolling: dict[str, float], *, mac_pj: float) -> dict[str, Any]:
    """hwsim's energy and latency (ZigZag's accounting) of one layer's per-operand nests on ``hardware``.

    ``links``: layer operand -> memory operand (``{"O": "O", "W": "I2", "I": "I1"}``); ``unrolling``: the
    spatial unrolling per array dimension (``{"D1": 32, ...}``, for the systolic drain). The one code path
    behind both ``replay`` (ZigZag's own mappings) and ``hwsim.interop.zigzag_score`` (hwsim's mappings).
    """
    chains = hardware.chains(links)
    flows = {t: operand_flow(layer, nests[t]) for t in layer.operands}                  # latency view
    energy_flows = {t: operand_flow(layer, fractional_spatial(nests[t], layer.sizes)) for t in layer.operands}
    ports, width, min_width, size_bits, groups = hardware.ports(links)

    memory_pj = 0.0
    per_level: dict[str, float] = {}
    for t, flow in energy_flows.items():
        pj, levels = flow_energy(flow, chains[t], hardware, width, min_width, links[t])
        memory_pj += pj
        for name, value in levels.items():
            per_level[name] = per_level.get(name, 0.0) + value
    mac_energy = layer.macs * mac_pj

    compute = flows[layer.output].total_cycles
    flags = double_buffered(flows, layer.operands, size_bits, groups)
    stall = stall_cycles(flows, ports, flags, width)
    loads = loading_cycles(flows, layer.output, ports, compute + stall, width)
    latency = LatencyZ(compute_cycles=compute, stall_cycles=stall,
                       onload_cycles=onload_cycles(flows, layer.inputs, loads),
                       offload_cycles=offload_cycles(flows, layer.output, loads),
                       drain_cycles=drain_cycles(unrolling, hardware.systolic))
    return {"name": layer.name, "zigzag_macs": layer.macs,
            "latency_cycles": latency.total_cycles, "energy_pj": memory_pj + mac_energy,
            "mac_energy_pj": mac_energy, "memory_energy_pj": memory_pj, "energy_per_level_pj": per_level,
            "compute_cycles": latency.compute_cycles, "stall_cycles": latency.stall_cycles,
            "onload_cycles": latency.onload_cycles, "offload_cycles": latency.offload_cycles,
            "drain_cycles": latency.drain_cycles, "_flows": flows}


def evaluate_dump_layer(record: dict[str, Any], hardware: _Hardware, limits: dict[str, int], *, mac_pj: float,
                        where: str) -> dict[str, Any]:
    """hwsim's energy and latency of one dumped layer mapping (plus ZigZag's own, for comparison)."""
    layer = layer_from_dump(record["layer"], limits, where=where)
    links = {str(k): str(v) for k, v in record["layer"]["memory_operand_links"].items()}
    nests = _nests(record, layer, hardware.chains(links), where=where)
    unrolling = {dim: math.prod(factors.values())
                 for dim, factors in (record["layer"].get("user_spatial_mapping") or {}).items()}
    row = evaluate_nests(layer, nests, hardware, links, unrolling, mac_pj=mac_pj)
    del row["_flows"]
    zz = record["outputs"]
    zz_latency = zz.get("latency", {})
    row.update({"zigzag_energy_pj": float(zz.get("energy", {}).get("energy_total", float("nan"))),
                "zigzag_latency_cycles": float(sum(zz_latency.values())) if zz_latency else float("nan"),
                "zigzag_compute_cycles": float(zz_latency.get("computation", float("nan"))),
                "zigzag_onload_cycles": float(zz_latency.get("data_onloading", float("nan"))),
                "zigzag_offload_drain_cycles": float(zz_latency.get("data_offloading", float("nan")))})
    return row


def _onnx_workload(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per ONNX Conv/Gemm node name: the input's real extents (IX, IY) and hwsim's MAC count."""
    import onnx

    from hwsim.interop.onnx_import import lower_onnx

    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    except Exception as err:  # protobuf/IO errors vary
        raise ConfigError(f"{path.name}: cannot read ONNX model ({err})") from None
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.input)}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    limits = {}
    for node in nodes:
        shape = shapes.get(node.input[0], [])
        if node.op_type == "Conv" and len(shape) == 4:
            limits[node.name] = {"IY": int(shape[2]), "IX": int(shape[3])}
    layers = [layer for layer in lower_onnx(path).layers() if layer.op.has_macs]
    if len(layers) != len(nodes):             # hwsim lowers MAC nodes in the file's order
        raise ConfigError(f"{path.name}: hwsim lowers {len(layers)} MAC layers from {len(nodes)} Conv/Gemm/MatMul "
                          "nodes; cannot pair them with ZigZag's layers")
    return limits, {node.name: layer.macs for node, layer in zip(nodes, layers)}


def _yaml_workload(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per layer name of a ZigZag workload YAML: the windows' real extents and hwsim's MAC count."""
    from hwsim.interop.zigzag import _read_yaml, zigzag_layer, zigzag_layer_name

    entries = _read_yaml(path)
    if not isinstance(entries, list):
        raise ConfigError(f"{path.name}: expected a list of layers")
    limits, macs = {}, {}
    for entry in entries:
        name = zigzag_layer_name(entry)
        dims = [str(d).upper() for d in entry.get("pr_loop_dims") or []]
        sizes = entry.get("pr_loop_sizes") or []
        if dims and sizes:
            limits[name] = {d: int(s) for d, s in zip(dims, sizes)}
        else:                                 # the window's full extent less the padding
            pads = entry.get("padding") or []
            sizes_of = {str(d).upper(): int(s) for d, s in zip(entry.get("loop_dims", []), entry.get("loop_sizes", []))}
            for i, (data, pair) in enumerate(_windows(entry.get("dimension_relations", []), where=path.name).items()):
                (a, sa), (b, sb) = pair
                size = (sizes_of.get(a, 1) - 1) * sa + (sizes_of.get(b, 1) - 1) * sb + 1
                pad = sum(pads[i]) if i < len(pads) else 0
                limits.setdefault(name, {})[data] = size - pad
        macs[name] = zigzag_layer(entry, where=path.name).macs    # 0 for pooling / Add (hwsim's vector unit)
    return limits, macs


def replay(hardware_yaml: str | Path, mapping_yaml: str | Path, workload: str | Path, dump_folder: str | Path
           ) -> list[dict[str, Any]]:
    """Evaluate, layer by layer, the mapping ZigZag chose on hwsim's model of the hardware.

    Parameters
    ----------
    hardware_yaml, mapping_yaml
        The ZigZag accelerator and mapping files given to ZigZag.
    workload
        The ONNX file or ZigZag workload YAML given to ZigZag (for the inputs' real extents and hwsim's
        own MAC counts).
    dump_folder
        The folder ZigZag's API wrote with ``dump_folder=`` (``loop_ordering.txt`` and
        ``zigzag_layer_json/*_complete.json``).

    Returns
    -------
    One dict per layer, in ZigZag's order: ``name`` (as ZigZag prints it), ``macs`` (hwsim's count of the
    workload's layer), ``energy_pj``, ``latency_cycles`` and their parts (MAC and memory energy, compute,
    stall, onload, offload, drain cycles), and ZigZag's own figures from the dump as ``zigzag_*``.
    """
    from hwsim.interop.zigzag import load_zigzag_accelerator

    hardware_yaml, workload, dump_folder = Path(hardware_yaml), Path(workload), Path(dump_folder)
    for path in (hardware_yaml, Path(mapping_yaml), workload):
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
    files = _dump_files(dump_folder)
    arch = load_zigzag_accelerator(hardware_yaml, mapping=mapping_yaml)
    hardware = hardware_of(arch, hardware_yaml)
    if workload.suffix.lower() == ".onnx":
        limits, macs = _onnx_workload(workload)
    else:
        limits, macs = _yaml_workload(workload)
    records = {}
    for path in files:
        record = _read_json(path)
        records[str(record["layer"]["name"])] = (record, path.name)
    order = [name for name in _layer_order(dump_folder) if name in records]
    order += [name for name in records if name not in order]
    out = []
    for name in order:
        record, where = records[name]
        row = evaluate_dump_layer(record, hardware, limits.get(name, {}), mac_pj=float(arch.energy.mac_pj),
                                  where=where)
        if name not in macs:
            raise ConfigError(f"{workload.name}: layer {name!r} (in the dump) is not in the workload")
        row["macs"] = macs[name]
        out.append(row)
    return out
