"""No silent fields: every field of an ``ArchSpec`` is used by the engine that runs it, or rejected for it.

Called by ``ArchSpec`` validation. Sections of other engines are rejected; redundant fields must
agree (``compute.units`` is the engine's multiplier count, ``sparse.pes`` the product of
``sparse.pe_grid``); fields an engine's dataflow does not read are rejected with the reason.
"""

from __future__ import annotations

import math
from typing import Any

_SECTIONS = ("systolic", "spatial", "sparse", "bitserial", "binary")
# sparse fields each dataflow reads (the rest are rejected when set away from their default)
_SPARSE_USED = {
    "column_broadcast": {"queue_depth", "pixel_parallel", "intersection_width"},
    "cartesian": {"act_lanes", "accumulator_entries", "pe_grid", "intersection_width"},
    "row_parallel": {"intersection_width"},
    "nm_dense": {"pe_grid"},
}
_SPARSE_DATAFLOW_ONLY = {"queue_depth": 1, "pixel_parallel": 1, "act_lanes": 1, "accumulator_entries": None,
                         "pe_grid": None, "intersection_width": None}


def multiplier_count(arch: Any) -> int | None:
    """The engine's multipliers at native width (what ``compute.units`` must equal); None: not derivable."""
    if arch.engine == "systolic":
        sy = arch.systolic
        return sy.rows * sy.cols * sy.cores
    if arch.engine == "sparse":
        sp = arch.sparse
        if sp.dataflow == "nm_dense" and sp.pe_grid:
            return sp.pe_grid[0] * sp.pe_grid[1]
        return sp.pes * sp.multipliers_per_pe
    if arch.engine == "binary":
        return arch.binary.xnor_width * arch.binary.popcount_units
    if arch.engine == "bitserial":
        bs, c = arch.bitserial, arch.compute
        if bs.design == "bit_fusion":
            return bs.fusion_units or bs.lanes
        per_mac = c.weight_bits * (c.act_bits if bs.design == "loom" else 1)
        return bs.lanes // per_mac if bs.lanes % per_mac == 0 else None
    return None


def check_engine_fields(arch: Any) -> None:
    """Raise ``ValueError`` (one line, naming the field) for a field the engine would silently ignore."""
    for section in _SECTIONS:
        if section != arch.engine and getattr(arch, section) is not None:
            raise ValueError(f"{section}: the {arch.engine} engine does not read a {section!r} section (remove it)")
    expected = multiplier_count(arch)
    if expected is not None and arch.compute.units != expected:
        raise ValueError(f"compute.units={arch.compute.units} disagrees with the {arch.engine} engine's "
                         f"multiplier count {expected} ({_how(arch)})")
    if arch.engine == "sparse":
        _check_sparse(arch)
    if arch.engine == "systolic":
        _check_systolic(arch)
    if arch.engine != "spatial":
        for level in arch.memory:
            if level.mesh_x > 1 or level.mesh_y > 1:
                raise ValueError(f"memory.{level.name}.mesh_x/mesh_y: only the spatial engine models a PE mesh; "
                                 f"the {arch.engine} engine counts instances (remove the mesh)")
    if arch.engine == "spatial" and arch.spatial is not None:
        _check_spatial(arch)
    for level in arch.memory:
        if level.banks != 1 and level.name in arch.energy.levels:
            raise ValueError(f"memory.{level.name}.banks: the bank count only enters the storage energy model, "
                             f"and energy.levels.{level.name} pins this level's energy (remove banks)")
    if arch.engine == "bitserial" and arch.compute.precision != "scalable":
        raise ValueError("compute.precision: bit-serial engines scale with operand width; set precision: scalable")
    if arch.engine != "bitserial" and arch.compute.precision == "scalable":
        raise ValueError(f"compute.precision: scalable is modelled by the bit-serial engine only, not {arch.engine}")
    if arch.engine == "binary" and arch.compute.kind != "xnor":
        raise ValueError("compute.kind: the binary engine's datapath is xnor")
    if arch.engine == "binary" and (arch.compute.weight_bits, arch.compute.act_bits) != (1, 1):
        raise ValueError("compute.weight_bits/act_bits: the binary engine's XNOR datapath is 1 x 1 bit "
                         "(its integer path width is binary.fallback_bits)")


def _how(arch: Any) -> str:
    if arch.engine == "sparse":
        return "sparse.pe_grid rows x cols" if arch.sparse.dataflow == "nm_dense" else "sparse.pes x multipliers_per_pe"
    return {"systolic": "systolic.rows x cols x cores", "binary": "binary.xnor_width x popcount_units",
            "bitserial": "bitserial lanes per native MAC, or fusion_units"}.get(arch.engine, "")


def _covers(setting: str, operand: str) -> bool:
    return setting in ("both", operand)


def _check_systolic(arch: Any) -> None:
    sy = arch.systolic
    if sy.mode == "physical" and sy.interface_bandwidth != "CALC":
        raise ValueError("systolic.interface_bandwidth: read by mode: scalesim only (the physical model "
                         "takes its DRAM bandwidth from memory[0])")
    fills = [n for n in ("ifmap_fill_words_per_cycle", "filter_fill_words_per_cycle")
             if getattr(sy, n) != type(sy).model_fields[n].default]
    if fills and not (sy.mode == "scalesim" and sy.interface_bandwidth == "USER"):
        raise ValueError(f"systolic.{fills[0]}: read by mode: scalesim with interface_bandwidth: USER only")


def _check_sparse(arch: Any) -> None:
    sp = arch.sparse
    used = _SPARSE_USED[sp.dataflow]
    for name, default in _SPARSE_DATAFLOW_ONLY.items():
        if name not in used and getattr(sp, name) != default:
            raise ValueError(f"sparse.{name}: not read by the {sp.dataflow!r} dataflow (remove it)")
    if sp.gate != "none" and (redundant := [op for op in ("weights", "activations")
                                            if _covers(sp.gate, op) and _covers(sp.skip, op)]):
        raise ValueError(f"sparse.gate: zero {redundant[0]} are already skipped (sparse.skip: {sp.skip}); "
                         "gating them too changes nothing")
    if sp.dataflow == "cartesian" and sp.pe_grid and math.prod(sp.pe_grid) != sp.pes:
        raise ValueError(f"sparse.pes={sp.pes} disagrees with sparse.pe_grid {tuple(sp.pe_grid)} "
                         f"({math.prod(sp.pe_grid)} PEs)")
    if sp.dataflow == "nm_dense":
        if not (sp.structured_n and sp.structured_m):
            raise ValueError("sparse.structured_n/structured_m: the nm_dense dataflow needs its N:M pattern")
        if sp.skip != "weights" or sp.gate != "none":
            raise ValueError("sparse.skip/gate: the nm_dense array skips the pruned weights of its N:M pattern "
                             "(skip: weights, gate: none); it does not skip or gate activations")
        if sp.pe_grid and sp.pes * sp.multipliers_per_pe != math.prod(sp.pe_grid):
            raise ValueError(f"sparse.pes x multipliers_per_pe = {sp.pes * sp.multipliers_per_pe} disagrees with "
                             f"sparse.pe_grid {tuple(sp.pe_grid)}")


def _check_spatial(arch: Any) -> None:
    sp = arch.spatial
    if sp.act_dram_format != "rle":
        for name, default in (("rle_run_bits", 5), ("rle_word_bits", 64)):
            if getattr(sp, name) != default:
                raise ValueError(f"spatial.{name}: only read with act_dram_format: rle (remove it)")
    elif (sp.rle_word_bits - 1) // (sp.rle_run_bits + arch.compute.act_bits) < 1:
        raise ValueError(f"spatial.rle_word_bits={sp.rle_word_bits} cannot hold one {sp.rle_run_bits}-bit run, "
                         f"a {arch.compute.act_bits}-bit level and the terminator bit")
