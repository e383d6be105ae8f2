"""Glue of the SCALE-Sim compatibility mode: closed forms (+ buffer port) -> report rows and LayerCounts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.systolic.compat import (ScaleSimLayer, compat_compute, compulsory_ifmap_words,
                                          ifmap_valid, scalesim_layer_from)

# per dataflow and operand: (demand prefix rows, shape) of one fold's demand block;
# "stream" = T data rows skewed over the used columns, "tile" = flipped R-row stationary tile,
# "os_out" = (T-1) gap, flipped R-row tile, skewed over the used columns
_DEMAND = {
    "ws": {"ifmap": ("R", "stream_rows"), "filter": (None, "tile"), "ofmap": ("2R-1", "stream_cols")},
    "os": {"ifmap": (None, "stream_rows"), "filter": (None, "stream_cols"), "ofmap": ("T-1", "os_out")},
    "is": {"ifmap": (None, "tile"), "filter": ("R", "stream_rows"), "ofmap": ("2R-1", "stream_cols")},
}


class CompatReport(NamedTuple):
    """One SCALE-Sim report row (all three CSVs) for one topology layer.

    A named tuple (immutable, built without per-field ``__setattr__``) like ``CompatCompute``: it is
    built once per simulated layer, ~1 us of a tiny layer's ~15 us.
    """

    name: str
    total_cycles_incl_prefetch: int
    total_cycles: int
    stall_cycles: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    sram: tuple[tuple[float, float, int], ...]   # (start, stop, count) for ifmap reads, filter reads, ofmap writes
    dram: tuple[tuple[float, float, int], ...]   # same for DRAM ifmap reads, filter reads, ofmap writes
    ofmap_dram_bw: float                         # SCALE-Sim reports the drain bandwidth it assumed

    def bandwidths(self) -> tuple[float, ...]:
        """BANDWIDTH_REPORT columns: SRAM counts / total cycles, DRAM counts / active window."""
        sram = tuple(count / self.total_cycles if self.total_cycles else float("nan") for _, _, count in self.sram)
        dram = tuple(count / (stop - start + 1) if stop >= start else 0.0 for start, stop, count in self.dram[:2])
        return sram + dram + (self.ofmap_dram_bw,)


def _percent(macs: int, pe_cycles: int) -> float:
    """SCALE-Sim's ``num_compute * 100 / (cycles * PEs)``; NaN for a 0-cycle layer (SCALE-Sim crashes)."""
    return macs * 100 / pe_cycles if pe_cycles else float("nan")


def _valid_rows(kind: str, prefix: int, *, rows: int, t: int, used_r: int, used_c: int) -> tuple[int, int]:
    """First and last demand row (within a fold) that carries a real address."""
    if kind == "tile":
        return prefix + rows - used_r, prefix + rows - 1
    if kind == "os_out":
        return prefix + rows - used_r, prefix + rows - 1 + used_c - 1
    used = used_r if kind == "stream_rows" else used_c
    return prefix, prefix + t - 1 + used - 1


def _ifmap_rows(layer: ScaleSimLayer, dataflow: str, *, rows: int, cols: int,
                fold: tuple[int, int]) -> tuple[int, int] | None:
    """First/last demand row (after the prefix) of fold ``(fr, fc)`` with a valid ifmap address."""
    sr, sc, t = layer.spatial_dims(dataflow)
    fr, fc = fold
    j = np.arange(fr * rows, min(sr, (fr + 1) * rows))          # array-row index into Sr
    if dataflow == "is":
        c = np.arange(fc * cols, min(sc, (fc + 1) * cols))       # pixels on the columns
        valid = ifmap_valid(layer, c[None, :], j[:, None]).any(axis=1)
        flipped = rows - 1 - np.nonzero(valid)[0]
        return (int(flipped.min()), int(flipped.max())) if flipped.size else None
    data = np.arange(t)
    pixel, k = (data[:, None], j[None, :]) if dataflow == "ws" else (j[None, :], data[:, None])
    tt, jj = np.nonzero(ifmap_valid(layer, pixel, k))
    return (int((tt + jj).min()), int((tt + jj).max())) if tt.size else None


def _ifmap_window(layer: ScaleSimLayer, dataflow: str, *, rows: int, cols: int, prefix: int,
                  per_fold: int) -> tuple[int, int]:
    """Stall-free first/last row with an ifmap address: the first/last fold that has one."""
    sr, sc, _ = layer.spatial_dims(dataflow)
    folds = [(fr, fc) for fc in range(-(-sc // cols)) for fr in range(-(-sr // rows))]
    order = list(enumerate(folds))
    first = next((i * per_fold + prefix + span[0] for i, fold in order
                  if (span := _ifmap_rows(layer, dataflow, rows=rows, cols=cols, fold=fold))), -1)
    last = next((i * per_fold + prefix + span[1] for i, fold in reversed(order)
                 if (span := _ifmap_rows(layer, dataflow, rows=rows, cols=cols, fold=fold))), -1)
    return first, last


def sram_windows(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                 per_fold: int, folds: int) -> tuple[tuple[int, int], ...]:
    """Stall-free (start, stop) cycles of SRAM ifmap reads, filter reads and ofmap writes."""
    sr, sc, t = layer.spatial_dims(dataflow)
    first = (min(rows, sr), min(cols, sc))
    last = (sr - (-(-sr // rows) - 1) * rows, sc - (-(-sc // cols) - 1) * cols)
    last_start = (folds - 1) * per_fold
    prefixes = {None: 0, "R": rows, "2R-1": 2 * rows - 1, "T-1": t - 1}
    out = []
    for operand in ("ifmap", "filter", "ofmap"):
        prefix_name, kind = _DEMAND[dataflow][operand]
        prefix = prefixes[prefix_name]
        lo, _ = _valid_rows(kind, prefix, rows=rows, t=t, used_r=first[0], used_c=first[1])
        _, hi = _valid_rows(kind, prefix, rows=rows, t=t, used_r=last[0], used_c=last[1])
        hi += last_start
        if operand == "ifmap":   # window positions past the ifmap edge have no address
            lo, hi = _ifmap_window(layer, dataflow, rows=rows, cols=cols, prefix=prefix, per_fold=per_fold)
        shift = 0 if operand == "ofmap" else 1      # reads are logged one cycle after issue
        out.append((lo + shift, hi + shift))
    return tuple(out)


def compat_report(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str,
                  windows: bool = True) -> CompatReport:
    """A SCALE-Sim report row from the closed forms (stall-free, compulsory DRAM reads).

    ``windows=False`` skips the SRAM start/stop cycles (NaN), which cost a NumPy pass over the ifmap.
    """
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    per_fold = (cc.cycles + 1) // cc.folds
    if windows:
        windows = sram_windows(layer, rows=rows, cols=cols, dataflow=dataflow, per_fold=per_fold, folds=cc.folds)
    else:
        windows = ((float("nan"), float("nan")),) * 3
    counts = (cc.ifmap_sram_reads, cc.filter_sram_reads, cc.ofmap_sram_writes)
    sram = tuple((float(lo), float(hi), n) for (lo, hi), n in zip(windows, counts))
    dram_reads = (compulsory_ifmap_words(layer), layer.window * layer.num_filters)
    drain_lines = -(-cc.ofmap_words // cols)
    dram = tuple((float("nan"), float("nan"), n) for n in dram_reads) + (
        (float(cc.cycles), float(cc.cycles + drain_lines - 1), cc.ofmap_words),)
    return CompatReport(name=layer.name, total_cycles_incl_prefetch=-1, total_cycles=cc.cycles,
                        stall_cycles=0, overall_util_pct=_percent(layer.macs, cc.cycles * rows * cols),
                        mapping_efficiency_pct=100 * cc.mapping_efficiency,
                        compute_util_pct=100 * cc.compute_util, sram=sram, dram=dram, ofmap_dram_bw=float(cols))


def evaluate_compat(layer: Layer, arch: ArchSpec, mapping) -> LayerCounts:
    """``LayerCounts`` of one hwsim layer as SCALE-Sim 3.0.0 would report it (summed over copies)."""
    sl = scalesim_layer_from(layer)
    rows, cols = mapping.rows, mapping.cols
    if mapping.buffer_model == "simulate":
        from hwsim.models.systolic.buffers import simulate_report
        report = simulate_report(sl, arch, mapping)
    else:
        report = compat_report(sl, rows=rows, cols=cols, dataflow=mapping.dataflow, windows=False)
    reps = sl.repeats
    sram_level, dram_level = arch.memory[-1].name, arch.memory[0].name
    tensors = (("I", "read", layer.act_bits), ("W", "read", layer.weight_bits), ("O", "write", layer.out_bits))
    accesses = tuple(
        Access(level=level, tensor=tensor, action=action, count=float(reps * entry[2]), word_bits=bits)
        for level, block in ((sram_level, report.sram), (dram_level, report.dram))
        for (tensor, action, bits), entry in zip(tensors, block))
    stall_free = report.total_cycles - report.stall_cycles
    sr, sc, _ = sl.spatial_dims(mapping.dataflow)
    details = (("scalesim_total_cycles_per_copy", float(report.total_cycles)), ("copies", float(reps)),
               ("folds", float(compat_compute(sl, rows=rows, cols=cols, dataflow=mapping.dataflow).folds)),
               ("buffer_model_simulated", float(mapping.buffer_model == "simulate")),
               ("mapping_efficiency", report.mapping_efficiency_pct / 100),
               ("compute_util", report.compute_util_pct / 100),
               ("overall_util", report.overall_util_pct / 100))
    return LayerCounts(compute_cycles=reps * stall_free, stall_cycles=reps * report.stall_cycles,
                       mac_ops=float(reps * sl.macs), weight_bits=layer.weight_bits, act_bits=layer.act_bits,
                       mac_kind="fp" if layer.number_format == "fp" else "int", accesses=accesses,
                       utilization=sl.macs / (max(report.total_cycles, 1) * rows * cols),
                       engine="systolic", active_pes=min(rows, sr) * min(cols, sc), details=details)
