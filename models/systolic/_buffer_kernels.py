"""Numba port of SCALE-Sim 3.0.0's memory system (behaviour, not code).

Demand rows are generated on the fly (one per simulated cycle, fold after fold, row folds inner);
each row's addresses go, left to right, through:

* CALC: the ifmap/filter *estimate* read buffers: distinct addresses are grouped in first-touch
  order into sets of ``floor(words / 100)``; an address seen in a set at or after the window start
  is a hit, otherwise it joins the current set (one DRAM read). When 50 new sets have filled, the
  window slides by 50 sets; the first batch is fetched at 10 words/cycle ending two cycles before
  the first request, later batches are spread over the cycles since the previous one. They never stall.
* USER: the prefetch read buffers: the operand's prefetch order is cut into sets of
  ``ceil(words / 100)``; a circular window of half the sets is resident; a miss slides it by the
  other half, fetching at the bank bandwidth, and stalls the row (``_user_row``). A demand row's
  addresses are words of one row or anti-diagonal of the prefetch matrix, so a row whose unit lies
  wholly in the window hits everywhere and is skipped in O(1) (``_unit_resident``; nearly all rows).
* the ofmap write buffer: words are packed into lines of ``drain bandwidth`` words; once more than
  half the buffer is used, the lines written so far (up to half a buffer) drain at one line per
  cycle; a write into a full buffer while a drain is running waits for the drain's end (a stall).

Speed (the work is O(demanded words), so the constant is everything): a row's addresses are affine
in the array column and are generated inside the buffer loops (no gather pass); whole rows and folds
are checked against the ifmap edge in O(1) so the common loop has no per-word bounds test; indices
are unsigned (no wraparound branch); each address mode is a literal at its call site so it compiles
to its own loop; ofmap rows cost O(1), and so do USER rows whose prefetch unit is resident; the
prefetch order is generated in the same affine pieces as demand rows; large arrays are allocated
untouched or int32, because page faults cost ~3-4 us each on the benchmark VM (measured).

Kernels: one dispatch per layer and mode. ``_calc_layer`` sets up the estimate buffers and runs
``_calc_rows``; ``_user_layer`` builds each operand's prefetch order and tables (``_prefetch_operand``,
called for both operands from one loop) and runs ``_user_rows``. The two row kernels walk the same
folds and rows with the same integer helpers (``_row_plan``, ``_read_span``, ``_row_affine``,
``_ofmap_words``) and the same write-buffer step (``_wb_write_row``); each holds only its own mode's
read path, so neither compiles the other's. Per-operand state travels as one tuple per operand (see
the note on records above ``_row_plan``).

Compile time (cold, empty Numba cache; ``benchmarks/bench_kernel_compile.py``): the split into one
kernel per mode, ``_user_row`` as an ordinary call (three literal-mode copies compiled apart rather
than inlined into ``_user_rows``; it only runs for rows whose prefetch unit is not resident), one
inlined copy where two call sites differed only in arguments, and run-time arguments where a literal
would compile a kernel once more (``_prefetch_kernel``, ``_fold_ifmap_inside``, ``_prefetch_layout``,
``_wb_flush``) cut the first USER call from 15.4 to 11.1 s CPU and the first CALC call from 9.6 to
5.6 s (``kernel_split_*`` in ``benchmarks/results/kernel_compile.json``, load ~1 on 2 cores). ``_rb_row`` stays inlined:
it runs for every demand row.

State vectors are int64 arrays indexed by the ``_RB_*`` / ``_WB_*`` / ``_UR_*`` constants below.
"""

from __future__ import annotations

import numpy as np
from hwsim._numba import njit, uint64

# layer shape vector
H, W, FR, FS, CH, NF, SH, SW, EH, EW = range(10)
# read-buffer state
_RB_NSET, _RB_CUR, _RB_FILL, _RB_START, _RB_END, _RB_FIRST_DONE, _RB_FIRST_REQ, _RB_SEEN = range(8)
_RB_LAST_START, _RB_LAST_END, _RB_ACCESS, _RB_DSTART, _RB_DEND, _RB_BW = range(8, 14)
# write-buffer state
_WB_TOTAL, _WB_DRAIN, _WB_BW, _WB_FREE, _WB_FILL, _WB_LINES, _WB_DLINE, _WB_DEND = range(8)
_WB_ACCESS, _WB_DSTART, _WB_DSTOP, _WB_HAS = range(8, 12)
# USER-mode read-buffer state
_UR_SETS, _UR_ACTIVE, _UR_PREFETCH, _UR_START, _UR_LAST, _UR_ACCESS, _UR_LINES, _UR_BW, _UR_DSTART = range(9)
_UR_PER_SET, _UR_SIZE = 9, 10
SETS_PER_HALF = 50
NEVER = -(1 << 62)
CALC_FILL_WORDS_PER_CYCLE = 10


def ifmap_tables(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel and per-window-index address parts: rows (base, y, x), so addr = base_p + base_k.

    Precomputed once per layer so the kernels do no integer division per demanded word. int32 (half
    the cache footprint of int64): ``buffers.py`` refuses larger layers.
    """
    return _ifmap_tables(shape)


@njit(cache=True)
def _ifmap_tables(shape):
    """The kernel behind ``ifmap_tables``."""
    ptab = np.empty((3, shape[EH] * shape[EW]), dtype=np.int32)
    ktab = np.empty((3, shape[FR] * shape[FS] * shape[CH]), dtype=np.int32)
    for p in range(ptab.shape[1]):
        py, px = p // shape[EW] * shape[SH], p % shape[EW] * shape[SW]
        ptab[0, p], ptab[1, p], ptab[2, p] = (py * shape[W] + px) * shape[CH], py, px
    for k in range(ktab.shape[1]):
        fy, fx, c = k // (shape[FS] * shape[CH]), k // shape[CH] % shape[FS], k % shape[CH]
        ktab[0, k], ktab[1, k], ktab[2, k] = (fy * shape[W] + fx) * shape[CH] + c, fy, fx
    return ptab, ktab


@njit(cache=True, inline="always")
def _ifmap_addr(shape, ptab, ktab, p, k):
    """NHWC address of ifmap element (ofmap pixel p, window index k); -1 past the ifmap edge."""
    if ptab[1, p] + ktab[1, k] >= shape[H] or ptab[2, p] + ktab[2, k] >= shape[W]:
        return -1
    return ptab[0, p] + ktab[0, k]


@njit(cache=True, inline="always")
def _address(shape, ptab, ktab, df, operand, idx, j, fr, fc, rows, cols):
    """Address demanded at data index ``idx`` (or tile row) and array column ``j`` of fold (fr, fc)."""
    window = shape[FR] * shape[FS] * shape[CH]
    if operand == 0:                                   # ifmap
        if df == 0:
            return _ifmap_addr(shape, ptab, ktab, idx, fr * rows + j)
        if df == 1:
            return _ifmap_addr(shape, ptab, ktab, fr * rows + j, idx)
        return _ifmap_addr(shape, ptab, ktab, fc * cols + j, fr * rows + idx)
    if operand == 1:                                   # filter: n * K + k
        if df == 0:
            return (fc * cols + j) * window + fr * rows + idx
        if df == 1:
            return (fc * cols + j) * window + idx
        return idx * window + fr * rows + j
    if df == 2:                                        # ofmap: p * N + n
        return (fc * cols + j) * shape[NF] + idx
    if df == 1:
        return (fr * rows + idx) * shape[NF] + fc * cols + j
    return idx * shape[NF] + fc * cols + j


@njit(cache=True, inline="always")
def _row_span(kind, r, pre, t, rows, used, ur):
    """Column range [lo, hi] of demand row ``r`` and the data index offset (idx = base - j)."""
    if kind == 0:                                      # skewed stream
        return max(0, r - pre - t + 1), min(used - 1, r - pre), r - pre
    if kind == 1:                                      # flipped stationary tile (no skew)
        if r < rows and rows - 1 - r < ur:
            return 0, used - 1, -1
        return 1, 0, -1
    lo = max(0, r - (t - 1) - (rows - 1))              # os ofmap: gap, flipped tile, skew
    hi = min(used - 1, r - (t - 1) - (rows - ur))
    return lo, hi, r - (t - 1)


@njit(cache=True)
def _rb_slide(state, cycle):
    """50 new sets have filled: count the batch fetch and slide the window by 50 sets."""
    if state[_RB_FIRST_DONE] == 0:
        end = state[_RB_FIRST_REQ] - 2
        need = -(-(SETS_PER_HALF * state[_RB_NSET]) // state[_RB_BW])
        state[_RB_DSTART] = end - need + 2
        state[_RB_DEND] = end + 1
        state[_RB_FIRST_DONE] = 1
        state[_RB_LAST_END] = end
    else:
        state[_RB_DEND] = state[_RB_LAST_END] + 1
    state[_RB_START] += SETS_PER_HALF
    state[_RB_END] += SETS_PER_HALF
    state[_RB_LAST_START] = state[_RB_LAST_END] + 1
    state[_RB_LAST_END] = cycle


# How ``_rb_row`` forms the address of array column j: affine (filter), or from the ifmap pixel/window
# tables, unchecked (the row lies inside the ifmap) or checked per word.
ADDR_AFFINE, ADDR_IFMAP, ADDR_IFMAP_CHECKED = range(3)


@njit(cache=True, inline="always")
def _column_address(how, ptab, ktab, height, width, a, b, c, d, j):
    """Address demanded at array column j of a row (see ``_rb_row``); -1 past the ifmap edge."""
    if how == ADDR_AFFINE:
        return a + b * j
    p, k = uint64(a + b * j), uint64(c + d * j)
    if how == ADDR_IFMAP_CHECKED and (ptab[1, p] + ktab[1, k] >= height or ptab[2, p] + ktab[2, k] >= width):
        return -1
    return ptab[0, p] + ktab[0, k]


@njit(cache=True, inline="always")
def _rb_row(state, latest, how, ptab, ktab, height, width, a, b, c, d, lo, hi, cycle):
    """Columns ``lo..hi`` of one demand row, left to right, through the estimate read buffer.

    Addresses are ``a + b*j`` (ADDR_AFFINE) or pixel ``a + b*j`` plus window index ``c + d*j``
    (ADDR_IFMAP*), generated here rather than gathered into a buffer first. Indices are cast to
    unsigned so Numba emits no negative-index wraparound branch (measured 5x on the address loop
    alone). ``how`` is a literal at every call site so each mode compiles to its own loop.
    Returns the number of valid addresses.
    """
    start = state[_RB_START]
    cur = state[_RB_CUR]
    fill = state[_RB_FILL]
    nset = state[_RB_NSET]
    misses = 0
    valid = 0
    for j in range(lo, hi + 1):
        addr = _column_address(how, ptab, ktab, height, width, a, b, c, d, j)
        if addr < 0:
            continue
        valid += 1
        if latest[uint64(addr)] >= start:          # in the window or already in the current set
            continue
        latest[uint64(addr)] = cur
        misses += 1
        fill += 1
        if fill == nset:
            fill = 0
            cur += 1
            if cur == state[_RB_END] + 1:
                _rb_mark_first_request(state, cycle)
                _rb_slide(state, cycle)
                start = state[_RB_START]
    if misses > 0:                                 # the first valid address ever is always a miss
        _rb_mark_first_request(state, cycle)
    state[_RB_CUR] = cur
    state[_RB_FILL] = fill
    state[_RB_ACCESS] += misses
    return valid


@njit(cache=True, inline="always")
def _rb_mark_first_request(state, cycle):
    """Record ``cycle`` as the buffer's first request (the first batch is fetched to end before it)."""
    if state[_RB_SEEN] == 0:
        state[_RB_SEEN] = 1
        state[_RB_FIRST_REQ] = cycle


@njit(cache=True)
def _rb_complete(state):
    """Fetch what is left at the end of the layer (sets the DRAM start/stop cycles)."""
    if state[_RB_FIRST_DONE] == 0:
        sets = state[_RB_CUR] + (1 if state[_RB_FILL] > 0 else 0)
        need = -(-(sets * state[_RB_NSET]) // state[_RB_BW])
        state[_RB_DSTART] = -need
        state[_RB_DEND] = -1
    else:
        state[_RB_DEND] = state[_RB_LAST_END] + 1


@njit(cache=True)
def _wb_drain(state, lines, start_cycle):
    """Drain up to half a buffer of written lines, one line per cycle; returns the last cycle.

    ``lines[i]`` is the word count of closed line i, written when it closes (the array is allocated
    untouched: page faults only for the lines used, a fraction 1/width of its size).
    """
    per_drain = -(-state[_WB_DRAIN] // state[_WB_BW])
    end_line = min(state[_WB_DLINE] + per_drain, state[_WB_LINES])
    count = end_line - state[_WB_DLINE]
    if count <= 0:
        return state[_WB_DEND]
    size = count * state[_WB_BW] - (state[_WB_BW] - lines[end_line - 1])
    state[_WB_ACCESS] += size
    if state[_WB_HAS] == 0:
        state[_WB_DSTART] = start_cycle
        state[_WB_HAS] = 1
    state[_WB_DSTOP] = max(state[_WB_DSTOP], start_cycle + count - 1)
    state[_WB_FREE] += size
    state[_WB_DLINE] = end_line
    return start_cycle + count - 1


@njit(cache=True, inline="always")
def _wb_write_row(state, lines, cycle, n):
    """``n`` words written to the ofmap buffer in a row at ``cycle``; returns the (stalled) cycle."""
    line = state[_WB_LINES]
    fill = state[_WB_FILL]
    free = state[_WB_FREE]
    width = state[_WB_BW]
    limit = state[_WB_TOTAL] - state[_WB_DRAIN]
    if (free - n >= limit) if cycle >= state[_WB_DEND] else (free - n > 0):
        # fast path: no drain starts and nothing waits in this row; the words fill whole lines
        fill += n
        while fill >= width:
            lines[uint64(line)] = width
            line += 1
            fill -= width
        state[_WB_LINES] = line
        state[_WB_FILL] = fill
        state[_WB_FREE] = free - n
        return cycle
    for _ in range(n):
        fill += 1
        free -= 1
        if fill == width:
            lines[uint64(line)] = width
            line += 1
            fill = 0
        if cycle < state[_WB_DEND]:
            if free <= 0:
                cycle = state[_WB_DEND]
        elif free < limit:
            if fill != 0:                          # close the open line early
                lines[uint64(line)] = fill
                line += 1
                fill = 0
            state[_WB_LINES] = line
            state[_WB_FILL] = fill
            state[_WB_FREE] = free
            state[_WB_DEND] = _wb_drain(state, lines, cycle)
            free = state[_WB_FREE]
    state[_WB_LINES] = line
    state[_WB_FILL] = fill
    state[_WB_FREE] = free
    return cycle


@njit(cache=True)
def _wb_flush(state, lines, cycle):
    """Drain everything left after the last demand row."""
    if state[_WB_FILL] != 0:
        lines[state[_WB_LINES]] = state[_WB_FILL]
        state[_WB_LINES] += 1
        state[_WB_FILL] = 0
    while state[_WB_DLINE] < state[_WB_LINES]:
        state[_WB_DEND] = _wb_drain(state, lines, cycle)
        cycle = state[_WB_DEND] + 1


# per dataflow and operand (ifmap, filter, ofmap): demand kind (0 skewed stream, 1 flipped tile,
# 2 os ofmap), prefix rows in units of (rows, 1): prefix = a * rows + b, and which used extent
# (0: used rows, 1: used cols) spans the array columns of the demand matrix
_KIND = np.array([[0, 1, 0], [0, 0, 2], [1, 0, 0]], dtype=np.int64)
_PRE_A = np.array([[1, 0, 2], [0, 0, 0], [0, 1, 2]], dtype=np.int64)
_PRE_B = np.array([[0, 0, -1], [0, 0, 0], [0, 0, -1]], dtype=np.int64)
_USED = np.array([[0, 1, 1], [0, 1, 1], [1, 0, 1]], dtype=np.int64)


@njit(cache=True, inline="always")
def _row_affine(df, operand, base, fr, fc, rows, cols, window):
    """Index forms of one demand row, affine in the array column j: ``(a, b, c, d)``.

    ifmap: ofmap pixel ``a + b*j`` and window index ``c + d*j``; filter: address ``a + b*j``.
    ``base`` is the row's data index offset (or its tile row for a flipped stationary tile).
    """
    if operand == 0:
        if df == 0:
            return base, -1, fr * rows, 1
        if df == 1:
            return fr * rows, 1, base, -1
        return fc * cols, 1, fr * rows + base, 0
    if df == 0:
        return fc * cols * window + fr * rows + base, window, 0, 0
    if df == 1:
        return fc * cols * window + base, window - 1, 0, 0
    return base * window + fr * rows, 1 - window, 0, 0


@njit(cache=True, inline="always")
def _max_mod(first, last, period):
    """max(i % period) over first <= i <= last."""
    if last - first + 1 >= period or first % period > last % period:
        return period - 1
    return last % period


@njit(cache=True, inline="always")
def _ranges_inside(shape, p_first, p_last, k_first, k_last):
    """Whether every (pixel, window index) of two contiguous ranges lies inside the ifmap.

    Pixel p sits at (p // E_w * s_h, p % E_w * s_w) and window index k at tap (k // C // S, k // C % S),
    so the largest row/column offsets over the ranges are closed forms.
    """
    tap_first, tap_last = k_first // shape[CH], k_last // shape[CH]
    bottom = (p_last // shape[EW]) * shape[SH] + tap_last // shape[FS]
    right = _max_mod(p_first, p_last, shape[EW]) * shape[SW] + _max_mod(tap_first, tap_last, shape[FS])
    return bottom < shape[H] and right < shape[W]


@njit(cache=True)
def _fold_ifmap_inside(shape, df, fr, fc, rows, cols, t, ur, uc):
    """Whether every ifmap element fold (fr, fc) demands lies inside the ifmap (so no per-word checks)."""
    if df == 0:
        p0, pn, k0, kn = 0, t, fr * rows, ur
    elif df == 1:
        p0, pn, k0, kn = fr * rows, ur, 0, t
    else:
        p0, pn, k0, kn = fc * cols, uc, fr * rows, ur
    return _ranges_inside(shape, p0, p0 + pn - 1, k0, k0 + kn - 1)


@njit(cache=True, inline="always")
def _row_ifmap_inside(shape, a, b, c, d, lo, hi):
    """Whether every ifmap element of one demand row (pixel a + b*j, window index c + d*j) is inside."""
    p_lo, p_hi, k_lo, k_hi = a + b * lo, a + b * hi, c + d * lo, c + d * hi
    return _ranges_inside(shape, min(p_lo, p_hi), max(p_lo, p_hi), min(k_lo, k_hi), max(k_lo, k_hi))


@njit(cache=True, inline="always")
def _row_has_ifmap_word(ptab, ktab, height, width, a, b, c, d, lo, hi):
    """1 if some column of a demand row (pixel a + b*j, window index c + d*j) lies inside the ifmap, else 0."""
    for j in range(lo, hi + 1):
        if _column_address(ADDR_IFMAP_CHECKED, ptab, ktab, height, width, a, b, c, d, j) >= 0:
            return 1
    return 0


# USER-mode tables. Each address's copies in the prefetch sequence form a chain of entries in
# sequence order, entry = (set id, next entry). The per-address row ``where[a] = (set of the
# current copy, next entry)``, 8 bytes so the table stays cache resident, caches the copy last found
# and the link to the one after it: the window walks the prefetch order, so a lookup is nearly
# always one of those two (no search), and the entry read to advance lies near the window.
# ``first[a]`` heads the chain (-1: the address is never prefetched).
NO_SET = (1 << 31) - 1      # "no copy": outside every window while there are < 2**30 sets


@njit(cache=True, inline="always")
def _in_window(set_id, start, active, num_sets):
    """``(set_id - start) mod num_sets < active`` without a modulo."""
    distance = set_id - start
    return 0 <= distance < active or distance + num_sets < active


@njit(cache=True, inline="always")
def _take_entry(where, entries, addr, e):
    """Make entry ``e`` (a copy of ``addr``) the current one."""
    where[addr, 0] = entries[e, 0]
    where[addr, 1] = entries[e, 1]


@njit(cache=True)
def _find_in_window(where, first, entries, addr, start, active, num_sets):
    """Whether any copy of ``addr`` lies in the window (walks its chain; the rare path)."""
    end = start + active
    wrapped = end > num_sets
    e = first[addr]
    if not wrapped and where[addr, 0] < start:
        e = where[addr, 1]                        # the chain is sorted: every copy up to the current one precedes the window
    while e >= 0:
        set_id = entries[e, 0]
        if _in_window(set_id, start, active, num_sets):
            _take_entry(where, entries, addr, e)
            return True
        if not wrapped and set_id >= end:
            return False
        e = entries[e, 1]
    return False


@njit(cache=True)
def _user_row(state, where, first, entries, how, ptab, ktab, height, width, a, b, c, d, lo, hi, cycle):
    """USER mode: columns ``lo..hi`` of one row (addresses as in ``_rb_row``) against the circular
    prefetch window; returns (offset, valid addresses).

    A miss slides the window by the prefetch half and fetches ``lines`` more lines after the last
    fetch; the row's offset grows by the potential stall, twice when positive (SCALE-Sim 3.0.0).
    The offset may go below 1 (negative potential stalls count too). The offset is ``NEVER`` when
    SCALE-Sim would never find an address (it loops forever). An ordinary call, one compile per
    literal ``how``: inlined thrice into ``_user_rows`` it cost ~1.2 s more cold compile (measured),
    for rows that are rare (only those whose prefetch unit is not resident).
    """
    offset = 1
    valid = 0
    num_sets, active, prefetch = state[_UR_SETS], state[_UR_ACTIVE], state[_UR_PREFETCH]
    lines, bw = state[_UR_LINES], state[_UR_BW]
    start, last_fetch, access = state[_UR_START], state[_UR_LAST], state[_UR_ACCESS]   # locals: no reloads
    for j in range(lo, hi + 1):
        column = _column_address(how, ptab, ktab, height, width, a, b, c, d, j)
        if column < 0:
            continue
        valid += 1
        addr = uint64(column)
        while True:
            if _in_window(where[addr, 0], start, active, num_sets):
                break
            following = where[addr, 1]
            if following >= 0 and _in_window(entries[following, 0], start, active, num_sets):
                _take_entry(where, entries, addr, following)
                break
            if first[addr] < 0 or prefetch == 0:
                offset = NEVER
                break
            if _find_in_window(where, first, entries, addr, start, active, num_sets):
                break
            start = (start + prefetch) % num_sets
            last_fetch += lines + 1
            access += lines * bw
            potential = last_fetch - (cycle + offset)
            offset += potential
            if potential > 0:
                offset += potential
        if offset == NEVER:
            break
    state[_UR_START], state[_UR_LAST], state[_UR_ACCESS] = start, last_fetch, access
    return offset, valid


@njit(cache=True, inline="always")
def _unit_base(df, operand, fr, fc, rows, cols, sr, sc, t):
    """Prefetch unit of fold (fr, fc)'s demand rows of one read operand, less the row's ``base``.

    Skewed stream: the rows of fold block B (t rows each) form anti-diagonal ``B*t + base``;
    stationary tile: row ``B*sr + fr*rows + base`` (its tile row). B is the block the operand's
    prefetch matrix stacks per fold (``_per_row_fold``).
    """
    block_rows, _, _, diagonal = _prefetch_layout(df, operand, rows, cols, sr, sc, t)
    block = fr if _per_row_fold(df, operand) else fc
    return block * block_rows + (0 if diagonal else fr * rows)


@njit(cache=True, inline="always")
def _unit_resident(state, unit_valid, u):
    """Whether every set holding a valid word of prefetch unit ``u`` (an anti-diagonal or row of the
    prefetch matrix; ``unit_valid`` is the prefix count of valid words per unit) lies in the window.

    A demand row's addresses are valid words of one unit (a skewed stream's row is an anti-diagonal
    of the prefetch matrix, a stationary tile's row a row of it), so then every lookup would hit.
    """
    first, last = unit_valid[u], unit_valid[u + 1] - 1
    if last < first:
        return False
    per_set, num_sets, active = state[_UR_PER_SET], state[_UR_SETS], state[_UR_ACTIVE]
    low = first // per_set
    distance = low - state[_UR_START]
    if distance < 0:
        distance += num_sets
    return distance + last // per_set - low < active or active == num_sets


@njit(cache=True)
def _user_tables_kernel(sequence, per_set, where, first, entries):
    """Fill the per-address rows ``where`` (space x 2), the chain heads ``first`` (space) and the
    entry chains ``entries`` (at least one row per valid word) of one operand in one pass over its
    prefetch sequence; returns the valid words. Any previous contents are overwritten.

    The sequence is -1 for padding; its i-th valid word belongs to set ``i // per_set``. Each new
    (address, set) copy becomes an entry linked after the address's previous one. While building,
    ``where`` holds (last set seen, last entry).
    """
    where[:] = -1
    first[:] = -1
    set_id, in_set, valid, copies = 0, 0, 0, 0
    for i in range(sequence.size):
        x = sequence[i]
        if x < 0:
            continue
        xu = uint64(x)
        if where[xu, 0] != set_id:
            where[xu, 0] = set_id
            entries[copies, 0], entries[copies, 1] = set_id, -1
            previous = where[xu, 1]
            if previous >= 0:
                entries[previous, 1] = copies
            else:
                first[xu] = copies
            where[xu, 1] = copies
            copies += 1
        valid += 1
        in_set += 1
        if in_set == per_set:
            in_set = 0
            set_id += 1
    for a in range(where.shape[0]):
        if first[a] >= 0:
            _take_entry(where, entries, a, first[a])
        else:
            where[a, 0], where[a, 1] = NO_SET, -1
    return valid


# The records the kernels take are plain tuples: the layer's ``tables`` (shape vector, ifmap pixel and
# window-index tables), its ``folding`` (integers: array rows, cols, dataflow code, temporal extent t,
# spatial extents sr and sc, demand rows per fold), and per operand its state: CALC (estimate-buffer
# vector ``_RB_*``, per-address latest set), USER (prefetch-window vector ``_UR_*``, ``where``,
# ``first``, ``entries`` of ``_user_tables_kernel``, valid words per prefetch unit of
# ``_prefetch_kernel``), the ofmap buffer (``_WB_*`` vector, line counts). Tuples compile to nothing
# (a field is a static index), unlike a jitclass or structref. Not NamedTuples: Numba's cache index
# pickles a NamedTuple signature by class name, so renaming one left an index that no longer loads
# (AttributeError on the first call, seen here). A record is unpacked once at the top of a kernel,
# never handed to an inlined helper in the row loop: every such hand-over increfs and decrefs each
# array in it (atomic; measured 1.7x slower rows), which Numba's reference-count pruning leaves in.
# For the same reason the row loops update ``windows`` and call array helpers only where needed.

# ``windows`` (7 cycles a row kernel records): first and last serviced cycle with a valid address of
# the ifmap (0, 1), filter (2, 3) and ofmap (4, 5), and the last ofmap cycle (6, the reported total)
WINDOW_OFMAP, WINDOW_TOTAL, WINDOWS = 4, 6, 7


@njit(cache=True)
def _row_plan(df, rows, t):
    """Per operand (ifmap, filter, ofmap) of dataflow ``df``: (demand kind, prefix rows, which used extent
    spans the array columns), from ``_KIND``, ``_PRE_*``, ``_USED``. Integers, not an array, so the
    inlined row helpers take it without reference counting."""
    pre = _PRE_A[df, 2] * rows + _PRE_B[df, 2]
    if df == 1:
        pre = t - 1                                    # os ofmap: drained after the t streamed rows
    return ((_KIND[df, 0], _PRE_A[df, 0] * rows + _PRE_B[df, 0], _USED[df, 0]),
            (_KIND[df, 1], _PRE_A[df, 1] * rows + _PRE_B[df, 1], _USED[df, 1]),
            (_KIND[df, 2], pre, _USED[df, 2]))


@njit(cache=True, inline="always")
def _span(plan, operand, r, t, rows, ur, uc):
    """``_row_span`` of demand row ``r`` of one operand in a fold using ``ur`` rows and ``uc`` columns."""
    kind, pre, used = plan[operand]
    return _row_span(kind, r, pre, t, rows, ur if used == 0 else uc, ur)


@njit(cache=True, inline="always")
def _read_span(plan, operand, r, t, rows, ur, uc):
    """``_span`` of a read operand's demand row, with ``base`` the tile row for a flipped stationary
    tile (constant along the row), as ``_row_affine`` takes it."""
    lo, hi, base = _span(plan, operand, r, t, rows, ur, uc)
    if plan[operand][0] == 1:
        base = rows - 1 - r
    return lo, hi, base


@njit(cache=True, inline="always")
def _ofmap_words(plan, r, t, rows, ur, uc):
    """Ofmap words demand row ``r`` writes (ofmap addresses are always valid: only the count matters)."""
    lo, hi, _ = _span(plan, 2, r, t, rows, ur, uc)
    return max(0, hi - lo + 1)


@njit(cache=True)
def _calc_rows(folding, tables, ifmap, filt, wb, windows):
    """CALC mode: every demand row (fold after fold, row folds inner) through the estimate read
    buffers ``ifmap``/``filt`` and the ofmap write buffer ``wb``, then the end-of-layer fetch and drain.
    ``windows`` receives the ``WINDOW_*`` cycles. Returns the stall cycles: the estimate buffers never
    stall, so these are ofmap writes waiting for a drain.
    """
    rows, cols, df, t, sr, sc, per_fold = folding
    shape, ptab, ktab = tables
    state_i, latest_i = ifmap
    state_f, latest_f = filt
    wb_state, lines = wb
    plan = _row_plan(df, rows, t)
    height, width, window = shape[H], shape[W], shape[FR] * shape[FS] * shape[CH]
    windows[:] = -1
    stalls = 0
    row = 0
    last_out = np.int64(0)                              # not a literal 0: one ``_wb_flush`` compile
    for fc in range((sc + cols - 1) // cols):
        uc = min(cols, sc - fc * cols)
        for fr in range((sr + rows - 1) // rows):
            ur = min(rows, sr - fr * rows)
            inside = _fold_ifmap_inside(shape, df, fr, fc, rows, cols, t, ur, uc)
            for r in range(per_fold):
                cycle = row + stalls
                for operand in range(2):
                    lo, hi, base = _read_span(plan, operand, r, t, rows, ur, uc)
                    if hi < lo:
                        continue
                    a, b, c, d = _row_affine(df, operand, base, fr, fc, rows, cols, window)
                    if operand == 1:                       # literal modes: each compiles to its own loop
                        _rb_row(state_f, latest_f, ADDR_AFFINE, ptab, ktab, height, width, a, b, c, d, lo, hi, cycle)
                    elif inside or _row_ifmap_inside(shape, a, b, c, d, lo, hi):
                        _rb_row(state_i, latest_i, ADDR_IFMAP, ptab, ktab, height, width, a, b, c, d, lo, hi, cycle)
                    elif _rb_row(state_i, latest_i, ADDR_IFMAP_CHECKED, ptab, ktab, height, width, a, b, c, d, lo,
                                 hi, cycle) == 0:
                        continue                           # the whole row lies past the ifmap edge
                    if windows[2 * operand] < 0:
                        windows[2 * operand] = cycle + 1
                    windows[2 * operand + 1] = cycle + 1
                n = _ofmap_words(plan, r, t, rows, ur, uc)
                last_out = cycle
                if n > 0:
                    last_out = _wb_write_row(wb_state, lines, cycle, n)
                    if windows[WINDOW_OFMAP] < 0:
                        windows[WINDOW_OFMAP] = last_out
                    windows[WINDOW_OFMAP + 1] = last_out
                windows[WINDOW_TOTAL] = max(windows[WINDOW_TOTAL], last_out)
                stalls += last_out - cycle
                row += 1
    _rb_complete(state_i)
    _rb_complete(state_f)
    _wb_flush(wb_state, lines, last_out)
    return stalls


@njit(cache=True)
def _user_rows(folding, tables, ifmap, filt, wb, windows):
    """USER mode: every demand row (as in ``_calc_rows``) through the prefetch windows ``ifmap``/``filt``
    and the ofmap write buffer ``wb``, then the final drain. A row stalls for its slowest read
    (``_user_row``'s offset) or its ofmap write, whichever is longer. ``windows`` as in ``_calc_rows``.
    Returns the stall cycles, or -1 if SCALE-Sim never finishes.
    """
    rows, cols, df, t, sr, sc, per_fold = folding
    shape, ptab, ktab = tables
    state_i, where_i, first_i, entries_i, units_i = ifmap
    state_f, where_f, first_f, entries_f, units_f = filt
    wb_state, lines = wb
    plan = _row_plan(df, rows, t)
    height, width, window = shape[H], shape[W], shape[FR] * shape[FS] * shape[CH]
    unit_base = np.zeros(2, dtype=np.int64)
    windows[:] = -1
    stalls = 0
    row = 0
    last_out = np.int64(0)                              # not a literal 0: one ``_wb_flush`` compile
    for fc in range((sc + cols - 1) // cols):
        uc = min(cols, sc - fc * cols)
        for fr in range((sr + rows - 1) // rows):
            ur = min(rows, sr - fr * rows)
            inside = _fold_ifmap_inside(shape, df, fr, fc, rows, cols, t, ur, uc)
            for operand in range(2):                       # a run-time operand: one ``_prefetch_layout`` compile
                unit_base[operand] = _unit_base(df, operand, fr, fc, rows, cols, sr, sc, t)
            for r in range(per_fold):
                cycle = row + stalls
                read_stall = 0
                for operand in range(2):
                    lo, hi, base = _read_span(plan, operand, r, t, rows, ur, uc)
                    if hi < lo:
                        continue
                    a, b, c, d = _row_affine(df, operand, base, fr, fc, rows, cols, window)
                    if operand == 1:
                        how = ADDR_AFFINE
                    elif inside or _row_ifmap_inside(shape, a, b, c, d, lo, hi):
                        how = ADDR_IFMAP
                    else:
                        how = ADDR_IFMAP_CHECKED
                    if _unit_resident(state_i if operand == 0 else state_f, units_i if operand == 0 else units_f,
                                      base + unit_base[operand]):
                        offset, n = 1, 1                   # every address hits: nothing changes
                        if how == ADDR_IFMAP_CHECKED:
                            n = _row_has_ifmap_word(ptab, ktab, height, width, a, b, c, d, lo, hi)
                    elif how == ADDR_IFMAP:                # literal modes: each compiles to its own loop
                        offset, n = _user_row(state_i, where_i, first_i, entries_i, ADDR_IFMAP, ptab, ktab, height,
                                              width, a, b, c, d, lo, hi, cycle)
                    elif how == ADDR_IFMAP_CHECKED:
                        offset, n = _user_row(state_i, where_i, first_i, entries_i, ADDR_IFMAP_CHECKED, ptab, ktab,
                                              height, width, a, b, c, d, lo, hi, cycle)
                    else:
                        offset, n = _user_row(state_f, where_f, first_f, entries_f, ADDR_AFFINE, ptab, ktab, height,
                                              width, a, b, c, d, lo, hi, cycle)
                    if offset == NEVER:
                        return -1
                    if n == 0:
                        continue                           # the whole row lies past the ifmap edge
                    read_stall = max(read_stall, offset - 1)
                    if windows[2 * operand] < 0:
                        windows[2 * operand] = cycle + offset
                    windows[2 * operand + 1] = cycle + offset
                n = _ofmap_words(plan, r, t, rows, ur, uc)
                last_out = cycle
                if n > 0:
                    last_out = _wb_write_row(wb_state, lines, cycle, n)
                    if windows[WINDOW_OFMAP] < 0:
                        windows[WINDOW_OFMAP] = last_out
                    windows[WINDOW_OFMAP + 1] = last_out
                windows[WINDOW_TOTAL] = max(windows[WINDOW_TOTAL], last_out)
                stalls += max(read_stall, last_out - cycle)
                row += 1
    _wb_flush(wb_state, lines, last_out)
    return stalls


@njit(cache=True)
def new_read_state(size_words, fill_words_per_cycle):
    """Initial estimate-read-buffer state for an SRAM of ``size_words``."""
    state = np.zeros(14, dtype=np.int64)
    state[_RB_NSET] = max(1, size_words // 100)
    state[_RB_END] = SETS_PER_HALF - 1
    state[_RB_LAST_START], state[_RB_LAST_END] = -2, -1
    state[_RB_BW] = fill_words_per_cycle
    return state


@njit(cache=True)
def new_write_state(size_words, drain_words_per_cycle):
    """Initial write-buffer state (half the buffer drains while the other half fills)."""
    state = np.zeros(12, dtype=np.int64)
    state[_WB_TOTAL] = size_words
    state[_WB_DRAIN] = size_words - -(-size_words // 2)
    state[_WB_BW] = drain_words_per_cycle
    state[_WB_FREE] = size_words
    return state


@njit(cache=True)
def _layer_shape(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h, stride_w, ofmap_h, ofmap_w):
    """The layer shape vector (indices ``H .. EW``) the kernels take."""
    shape = np.empty(10, dtype=np.int64)
    shape[H], shape[W], shape[FR], shape[FS], shape[CH] = ifmap_h, ifmap_w, filter_h, filter_w, channels
    shape[NF], shape[SH], shape[SW], shape[EH], shape[EW] = num_filters, stride_h, stride_w, ofmap_h, ofmap_w
    return shape


# the packed result of one layer (``_calc_layer``/``_user_layer``): stall cycles, the 7 ``windows``
# cycles, then (DRAM start, stop, count) of ifmap reads, filter reads, ofmap writes
RESULT_STALLS, RESULT_WINDOWS, RESULT_DRAM, RESULT_SIZE = 0, 1, 8, 17


@njit(cache=True)
def _pack_result(stalls, windows, ifmap_dram, filter_dram, wb):
    """The packed result; ``*_dram`` are the read operands' (DRAM start, stop, count)."""
    out = np.empty(RESULT_SIZE, dtype=np.int64)
    out[RESULT_STALLS] = stalls
    for i in range(WINDOWS):                              # a loop, not a slice copy: ~2 s less cold compile
        out[RESULT_WINDOWS + i] = windows[i]
    out[8], out[9], out[10] = ifmap_dram
    out[11], out[12], out[13] = filter_dram
    out[14], out[15], out[16] = wb[_WB_DSTART], wb[_WB_DSTOP], wb[_WB_ACCESS]
    return out


@njit(cache=True, inline="always")
def _calc_dram(state):
    """(DRAM start, stop, count) of an estimate read buffer."""
    return state[_RB_DSTART], state[_RB_DEND], state[_RB_ACCESS]


@njit(cache=True)
def _calc_layer(shape, rows, cols, df, t, sr, sc, per_fold, size_i, size_f, size_o, scratch, lines):
    """CALC mode end to end in one dispatch. ``scratch`` (int32, ifmap + filter words, any contents)
    holds the latest-set tables and ``lines`` the ofmap line counts, so both can be reused memory.
    Returns the packed result (``RESULT_*``).
    """
    ptab, ktab = _ifmap_tables(shape)
    ifmap_words = shape[H] * shape[W] * shape[CH]
    latest = scratch[:ifmap_words + shape[FR] * shape[FS] * shape[CH] * shape[NF]]
    latest[:] = -1
    state_i = new_read_state(size_i, CALC_FILL_WORDS_PER_CYCLE)
    state_f = new_read_state(size_f, CALC_FILL_WORDS_PER_CYCLE)
    wb = new_write_state(size_o, cols)
    windows = np.empty(WINDOWS, dtype=np.int64)
    stalls = _calc_rows((rows, cols, df, t, sr, sc, per_fold), (shape, ptab, ktab), (state_i, latest[:ifmap_words]),
                        (state_f, latest[ifmap_words:]), (wb, lines), windows)
    return _pack_result(stalls, windows, _calc_dram(state_i), _calc_dram(state_f), wb)


@njit(cache=True, inline="always")
def _per_row_fold(df, operand):
    """Whether the operand's prefetch matrix stacks one block per row fold (ws/os ifmap, is filter)
    rather than per column fold."""
    return (operand == 0) == (df != 2)


@njit(cache=True)
def _prefetch_layout(df, operand, rows, cols, sr, sc, t):
    """SCALE-Sim's prefetch matrix of one read operand: (block rows, total rows, width, anti-diagonal order).

    The matrix stacks one block per row fold (ws/os ifmap, is filter; ``rows`` wide) or per column
    fold (``cols`` wide). A streamed operand's block has ``t`` rows and is prefetched along
    anti-diagonals; the stationary one (ws filter, is ifmap) has ``sr`` rows, prefetched row by row.
    """
    if _per_row_fold(df, operand):
        blocks, width = (sr + rows - 1) // rows, rows
    else:
        blocks, width = (sc + cols - 1) // cols, cols
    stationary = (df == 0 and operand == 1) or (df == 2 and operand == 0)
    block_rows = sr if stationary else t
    return block_rows, blocks * block_rows, width, not stationary


@njit(cache=True)
def _user_read_state(state, size_words, bw, valid, sequence_words):
    """Set ``state`` (``_UR_*``, zeros) to the initial USER prefetch window of an SRAM of ``size_words``
    over ``valid`` prefetched words.

    Sets of ``ceil(size/100)`` words; half the buffer (rounded up) is the active window, the rest is
    refilled ``lines`` lines of ``bw`` words at a time; the first fill precedes cycle 0.
    """
    per_set = -(-size_words // 100)
    num_sets = valid // per_set + 1
    active_words = -(-size_words // 2)
    prefetch_words = size_words - active_words
    active = min(-(-active_words // per_set), num_sets)
    first_lines = min(-(-active_words // bw), -(-sequence_words // bw))
    state[_UR_SETS], state[_UR_ACTIVE], state[_UR_PER_SET] = num_sets, active, per_set
    state[_UR_PREFETCH] = min(-(-prefetch_words // per_set), num_sets - active)
    state[_UR_LAST], state[_UR_ACCESS] = -1, first_lines * bw
    state[_UR_LINES], state[_UR_BW], state[_UR_DSTART] = -(-prefetch_words // bw), bw, -first_lines


@njit(cache=True)
def _prefetch_operand(folding, tables, operand, size_words, bw, sequence, op):
    """Fill one read operand's USER state ``op``: its prefetch order (into ``sequence``), valid words
    per prefetch unit, address -> copies tables and initial window.

    Called with a run-time ``operand`` from a loop, so it and ``_prefetch_kernel`` compile once for
    both operands: inlining the prefetch kernel per operand cost ~17 s of cold compile, a literal
    operand one more compile of it each, for branches taken once per prefetch segment, not per word.
    """
    rows, cols, df, t, sr, sc, _ = folding
    shape, ptab, ktab = tables
    state, where, first, entries, units = op
    block_rows, total_rows, width, diagonal = _prefetch_layout(df, operand, rows, cols, sr, sc, t)
    seq = sequence[:total_rows * width]
    _prefetch_kernel(shape, ptab, ktab, df, operand, rows, cols, sr, sc, block_rows, total_rows, width, diagonal,
                     seq, units)
    valid = _user_tables_kernel(seq, -(-size_words // 100), where, first, entries)
    _user_read_state(state, size_words, bw, valid, seq.size)


@njit(cache=True)
def _user_scratch_words(shape, df, rows, cols, sr, sc, t):
    """(int32 scratch words ``_user_layer`` needs, words of the longer prefetch sequence, most units
    (rows or anti-diagonals) of a prefetch matrix plus one)."""
    sequence, units = 0, 0
    for operand in range(2):
        _, total_rows, width, _ = _prefetch_layout(df, operand, rows, cols, sr, sc, t)
        sequence, units = max(sequence, total_rows * width), max(units, total_rows + width)
    ifmap_words = shape[H] * shape[W] * shape[CH]
    filter_words = shape[FR] * shape[FS] * shape[CH] * shape[NF]
    return 5 * sequence + 3 * (ifmap_words + filter_words) + 2 * units, sequence, units


@njit(cache=True, inline="always")
def _carve_operand(scratch, space, entries, units):
    """One operand's USER state (zero window; ``where`` space x 2, ``first`` space, ``entries``
    entries x 2 and ``units`` units from the front of ``scratch``) and the rest of ``scratch``."""
    where, first = scratch[:2 * space].reshape((space, 2)), scratch[2 * space:3 * space]
    end = 3 * space + 2 * entries
    op = (np.zeros(_UR_SIZE, dtype=np.int64), where, first, scratch[3 * space:end].reshape((entries, 2)),
          scratch[end:end + units])
    return op, scratch[end + units:]


@njit(cache=True, inline="always")
def _user_dram(state):
    """(DRAM start, stop, count) of a USER prefetch window."""
    return state[_UR_DSTART], state[_UR_LAST], state[_UR_ACCESS]


@njit(cache=True)
def _user_layer(shape, rows, cols, df, t, sr, sc, per_fold, size_i, size_f, size_o, bw_i, bw_f, drain, scratch,
                lines):
    """USER mode end to end in one dispatch. ``scratch`` (int32, ``_user_scratch_words``, any contents)
    holds the prefetch sequence and both operands' tables; ``lines`` the ofmap line counts.
    Returns the packed result; stalls -1 = SCALE-Sim never finishes.
    """
    ptab, ktab = _ifmap_tables(shape)
    folding, tables = (rows, cols, df, t, sr, sc, per_fold), (shape, ptab, ktab)
    _, n, units = _user_scratch_words(shape, df, rows, cols, sr, sc, t)
    sequence = scratch[:n]
    ifmap, rest = _carve_operand(scratch[n:], shape[H] * shape[W] * shape[CH], n, units)
    filt, _ = _carve_operand(rest, shape[FR] * shape[FS] * shape[CH] * shape[NF], n, units)
    operands, sizes, bandwidths = (ifmap, filt), (size_i, size_f), (bw_i, bw_f)
    for operand in range(2):                              # a run-time operand (see ``_prefetch_operand``)
        _prefetch_operand(folding, tables, operand, sizes[operand], bandwidths[operand], sequence, operands[operand])
    wb = new_write_state(size_o, drain)
    windows = np.empty(WINDOWS, dtype=np.int64)
    stalls = _user_rows(folding, tables, ifmap, filt, (wb, lines), windows)
    return _pack_result(stalls, windows, _user_dram(ifmap[0]), _user_dram(filt[0]), wb)


@njit(cache=True, inline="always")
def _prefetch_words(how, ptab, ktab, height, width, a, b, c, d, lo, hi, out, idx):
    """Columns ``lo..hi`` of one prefetch segment (affine, as a demand row) into ``out[idx:]``;
    returns the valid words."""
    valid = 0
    for j in range(lo, hi + 1):
        word = _column_address(how, ptab, ktab, height, width, a, b, c, d, j)
        out[uint64(idx + j - lo)] = word
        valid += word >= 0
    return valid


@njit(cache=True, inline="always")
def _prefetch_segment(shape, ptab, ktab, df, operand, rows, cols, window, block, inside, base, lo, hi, end, out,
                      idx):
    """Columns ``lo..hi`` of one unit inside fold block ``block`` (row ``base - j`` of the block
    along an anti-diagonal, row ``base`` of a stationary block) into ``out[idx:]``; columns from
    ``end`` on are padding (past the operand's extent). Returns the valid words.

    The words are those of a demand row with the same ``base`` (``_row_affine``), so the address
    mode is picked as for demand rows: unchecked if the whole block (``inside``) or the segment
    lies inside the ifmap.
    """
    real = min(hi, end - 1)
    for j in range(max(lo, end), hi + 1):
        out[uint64(idx + j - lo)] = -1
    if real < lo:
        return 0
    fr, fc = block, 0
    if not _per_row_fold(df, operand):
        fr, fc = 0, block
    a, b, c, d = _row_affine(df, operand, base, fr, fc, rows, cols, window)   # one inlined copy
    height, width = shape[H], shape[W]
    if operand == 1:
        return _prefetch_words(ADDR_AFFINE, ptab, ktab, height, width, a, b, c, d, lo, real, out, idx)
    if inside or _row_ifmap_inside(shape, a, b, c, d, lo, real):
        return _prefetch_words(ADDR_IFMAP, ptab, ktab, height, width, a, b, c, d, lo, real, out, idx)
    return _prefetch_words(ADDR_IFMAP_CHECKED, ptab, ktab, height, width, a, b, c, d, lo, real, out, idx)


@njit(cache=True)
def _prefetch_kernel(shape, ptab, ktab, df, operand, rows, cols, sr, sc, block_rows, total_rows, width, diagonal,
                     out, unit_valid):
    """SCALE-Sim's prefetch order of one operand into ``out`` (``total_rows * width`` words): the
    stacked per-fold matrix row by row, or along its anti-diagonals bottom-left to top-right.
    ``unit_valid[u]`` receives the valid words before unit ``u`` (row or anti-diagonal), and one more.

    No matrix is built: a unit is cut where it crosses fold blocks, and each piece is affine in the
    column j like a demand row (``_prefetch_segment``).
    """
    window = shape[FR] * shape[FS] * shape[CH]
    per_row_fold = _per_row_fold(df, operand)
    extent = sr if per_row_fold else sc
    inside = np.zeros(total_rows // block_rows, dtype=np.bool_)       # block's ifmap words all inside
    for block in range(inside.size if operand == 0 else 0):
        used = min(width, extent - block * width)
        if per_row_fold:                                   # ws/os: a row fold streams t = block_rows rows
            fr, fc, ur, uc = block, 0, used, 0
        else:                                              # is: a column fold's stationary tile of sr rows
            fr, fc, ur, uc = 0, block, block_rows, used
        # one call with run-time arguments: literal zeros would compile the kernel once more per call site
        inside[block] = _fold_ifmap_inside(shape, df, fr, fc, rows, cols, block_rows, ur, uc)
    units = total_rows + width - 1 if diagonal else total_rows
    valid, idx = 0, 0
    for u in range(units):
        unit_valid[u] = valid
        if diagonal:
            row = min(u, total_rows - 1)
            lo, hi = u - row, min(u, width - 1)                # column j holds row u - j
            block = row // block_rows
        else:                                                  # one segment: row u % block_rows of its block
            lo, hi, block = 0, width - 1, u // block_rows
        while lo <= hi:                                        # one call site: one inlined copy of the segment
            base = u - block * block_rows                      # the block's row at column j is base - j
            top = min(hi, base) if diagonal else hi
            valid += _prefetch_segment(shape, ptab, ktab, df, operand, rows, cols, window, block, inside[block],
                                       base, lo, top, extent - block * width, out, idx)
            idx += top - lo + 1
            lo = top + 1
            block -= 1
    unit_valid[units] = valid
