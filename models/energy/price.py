"""``price()``: a pure pass from ``LayerCounts`` to an ``EnergyBreakdown`` (no engine re-run).

Accounting follows Timeloop/Accelergy: a storage access is charged per *vector* of the level's
``width_bits``, ``ceil(count / words_per_vector) x vector_energy(action) x instances``, separately for
each ``Access`` (level, tensor, action); leakage is ``cycles x leak_per_cycle x instances``; compute
is ``mac_ops x E_mac(bits)`` plus gated MACs at a fraction of that. Every figure is an ``EnergyItem``
naming the table row or fit (and its citation) it came from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from hwsim.models.arch import ArchSpec, MemoryLevel
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.energy import components as comp
from hwsim.models.energy.components import Quote
from hwsim.models.energy.scaling import energy_factor, voltage_factor
from hwsim.models.energy.tables import EnergyTable, load_table

_WRITE_ACTIONS = {"write", "metadata_write"}
_UPDATE_ACTIONS = {"update", "metadata_update"}


@dataclass(frozen=True)
class EnergyItem:
    """One priced row: ``count`` actions of ``component`` at ``pj_each`` = ``total_pj``, with its source."""

    component: str
    action: str
    count: float
    pj_each: float
    total_pj: float
    source: str
    tensor: str = ""


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one layer in pJ. ``by_level_pj`` includes each level's leakage (``leakage_pj`` in total)."""

    compute_pj: float
    by_level_pj: tuple[tuple[str, float], ...]
    by_tensor_pj: tuple[tuple[str, float], ...]
    by_action_pj: tuple[tuple[str, float], ...]
    leakage_pj: float
    items: tuple[EnergyItem, ...]
    vector_pj: float = 0.0

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.vector_pj + sum(pj for _, pj in self.by_level_pj)

    @property
    def storage_pj(self) -> float:
        return sum(pj for _, pj in self.by_level_pj)

    def level_pj(self, name: str) -> float:
        return dict(self.by_level_pj).get(name, 0.0)


@dataclass(frozen=True)
class _Context:
    table: EnergyTable
    arch: ArchSpec
    target_nm: float
    voltage_v: float | None


@dataclass(frozen=True)
class LevelCost:
    """pJ per vector action of one (level, tensor) and leak per cycle per instance."""

    read: Quote
    write: Quote
    update: Quote
    width_bits: int


def _pinned(ctx: _Context, pj: float) -> float:
    reference = ctx.arch.energy.reference_nm or ctx.arch.technology_nm
    return pj * energy_factor(reference, ctx.target_nm) * voltage_factor(ctx.voltage_v, ctx.table.voltage_v)


def _array_bytes(level: MemoryLevel, tensor: str) -> float:
    base = tensor.split("_")[0]
    if level.partition_bytes and base in level.partition_bytes:
        return float(level.partition_bytes[base])
    return float(level.capacity_bytes or 0)


def level_cost(ctx: _Context, level: MemoryLevel, tensor: str) -> LevelCost:
    """Vector-action energies of ``tensor`` at ``level`` (pinned override, DRAM per bit, or SRAM/RF model)."""
    width = level.width_bits or level.word_bits
    pinned = ctx.arch.energy.levels.get(level.name)
    if pinned is not None:
        source = f"arch {ctx.arch.name}: energy.levels.{level.name} ({pinned.source})"
        write = pinned.write_pj if pinned.write_pj is not None else pinned.read_pj
        update = pinned.update_pj if pinned.update_pj is not None else write
        return LevelCost(Quote(_pinned(ctx, pinned.read_pj), source), Quote(_pinned(ctx, write), source),
                         Quote(_pinned(ctx, update), source), width)
    if level.kind == "dram":
        per_bit = comp.dram_energy_per_bit(ctx.table, level.dram_type)
        quote = Quote(per_bit.pj * width, f"{width} b x {per_bit.pj:g} pJ/bit, {per_bit.source}")
        return LevelCost(quote, quote, quote, width)
    read, write = comp.storage_energy(ctx.table, level.kind, size_bytes=_array_bytes(level, tensor), width_bits=width,
                                      banks=level.banks, target_nm=ctx.target_nm, voltage_v=ctx.voltage_v)
    return LevelCost(read, write, write, width)


def level_leak(ctx: _Context, level: MemoryLevel) -> Quote:
    """Leakage pJ per cycle of one instance of ``level`` (0 for DRAM)."""
    pinned = ctx.arch.energy.levels.get(level.name)
    if pinned is not None:
        return Quote(_pinned(ctx, pinned.leak_pj_per_cycle), f"arch {ctx.arch.name}: energy.levels.{level.name}")
    if level.kind == "dram":
        return Quote(0.0, "DRAM leakage/refresh not modelled (off-chip)")
    sizes = list(level.partition_bytes.values()) if level.partition_bytes else [level.capacity_bytes or 0]
    quotes = [comp.leakage_pj_per_cycle(ctx.table, level.kind, size_bytes=size, clock_hz=ctx.arch.clock_hz,
                                        target_nm=ctx.target_nm, voltage_v=ctx.voltage_v) for size in sizes]
    return Quote(sum(q.pj for q in quotes), quotes[0].source)


def vector_actions(count: float, *, word_bits: int, width_bits: int) -> int:
    """Vector accesses needed for ``count`` words of ``word_bits`` on a ``width_bits``-wide port."""
    if count <= 0:
        return 0
    if word_bits <= width_bits:
        return math.ceil(count / (width_bits // word_bits) - 1e-9)
    return math.ceil(count - 1e-9) * math.ceil(word_bits / width_bits)


def _storage_items(ctx: _Context, accesses: Iterable[Access]) -> list[EnergyItem]:
    items, costs = [], {}
    for access in accesses:
        key = (access.level, access.tensor)
        if key not in costs:
            costs[key] = level_cost(ctx, ctx.arch.level(access.level), access.tensor)
        cost = costs[key]
        quote = (cost.write if access.action in _WRITE_ACTIONS else
                 cost.update if access.action in _UPDATE_ACTIONS else cost.read)
        vectors = vector_actions(access.count, word_bits=access.word_bits, width_bits=cost.width_bits)
        count = vectors * access.instances
        items.append(EnergyItem(access.level, access.action, count, quote.pj, count * quote.pj, quote.source,
                                access.tensor))
    return items


def _mac_quote(ctx: _Context, counts: LayerCounts) -> Quote:
    table, nm, volt = ctx.table, ctx.target_nm, ctx.voltage_v
    if counts.mac_kind == "xnor":
        return comp.binary_mac_energy(table, target_nm=nm, voltage_v=volt)
    if counts.mac_kind == "bitserial":
        parallel = int(counts.detail("bitserial_parallel_bits", counts.weight_bits))
        return comp.bitserial_step_energy(table, parallel, target_nm=nm, voltage_v=volt)
    fmt = mac_format(ctx.arch)
    model = comp.mac_energy(table, counts.weight_bits, counts.act_bits, number_format=fmt, target_nm=nm, voltage_v=volt)
    model = _gated(ctx, counts, model, fmt)
    spec = ctx.arch.energy
    if spec.mac_pj is None:
        return model
    native = comp.mac_energy(table, ctx.arch.compute.weight_bits, ctx.arch.compute.act_bits, number_format=fmt,
                             target_nm=nm, voltage_v=volt)
    ratio = model.pj / native.pj if native.pj > 0 else 1.0
    note = "" if abs(ratio - 1.0) < 1e-12 else f" x {ratio:.4f} (bit-width ratio from {table.name})"
    return Quote(_pinned(ctx, spec.mac_pj) * ratio, f"arch {ctx.arch.name}: energy.mac_pj{note} ({spec.mac_source})")


FLEX_EXPONENT_BITS = 5   # flex16+5: the paper's 5-bit shared exponent (Köster et al. NIPS 2017)


def mac_format(arch: ArchSpec) -> str:
    """The energy-table MAC family of the hardware's datapath (``compute.number_format``), whatever the
    layer's format: ``flex`` (Flexpoint, Köster et al. NIPS 2017) multiplies 16-bit integer mantissas."""
    return "fp" if arch.compute.number_format == "fp" else "int"


def _gated(ctx: _Context, counts: LayerCounts, native: Quote, fmt: str) -> Quote:
    """Operand gating (``compute.precision: gated``): save ``gated_saving`` of the gap to a narrower MAC."""
    compute = ctx.arch.compute
    w, a = counts.detail("layer_weight_bits"), counts.detail("layer_act_bits")
    if compute.precision != "gated" or w is None or (w >= counts.weight_bits and a >= counts.act_bits):
        return native
    narrow = comp.mac_energy(ctx.table, int(min(w, counts.weight_bits)), int(min(a, counts.act_bits)),
                             number_format=fmt, target_nm=ctx.target_nm, voltage_v=ctx.voltage_v)
    saved = compute.gated_saving * max(0.0, native.pj - narrow.pj)
    return Quote(native.pj - saved, f"{native.source}; operand gating saves {compute.gated_saving:g} of the gap to "
                                    f"{int(w)}x{int(a)}b ({ctx.arch.name}: compute.gated_saving)")


def _compute_items(ctx: _Context, counts: LayerCounts) -> list[EnergyItem]:
    items = []
    if counts.mac_ops > 0 or counts.gated_mac_ops > 0:
        mac = _mac_quote(ctx, counts)
        items.append(EnergyItem("mac", "compute", counts.mac_ops, mac.pj, counts.mac_ops * mac.pj, mac.source))
        if counts.gated_mac_ops > 0:
            frac = ctx.table.constant("gated_mac_fraction")
            each = mac.pj * frac.value
            items.append(EnergyItem("mac", "gated", counts.gated_mac_ops, each, counts.gated_mac_ops * each,
                                    f"{ctx.table.name}:gated_mac_fraction={frac.value:g} ({frac.source})"))
    if counts.mac_ops > 0 and ctx.arch.compute.number_format == "flex":
        # Flexpoint (Köster et al. NIPS 2017): mantissas multiply as integers; the shared exponents of the
        # two operand tensors are added once per tensor product (one exponent add per layer)
        exp = comp.op_energy(ctx.table, "add", (FLEX_EXPONENT_BITS,), target_nm=ctx.target_nm, voltage_v=ctx.voltage_v)
        items.append(EnergyItem("mac", "exponent", 1.0, exp.pj, exp.pj,
                                f"flex shared-exponent add, {FLEX_EXPONENT_BITS} b: {exp.source}"))
    if counts.vector_ops > 0:
        add = comp.op_energy(ctx.table, "add", (max(counts.act_bits, 1),), target_nm=ctx.target_nm,
                             voltage_v=ctx.voltage_v)
        items.append(EnergyItem("vector", "compute", counts.vector_ops, add.pj, counts.vector_ops * add.pj,
                                f"one {counts.act_bits}-bit add per vector op: {add.source}"))
    return items


def _leak_items(ctx: _Context, cycles: int) -> list[EnergyItem]:
    items = []
    for level in ctx.arch.memory:
        leak = level_leak(ctx, level)
        if leak.pj > 0 and cycles > 0:
            count = float(cycles * level.instances)
            items.append(EnergyItem(level.name, "leak", count, leak.pj, count * leak.pj, leak.source))
    return items


def _totals(pairs: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    acc: dict[str, float] = defaultdict(float)
    for key, value in pairs:
        acc[key] += value
    return tuple(acc.items())


def breakdown_from_items(items: Iterable[EnergyItem]) -> EnergyBreakdown:
    """Aggregate priced rows into an ``EnergyBreakdown``."""
    items = tuple(items)
    storage = [i for i in items if i.component not in ("mac", "vector")]
    dynamic = [i for i in storage if i.action != "leak"]
    return EnergyBreakdown(
        compute_pj=sum(i.total_pj for i in items if i.component == "mac"),
        vector_pj=sum(i.total_pj for i in items if i.component == "vector"),
        by_level_pj=_totals((i.component, i.total_pj) for i in storage),
        by_tensor_pj=_totals((i.tensor, i.total_pj) for i in dynamic),
        by_action_pj=_totals((i.action, i.total_pj) for i in items),
        leakage_pj=sum(i.total_pj for i in storage if i.action == "leak"),
        items=items,
    )


def price(counts: LayerCounts, arch: ArchSpec, *, cycles: int | None = None, table: EnergyTable | None = None,
          technology_nm: float | None = None, voltage_v: float | None = None) -> EnergyBreakdown:
    """Energy (pJ) of ``counts`` on ``arch``: storage per vector action, MACs by bit width, leakage.

    Parameters
    ----------
    counts : the engine's counts for one layer (never re-run here).
    arch : the architecture the counts were produced on (levels, widths, sizes, clock).
    cycles : cycles charged for leakage; default ``counts.cycles``.
    table : an ``EnergyTable``; default ``load_table(arch.energy.table)``.
    technology_nm, voltage_v : re-price at another node / supply voltage (default: the arch's).
    """
    ctx = _Context(table=table or load_table(arch.energy.table), arch=arch,
                   target_nm=technology_nm or arch.technology_nm,
                   voltage_v=voltage_v if voltage_v is not None else arch.energy.voltage_v)
    run_cycles = counts.cycles if cycles is None else cycles
    items = _storage_items(ctx, counts.accesses) + _compute_items(ctx, counts) + _leak_items(ctx, run_cycles)
    return breakdown_from_items(items)


def sum_breakdowns(breakdowns: Iterable[EnergyBreakdown]) -> EnergyBreakdown:
    """Network total of several layers' breakdowns (items concatenated)."""
    return breakdown_from_items(item for b in breakdowns for item in b.items)
