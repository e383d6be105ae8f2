"""How many bytes of one tensor a memory level (or the whole chip) can hold."""

from __future__ import annotations

import math

from hwsim.models.arch import ArchSpec, MemoryLevel


def partition_capacity_bytes(level: MemoryLevel, tensor: str) -> float:
    """Bytes one tensor may hold in one instance of ``level``.

    A per-tensor partition gives its own size; a shared buffer is split three ways (W, I, O); half of
    it when double-buffered (the other half fills while this one is used). DRAM is unbounded.
    """
    if level.kind == "dram":
        return math.inf
    if level.partition_bytes:
        size = level.partition_bytes.get(tensor, 0)
    elif tensor in level.tensors:
        size = (level.size_bytes or 0) / 3
    else:
        size = 0
    return size / 2 if level.double_buffered else size


def on_chip_capacity_bytes(arch: ArchSpec, tensor: str) -> float:
    """The most bytes of ``tensor`` any on-chip level holds at once (all its instances together).

    That level decides how often the tensor must come back from DRAM; 0 when no on-chip level may
    hold it (every use then streams from DRAM).
    """
    best = 0.0
    for level in arch.memory[1:]:
        if tensor in level.tensors:
            best = max(best, partition_capacity_bytes(level, tensor) * level.instances)
    return best
