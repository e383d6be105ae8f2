"""SCALE-Sim compatibility mode: closed forms vs the fold reference and vs recorded SCALE-Sim output."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import InvalidMappingError, UnsupportedOpError
from hwsim.ir import Layer, Op
from hwsim.models import systolic
from hwsim.models.systolic._kernels import DATAFLOW_CODES, _compat_layer_kernel
from hwsim.models.systolic.compat import (ScaleSimLayer, compat_compute, compulsory_ifmap_words,
                                          scalesim_layer_from)
from hwsim.models.systolic.compat_engine import compat_report
from reference.systolic_ref import compat_ref, make_arch


@settings(deadline=None, max_examples=200)
@given(sr=st.integers(1, 200), sc=st.integers(1, 200), t=st.integers(1, 100),
       rows=st.integers(1, 33), cols=st.integers(1, 33), dataflow=st.sampled_from(["ws", "os", "is"]))
def test_compat_kernel_matches_fold_reference(sr, sc, t, rows, cols, dataflow):
    got = _compat_layer_kernel(sr=sr, sc=sc, t=t, rows=rows, cols=cols, df=DATAFLOW_CODES[dataflow])
    ref = compat_ref(sr, sc, t, rows, cols, dataflow)
    folds, cycles, map_eff, comp_util, row_side, stationary, col_side = got
    assert (folds, cycles, row_side, stationary, col_side) == (
        ref["folds"], ref["cycles"], ref["row_side"], ref["stationary"], ref["col_side"])
    assert map_eff == pytest.approx(ref["mapping_eff"], rel=1e-12)
    assert comp_util == pytest.approx(ref["compute_util"], rel=1e-12)


# Rows of COMPUTE_REPORT.csv / DETAILED_ACCESS_REPORT.csv produced by PyPI scalesim==3.0.0
# (python -m scalesim.scale, 4x4 ws array, 64 kB SRAMs, CALC) on the topology
#   c1, 8, 8, 3, 3, 3, 6, 1, / c2, 9, 7, 2, 3, 5, 9, 2, / DP3, 6, 6, 3, 3, 2, 3, 1,  (run 2026-11-25)
SCALESIM_4X4_WS = [
    # layer, total cycles, mapping eff %, compute util %, overall util %, SRAM (start, stop, count) x3
    (ScaleSimLayer("c1", 8, 8, 3, 3, 3, 6, 1, 1), 643, 72.32142857142857, 53.134110787172006,
     56.687402799377914, ((5, 640, 1944), (1, 602, 162), (7, 641, 1512)), (192, 162, 1512)),
    (ScaleSimLayer("c2", 9, 7, 2, 3, 5, 9, 2, 2), 599, 70.3125, 37.6674107142857, 42.257929883138566,
     ((5, 592, 1350), (1, 579, 270), (7, 596, 1080)), (315, 270, 1080)),
    (ScaleSimLayer("DP3Channel_0", 6, 6, 3, 3, 1, 3, 1, 1), 77, 56.25, 31.03448275862069,
     35.064935064935064, ((5, 72, 144), (1, 56, 27), (7, 76, 144)), (36, 27, 144)),
]


@pytest.mark.parametrize("case", SCALESIM_4X4_WS, ids=lambda c: c[0].name)
def test_compat_report_matches_recorded_scalesim(case):
    layer, cycles, map_eff, comp_util, util, sram, dram = case
    report = compat_report(layer, rows=4, cols=4, dataflow="ws")
    assert report.total_cycles == cycles
    assert report.mapping_efficiency_pct == pytest.approx(map_eff, rel=1e-12)
    assert report.compute_util_pct == pytest.approx(comp_util, rel=1e-12)
    assert report.overall_util_pct == pytest.approx(util, rel=1e-12)
    assert tuple((int(a), int(b), n) for a, b, n in report.sram) == sram
    assert tuple(n for _, _, n in report.dram) == dram


@pytest.mark.parametrize("dataflow, per_fold", [("ws", 2 * 8 + 4 + 36 - 2), ("is", None), ("os", None)])
def test_per_fold_lengths_by_dataflow(dataflow, per_fold):
    layer = ScaleSimLayer("c1", 8, 8, 3, 3, 3, 6, 1, 1)      # P=36, N=6, K=27
    sr, sc, t = layer.spatial_dims(dataflow)
    cc = compat_compute(layer, rows=8, cols=4, dataflow=dataflow)
    extra = 0 if dataflow == "os" else 8                        # os has no preload term
    assert cc.cycles == math.ceil(sr / 8) * math.ceil(sc / 4) * (extra + 8 + 4 + t - 2) - 1
    if per_fold:
        assert (cc.cycles + 1) // cc.folds == per_fold


def test_os_ofmap_write_bug_term():
    layer = ScaleSimLayer("c1", 8, 8, 3, 3, 3, 6, 1, 1)
    cc = compat_compute(layer, rows=4, cols=4, dataflow="os")
    assert cc.folds == 9 * 2
    assert cc.ofmap_sram_writes == 36 * 6 + 18 * (4 + 4)
    assert cc.ofmap_words == 36 * 6


@pytest.mark.parametrize("rows, cols", [(1, 1), (64, 64), (5, 3), (3, 7)])
@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_edge_arrays(rows, cols, dataflow):
    """1x1 array, layer smaller than the array (K=27 < 64), dims that do not divide."""
    layer = ScaleSimLayer("c1", 8, 8, 3, 3, 3, 6, 1, 1)
    cc = compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow)
    ref = compat_ref(*layer.spatial_dims(dataflow), rows, cols, dataflow)
    assert cc.cycles == ref["cycles"] and cc.folds == ref["folds"]
    if rows == cols == 1:
        assert cc.mapping_efficiency == 1.0


def test_gemm_mapping():
    layer = ScaleSimLayer.gemm("g", m=10, n=7, k=12)
    assert (layer.pixels, layer.num_filters, layer.window) == (10, 7, 12)
    assert layer.macs == 10 * 7 * 12


def test_compulsory_ifmap_drops_out_of_range_windows():
    # 9x7 ifmap, 2x3 filter, stride 2: E = 5 x 3 windows reach row 9 (outside) -> whole ifmap only
    assert compulsory_ifmap_words(ScaleSimLayer("c2", 9, 7, 2, 3, 5, 9, 2, 2)) == 9 * 7 * 5


def test_hwsim_layer_conversion_uses_padded_input():
    conv = Layer("c", Op.CONV, K=64, C=3, P=112, Q=112, R=7, S=7, stride=2, padding=3, input_size=224)
    sl = scalesim_layer_from(conv)
    assert (sl.ifmap_h, sl.ifmap_w) == (230, 230)
    assert sl.ofmap_h == 113                                   # SCALE-Sim's ceil quirk
    dw = Layer("dw", Op.DEPTHWISE, K=32, C=32, G=32, P=8, Q=8, R=3, S=3, padding=1)
    sl_dw = scalesim_layer_from(dw)
    assert (sl_dw.channels, sl_dw.num_filters, sl_dw.repeats) == (1, 1, 32)
    fc = Layer("fc", Op.LINEAR, N=4, K=10, C=16)
    assert scalesim_layer_from(fc) == ScaleSimLayer.gemm("fc", m=4, n=10, k=16)


def test_evaluate_in_scalesim_mode_sums_copies():
    arch = make_arch(4, 4, mode="scalesim")
    dw = Layer("dw", Op.DEPTHWISE, K=2, C=2, G=2, P=4, Q=4, R=3, S=3)
    counts = systolic.evaluate(dw, arch, systolic.default_mapping(dw, arch))
    one = compat_compute(ScaleSimLayer("d", 6, 6, 3, 3, 1, 1), rows=4, cols=4, dataflow="ws")
    assert counts.compute_cycles == 2 * one.cycles
    assert counts.mac_ops == dw.macs
    assert counts.accesses_of(level="GLB", tensor="I") == 2 * one.ifmap_sram_reads
    assert counts.stall_cycles == 0


def test_scalesim_mode_rejects_what_it_cannot_model():
    arch = make_arch(4, 4, mode="scalesim", cores=2)
    layer = Layer("c", Op.CONV, K=4, C=4, P=4, Q=4, R=3, S=3)
    with pytest.raises(InvalidMappingError, match="single array"):
        systolic.evaluate(layer, arch, systolic.default_mapping(layer, arch))
    dilated = layer.with_changes(dilation=2)
    arch1 = make_arch(4, 4, mode="scalesim")
    with pytest.raises(UnsupportedOpError, match="dilat"):
        systolic.evaluate(dilated, arch1, systolic.default_mapping(dilated, arch1))
    pool = Layer("p", Op.POOL, K=4, C=4, G=4, P=2, Q=2, R=2, S=2)
    with pytest.raises(UnsupportedOpError, match="not a MAC layer"):
        systolic.evaluate(pool, arch1, systolic.default_mapping(layer, arch1))
