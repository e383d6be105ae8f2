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
    return bk._layer_shape(layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels,
                           layer.num_filters, layer.stride_h, layer.stride_w, layer.ofmap_h, layer.ofmap_w)


MAX_TABLE_WORDS = 1 << 30          # int32 tables; SCALE-Sim itself would need days for such a layer
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


def _check_size(layer: ScaleSimLayer, what: str, words: int) -> None:
    if words >= MAX_TABLE_WORDS:
        raise UnsupportedOpError(f"layer {layer.name!r}: the {what} ({words} words) exceeds {MAX_TABLE_WORDS} words "
                                 "(int32 tables); use the closed forms")


def simulate_buffers(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                     sram_words: tuple[int, int, int], interface: str = "CALC",
                     fill_words_per_cycle: tuple[int, int] = (bk.CALC_FILL_WORDS_PER_CYCLE,) * 2,
                     drain_words_per_cycle: int | None = None) -> CompatReport:
    """SCALE-Sim report row of one layer copy with DRAM counts, DRAM cycles and stalls simulated.

    CALC: estimate read buffers (fill 10 words/cycle), ofmap drains ``cols`` words/cycle. USER: reads
    follow the prefetch order at ``fill_words_per_cycle`` (the [layout] bank bandwidths), the ofmap
    drains at ``drain_words_per_cycle`` (``Bandwidth[0]``). One kernel dispatch per layer.
    """
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    sr, sc, t = layer.spatial_dims(dataflow)
    ifmap_words, filter_words = layer.ifmap_h * layer.ifmap_w * layer.channels, layer.window * layer.num_filters
    _check_size(layer, "ifmap", ifmap_words)
    _check_size(layer, "filter", filter_words)
    shape = _shape_vector(layer)
    df, per_fold = DATAFLOW_CODES[dataflow], (cc.cycles + 1) // cc.folds
    lines = _scratch("ofmap lines", cc.ofmap_words + 2, np.int64)           # written as lines close
    if interface != "USER":
        result = bk._calc_layer(shape, rows, cols, df, t, sr, sc, per_fold, sram_words[0], sram_words[1],
                                sram_words[2], _scratch("tables", ifmap_words + filter_words), lines)
        return _report(layer, cc, rows, cols, result)
    words, sequence, _ = bk._user_scratch_words(shape, df, rows, cols, sr, sc, t)
    _check_size(layer, "USER-mode prefetch sequence", sequence)
    result = bk._user_layer(shape, rows, cols, df, t, sr, sc, per_fold, sram_words[0], sram_words[1], sram_words[2],
                            fill_words_per_cycle[0], fill_words_per_cycle[1], drain_words_per_cycle or cols,
                            _scratch("tables", words), lines)
    if result[bk.RESULT_STALLS] < 0:
        raise UnsupportedOpError(f"layer {layer.name!r}: SCALE-Sim 3.0.0 never finishes this layer in USER mode "
                                 "(a demanded address is never prefetched)")
    return _report(layer, cc, rows, cols, result)


def _report(layer: ScaleSimLayer, cc, rows: int, cols: int, result: np.ndarray) -> CompatReport:
    """The report row from a packed kernel result (``bk.RESULT_*``)."""
    (stalls, w0, w1, w2, w3, w4, w5, total,
     i_start, i_stop, i_count, f_start, f_stop, f_count, o_start, o_stop, o_count) = result.tolist()
    sram = ((float(w0), float(w1), cc.ifmap_sram_reads), (float(w2), float(w3), cc.filter_sram_reads),
            (float(w4), float(w5), cc.ofmap_sram_writes))
    dram = ((float(i_start), float(i_stop), i_count), (float(f_start), float(f_stop), f_count),
            (float(o_start), float(o_stop), o_count))
    return CompatReport(name=layer.name, total_cycles_incl_prefetch=int(o_stop - min(i_start, f_start)),
                        total_cycles=total, stall_cycles=stalls,
                        overall_util_pct=_percent(layer.macs, total * rows * cols),
                        mapping_efficiency_pct=100 * cc.mapping_efficiency, compute_util_pct=100 * cc.compute_util,
                        sram=sram, dram=dram, ofmap_dram_bw=o_count / (o_stop - o_start + 1))


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
