"""Cycles of the physical model's fold sequence in closed form (O(1) per layer, plain Python, no Numba).

The physical model (``physical.py``) runs ``groups`` GEMMs as a sequence of folds, row folds inner,
column folds outer, groups outermost (or, when ``pack`` > 1 groups share a fold block-diagonally, one
fold per pass of ``pack`` groups). A fold using ``ur x uc`` PEs streams ``t + ur + uc - 2`` cycles and
swaps its stationary tile in ``ur`` cycles: loaded before it (ws/is, ``load_before``) or drained after
it (os). With ``overlap`` (double-buffered PE registers) a swap hides under the neighbouring fold's
stream, so only ``max(0, swap - neighbour's stream)`` is exposed; without it every swap is exposed.

Folds come in at most four shapes (full or last row fold x full or last column fold) and consecutive
pairs in a handful of kinds, so the total is a sum over shape and pair counts instead of a loop over
folds. This used to be a Numba loop kernel; the closed form is exact (integers) and keeps Numba off the
default systolic path: a warm ``hwsim simulate graph.json`` otherwise spends ~0.5 s importing Numba and
initialising its CPU target to load one cached kernel. ``tests/test_systolic_folds.py`` checks it
against a plain fold-by-fold loop and the event schedule in ``tests/reference/systolic_ref.py``.
"""

from __future__ import annotations

Fold = tuple[int, int]                      # (used rows ur, used cols uc) of one fold
Runs = list[tuple[Fold, int]]               # (fold shape, how many); a shape may appear more than once
Steps = list[tuple[Fold, Fold, int]]        # (fold, the next fold, how many such consecutive pairs)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _unpacked_sequence(sr: int, sc: int, rows: int, cols: int, groups: int) -> tuple[Runs, Steps, Fold, Fold]:
    """Shape counts, consecutive-pair counts, first and last fold of ``groups`` GEMMs fold by fold."""
    row_folds, col_folds = _ceil_div(sr, rows), _ceil_div(sc, cols)
    last_rows, last_cols = sr - (row_folds - 1) * rows, sc - (col_folds - 1) * cols
    first_rows = rows if row_folds > 1 else last_rows
    first_cols = cols if col_folds > 1 else last_cols
    folds: Runs = []
    steps: Steps = []
    for uc, blocks in ((cols, groups * (col_folds - 1)), (last_cols, groups)):
        # ``blocks`` column blocks of this width, each its row folds in order
        folds += [((rows, uc), blocks * (row_folds - 1)), ((last_rows, uc), blocks)]
        if row_folds > 1:
            steps += [((rows, uc), (rows, uc), blocks * (row_folds - 2)), ((rows, uc), (last_rows, uc), blocks)]
    # block to block: one block's last row fold, then the next block's first row fold
    steps.append(((last_rows, last_cols), (first_rows, first_cols), groups - 1))          # group to group
    if col_folds > 1:
        steps += [((last_rows, cols), (first_rows, cols), groups * (col_folds - 2)),
                  ((last_rows, cols), (first_rows, last_cols), groups)]
    return folds, steps, (first_rows, first_cols), (last_rows, last_cols)


def _packed_sequence(sr: int, sc: int, groups: int, pack: int) -> tuple[Runs, Steps, Fold, Fold]:
    """The same for ``pack`` groups per fold: one fold per pass, the last pass possibly partial."""
    passes = _ceil_div(groups, pack)
    rest = groups - (passes - 1) * pack
    full, last = (pack * sr, pack * sc), (rest * sr, rest * sc)
    folds = [(full, passes - 1), (last, 1)]
    steps = [(full, full, passes - 2), (full, last, min(1, passes - 1))]
    return folds, steps, full if passes > 1 else last, last


def physical_cycles(sr: int, sc: int, t: int, rows: int, cols: int, groups: int, pack: int,
                    load_before: bool, overlap: bool) -> tuple[int, int]:
    """``(cycles, folds)`` of ``groups`` GEMMs (``sr x sc`` stationary, ``t`` streamed) on a ``rows x cols`` array."""
    if groups <= 0:
        return 0, 0
    if pack > 1:
        folds, steps, first, last = _packed_sequence(sr, sc, groups, pack)
    else:
        folds, steps, first, last = _unpacked_sequence(sr, sc, rows, cols, groups)
    count = total = swaps = 0
    for (ur, uc), n in folds:
        if n > 0:
            count += n
            total += n * (t + ur + uc - 2)
            swaps += n * ur
    if not overlap:
        return total + swaps, count
    total += first[0] if load_before else last[0]          # the first load / last drain is never hidden
    for before, after, n in steps:
        if n <= 0:
            continue
        if load_before:                                    # this fold's load under the previous stream
            total += n * max(0, after[0] - (t + before[0] + before[1] - 2))
        else:                                              # the previous drain under this stream
            total += n * max(0, before[0] - (t + after[0] + after[1] - 2))
    return total, count
