"""SCALE-Sim 3.0.0 memory-system port: DRAM counts, DRAM start/stop cycles and stalls of one layer.

The behaviour (described in ``_buffer_kernels.py``) is simulated per demand row in Numba: the cost
is O(demanded words), ~2-3 ns per word in CALC and ~10 ns in USER, three orders of magnitude below
SCALE-Sim's Python loop (``benchmarks/bench_systolic_vs_scalesim.py``).
Ported: CALC mode (estimate read buffers + ofmap write buffer) and USER mode (prefetch-order
read buffers over a circular window, double-counted potential stalls, ofmap drain at Bandwidth[0]).
"""

from __future__ import annotations

import threading

import numpy as np

from hwsim.errors import UnsupportedOpError
from hwsim.models.arch import ArchSpec
from hwsim.models.systolic import _buffer_kernels as bk
from hwsim.models.systolic._kernels import DATAFLOW_CODES
from hwsim.models.systolic.compat import ScaleSimLayer, compat_compute
from hwsim.models.systolic.compat_engine import CompatReport, _percent


def _shape_vector(layer: ScaleSimLayer) -> np.ndarray:
    return np.array([layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels,
                     layer.num_filters, layer.stride_h, layer.stride_w, layer.ofmap_h, layer.ofmap_w],
                    dtype=np.int64)


MAX_PREFETCH_WORDS = 1 << 30       # int32 tables; SCALE-Sim itself would need days for such a layer
SCRATCH_MAX_BYTES = 256 << 20      # scratch buffers up to this size are kept for the next layer
_SCRATCH = threading.local()


def _scratch(key: str, size: int, dtype=np.int32) -> np.ndarray:
    """A reusable flat array of ``size`` elements (contents undefined), one pool per thread.

    A fresh large array costs a page fault per 4 kB on first touch (~3-4 us each on the benchmark VM,
    a third of a ResNet layer's USER-mode run); kept buffers make that a one-off per process.
    """
    pool = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = {}
    array = pool.get(key)
    if array is None or array.size < size or array.dtype != dtype:
        array = np.empty(max(size, 1), dtype=dtype)
        if array.nbytes <= SCRATCH_MAX_BYTES:
            pool[key] = array
    return array[:size]

# (df, operand) -> prefetch matrix blocks: (blocks over row folds?, block rows, width, anti-diagonal?)
_PREFETCH = {("ws", 0): ("row", "t", "rows", True), ("ws", 1): ("col", "sr", "cols", False),
             ("os", 0): ("row", "t", "rows", True), ("os", 1): ("col", "t", "cols", True),
             ("is", 0): ("col", "sr", "cols", False), ("is", 1): ("row", "t", "rows", True)}


def _user_state(layer: ScaleSimLayer, operand: int, *, rows: int, cols: int, dataflow: str, size_words: int,
                bw: int, tables: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """USER-mode prefetch window state and the address -> copies tables of one operand."""
    sr, sc, t = layer.spatial_dims(dataflow)
    blocks, block_rows, width, diagonal = _PREFETCH[(dataflow, operand)]
    extents = {"t": t, "sr": sr, "rows": rows, "cols": cols,
               "row": -(-sr // rows), "col": -(-sc // cols)}
    block_rows, width = extents[block_rows], extents[width]
    total_rows = extents[blocks] * block_rows
    space = layer.ifmap_h * layer.ifmap_w * layer.channels if operand == 0 else layer.window * layer.num_filters
    if max(total_rows * width, space) >= MAX_PREFETCH_WORDS:
        raise UnsupportedOpError(f"layer {layer.name!r}: the USER-mode prefetch sequence ({total_rows * width} words) or "
                                 f"operand ({space} words) exceeds {MAX_PREFETCH_WORDS}; use the CALC interface or the "
                                 "closed forms")
    seq = _scratch("sequence", total_rows * width)
    bk._prefetch_kernel(shape=tables[0], ptab=tables[1], ktab=tables[2], df=DATAFLOW_CODES[dataflow],
                        operand=operand, rows=rows, cols=cols, sr=sr, sc=sc, block_rows=block_rows,
                        total_rows=total_rows, width=width, diagonal=diagonal, out=seq,
                        scratch=_scratch("prefetch matrix", seq.size))
    per_set = -(-size_words // 100)
    where = _scratch(f"where {operand}", space * 2).reshape(space, 2)
    first = _scratch(f"first {operand}", space)
    entries = _scratch(f"entries {operand}", seq.size * 2).reshape(seq.size, 2)
    valid = bk._user_tables_kernel(sequence=seq, per_set=per_set, where=where, first=first, entries=entries)
    num_sets = valid // per_set + 1
    active_words = -(-size_words // 2)
    prefetch_words = size_words - active_words
    active = min(-(-active_words // per_set), num_sets)
    first_lines = min(-(-active_words // bw), -(-seq.size // bw))
    state = np.zeros(9, dtype=np.int64)
    state[[bk._UR_SETS, bk._UR_ACTIVE, bk._UR_PREFETCH, bk._UR_LAST, bk._UR_ACCESS, bk._UR_LINES, bk._UR_BW,
           bk._UR_DSTART]] = (num_sets, active, min(-(-prefetch_words // per_set), num_sets - active), -1,
                              first_lines * bw, -(-prefetch_words // bw), bw, -first_lines)
    return state, where, first, entries


def simulate_buffers(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                     sram_words: tuple[int, int, int], interface: str = "CALC",
                     fill_words_per_cycle: tuple[int, int] = (bk.CALC_FILL_WORDS_PER_CYCLE,) * 2,
                     drain_words_per_cycle: int | None = None) -> CompatReport:
    """SCALE-Sim report row of one layer copy with DRAM counts, DRAM cycles and stalls simulated.

    CALC: estimate read buffers (fill 10 words/cycle), ofmap drains ``cols`` words/cycle. USER: reads
    follow the prefetch order at ``fill_words_per_cycle`` (the [layout] bank bandwidths), the ofmap
    drains at ``drain_words_per_cycle`` (``Bandwidth[0]``).
    """
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    sr, sc, t = layer.spatial_dims(dataflow)
    shape = _shape_vector(layer)
    ptab, ktab = bk.ifmap_tables(shape)
    df, per_fold = DATAFLOW_CODES[dataflow], (cc.cycles + 1) // cc.folds
    if interface != "USER":
        stalls, windows, read_i, read_f, wb = bk._calc_kernel(
            shape=shape, ptab=ptab, ktab=ktab, rows=rows, cols=cols, df=df, t=t, sr=sr, sc=sc, per_fold=per_fold,
            size_i=sram_words[0], size_f=sram_words[1], size_o=sram_words[2],
            table_i=_scratch("latest ifmap", layer.ifmap_h * layer.ifmap_w * layer.channels),
            table_f=_scratch("latest filter", layer.window * layer.num_filters),
            lines=_scratch("ofmap lines", cc.ofmap_words + 2, np.int64))
        return _report(layer, cc, rows, cols, int(stalls), windows, _dram_blocks(False, read_i, read_f, wb))
    (read_i, where_i, first_i, sets_i), (read_f, where_f, first_f, sets_f) = (
        _user_state(layer, op, rows=rows, cols=cols, dataflow=dataflow, size_words=sram_words[op],
                    bw=fill_words_per_cycle[op], tables=(shape, ptab, ktab)) for op in (0, 1))
    drain = drain_words_per_cycle or cols
    wb = bk.new_write_state(sram_words[2], drain)
    lines = _scratch("ofmap lines", cc.ofmap_words + 2, np.int64)   # written as lines close
    windows = np.empty(7, dtype=np.int64)
    unused = np.zeros(1, dtype=np.int32)                            # the CALC latest-set tables
    stalls = int(bk._memory_kernel(
        shape=shape, ptab=ptab, ktab=ktab, rows=rows, cols=cols, df=df, t=t, sr=sr, sc=sc, per_fold=per_fold,
        user=1, read_i=read_i, table_i=unused, where_i=where_i, first_i=first_i, sets_i=sets_i, read_f=read_f,
        table_f=unused, where_f=where_f, first_f=first_f, sets_f=sets_f, wb=wb, lines=lines, windows=windows))
    if stalls < 0:
        raise UnsupportedOpError(f"layer {layer.name!r}: SCALE-Sim 3.0.0 never finishes this layer in USER mode "
                                 "(a demanded address is never prefetched)")
    return _report(layer, cc, rows, cols, stalls, windows, _dram_blocks(True, read_i, read_f, wb))


def _dram_blocks(user: bool, read_i: np.ndarray, read_f: np.ndarray, wb: np.ndarray) -> tuple:
    start, stop, count = (bk._UR_DSTART, bk._UR_LAST, bk._UR_ACCESS) if user else \
        (bk._RB_DSTART, bk._RB_DEND, bk._RB_ACCESS)
    ifmap, filt, ofmap = read_i.tolist(), read_f.tolist(), wb.tolist()      # one conversion per array
    return ((float(ifmap[start]), float(ifmap[stop]), ifmap[count]),
            (float(filt[start]), float(filt[stop]), filt[count]),
            (float(ofmap[bk._WB_DSTART]), float(ofmap[bk._WB_DSTOP]), ofmap[bk._WB_ACCESS]))


def _report(layer, cc, rows, cols, stalls, windows, dram) -> CompatReport:
    w = windows.tolist()
    total = w[6]
    sram = ((float(w[0]), float(w[1]), cc.ifmap_sram_reads),
            (float(w[2]), float(w[3]), cc.filter_sram_reads),
            (float(w[4]), float(w[5]), cc.ofmap_sram_writes))
    overall = int(dram[2][1] - min(dram[0][0], dram[1][0]))
    ofmap_bw = dram[2][2] / (dram[2][1] - dram[2][0] + 1)
    return CompatReport(name=layer.name, total_cycles_incl_prefetch=overall, total_cycles=total,
                        stall_cycles=stalls, overall_util_pct=_percent(layer.macs, total * rows * cols),
                        mapping_efficiency_pct=100 * cc.mapping_efficiency,
                        compute_util_pct=100 * cc.compute_util, sram=sram, dram=dram, ofmap_dram_bw=ofmap_bw)


def simulate_calc(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                  sram_words: tuple[int, int, int]) -> CompatReport:
    """SCALE-Sim CALC-mode report row of one layer copy (see ``simulate_buffers``)."""
    return simulate_buffers(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=sram_words)


def sram_words_of(arch: ArchSpec) -> tuple[int, int, int]:
    """(ifmap, filter, ofmap) SRAM sizes in 1-byte SCALE-Sim words from the level above the array."""
    level = arch.memory[-1]
    if level.partition_bytes:
        return tuple(int(level.partition_bytes.get(t, 0)) for t in ("I", "W", "O"))
    third = int(level.size_bytes or 0) // 3
    return third, third, third


def simulate_report(layer: ScaleSimLayer, arch: ArchSpec, mapping) -> CompatReport:
    """The buffer-simulated report row of ``layer`` under ``mapping`` (CALC or USER)."""
    params, dram = arch.systolic, arch.memory[0]
    drain = int(dram.write_bw_bytes_per_cycle) if dram.write_bw_bytes_per_cycle else None
    return simulate_buffers(layer, rows=mapping.rows, cols=mapping.cols, dataflow=mapping.dataflow,
                            sram_words=sram_words_of(arch), interface=mapping.interface_bandwidth,
                            fill_words_per_cycle=(params.ifmap_fill_words_per_cycle, params.filter_fill_words_per_cycle),
                            drain_words_per_cycle=drain)
