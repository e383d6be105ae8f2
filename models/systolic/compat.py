"""SCALE-Sim 3.0.0 compatibility mode (``mode="scalesim"``): reproduce its numbers, quirks included.

Built from the behaviour described in ``shared/research/scalesim.md`` (checked against runs of the
PyPI ``scalesim==3.0.0`` wheel), not from its code. Per layer, with P ofmap pixels, N filters and
K = R*S*C window:

* shapes: no padding, ``E = ceil((H - R + s) / s)``; a GEMM ``M, N, K`` is a conv with ifmap
  ``M x K``, filter ``1 x K``, 1 channel, N filters; a depthwise layer (SCALE-Sim: name containing
  ``DP``) runs as C single-channel layers. hwsim layers are converted with their *padded* input
  size (SCALE-Sim users pre-pad), so a strided layer whose padded size does not divide gets
  SCALE-Sim's ceil-rounded extra output row/col (e.g. 224+2*3, 7x7/2 -> 113 instead of 112) and
  ``mac_ops`` is SCALE-Sim's ``num_compute``; groups run as G serial layers, batch N as N repeats.
* dataflow (Sr, Sc, T): ws (K, N, P), os (P, N, K), is (K, P, N); ``folds = ceil(Sr/R)*ceil(Sc/C)``,
  partial folds padded to the full array, serial folds, per fold ``2R + C + T - 2`` (ws/is) or
  ``R + C + T - 2`` (os, no preload term), reported total ``folds * per_fold - 1 + stalls``.
* utilizations: unweighted fold means; compute util uses fold lengths ``T + R + C - 2`` (os) and
  ``2R + 2C + T - 3`` (ws/is); overall util = MACs / (total * R * C).
* SRAM counts: row-streamed operand ``ceil(Sc/C) * Sr * T``, stationary ``Sr * Sc``, column side
  ``ceil(Sr/R) * Sc * T``; os adds the ``folds * (R + C)`` ofmap-write counting bug.
* DRAM/stalls: ``buffers.py`` (Numba ports of the CALC estimate buffers, the USER prefetch buffers
  and the ofmap write buffer); with ``buffer_model="closed"`` DRAM reads are the compulsory
  distinct words (ofmap: the words written) and stalls are 0, which equals the CALC port whenever
  the ifmap/filter fit the estimate window (the common case; CALC never stalled in our runs).

Agreement with the wheel (``tests/test_scalesim_peers.py``, 40 seeded configs x 4 random layers:
conv with a DP row and GEMM, arrays 1x1..16x8 square and not, ws/os/is, 1-64 kB SRAMs, CALC and
USER incl. runs with thousands of stall cycles): every cell of COMPUTE_REPORT, BANDWIDTH_REPORT and
DETAILED_ACCESS_REPORT is byte-identical (160/160 layers, all 33 columns), and the stall-free SRAM
traces are identical. Known remaining differences:
* fold-mean utilizations are summed fold by fold (SCALE-Sim's order, bit-exact) up to 2**20 folds;
  beyond that the product formula is used (last-digit float differences, ~1e-15 relative);
* layers whose total is 0 cycles (1 fold of 1 cycle) report NaN utilization/bandwidth where
  SCALE-Sim raises ZeroDivisionError; USER-mode layers that SCALE-Sim never finishes (a demanded
  address never prefetched, its issue #130) raise ``UnsupportedOpError``;
* DRAM *traces* are not written (only SRAM demand traces, stall-free cycles); sparsity,
  custom layouts, bank conflicts and the ramulator path are not modelled (SparsitySupport must be
  false; custom-layout flags are read and ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Layer, Op
from hwsim.models.systolic._kernels import DATAFLOW_CODES, _compat_layer_kernel


@dataclass(frozen=True)
class ScaleSimLayer:
    """One row of a SCALE-Sim topology (conv view); ``repeats`` serial identical copies.

    Derived sizes are cached properties: a layer is built once and read on every simulated call.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int = 1
    stride_w: int = 1
    repeats: int = 1

    @cached_property
    def ofmap_h(self) -> int:
        return -(-(self.ifmap_h - self.filter_h + self.stride_h) // self.stride_h)

    @cached_property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride_w) // self.stride_w)

    @cached_property
    def pixels(self) -> int:
        return self.ofmap_h * self.ofmap_w

    @cached_property
    def window(self) -> int:
        return self.filter_h * self.filter_w * self.channels

    @cached_property
    def macs(self) -> int:
        """MACs of one copy (SCALE-Sim's ``num_compute``)."""
        return self.pixels * self.num_filters * self.window

    def spatial_dims(self, dataflow: str) -> tuple[int, int, int]:
        """``(Sr, Sc, T)``: array-row extent, array-column extent, streamed extent."""
        p, n, k = self.pixels, self.num_filters, self.window
        if dataflow == "ws":
            return k, n, p
        if dataflow == "os":
            return p, n, k
        if dataflow == "is":
            return k, p, n
        raise ValueError(f"dataflow must be one of ws, os, is, got {dataflow!r}")

    @classmethod
    def gemm(cls, name: str, m: int, n: int, k: int) -> "ScaleSimLayer":
        """SCALE-Sim's GEMM-to-conv mapping (ifmap M x K, filter 1 x K, 1 channel, N filters)."""
        return cls(name=name, ifmap_h=m, ifmap_w=k, filter_h=1, filter_w=k, channels=1, num_filters=n)


def scalesim_layer_from(layer: Layer) -> ScaleSimLayer:
    """The SCALE-Sim view of an hwsim MAC layer (padded input, groups and batch as repeats)."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: op {layer.op.value} has no MACs for a systolic array")
    if layer.op in (Op.LINEAR, Op.MATMUL):
        repeats, m, k, n = layer.gemm_shape
        repeats = repeats if layer.op is Op.MATMUL else 1
        return replace(ScaleSimLayer.gemm(layer.name, m, n, k), repeats=repeats)
    if max(layer.dilation) > 1:
        raise UnsupportedOpError(f"layer {layer.name!r}: SCALE-Sim has no dilated convolutions "
                                 f"(dilation={layer.dilation}); use the physical mode")
    sh, sw = layer.stride
    in_h, in_w = layer.input_hw                  # SCALE-Sim users pre-pad the ifmap
    return ScaleSimLayer(
        name=layer.name, ifmap_h=in_h + 2 * layer.padding[0], ifmap_w=in_w + 2 * layer.padding[1],
        filter_h=layer.R, filter_w=layer.S, channels=layer.c_per_group, num_filters=layer.k_per_group,
        stride_h=sh, stride_w=sw, repeats=layer.G * layer.N)


class CompatCompute(NamedTuple):
    """Stall-free SCALE-Sim figures of one copy of a layer (closed forms).

    A named tuple rather than a frozen dataclass: it is built on every closed-form call, where
    a dataclass's field-by-field ``__setattr__`` was half of the ~4 us.
    """

    folds: int
    cycles: int                 # reported "Total Cycles" without stalls (includes the final -1)
    mapping_efficiency: float   # fraction, not %
    compute_util: float         # fraction, not %
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    ofmap_words: int            # words written to the OFMAP SRAM without the os counting bug


def compat_compute(layer: ScaleSimLayer, *, rows: int, cols: int, dataflow: str) -> CompatCompute:
    """SCALE-Sim's stall-free cycles, utilizations and SRAM counts for one copy of ``layer``."""
    if rows < 1 or cols < 1:
        raise ValueError(f"systolic array must be at least 1x1, got {rows}x{cols}")
    if dataflow not in DATAFLOW_CODES:
        raise ValueError(f"dataflow must be one of {sorted(DATAFLOW_CODES)}, got {dataflow!r}")
    sr, sc, t = layer.spatial_dims(dataflow)
    df = DATAFLOW_CODES[dataflow]
    # positional call and no int()/float() wrapping: Numba already returns Python scalars, and this
    # function is the whole cost of a closed-form layer (~2 us)
    folds, cycles, map_eff, comp_util, row_side, stationary, col_side = _compat_layer_kernel(sr, sc, t, rows, cols, df)
    if df == 0:
        return CompatCompute(folds, cycles, map_eff, comp_util, row_side, stationary, col_side, col_side)
    if df == 1:   # SCALE-Sim adds the padded tile shape per fold to the os ofmap writes
        return CompatCompute(folds, cycles, map_eff, comp_util, row_side, col_side,
                             stationary + folds * (rows + cols), stationary)
    return CompatCompute(folds, cycles, map_eff, comp_util, stationary, row_side, col_side, col_side)


def _touched(extent: int, outputs: int, stride: int, window: int) -> int:
    """Distinct input rows (or columns) inside ``extent`` that some window position reads."""
    positions = np.arange(outputs)[:, None] * stride + np.arange(window)[None, :]
    return int(np.unique(positions[positions < extent]).size)


def compulsory_ifmap_words(layer: ScaleSimLayer) -> int:
    """Distinct ifmap words the layer touches (SCALE-Sim drops window positions past the edge)."""
    return (_touched(layer.ifmap_h, layer.ofmap_h, layer.stride_h, layer.filter_h)
            * _touched(layer.ifmap_w, layer.ofmap_w, layer.stride_w, layer.filter_w) * layer.channels)


def ifmap_valid(layer: ScaleSimLayer, pixel: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Whether ifmap element (ofmap pixel, window index) has an address (inside the ifmap)."""
    oy, ox = np.divmod(pixel, layer.ofmap_w)
    fy, rest = np.divmod(k, layer.filter_w * layer.channels)
    fx = rest // layer.channels
    return (oy * layer.stride_h + fy < layer.ifmap_h) & (ox * layer.stride_w + fx < layer.ifmap_w)
