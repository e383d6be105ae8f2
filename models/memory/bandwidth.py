"""Cycles a memory level needs to move its traffic, and the stalls that adds to compute."""

from __future__ import annotations

import math

from hwsim.models.arch import MemoryLevel


def transfer_cycles(level: MemoryLevel, read_bytes: float, write_bytes: float) -> float:
    """Cycles to read ``read_bytes`` and write ``write_bytes`` through ``level``'s ports (per instance).

    With a declared write bandwidth the two directions use separate ports and overlap; without one
    the writes share the read port. No declared read bandwidth: unlimited (0 cycles).
    """
    read_bw, write_bw = level.read_bw_bytes_per_cycle, level.write_bw_bytes_per_cycle
    if write_bw:
        reads = read_bytes / read_bw if read_bw else 0.0
        return max(reads, write_bytes / write_bw)
    if not read_bw:
        return 0.0
    return (read_bytes + write_bytes) / read_bw


def stall_cycles(transfer: float, prologue: float, compute_cycles: int, *, double_buffered: bool) -> int:
    """Cycles the datapath waits: the exposed first-tile ``prologue`` plus whatever transfer compute cannot hide.

    ``transfer`` and ``prologue`` are cycles of the same port. Without double buffering nothing overlaps.
    """
    if transfer <= 0:
        return 0
    if not double_buffered:
        return math.ceil(transfer - 1e-9)
    first = math.ceil(prologue - 1e-9)
    rest = math.ceil(max(0.0, transfer - prologue) - 1e-9)
    return first + max(0, rest - compute_cycles)
