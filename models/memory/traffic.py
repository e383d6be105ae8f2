"""Memory traffic and memory stalls of one layer on a three-tier engine (DRAM -> global buffer -> PE buffers).

Shared by the sparse, bit-serial and binary engines. Operands are counted in their stored (possibly
compressed) form, metadata as separate ``W_meta``/``I_meta`` rows with the ``metadata_read`` action.
How often weights and inputs cross DRAM comes from the on-chip capacity for each tensor
(``hwsim.models.memory.reuse``): once when they fit, again per tile of the other operand when they
do not, plus partial-sum round trips when a reduction must be split. The global buffer is filled
with what crosses DRAM and serves every activation delivery; the PE level serves the engine's
weight reads and accumulator updates. A level whose ``tensors`` excludes a tensor is bypassed for it.
Stalls: each level's read and write ports move that level's traffic (``bandwidth.transfer_cycles``);
the slowest level, less what compute hides under double buffering, adds to the compute cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.errors import ConfigError
from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec, MemoryLevel
from hwsim.models.counts import Access
from hwsim.models.memory.bandwidth import stall_cycles, transfer_cycles
from hwsim.models.memory.capacity import on_chip_capacity_bytes
from hwsim.models.memory.reuse import Fetches, gemm_fetches

_READS = {"read", "metadata_read"}


@dataclass(frozen=True)
class Operand:
    """Stored size of an operand: payload words of ``word_bits`` plus metadata words."""

    payload_words: float
    word_bits: int
    metadata_words: float = 0.0
    metadata_word_bits: int = 1

    @property
    def bytes(self) -> float:
        return (self.payload_words * self.word_bits + self.metadata_words * self.metadata_word_bits) / 8


@dataclass(frozen=True)
class Traffic:
    """A layer's access rows, its DRAM fetch plan, and the stall cycles its memory adds."""

    accesses: tuple[Access, ...]
    fetches: Fetches
    dram_bytes: float
    stall_cycles: int

    def details(self) -> tuple[tuple[str, float], ...]:
        return (("dram_bytes", self.dram_bytes), ("dram_weight_fetches", float(self.fetches.weights)),
                ("dram_input_fetches", float(self.fetches.inputs)), ("psum_spills", float(self.fetches.psum_spills)))


def _holds(level: MemoryLevel, tensor: str) -> bool:
    return tensor in level.tensors


def _pair(level: MemoryLevel, tensor: str, action: str, op: Operand, count_scale: float = 1.0,
          instances: int = 1) -> list[Access]:
    """A payload row and (when there is metadata) the matching metadata row."""
    meta_action = "metadata_read" if action == "read" else "metadata_write"
    rows = [Access(level=level.name, tensor=tensor, action=action, count=op.payload_words * count_scale / instances,
                   instances=instances, word_bits=op.word_bits)]
    if op.metadata_words:
        rows.append(Access(level=level.name, tensor=f"{tensor}_meta", action=meta_action,
                           count=op.metadata_words * count_scale / instances, instances=instances,
                           word_bits=op.metadata_word_bits))
    return rows


def dram_fetches(layer: Layer, arch: ArchSpec, weights: Operand, inputs: Operand) -> Fetches:
    """How often weights and inputs cross DRAM for ``layer`` on ``arch`` (``reuse.gemm_fetches``)."""
    w_cap, i_cap = on_chip_capacity_bytes(arch, "W"), on_chip_capacity_bytes(arch, "I")
    for tensor, cap in (("W", w_cap), ("I", i_cap)):
        if cap <= 0:
            raise ConfigError(f"{arch.name}: no on-chip memory level may hold {tensor} (add it to a level's tensors)")
    kred, ncols = layer.gemm_shape[2], layer.gemm_shape[3] * layer.gemm_shape[0]
    column = weights.bytes / max(ncols, 1)
    return gemm_fetches(w_bytes=weights.bytes, i_bytes=inputs.bytes, w_capacity=w_cap, i_capacity=i_cap,
                        w_column_bytes=column)


def layer_traffic(layer: Layer, arch: ArchSpec, *, weights: Operand, inputs: Operand, act_deliveries: float,
                  performed_macs: float, compute_cycles: int, pe_weight_reads: float | None = None,
                  pe_output_updates: float | None = None) -> Traffic:
    """DRAM, global-buffer and PE-level accesses for one MAC layer (counts per instance) and its stalls.

    PE-level weight reads and accumulator updates default to one per performed MAC; stationary
    dataflows pass their own (fewer) counts.
    """
    w_reads = performed_macs if pe_weight_reads is None else pe_weight_reads
    o_updates = performed_macs if pe_output_updates is None else pe_output_updates
    dram = arch.memory[0]
    glb = arch.memory[1] if len(arch.memory) > 1 else None
    pe = arch.memory[-1] if len(arch.memory) > 2 else None
    fetches = dram_fetches(layer, arch, weights, inputs)
    outputs = Operand(payload_words=float(layer.output_elems), word_bits=layer.out_bits)
    psums = Operand(payload_words=float(layer.output_elems), word_bits=layer.acc_bits)
    rows: list[Access] = []
    rows += _pair(dram, "W", "read", weights, fetches.weights) + _pair(dram, "I", "read", inputs, fetches.inputs)
    rows += _pair(dram, "O", "write", outputs)
    if fetches.psum_spills:
        rows += _pair(dram, "O", "write", psums, fetches.psum_spills) + _pair(dram, "O", "read", psums,
                                                                            fetches.psum_spills)
    if glb is not None:
        for tensor, op, times in (("W", weights, fetches.weights), ("I", inputs, fetches.inputs)):
            if _holds(glb, tensor):
                rows += _pair(glb, tensor, "write", op, times)
        if _holds(glb, "I") and inputs.payload_words:
            rows += _pair(glb, "I", "read", inputs, act_deliveries / inputs.payload_words)
        if _holds(glb, "O"):
            rows += _pair(glb, "O", "write", outputs)
    if pe is not None and performed_macs:
        scale = w_reads / weights.payload_words if weights.payload_words else 0.0
        if _holds(pe, "W"):
            rows += _pair(pe, "W", "read", weights, scale, instances=pe.instances)
        if _holds(pe, "O"):
            rows.append(Access(level=pe.name, tensor="O", action="update", count=o_updates / pe.instances,
                               instances=pe.instances, word_bits=layer.acc_bits))
    accesses = tuple(row for row in rows if row.count > 0)
    stalls = memory_stalls(arch, accesses, compute_cycles, prologue_bytes=min(weights.bytes,
                                                                              on_chip_capacity_bytes(arch, "W")))
    dram_bytes = sum(a.total * a.word_bits / 8 for a in accesses if a.level == dram.name)
    return Traffic(accesses=accesses, fetches=fetches, dram_bytes=dram_bytes, stall_cycles=stalls)


def memory_stalls(arch: ArchSpec, accesses: tuple[Access, ...], compute_cycles: int, *, prologue_bytes: float) -> int:
    """Stall cycles of the slowest level: its port time less what compute hides (DRAM pays the first tile)."""
    worst = 0
    for i, level in enumerate(arch.memory):
        reads = sum(a.count * a.word_bits / 8 for a in accesses if a.level == level.name and a.action in _READS)
        writes = sum(a.count * a.word_bits / 8 for a in accesses if a.level == level.name and a.action not in _READS)
        transfer = transfer_cycles(level, reads, writes)
        prologue = transfer_cycles(level, prologue_bytes, 0.0) if i == 0 else 0.0
        buffered = arch.memory[1].double_buffered if len(arch.memory) > 1 else True
        worst = max(worst, stall_cycles(transfer, prologue, compute_cycles, double_buffered=buffered))
    return worst
