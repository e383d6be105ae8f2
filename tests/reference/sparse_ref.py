"""Plain references for the sparse engine kernels (written differently from the Numba kernels)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


def column_pe_counts_ref(mask: np.ndarray, pes: int) -> np.ndarray:
    """Pad rows to a multiple of pes, fold the interleave into an axis, and sum."""
    rows, cols = mask.shape
    padded = np.zeros((-(-rows // pes) * pes, cols), dtype=np.int64)
    padded[:rows] = mask
    return padded.reshape(-1, pes, cols).sum(axis=0).T


def queue_cycles_ref(work: np.ndarray, queue_depth: int) -> int:
    """Cycle-stepped simulation: PEs pop their FIFOs, the broadcaster pushes one activation per
    cycle when every FIFO has room."""
    n_act, pes = work.shape
    if n_act == 0:
        return 0
    queues = [deque() for _ in range(pes)]
    busy_until = [0] * pes
    sent, t, last_bcast = 0, 0, -1

    def start_ready(now: int) -> None:
        for p in range(pes):
            while queues[p] and busy_until[p] <= now:
                busy_until[p] = now + int(work[queues[p].popleft(), p])

    while True:
        start_ready(t)
        if sent < n_act and all(len(q) < queue_depth for q in queues):
            for q in queues:
                q.append(sent)
            sent, last_bcast = sent + 1, t
            start_ready(t)
        if sent == n_act and not any(queues):
            return max(last_bcast + 1, max(busy_until))
        t += 1


def cartesian_cycles_ref(act_nnz: np.ndarray, w_nnz: np.ndarray, f_width: int, i_width: int) -> tuple[int, int]:
    """Vectorized: per group, the max over PEs of sum_c ceil(a/I) ceil(w/F)."""
    a_steps = -(-act_nnz // i_width)
    w_steps = -(-w_nnz // f_width)
    busy = a_steps @ w_steps                      # (pes, groups)
    cycles = int(busy.max(axis=0).sum()) if busy.size else 0
    products = int((act_nnz @ w_nnz).sum())
    return cycles, products


def row_rounds_cycles_ref(row_nnz: np.ndarray, pes: int, lanes: int) -> int:
    rounds = [row_nnz[i:i + pes] for i in range(0, len(row_nnz), pes)]
    return sum(max(math.ceil(n / lanes) for n in chunk) for chunk in rounds)


def rle_entries_ref(mask: np.ndarray, run_bits: int) -> int:
    """Split each row's bit string at the non-zeros; each run before a non-zero costs len // 2**b pads."""
    span = 2 ** run_bits
    total = 0
    for row in mask:
        text = "".join("1" if v else "0" for v in row)
        runs = text.split("1")[:-1]          # zero runs that end at a non-zero
        total += sum(1 + len(run) // span for run in runs)
    return total


def expected_max_ceil_ref(population: int, successes: int, draws: int, copies: int, lanes: int) -> float:
    """E[max of ``copies`` iid ceil(X/lanes)] from the full hypergeometric CDF (no truncation)."""
    from scipy.stats import hypergeom

    x = np.arange(draws + 1)
    cdf = hypergeom.cdf(x, population, successes, draws)
    return float((np.ceil(x / lanes) * np.diff(np.concatenate(([0.0], cdf ** copies)))).sum())
