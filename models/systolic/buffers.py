"""SCALE-Sim 3.0.0 memory-system port: DRAM counts, DRAM start/stop cycles and stalls of one layer.

The behaviour (described in ``_buffer_kernels.py``) is simulated per demand row in Numba, so the
cost is O(cycles x valid words) but about three orders of magnitude below SCALE-Sim's Python loop.
Ported: CALC mode (estimate read buffers + ofmap write buffer). USER mode (prefetch-order read
buffers with stalls) is not ported; asking for it raises ``UnsupportedOpError``.
"""

from __future__ import annotations

import numpy as np

from hwsim.errors import UnsupportedOpError
from hwsim.models.arch import ArchSpec
from hwsim.models.systolic import _buffer_kernels as bk
from hwsim.models.systolic._kernels import DATAFLOW_CODES
from hwsim.models.systolic.compat import ScaleSimLayer, compat_compute
from hwsim.models.systolic.compat_engine import CompatReport


def _shape_vector(layer: ScaleSimLayer) -> np.ndarray:
    return np.array([layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels,
                     layer.num_filters, layer.stride_h, layer.stride_w, layer.ofmap_h, layer.ofmap_w],
                    dtype=np.int64)


def simulate_calc(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                  sram_words: tuple[int, int, int], ofmap_drain_words_per_cycle: int | None = None,
                  fill_words_per_cycle: int = bk.CALC_FILL_WORDS_PER_CYCLE) -> CompatReport:
    """SCALE-Sim CALC-mode report row of one layer copy (DRAM counts and cycles simulated)."""
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    sr, sc, t = layer.spatial_dims(dataflow)
    per_fold = (cc.cycles + 1) // cc.folds
    drain_bw = ofmap_drain_words_per_cycle or cols
    rb_i = bk.new_read_state(sram_words[0], fill_words_per_cycle)
    rb_f = bk.new_read_state(sram_words[1], fill_words_per_cycle)
    wb = bk.new_write_state(sram_words[2], drain_bw)
    latest_i = np.full(layer.ifmap_h * layer.ifmap_w * layer.channels, -1, dtype=np.int64)
    latest_f = np.full(layer.window * layer.num_filters, -1, dtype=np.int64)
    lines = np.zeros(cc.ofmap_words + 2, dtype=np.int64)
    windows = np.full(6, -1, dtype=np.int64)
    shape = _shape_vector(layer)
    ptab, ktab = bk.ifmap_tables(shape)
    stalls = int(bk._calc_layer_kernel(
        shape=shape, ptab=ptab, ktab=ktab, rows=rows, cols=cols, df=DATAFLOW_CODES[dataflow], t=t, sr=sr, sc=sc,
        per_fold=per_fold, rb_i=rb_i, latest_i=latest_i, rb_f=rb_f, latest_f=latest_f, wb=wb, lines=lines,
        windows=windows))
    total = cc.cycles + stalls
    sram = ((float(windows[0]), float(windows[1]), cc.ifmap_sram_reads),
            (float(windows[2]), float(windows[3]), cc.filter_sram_reads),
            (float(windows[4]), float(windows[5]), cc.ofmap_sram_writes))
    dram = tuple((float(state[bk._RB_DSTART]), float(state[bk._RB_DEND]), int(state[bk._RB_ACCESS]))
                 for state in (rb_i, rb_f))
    dram += ((float(wb[bk._WB_DSTART]), float(wb[bk._WB_DSTOP]), int(wb[bk._WB_ACCESS])),)
    overall = int(dram[2][1] - min(dram[0][0], dram[1][0]))
    ofmap_bw = dram[2][2] / (dram[2][1] - dram[2][0] + 1)
    return CompatReport(name=layer.name, total_cycles_incl_prefetch=overall, total_cycles=total,
                        stall_cycles=stalls, overall_util_pct=layer.macs * 100 / (total * rows * cols),
                        mapping_efficiency_pct=100 * cc.mapping_efficiency,
                        compute_util_pct=100 * cc.compute_util, sram=sram, dram=dram, ofmap_dram_bw=ofmap_bw)


def sram_words_of(arch: ArchSpec) -> tuple[int, int, int]:
    """(ifmap, filter, ofmap) SRAM sizes in 1-byte SCALE-Sim words from the level above the array."""
    level = arch.memory[-1]
    if level.partition_bytes:
        return tuple(int(level.partition_bytes.get(t, 0)) for t in ("I", "W", "O"))
    third = int(level.size_bytes or 0) // 3
    return third, third, third


def simulate_report(layer: ScaleSimLayer, arch: ArchSpec, mapping) -> CompatReport:
    """The buffer-simulated report row for ``mapping`` (CALC only, see the module docstring)."""
    if mapping.interface_bandwidth != "CALC":
        raise UnsupportedOpError(f"layer {layer.name!r}: SCALE-Sim USER-mode buffers are not ported; "
                                 "use interface_bandwidth='CALC' or buffer_model='closed'")
    return simulate_calc(layer, rows=mapping.rows, cols=mapping.cols, dataflow=mapping.dataflow,
                         sram_words=sram_words_of(arch))
