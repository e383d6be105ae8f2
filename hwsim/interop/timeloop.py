"""Timeloop interop: reference cases (``tests/data/timeloop/*.json``) and Timeloop arch/problem/mapping YAML.

``evaluate_reference_case(path)`` rebuilds a case's architecture, problem and mapping with hwsim, runs the
spatial engine and prices the counts with the case's own Accelergy energies (pJ per *vector* action,
``ceil(count / block)`` per instance, leakage per cycle per instance, computes x MAC energy), returning
the same names as the case's ``key_results``. ``load_timeloop_yaml`` reads the overlapping subset of
Timeloop's v0.3/v0.4 YAML (a flat storage hierarchy, a CNN-layer or Einsum problem, a per-level mapping).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError
from hwsim.mappers.mapping import DIMS, LevelMapping, Mapping
from hwsim.models.arch import ArchSpec, validate_arch
from hwsim.models.spatial import NestStats, analyze
from hwsim.models.spatial.nest import Problem

_ROLE_ORDER = {"W": 0, "I": 1, "O": 2}


# ----- problem ----------------------------------------------------------------------------------
def _parse_rank(rank: str, *, where: str, coefficients: dict[str, int] | None = None) -> list[tuple[str, int]]:
    """One projection rank -> [(dim, coefficient)]: a sum of terms, each a product of one dimension with
    integer literals and/or named coefficients (``R*Wdilation + P*Wstride``, ``2*P``, ``S + Q``)."""
    coefficients = coefficients or {}
    terms = []
    for term in str(rank).replace(" ", "").split("+"):
        dim, coef = None, 1
        for factor in term.split("*"):
            if re.fullmatch(r"\d+", factor):
                coef *= int(factor)
            elif factor in coefficients:
                coef *= int(coefficients[factor])
            elif re.fullmatch(r"[A-Za-z_]\w*", factor) and dim is None:
                dim = factor
            else:
                raise ConfigError(f"{where}: cannot parse projection term {term!r} in rank {rank!r} "
                                  f"(factor {factor!r} is neither a dimension nor a known coefficient)")
        if dim is None:
            raise ConfigError(f"{where}: projection term {term!r} in rank {rank!r} names no dimension")
        terms.append((dim, coef))
    return terms


def _tensor_roles(spaces: list[dict[str, Any]], *, where: str) -> dict[str, str]:
    """Case tensor name -> W / I / O (I is the one with sliding-window ranks, else the first operand)."""
    outputs = [s["name"] for s in spaces if s.get("read_write")]
    operands = [s for s in spaces if not s.get("read_write")]
    if len(outputs) != 1 or len(operands) != 2:
        raise ConfigError(f"{where}: need exactly two input tensors and one read-write output, "
                          f"got {[s['name'] for s in spaces]}")
    def score(space: dict[str, Any]) -> int:
        name = space["name"].lower()
        return (10 * any("+" in str(r) for r in space["projection_ranks"]) + 5 * ("input" in name)
                - 5 * ("weight" in name or "filter" in name))
    first, second = sorted(operands, key=score, reverse=True)
    if score(first) == score(second):
        first, second = operands
    return {first["name"]: "I", second["name"]: "W", outputs[0]: "O"}


def _assign_dims(ranks: dict[str, list[list[tuple[str, int]]]], bounds: dict[str, int], *, where: str
                 ) -> dict[str, str | None]:
    """Case dim -> hwsim loop dim by the tensors it indexes (None: a unit dim indexing one tensor)."""
    member = {dim: {role for role, rs in ranks.items() for rank in rs for d, _ in rank if d == dim}
              for dim in bounds}
    slots: dict[str, str | None] = {}
    windows = [rank for rank in ranks["I"] if len(rank) > 1]
    for rank, (out_slot, filt_slot) in zip(windows, (("P", "R"), ("Q", "S"))):
        for dim, _ in rank:
            slots[dim] = out_slot if "O" in member[dim] else filt_slot
    by_role = {frozenset("WIO"): ["G"], frozenset("WO"): ["K"], frozenset("WI"): ["C", "R", "S"],
               frozenset("IO"): ["P", "Q", "N"], frozenset("W"): [], frozenset("I"): [], frozenset("O"): []}
    for dim in bounds:
        if dim in slots:
            continue
        free = [s for s in by_role[frozenset(member[dim])] if s not in slots.values()]
        if free:
            slots[dim] = free[0]
        elif bounds[dim] == 1:
            slots[dim] = None
        else:
            raise ConfigError(f"{where}: dimension {dim} (bound {bounds[dim]}) has no place in the "
                              f"N G K C P Q R S loop nest (indexes {sorted(member[dim])})")
    return slots


def problem_from_case(problem: dict[str, Any], *, bits: int, where: str) -> tuple[Problem, dict, dict]:
    """A hwsim ``Problem`` from a Timeloop problem, plus the tensor-role and dim maps."""
    spaces = problem["data_spaces"]
    roles = _tensor_roles(spaces, where=where)
    bounds = {d: int(problem["instance"].get(d, 1)) for d in problem["dimensions"]}
    # named coefficients: the instance's value wins over the shape's default (Timeloop's rule)
    coefficients = {k: int(v) for k, v in (problem.get("coefficients") or {}).items()}
    coefficients.update({k: int(v) for k, v in problem["instance"].items()
                         if k not in problem["dimensions"] and isinstance(v, (int, float))})
    ranks = {roles[s["name"]]: [_parse_rank(r, where=where, coefficients=coefficients)
                                for r in s["projection_ranks"]] for s in spaces}
    slots = _assign_dims(ranks, bounds, where=where)
    proj = [()] * 3
    for role, rank_list in ranks.items():
        proj[_ROLE_ORDER[role]] = tuple(tuple((slots[d], c) for d, c in rank if slots[d]) for rank in rank_list)
    hw_bounds = {d: 1 for d in DIMS}
    for dim, slot in slots.items():
        if slot:
            hw_bounds[slot] = bounds[dim]
    macs = math.prod(bounds.values())
    prob = Problem(name=problem.get("name", "case"), bounds=tuple((d, hw_bounds[d]) for d in DIMS),
                   proj=tuple(proj), bits=(bits, bits, bits), out_bits=bits, macs=macs)
    return prob, roles, slots


# ----- architecture -----------------------------------------------------------------------------
def _tech_nm(attrs: dict[str, Any]) -> float:
    match = re.match(r"\s*([\d.]+)\s*nm", str(attrs.get("technology", "45nm")))
    return float(match.group(1)) if match else 45.0


def arch_from_case(levels: list[dict[str, Any]], *, name: str, where: str) -> ArchSpec:
    """An ``ArchSpec`` from a flattened Timeloop hierarchy (storage levels outer to inner, compute last)."""
    *storage, compute = levels
    if not storage:
        raise ConfigError(f"{where}: architecture has no storage level")
    memory = []
    for i, level in enumerate(storage):
        attrs = level.get("attributes", {})
        dummy = "dummy" in str(level.get("class", "")).lower()    # a fan-out point that stores nothing
        datawidth = 8 if dummy else int(attrs.get("datawidth", attrs.get("word_bits", 8)))
        width = 8 if dummy else int(attrs.get("width", attrs.get("block_size", 1) * datawidth))
        entry: dict[str, Any] = {"name": level["name"], "kind": "dram" if i == 0 else
                                 ("regfile" if "regfile" in str(level.get("class", "")).lower() else "sram"),
                                 "word_bits": datawidth, "width_bits": width}
        if i > 0:   # hwsim's DRAM is one unbounded channel: its banks and depth change no access count
            instances = int(level.get("instances", 1))
            mesh_x = int(attrs.get("meshX", 1))
            mesh_y = int(attrs.get("meshY", instances // mesh_x if instances % mesh_x == 0 else 1))
            entry.update(banks=int(attrs.get("n_banks", 1)), instances=instances, mesh_x=mesh_x, mesh_y=mesh_y)
            if dummy:
                entry.update(size_bytes=1, tensors=())
            elif "depth" in attrs:
                entry["size_bytes"] = int(attrs["depth"]) * width // 8
        for key, ours in (("read_bandwidth", "read_bw_bytes_per_cycle"),
                          ("write_bandwidth", "write_bw_bytes_per_cycle")):
            if attrs.get(key):
                entry[ours] = float(attrs[key]) * datawidth / 8
        memory.append(entry)
    units = int(compute.get("instances", 1))
    mac_x = max(1, int(compute.get("attributes", {}).get("meshX", 1)) // memory[-1].get("mesh_x", 1))
    data = {"name": name, "engine": "spatial", "clock_hz": 1e9, "technology_nm": _tech_nm(storage[0].get("attributes", {})),
            "memory": memory, "compute": {"kind": "mac", "units": units},
            "spatial": {"mac_mesh_x": mac_x, "multicast": "identical"}, "sources": {"memory": f"Timeloop case {name}"}}
    return validate_arch(data, origin=where)


def mapping_from_case(entries: list[dict[str, Any]], arch: ArchSpec, roles: dict[str, str],
                      slots: dict[str, str | None], *, where: str) -> Mapping:
    """A ``Mapping`` from the case's per-level ``tiles_kept`` and ``loops_outer_to_inner``."""
    by_level = {e["level"]: e for e in entries}
    if unknown := sorted(set(by_level) - {lvl.name for lvl in arch.memory}):
        raise ConfigError(f"{where}: mapping names unknown level(s) {unknown}")
    levels = []
    for level in arch.memory:
        entry = by_level.get(level.name, {"tiles_kept": {}, "loops_outer_to_inner": []})
        loops: dict[str, list] = {"temporal": [], "spatial_x": [], "spatial_y": []}
        for loop in entry.get("loops_outer_to_inner", []):
            slot = slots.get(loop["dim"])
            if slot is None:
                if int(loop["bound"]) > 1:
                    raise ConfigError(f"{where}: loop over unknown dim {loop['dim']!r}")
                continue
            spatial = loop.get("spatial")
            axis = loop.get("axis") or (str(spatial).rsplit("-", 1)[-1] if isinstance(spatial, str) else "X")
            kind = "temporal" if not spatial else ("spatial_y" if str(axis).upper() == "Y" else "spatial_x")
            loops[kind].append((slot, int(loop["bound"])))
        keep = tuple(roles[t] for t in entry.get("tiles_kept", {}) if t in roles)
        levels.append(LevelMapping(level=level.name, keep=keep, **loops))
    return Mapping(levels=tuple(levels), source=where)


# ----- energy -----------------------------------------------------------------------------------
def _case_energy(case: dict[str, Any], arch: ArchSpec, result: NestStats, roles: dict[str, str],
                 computes: int) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    ert = {name: spec["actions_pJ"] for name, spec in case["ert_pJ_per_action"].items()}
    accesses: dict[str, dict[str, dict[str, float]]] = {}
    by_level: dict[str, float] = {}
    cycles = result.cycles
    attributes = {lvl["name"]: lvl.get("attributes", {}) for lvl in case["architecture_flattened_outer_to_inner"]}
    for level in arch.memory:
        energies, kept = ert.get(level.name, {}), {}
        # a cluster of instances shares one access of the full width (Timeloop: block = width / cluster /
        # word bits; energy charged per utilized cluster, min(utilized, instances / cluster) -- buffer.cpp)
        cluster = max(1, int(attributes.get(level.name, {}).get("cluster_size", 1) or 1))
        block = max(1, level.block_words // cluster)
        for case_name, role in roles.items():
            if result.count(level.name, role, "tile") == 0 and level.name != arch.memory[0].name:
                continue
            counts = {a: result.count(level.name, role, a) for a in ("read", "write", "update")}
            instances = result.instances[result.levels.index(level.name)]
            payers = min(instances, max(1, level.instances // cluster)) if cluster > 1 else instances
            pj = sum(math.ceil(n / block) * energies.get(a, 0.0) for a, n in counts.items()) * payers
            kept[case_name] = {"reads_per_instance": counts["read"], "fills_per_instance": counts["write"],
                               "updates_per_instance": counts["update"], "utilized_instances": instances,
                               "energy_total_pJ": pj}
        accesses[level.name] = kept
        # Timeloop charges leakage to the *utilized* instances only (ex_simple_ws: 12 of 256 pe_spad)
        leak = energies.get("leak", 0.0) * cycles * result.instances[result.levels.index(level.name)]
        by_level[level.name] = sum(v["energy_total_pJ"] for v in kept.values()) + leak
    compute_name = case["architecture_flattened_outer_to_inner"][-1]["name"]
    by_level[compute_name] = computes * ert.get(compute_name, {}).get("compute", 0.0)
    by_level["Total"] = sum(by_level.values())
    return accesses, by_level


def evaluate_reference_case(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Evaluate a Timeloop reference case (a ``*.json`` path or the case dict itself) with hwsim;
    returns cycles, energy_pj, computes and access counts."""
    if isinstance(path, dict):
        case = path
        path = Path(str(case.get("id", "case")))
    else:
        path = Path(path)
        try:
            case = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path.name}: cannot read reference case ({err})") from None
    where = path.name
    if case.get("problem", {}).get("densities") or case.get("sparse_optimizations"):
        raise ConfigError(f"{where}: sparse case (densities / sparse optimizations); evaluate it with the "
                          f"sparse engine (hwsim.models.sparse), not the dense spatial engine")
    # dummy (fan-out only) levels stay: each is its own fan-out, and Timeloop multicasts per fan-out
    levels, entries = case["architecture_flattened_outer_to_inner"], case["mapping_result_outer_to_inner"]
    bits = int(levels[0].get("attributes", {}).get("datawidth", 8))
    problem, roles, slots = problem_from_case(case["problem"], bits=bits, where=where)
    arch = arch_from_case(levels, name=case.get("id", path.stem), where=where)
    mapping = mapping_from_case(entries, arch, roles, slots, where=where)
    result = analyze(problem, arch, mapping)
    computes = result.padded_macs
    accesses, by_level = _case_energy(case, arch, result, roles, computes)
    return {"id": case.get("id", path.stem), "cycles": result.cycles, "computes": computes,
            "utilization_pct": 100.0 * problem.macs / (result.cycles * arch.compute.units),
            "energy_pj": by_level["Total"], "energy_pJ_by_level": by_level, "storage_accesses": accesses,
            "arch": arch, "mapping": mapping, "problem": problem}


# ----- Timeloop YAML (v0.3 "subtree/local" or v0.4 "nodes" architecture, shape/instance problem, mapping list) --
def _instances_of(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(.+)\[(\d+)\.\.(\d+)\]", str(name))
    return (match.group(1), int(match.group(3)) - int(match.group(2)) + 1) if match else (str(name), 1)


def _flatten_arch(node: dict[str, Any], instances: int, out: list[dict[str, Any]], *, where: str) -> None:
    _, copies = _instances_of(node.get("name", ""))
    instances *= copies
    for comp in node.get("local", []) or []:
        name, count = _instances_of(comp["name"])
        attrs = dict(comp.get("attributes", {}))
        if "word-bits" in attrs:
            attrs.setdefault("datawidth", attrs["word-bits"])
        if "block-size" in attrs:
            attrs.setdefault("width", int(attrs["block-size"]) * int(attrs.get("datawidth", 8)))
        out.append({"name": name, "instances": instances * count, "class": comp.get("class", ""),
                    "attributes": attrs})
    for child in node.get("subtree", []) or []:
        _flatten_arch(child, instances, out, where=where)


def _flatten_nodes(nodes: list[Any], state: dict[str, Any], out: list[dict[str, Any]], *, where: str) -> dict[str, Any]:
    """Timeloop v0.4 ``nodes`` in order: a ``!Container`` passes its attributes down and, with a
    ``spatial`` mesh, fans out -- a ``dummy_storage`` level ``inter_<name>_spatial`` marks the fan-out, as
    Timeloop's front end flattens it; ``!Parallel`` components stack in order; ``!Nothing`` is skipped."""
    for i, node in enumerate(nodes or []):
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: architecture.nodes[{i}]: expected a node mapping, got {node!r}")
        tag = str(node.get("_tag", "Component" if "class" in node else "Container"))
        if tag == "Nothing":
            continue
        if tag in ("Parallel", "Hierarchical"):
            state = _flatten_nodes(node.get("nodes") or [], state, out, where=where)
            continue
        mesh = node.get("spatial") or {}
        mesh_x, mesh_y = int(mesh.get("meshX", 1)), int(mesh.get("meshY", 1))
        attrs = {**state["attributes"], **(node.get("attributes") or {})}
        if tag == "Container":
            if mesh_x * mesh_y > 1:
                out.append({"name": f"inter_{node['name']}_spatial", "instances": state["instances"],
                            "class": "dummy_storage", "attributes": {"meshX": state["mesh_x"],
                                                                    "meshY": state["mesh_y"]}})
            state = {"attributes": {**state["attributes"], **(node.get("attributes") or {})},
                     "instances": state["instances"] * mesh_x * mesh_y, "mesh_x": state["mesh_x"] * mesh_x,
                     "mesh_y": state["mesh_y"] * mesh_y}
            continue
        if "name" not in node or "class" not in node:
            raise ConfigError(f"{where}: architecture.nodes[{i}]: a !Component needs name and class")
        state = {**state, "instances": state["instances"] * mesh_x * mesh_y, "mesh_x": state["mesh_x"] * mesh_x,
                 "mesh_y": state["mesh_y"] * mesh_y}
        out.append({"name": node["name"], "instances": state["instances"], "class": node["class"],
                    "attributes": {**attrs, "meshX": state["mesh_x"], "meshY": state["mesh_y"]}})
    return state


def _arch_levels(data: dict[str, Any], *, where: str) -> list[dict[str, Any]]:
    arch = data.get("architecture", data)
    levels: list[dict[str, Any]] = []
    if "nodes" in arch:
        _flatten_nodes(arch["nodes"], {"attributes": {}, "instances": 1, "mesh_x": 1, "mesh_y": 1}, levels,
                       where=where)
    for node in arch.get("subtree", []) or []:
        _flatten_arch(node, 1, levels, where=where)
    compute = [lvl for lvl in levels if re.search(r"mac|compute|arith", lvl["class"], re.I)]
    if len(compute) != 1 or levels[-1] is not compute[0]:
        raise ConfigError(f"{where}: expected one arithmetic component (class *mac*) at the innermost position, "
                          f"got {[lvl['name'] for lvl in compute]}")
    return levels


def _problem_case(data: dict[str, Any], *, where: str) -> dict[str, Any]:
    prob = data.get("problem", data)
    shape = dict(prob.get("shape") or {})
    if "data-spaces" in shape:                                    # v0.3 spelling
        shape["data_spaces"] = shape.pop("data-spaces")
    if isinstance(shape.get("coefficients-defaults"), dict):
        shape["coefficients"] = [{"name": k, "default": v} for k, v in shape["coefficients-defaults"].items()]
    if (prob.get("instance") or {}).get("densities"):
        raise ConfigError(f"{where}: problem.instance.densities: sparse problems belong to the sparse engine")
    return problem_from_v04({**prob, "shape": shape}, where=where)


def read_timeloop_yaml(path: str | Path) -> Any:
    """A Timeloop YAML file; the v0.4 front end's node tags (``!Container``, ``!Component``, ...) become a
    ``_tag`` key of the mapping (sequences stay sequences)."""
    import yaml
    path = Path(path)
    class _Loader(yaml.SafeLoader):
        pass
    # Timeloop's front end tags nodes (!Container, !Component, ...): read them as plain mappings
    def tagged(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return {**loader.construct_mapping(node, deep=True), "_tag": tag}
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return {"_tag": tag}
    _Loader.add_multi_constructor("!", tagged)
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path.name}: cannot read Timeloop YAML ({str(err).splitlines()[0]})") from None


def _rank(rank: list[list[str]]) -> str:
    """A v0.4 projection rank (sum of products, ``[[R, Wdilation], [P, Wstride]]``) as ``R*Wdilation + P*Wstride``."""
    return " + ".join("*".join(str(f) for f in term) for term in rank)


def problem_from_v04(problem: dict[str, Any], *, where: str) -> dict[str, Any]:
    """The reference-case ``problem`` from a Timeloop v0.4 problem (``shape`` + ``instance``)."""
    shape, instance = problem.get("shape") or {}, dict(problem.get("instance") or {})
    if not shape.get("dimensions") or not shape.get("data_spaces"):
        raise ConfigError(f"{where}: problem.shape needs dimensions and data_spaces")
    densities = instance.pop("densities", None) or {}
    spaces = [{"name": s["name"], "projection_ranks": [_rank(r) for r in s["projection"]],
               "read_write": bool(s.get("read_write", s.get("read-write", False)))} for s in shape["data_spaces"]]
    coefficients = {c["name"]: int(c.get("default", 1)) for c in shape.get("coefficients") or []}
    out = {"name": shape.get("name", "problem"), "dimensions": list(shape["dimensions"]),
           "instance": instance, "data_spaces": spaces, "coefficients": coefficients}
    if densities:
        out["densities"] = densities
    return out


def _permutation(text: Any, dims: dict[str, int]) -> list[str]:
    """Dims of a permutation written ``QPCMRSN``, ``Q P C`` or ``[Q, P, C]`` (single-letter dims run together)."""
    tokens = text if isinstance(text, list) else re.findall(r"[A-Za-z_]+", str(text))
    order: list[str] = []
    for token in map(str, tokens):
        if token in dims:
            order.append(token)
        elif all(ch in dims for ch in token):
            order += list(token)
    return order


def mapping_from_map(data: Any, level_names: list[str], tensors: list[str], *, where: str) -> list[dict[str, Any]]:
    """``mapping_result_outer_to_inner`` from Timeloop's ``map.yaml`` (factors as ``C1 M8`` or ``C=1``).

    A level no ``datatype`` directive names keeps every tensor (Timeloop's default); ``bypass`` alone keeps
    the rest.
    """
    entries = data.get("mapping", data) if isinstance(data, dict) else data
    levels = {n: {"level": n, "tiles_kept": {t: 1 for t in tensors}, "loops_outer_to_inner": []}
              for n in level_names}
    spatial: dict[str, list[dict[str, Any]]] = {n: [] for n in level_names}
    for i, entry in enumerate(entries or []):
        target = entry.get("target")
        if target not in levels:
            raise ConfigError(f"{where}: mapping[{i}].target: unknown level {target!r} (levels: {level_names})")
        kind = entry.get("type")
        if kind in ("datatype", "dataspace", "bypass"):
            bypass = set(entry.get("bypass") or [])
            keep = entry.get("keep")
            keep = [t for t in tensors if t not in bypass] if keep is None else keep
            levels[target]["tiles_kept"] = {t: 1 for t in keep}
            continue
        factors = {d: int(n) for d, n in re.findall(r"([A-Za-z_]+)\s*=?\s*(\d+)", str(entry.get("factors", "")))}
        order = _permutation(entry.get("permutation", ""), factors)
        order += [d for d in factors if d not in order]
        if kind == "temporal":          # permutation is inner to outer
            levels[target]["loops_outer_to_inner"] += [{"dim": d, "bound": factors[d]} for d in reversed(order)
                                                       if factors[d] > 1]
        elif kind == "spatial":
            split = int(entry.get("split", len(order)))
            spatial[target] += [{"dim": d, "bound": factors[d], "spatial": "Spatial-X" if pos < split else "Spatial-Y"}
                                for pos, d in enumerate(order) if factors[d] > 1]
        else:
            raise ConfigError(f"{where}: mapping[{i}].type: {kind!r} (expected temporal, spatial or datatype)")
    for name in level_names:          # Timeloop prints a level's spatial loops inside its temporal ones
        levels[name]["loops_outer_to_inner"] += spatial[name]
    return [levels[n] for n in level_names]


def load_timeloop_yaml(arch: str | Path, problem: str | Path, mapping: str | Path) -> tuple[ArchSpec, Problem, Mapping]:
    """Architecture, problem and mapping from Timeloop v0.3 or v0.4 YAML files (overlapping subset; see module doc)."""
    levels = _arch_levels(read_timeloop_yaml(arch), where=Path(arch).name)
    case_problem = _problem_case(read_timeloop_yaml(problem), where=Path(problem).name)
    bits = int(levels[0].get("attributes", {}).get("datawidth", 8))
    prob, roles, slots = problem_from_case(case_problem, bits=bits, where=Path(problem).name)
    spec = arch_from_case(levels, name=Path(arch).stem, where=Path(arch).name)
    entries = mapping_from_map(read_timeloop_yaml(mapping), [lvl.name for lvl in spec.memory], list(roles),
                               where=Path(mapping).name)
    return spec, prob, mapping_from_case(entries, spec, roles, slots, where=Path(mapping).name)
