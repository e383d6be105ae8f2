"""Numba kernels of the sparse engine: per-PE work counting and synchronization.

Plain arithmetic on arrays only; the validating wrappers live in ``partition.py``.
References (written differently) are in ``tests/reference/sparse_ref.py``.
"""

from __future__ import annotations

import numpy as np
from hwsim._numba import njit


@njit(cache=True)
def _column_pe_counts_kernel(mask, pes):
    """counts[j, p]: nonzeros of column j among the rows r with r % pes == p."""
    rows, cols = mask.shape
    counts = np.zeros((cols, pes), dtype=np.int64)
    for r in range(rows):
        p = r % pes
        for j in range(cols):
            if mask[r, j]:
                counts[j, p] += 1
    return counts


@njit(cache=True)
def _queue_cycles_kernel(work, queue_depth):
    """Cycles to stream ``work[j, p]`` (cycles of activation j on PE p) through per-PE FIFOs.

    One activation is broadcast per cycle at most, and only when every PE's FIFO of depth
    ``queue_depth`` has room (activation j - depth has started everywhere).
    """
    n_act, pes = work.shape
    if n_act == 0:
        return 0
    finish = np.zeros(pes, dtype=np.int64)
    starts = np.zeros((n_act, pes), dtype=np.int64)
    bcast = -1
    for j in range(n_act):
        t = bcast + 1
        if j >= queue_depth:
            for p in range(pes):
                if starts[j - queue_depth, p] > t:
                    t = starts[j - queue_depth, p]
        bcast = t
        for p in range(pes):
            s = finish[p] if finish[p] > t else t
            starts[j, p] = s
            finish[p] = s + work[j, p]
    end = bcast + 1
    for p in range(pes):
        if finish[p] > end:
            end = finish[p]
    return end


@njit(cache=True)
def _cartesian_cycles_kernel(act_nnz, w_nnz, f_width, i_width):
    """SCNN PT-IS-CP: per output-channel group, the slowest PE's sum over channels of
    ceil(a/I) * ceil(w/F); returns (cycles, products)."""
    pes, chans = act_nnz.shape
    groups = w_nnz.shape[1]
    cycles = 0
    products = 0
    for g in range(groups):
        worst = 0
        for p in range(pes):
            busy = 0
            for c in range(chans):
                a = act_nnz[p, c]
                w = w_nnz[c, g]
                busy += ((a + i_width - 1) // i_width) * ((w + f_width - 1) // f_width)
                products += a * w
            if busy > worst:
                worst = busy
        cycles += worst
    return cycles, products


@njit(cache=True)
def _row_rounds_cycles_kernel(row_nnz, pes, lanes):
    """Rows dealt round-robin, one per PE per round; a round lasts ceil(nnz/lanes) of its longest row."""
    rows = row_nnz.shape[0]
    cycles = 0
    for start in range(0, rows, pes):
        worst = 0
        for r in range(start, min(start + pes, rows)):
            c = (row_nnz[r] + lanes - 1) // lanes
            if c > worst:
                worst = c
        cycles += worst
    return cycles


@njit(cache=True)
def _rle_entries_kernel(mask, max_run):
    """Stored entries of each row in run-length form: nonzeros plus the explicit zeros that a
    run longer than ``max_run`` needs before the next nonzero (EIE: 4-bit index, a zero every 16)."""
    rows, cols = mask.shape
    entries = 0
    for r in range(rows):
        run = 0
        for j in range(cols):
            if mask[r, j]:
                entries += 1 + run // (max_run + 1)
                run = 0
            else:
                run += 1
    return entries
