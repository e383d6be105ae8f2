"""Numba kernels of the systolic engine (private; called with keywords from validating wrappers).

Dataflow codes: 0 = ws, 1 = os, 2 = is. ``sr``/``sc``/``t`` are the spatial-rows, spatial-cols and
temporal extents of one GEMM (see ``compat.py`` for the per-dataflow assignment).
"""

from __future__ import annotations

from hwsim._numba import njit

DATAFLOW_CODES = {"ws": 0, "os": 1, "is": 2}
EXACT_SUM_MAX_FOLDS = 1 << 20   # above this, fold means use the product formula (last-digit rounding)


@njit(cache=True)
def _compat_layer_kernel(sr, sc, t, rows, cols, df):
    """SCALE-Sim 3.0.0 closed forms for one layer.

    Returns (folds, cycles incl. the final -1, mapping efficiency, compute utilization,
    row-streamed SRAM reads, stationary SRAM accesses, column-side SRAM accesses).
    """
    row_folds = (sr + rows - 1) // rows
    col_folds = (sc + cols - 1) // cols
    folds = row_folds * col_folds
    if df == 1:
        per_fold = rows + cols + t - 2
        fold_len = t + rows + cols - 2
    else:
        per_fold = 2 * rows + cols + t - 2
        fold_len = 2 * rows + 2 * cols + t - 3
    cycles = folds * per_fold - 1
    if folds <= EXACT_SUM_MAX_FOLDS:
        # SCALE-Sim sums per-fold floats in fold order (cols outer); same order -> same rounding
        mapping_eff = 0.0
        compute_util = 0.0
        pe = rows * cols
        for fc in range(col_folds):
            uc = min(cols, sc - fc * cols)
            for fr in range(row_folds):
                used = min(rows, sr - fr * rows) * uc
                mapping_eff += used / pe
                compute_util += (used * t) / (pe * fold_len)
        mapping_eff /= folds
        compute_util /= folds
    else:
        mapping_eff = (sr * sc) / (folds * rows * cols)
        compute_util = mapping_eff * t / fold_len
    row_side = col_folds * sr * t
    stationary = sr * sc
    col_side = row_folds * sc * t
    return folds, cycles, mapping_eff, compute_util, row_side, stationary, col_side


@njit(cache=True)
def _fold_swap(total, prev_stream, stream, swap, overlap):
    """Exposed cycles of one stationary swap next to a neighbouring fold's stream."""
    if prev_stream < 0 or not overlap:
        return total + swap
    return total + max(0, swap - prev_stream)


@njit(cache=True)
def _fold_step(total, prev_stream, prev_swap, stream, swap, load_before, overlap):
    """``total`` after one more fold: its exposed stationary swap (load before / drain after) plus its stream."""
    if load_before:
        total = _fold_swap(total, prev_stream, stream, swap, overlap)
    elif prev_stream >= 0:
        total = _fold_swap(total, stream, stream, prev_swap, overlap)
    return total + stream


@njit(cache=True)
def _physical_cycles_kernel(sr, sc, t, rows, cols, groups, pack, load_before, overlap):
    """Cycles and folds of one layer on the physical model (unpadded partial folds).

    A fold using ``ur x uc`` PEs streams for ``t + ur + uc - 2`` cycles (skew fill + drain) and
    swaps its stationary tile in ``ur`` cycles: a load before it (ws/is) or an output drain after
    it (os). With ``overlap`` (double-buffered PE registers) a swap hides under the neighbouring
    fold's stream. ``pack`` > 1 places that many groups block-diagonally in one fold.
    Returns (cycles, folds).
    """
    total = 0
    folds = 0
    prev_stream = -1
    prev_swap = 0
    if pack > 1:
        passes = (groups + pack - 1) // pack
        for p in range(passes):
            g = min(pack, groups - p * pack)
            ur = g * sr
            uc = g * sc
            stream = t + ur + uc - 2
            total = _fold_step(total, prev_stream, prev_swap, stream, ur, load_before, overlap)
            prev_stream = stream
            prev_swap = ur
            folds += 1
    else:
        row_folds = (sr + rows - 1) // rows
        col_folds = (sc + cols - 1) // cols
        for _ in range(groups):
            for fc in range(col_folds):
                uc = min(cols, sc - fc * cols)
                for fr in range(row_folds):
                    ur = min(rows, sr - fr * rows)
                    stream = t + ur + uc - 2
                    total = _fold_step(total, prev_stream, prev_swap, stream, ur, load_before, overlap)
                    prev_stream = stream
                    prev_swap = ur
                    folds += 1
    if not load_before:
        total += prev_swap
    return total, folds
