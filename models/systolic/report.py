"""SCALE-Sim-shaped report rows for the physical mode, and stall-free SRAM demand traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec
from hwsim.models.systolic import _buffer_kernels as bk
from hwsim.models.systolic._kernels import DATAFLOW_CODES
from hwsim.models.systolic.compat import ScaleSimLayer, compat_compute
from hwsim.models.systolic.compat_engine import CompatReport

_TRACE_FILES = ("IFMAP_SRAM_TRACE.csv", "FILTER_SRAM_TRACE.csv", "OFMAP_SRAM_TRACE.csv")


def physical_report(layer: Layer, arch: ArchSpec) -> CompatReport:
    """A report row from the physical model (start/stop cycles span the whole layer)."""
    from hwsim.models import systolic

    mapping = systolic.default_mapping(layer, arch).with_params(mode="physical", groups="pack")
    counts = systolic.evaluate(layer, arch, mapping)
    total = counts.cycles
    sram_level, dram_level = arch.memory[-1].name, arch.memory[0].name
    blocks = []
    for level in (sram_level, dram_level):
        blocks.append(tuple(
            (0.0, float(total), int(counts.accesses_of(level=level, tensor=t, action=a)))
            for t, a in (("I", "read"), ("W", "read"), ("O", "write"))))
    return CompatReport(name=layer.name, total_cycles_incl_prefetch=total, total_cycles=total,
                        stall_cycles=counts.stall_cycles, overall_util_pct=100 * counts.utilization,
                        mapping_efficiency_pct=100 * counts.detail("mapping_efficiency", 0.0),
                        compute_util_pct=100 * counts.detail("compute_util", 0.0), sram=blocks[0],
                        dram=blocks[1], ofmap_dram_bw=blocks[1][2][2] / (total + 1))


def sram_trace_rows(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str, operand: int,
                    offset: int = 0):
    """Yield ``(cycle, row)`` of one operand's stall-free SRAM demand, full width, -1 = idle."""
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    sr, sc, t = layer.spatial_dims(dataflow)
    df = DATAFLOW_CODES[dataflow]
    per_fold = (cc.cycles + 1) // cc.folds
    shape = np.array([layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels,
                      layer.num_filters, layer.stride_h, layer.stride_w, layer.ofmap_h, layer.ofmap_w], dtype=np.int64)
    ptab, ktab = bk.ifmap_tables(shape)
    kind = int(bk._KIND[df][operand])
    pre = t - 1 if (df == 1 and operand == 2) else int(bk._PRE_A[df][operand] * rows + bk._PRE_B[df][operand])
    width = rows if bk._USED[df][operand] == 0 else cols
    latency = 0 if operand == 2 else 1
    row = 0
    for fc in range(-(-sc // cols)):
        uc = min(cols, sc - fc * cols)
        for fr in range(-(-sr // rows)):
            ur = min(rows, sr - fr * rows)
            used = ur if bk._USED[df][operand] == 0 else uc
            for r in range(per_fold):
                line = [-1] * width
                lo, hi, base = bk._row_span(kind, r, pre, t, rows, used, ur)
                for j in range(lo, hi + 1):
                    idx = base - j if kind == 0 else (rows - 1 - r if kind == 1 else rows - 1 - (base - j))
                    addr = bk._address(shape, ptab, ktab, df, operand, idx, j, fr, fc, rows, cols)
                    line[j] = addr + offset if addr >= 0 else -1
                yield row + latency, line
                row += 1


def write_sram_traces(layer: ScaleSimLayer, directory: Path, *, rows: int, cols: int, dataflow: str,
                      offsets: tuple[int, int, int]) -> list[Path]:
    """Write SCALE-Sim-style ``cycle, addr, ...`` SRAM traces (stall-free cycles, offsets added)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for operand, name in enumerate(_TRACE_FILES):
        path = directory / name
        with path.open("w") as handle:
            for cycle, line in sram_trace_rows(layer, rows=rows, cols=cols, dataflow=dataflow, operand=operand,
                                               offset=offsets[operand]):
                handle.write(",".join(str(v) for v in [cycle] + line) + "\n")
        paths.append(path)
    return paths
