"""Silicon area of an architecture: MAC units by bit width, SRAM/register files by capacity.

MAC area = multiplier + accumulator adder areas from the table's arithmetic rows that carry
``area_um2`` (Horowitz ISSCC 2014 area column, 45 nm), fitted with the same power laws as energy
(adder ~ bits^p, multiplier ~ (b1*b2)^q); a table without area rows borrows ``horowitz_45nm``'s.
Storage area = capacity x per-byte density (``sram_area_um2_per_byte``, ``regfile_area_um2_per_byte``:
Accelergy 40 nm CACTI/Aladdin areas). Every figure is scaled to the arch's node with the Stillmaker &
Baas 2017 area factors. DRAM is off-chip and has no area. Wires, control and I/O are not modelled.
"""

from __future__ import annotations

import math

from hwsim.models.arch import ArchSpec
from hwsim.models.energy.components import _fit
from hwsim.models.energy.scaling import area_factor
from hwsim.models.energy.tables import EnergyTable, load_table

UM2_PER_MM2 = 1e6


def _area_rows(table: EnergyTable, op: str, number_format: str) -> list:
    rows = [r for r in table.arithmetic_rows(op, number_format) if r.area_um2]
    if rows or table.name == "horowitz_45nm":
        return rows
    return _area_rows(load_table("horowitz_45nm"), op, number_format)


def op_area_um2(table: EnergyTable, op: str, bits: tuple[int, ...], *, number_format: str = "int",
                target_nm: float) -> float:
    """Area (um^2) of one ``op`` unit at ``target_nm``: an exact area row, else a power-law fit."""
    rows = _area_rows(table, op, number_format)
    if not rows:
        return 0.0
    x = float(math.prod(bits)) if op == "mult" else float(bits[0])
    for row in rows:
        if len(set(bits)) == 1 and row.bits == bits[0]:
            return row.area_um2 * area_factor(row.technology_nm, target_nm)
    xs = [(float(r.bits * r.bits) if op == "mult" else float(r.bits),) for r in rows]
    law = _fit(xs, [r.area_um2 for r in rows], free=(len(set(xs)) >= 2,), default=(1.0,),
               node_nm=rows[0].technology_nm)
    return law(x) * area_factor(law.node_nm, target_nm)


def mac_area_um2(table: EnergyTable, arch: ArchSpec) -> float:
    """Area of one compute unit of ``arch.compute`` (MAC, XNOR-popcount lane or bit-serial lane)."""
    spec, node = arch.compute, arch.technology_nm
    if spec.kind == "xnor":
        return (op_area_um2(table, "xnor", (1,), target_nm=node)
                + op_area_um2(table, "popcount", (1,), target_nm=node))
    if spec.kind == "bitserial":
        return (op_area_um2(table, "mult", (1, spec.weight_bits), target_nm=node)
                + op_area_um2(table, "add", (spec.weight_bits + 1,), target_nm=node))
    fmt = "fp" if spec.number_format == "fp" else "int"
    acc = spec.weight_bits + spec.act_bits if table.mac_accumulator == "product" else max(spec.weight_bits,
                                                                                              spec.act_bits)
    acc = min(acc, 32) if fmt == "fp" else acc
    return (op_area_um2(table, "mult", (spec.weight_bits, spec.act_bits), number_format=fmt, target_nm=node)
            + op_area_um2(table, "add", (acc,), number_format=fmt, target_nm=node))


def area_mm2(arch: ArchSpec, *, table: EnergyTable | None = None) -> dict[str, float]:
    """Area in mm^2 per component (``mac`` and each on-chip level, all instances) plus ``total``."""
    table = table or load_table(arch.energy.table)
    parts = {"mac": arch.peak_macs_per_cycle * mac_area_um2(table, arch) / UM2_PER_MM2}
    for level in arch.memory:
        if level.kind == "dram":
            continue
        density = table.constant(f"{level.kind}_area_um2_per_byte")
        per_instance = (level.capacity_bytes or 0) * density.value * area_factor(density.technology_nm,
                                                                                  arch.technology_nm)
        parts[level.name] = per_instance * level.instances / UM2_PER_MM2
    parts["total"] = sum(parts.values())
    return parts
