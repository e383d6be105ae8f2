"""Component energy models fitted to a table: MACs by bit width, SRAM/register files by size, DRAM.

Every function returns a ``Quote`` (pJ at the target node/voltage + where it came from). A value that
matches a table row exactly is that row, scaled only by node/voltage; otherwise a power law fitted to
the rows of the same group (same table, same publication) is used, and the quote says so.

**Arithmetic** (per operation). Adders fit ``E = c * bits^p``; multipliers fit ``E = c * (b1*b2)^q``
(energy ~ product of operand widths); with a single row the exponent is fixed at 1 (adder linear in
width, multiplier linear in the product, i.e. quadratic for square operands, as the Accelergy Aladdin
plug-in scales). Fitted on ``horowitz_45nm``: int add p = 0.87 (residuals 8b -3.0 %, 16b +6.3 %, 32b
-3.0 %); int mult q = 0.99 (8b and 32b exact, two points); fp add p = 1.17 and fp mult q = 0.875 (on the
product, i.e. 1.75 in width; two points each, exact). A ``b1 x b2`` MAC = multiplier + accumulator
adder, the adder being ``b1 + b2`` bits (``mac_accumulator: product``, Accelergy Library intmac "8b mult
+ 16b add") or ``max(b1, b2)`` bits (``operand``, Aladdin intmac; reproduces the 0.845 pJ 40 nm ERT
exactly); fp accumulators are capped at 32 bits. A table ``mac`` row pins the level at its width; other
widths keep the fitted shape. Binary MACs cost one XNOR bit + one popcount-tree bit; a bit-serial step
(1 x N bits) costs a 1 x N multiplier (an AND row) + an (N + 1)-bit shift-add.

**Storage** (per vector access of ``width_bits``): energy per bit ``= a * bank_bytes^b * width^c``
(CACTI-like power law), least squares in log space over the table's rows of that kind; ``c`` is fitted
only with >= 4 rows of >= 2 widths, ``b`` defaults to 0.5 (energy ~ sqrt(capacity), timeloop.md §6) with
a single row. Fits (read energy): Horowitz SRAM 8 KB / 32 KB / 1 MB @ 64 b: b = 0.47, residuals +1.6 /
-2.2 / +0.6 %; Accelergy 45 nm CACTI SRAM (7 rows, 0.375-256 KiB @ 16-256 b): b = 0.55, c = -0.43,
residuals within 14 % (8 KiB@128b +13.7 %, 256 KiB@256b -12.2 %); Accelergy 45 nm register files
(48/384/448 B): b = 0.75, residuals -1.5 / +23.8 / -18.0 %. Banked arrays are priced at ``size /
banks``. Write energy = read x the geometric-mean write/read ratio of the rows (1 without write
figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwsim.errors import ConfigError
from hwsim.models.energy.scaling import energy_factor, voltage_factor
from hwsim.models.energy.tables import ArithmeticRow, EnergyTable, StorageRow

DEFAULT_CAPACITY_EXPONENT = 0.5


@dataclass(frozen=True)
class Quote:
    """An energy (pJ, at the target node and voltage) and the table row(s)/fit it came from."""

    pj: float
    source: str


@dataclass(frozen=True)
class _PowerLaw:
    log_coeff: float
    exponents: tuple[float, ...]
    node_nm: float

    def __call__(self, *xs: float) -> float:
        return math.exp(self.log_coeff + sum(p * math.log(x) for p, x in zip(self.exponents, xs)))


def _fit(xs: list[tuple[float, ...]], ys: list[float], *, free: tuple[bool, ...],
         default: tuple[float, ...], node_nm: float) -> _PowerLaw:
    """Least-squares power law in log space; exponents not marked ``free`` stay at ``default``."""
    logs = np.log(np.asarray(xs, dtype=float))
    target = np.log(np.asarray(ys, dtype=float)) - sum(logs[:, k] * default[k] for k in range(len(default))
                                                        if not free[k])
    columns = [np.ones(len(ys))] + [logs[:, k] for k in range(len(default)) if free[k]]
    solution = np.linalg.lstsq(np.stack(columns, axis=1), target, rcond=None)[0]
    fitted = iter(solution[1:])
    exponents = tuple(float(next(fitted)) if free[k] else default[k] for k in range(len(default)))
    return _PowerLaw(float(solution[0]), exponents, node_nm)


def _scale(table_voltage: float, node_nm: float, target_nm: float, voltage_v: float | None) -> float:
    return energy_factor(node_nm, target_nm) * voltage_factor(voltage_v, table_voltage)


# ----- arithmetic -----------------------------------------------------------------------------------
def _op_x(op: str, bits: tuple[int, ...]) -> float:
    return float(math.prod(bits)) if op == "mult" else float(bits[0])


@lru_cache(maxsize=256)
def _arith_fit(table: EnergyTable, op: str, number_format: str) -> tuple[_PowerLaw, str]:
    rows = table.arithmetic_rows(op, number_format)
    if not rows:
        raise ConfigError(f"energy table {table.name}: no {number_format} {op} rows "
                          f"(rows: {', '.join(table.row_ids())})")
    xs = [(_op_x(op, (r.bits, r.bits)),) for r in rows]
    free = len({x for x in xs}) >= 2 and op in ("add", "mult")
    law = _fit(xs, [r.pj for r in rows], free=(free,), default=(1.0,), node_nm=rows[0].technology_nm)
    cited = "; ".join(sorted({r.source for r in rows}))
    label = ", ".join(r.row_id for r in rows)
    return law, f"{table.name}: power-law fit (exponent {law.exponents[0]:.2f}) over [{label}] ({cited})"


def _exact_arith(table: EnergyTable, op: str, number_format: str, bits: tuple[int, ...]) -> ArithmeticRow | None:
    if len(set(bits)) != 1:
        return None
    for row in table.arithmetic_rows(op, number_format):
        if row.bits == bits[0]:
            return row
    return None


@lru_cache(maxsize=4096)
def op_energy(table: EnergyTable, op: str, bits: tuple[int, ...], *, number_format: str = "int",
              target_nm: float, voltage_v: float | None = None) -> Quote:
    """Energy of one ``op`` (add: (bits,), mult: (b1, b2), xnor/popcount: (bits,)) at ``target_nm``."""
    row = _exact_arith(table, op, number_format, bits)
    if row is not None:
        factor = _scale(table.voltage_v, row.technology_nm, target_nm, voltage_v)
        return Quote(row.pj * factor, f"{table.name}:{row.row_id} ({row.source})")
    law, source = _arith_fit(table, op, number_format)
    factor = _scale(table.voltage_v, law.node_nm, target_nm, voltage_v)
    return Quote(law(_op_x(op, bits)) * factor, source)


def _accumulator_bits(table: EnergyTable, number_format: str, weight_bits: int, act_bits: int) -> int:
    bits = weight_bits + act_bits if table.mac_accumulator == "product" else max(weight_bits, act_bits)
    return min(bits, 32) if number_format == "fp" else bits


def _mac_model(table: EnergyTable, number_format: str, weight_bits: int, act_bits: int, *,
               target_nm: float, voltage_v: float | None) -> tuple[float, list[str]]:
    mult = op_energy(table, "mult", (weight_bits, act_bits), number_format=number_format,
                     target_nm=target_nm, voltage_v=voltage_v)
    add = op_energy(table, "add", (_accumulator_bits(table, number_format, weight_bits, act_bits),),
                    number_format=number_format, target_nm=target_nm, voltage_v=voltage_v)
    return mult.pj + add.pj, [f"mult: {mult.source}", f"add: {add.source}"]


@lru_cache(maxsize=4096)
def mac_energy(table: EnergyTable, weight_bits: int, act_bits: int, *, number_format: str = "int",
               target_nm: float, voltage_v: float | None = None) -> Quote:
    """Energy of one ``weight_bits x act_bits`` multiply-accumulate."""
    if weight_bits < 1 or act_bits < 1:
        raise ConfigError(f"MAC operand widths must be >= 1 bit, got {weight_bits}x{act_bits}")
    model, parts = _mac_model(table, number_format, weight_bits, act_bits, target_nm=target_nm, voltage_v=voltage_v)
    pinned = table.arithmetic_rows("mac", number_format)
    if not pinned:
        return Quote(model, f"{table.name}: {number_format} MAC {weight_bits}x{act_bits}b = " + " + ".join(parts))
    row = min(pinned, key=lambda r: abs(math.log2(r.bits) - 0.5 * math.log2(weight_bits * act_bits)))
    at_row, _ = _mac_model(table, number_format, row.bits, row.bits, target_nm=target_nm, voltage_v=voltage_v)
    factor = _scale(table.voltage_v, row.technology_nm, target_nm, voltage_v)
    exact = weight_bits == act_bits == row.bits
    how = "" if exact else f" x model({weight_bits}x{act_bits}b)/model({row.bits}x{row.bits}b)"
    return Quote(row.pj * factor * model / at_row, f"{table.name}:{row.row_id}{how} ({row.source})")


@lru_cache(maxsize=4096)
def binary_mac_energy(table: EnergyTable, *, target_nm: float, voltage_v: float | None = None) -> Quote:
    """One 1-bit XNOR-popcount MAC: an XNOR bit plus one popcount-tree bit."""
    xnor = op_energy(table, "xnor", (1,), target_nm=target_nm, voltage_v=voltage_v)
    popcount = op_energy(table, "popcount", (1,), target_nm=target_nm, voltage_v=voltage_v)
    return Quote(xnor.pj + popcount.pj, f"xnor: {xnor.source}; popcount: {popcount.source}")


@lru_cache(maxsize=4096)
def bitserial_step_energy(table: EnergyTable, parallel_bits: int, *, target_nm: float,
                          voltage_v: float | None = None) -> Quote:
    """One bit-serial step: 1 x ``parallel_bits`` AND row plus a (parallel_bits + 1)-bit shift-add."""
    mult = op_energy(table, "mult", (1, parallel_bits), target_nm=target_nm, voltage_v=voltage_v)
    add = op_energy(table, "add", (parallel_bits + 1,), target_nm=target_nm, voltage_v=voltage_v)
    return Quote(mult.pj + add.pj, f"bit-serial 1x{parallel_bits}b step: mult: {mult.source}; add: {add.source}")


# ----- storage --------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _storage_fit(table: EnergyTable, kind: str) -> tuple[_PowerLaw, float, str]:
    rows = table.storage_rows(kind)
    if not rows:
        raise ConfigError(f"energy table {table.name}: no {kind} rows (rows: {', '.join(table.row_ids())})")
    xs = [(r.size_bytes, float(r.width_bits)) for r in rows]
    per_bit = [r.read_pj / r.width_bits for r in rows]
    sizes, widths = {x[0] for x in xs}, {x[1] for x in xs}
    free = (len(sizes) >= 2, len(widths) >= 2 and len(rows) >= 4)
    law = _fit(xs, per_bit, free=free, default=(DEFAULT_CAPACITY_EXPONENT, 0.0), node_nm=rows[0].technology_nm)
    ratios = [r.write_pj / r.read_pj for r in rows if r.write_pj is not None and r.read_pj > 0]
    write_ratio = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else 1.0
    cited = "; ".join(sorted({r.source for r in rows}))
    label = ", ".join(r.row_id for r in rows)
    exps = f"capacity^{law.exponents[0]:.2f} width^{law.exponents[1]:.2f}"
    return law, write_ratio, f"{table.name}: {kind} fit pJ/bit ~ {exps} over [{label}] ({cited})"


def _exact_storage(table: EnergyTable, kind: str, size_bytes: float, width_bits: int) -> StorageRow | None:
    for row in table.storage_rows(kind):
        if row.size_bytes == size_bytes and row.width_bits == width_bits:
            return row
    return None


@lru_cache(maxsize=4096)
def storage_energy(table: EnergyTable, kind: str, *, size_bytes: float, width_bits: int, banks: int = 1,
                   target_nm: float, voltage_v: float | None = None) -> tuple[Quote, Quote]:
    """(read, write) pJ per ``width_bits`` vector access of a ``kind`` array of ``size_bytes``."""
    row = _exact_storage(table, kind, size_bytes, width_bits) if banks == 1 else None
    if row is not None:
        factor = _scale(table.voltage_v, row.technology_nm, target_nm, voltage_v)
        source = f"{table.name}:{row.row_id} ({row.source})"
        write = row.write_pj if row.write_pj is not None else row.read_pj
        return Quote(row.read_pj * factor, source), Quote(write * factor, source)
    law, write_ratio, source = _storage_fit(table, kind)
    factor = _scale(table.voltage_v, law.node_nm, target_nm, voltage_v)
    read = law(max(size_bytes / banks, 1.0), float(width_bits)) * width_bits * factor
    return Quote(read, source), Quote(read * write_ratio, source)


@lru_cache(maxsize=4096)
def leakage_pj_per_cycle(table: EnergyTable, kind: str, *, size_bytes: float, clock_hz: float,
                         target_nm: float, voltage_v: float | None = None) -> Quote:
    """Leakage energy per cycle of one ``kind`` array (leak power density x size / clock)."""
    row = table.constant(f"{kind}_leak_pw_per_byte")
    factor = _scale(table.voltage_v, row.technology_nm, target_nm, voltage_v)
    return Quote(size_bytes * row.value / clock_hz * factor,
                 f"{table.name}:{kind}_leak_pw_per_byte ({row.source})")


def dram_energy_per_bit(table: EnergyTable, dram_type: str | None) -> Quote:
    """DRAM pJ per bit by type (off-chip: no node or voltage scaling)."""
    row = table.dram_row(dram_type)
    return Quote(row.pj_per_bit, f"{table.name}:{row.row_id} ({row.source})")
