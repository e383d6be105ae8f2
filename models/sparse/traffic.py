"""Memory traffic of one layer on a three-tier engine (DRAM -> global buffer -> PE buffers).

Shared by the sparse, bit-serial and binary engines. Weights and inputs cross DRAM once in their
stored (possibly compressed) form, metadata as separate ``W_meta``/``I_meta`` rows with the
``metadata_read`` action; the global buffer is filled once and serves every activation delivery;
the PE level serves one weight (plus its metadata) and one accumulator update per performed MAC.
A level whose ``tensors`` excludes a tensor is bypassed for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec, MemoryLevel
from hwsim.models.counts import Access


@dataclass(frozen=True)
class Operand:
    """Stored size of an operand: payload words of ``word_bits`` plus metadata words."""

    payload_words: float
    word_bits: int
    metadata_words: float = 0.0
    metadata_word_bits: int = 1


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


def layer_traffic(layer: Layer, arch: ArchSpec, *, weights: Operand, inputs: Operand, act_deliveries: float,
                  performed_macs: float, pe_weight_reads: float | None = None,
                  pe_output_updates: float | None = None) -> tuple[Access, ...]:
    """DRAM, global-buffer and PE-level accesses for one MAC layer (counts per instance).

    PE-level weight reads and accumulator updates default to one per performed MAC; stationary
    dataflows pass their own (fewer) counts.
    """
    w_reads = performed_macs if pe_weight_reads is None else pe_weight_reads
    o_updates = performed_macs if pe_output_updates is None else pe_output_updates
    dram = arch.memory[0]
    glb = arch.memory[1] if len(arch.memory) > 1 else None
    pe = arch.memory[-1] if len(arch.memory) > 2 else None
    outputs = Operand(payload_words=float(layer.output_elems), word_bits=layer.out_bits)
    rows: list[Access] = []
    rows += _pair(dram, "W", "read", weights) + _pair(dram, "I", "read", inputs)
    rows += _pair(dram, "O", "write", outputs)
    if glb is not None:
        for tensor, op in (("W", weights), ("I", inputs)):
            if _holds(glb, tensor):
                rows += _pair(glb, tensor, "write", op)
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
    return tuple(row for row in rows if row.count > 0)
