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
