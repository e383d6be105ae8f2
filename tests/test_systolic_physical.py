"""Physical mode: one test per documented difference from the SCALE-Sim compatibility mode."""

from __future__ import annotations

import math

import pytest

from hwsim.ir import Layer, Op
from hwsim.models import systolic
from hwsim.models.systolic.physical import dram_traffic_bytes, groups_per_fold
from reference.systolic_ref import make_arch

CONV = Layer("c", Op.CONV, K=6, C=3, P=6, Q=6, R=3, S=3, padding=1)   # 6x6 input, 27 x 6 x 36 GEMM


def run(layer, arch, **changes):
    mapping = systolic.default_mapping(layer, arch).with_params(**changes)
    return systolic.evaluate(layer, arch, mapping)


def test_default_mapping_reads_arch():
    arch = make_arch(8, 4, dataflow="os", cores=2)
    mapping = systolic.default_mapping(CONV, arch)
    assert (mapping.dataflow, mapping.rows, mapping.cols, mapping.cores, mapping.mode) == ("os", 8, 4, 2, "physical")
    assert mapping.groups == "pack"


def test_hand_computed_cycles_and_counts():
    # ws 4x4: row folds 27 -> 4,4,4,4,4,4,3; col folds 6 -> 4,2; T = 36 pixels.
    # streams: sum over folds of 36 + ur + uc - 2; first load 4 cycles, later loads hidden.
    counts = run(CONV, make_arch(4, 4, dram_bw=None))
    streams = sum(36 + ur + uc - 2 for uc in (4, 2) for ur in (4,) * 6 + (3,))
    assert counts.compute_cycles == 4 + streams
    assert counts.mac_ops == CONV.macs
    assert counts.accesses_of(level="GLB", tensor="W", action="read") == 27 * 6
    assert counts.accesses_of(level="GLB", tensor="I", action="read") == 2 * 27 * 36
    assert counts.accesses_of(level="GLB", tensor="O", action="write") == 7 * 6 * 36
    assert counts.accesses_of(level="GLB", tensor="O", action="read") == 6 * 6 * 36   # psum RMW
    assert counts.stall_cycles == 0


def test_difference_padding_uses_unpadded_input():
    phys = run(CONV, make_arch(4, 4))
    compat = run(CONV, make_arch(4, 4, mode="scalesim"))
    assert phys.accesses_of(level="DRAM", tensor="I") == 6 * 6 * 3          # pad zeros made on chip
    assert compat.accesses_of(level="DRAM", tensor="I") == 8 * 8 * 3        # SCALE-Sim reads the padded ifmap


def test_difference_partial_folds_shrink_and_no_minus_one():
    phys = run(CONV, make_arch(4, 4, dram_bw=None), overlap_swaps=False)
    compat = run(CONV, make_arch(4, 4, mode="scalesim"))
    assert compat.compute_cycles == 14 * (2 * 4 + 4 + 36 - 2) - 1
    assert phys.compute_cycles == sum(ur + 36 + ur + uc - 2 for uc in (4, 2) for ur in (4,) * 6 + (3,))
    assert phys.compute_cycles < compat.compute_cycles


def test_difference_double_buffered_swaps():
    arch = make_arch(4, 4, dram_bw=None)
    overlapped = run(CONV, arch)
    serial = run(CONV, arch, overlap_swaps=False)
    assert serial.compute_cycles - overlapped.compute_cycles == 2 * (6 * 4 + 3) - 4   # all loads but the first


def test_difference_os_drains_outputs():
    arch = make_arch(4, 4, dataflow="os", dram_bw=None)
    counts = run(CONV, arch, overlap_swaps=False)
    # os: Sr = 36 pixels (9 row folds), Sc = 6 (4, 2), T = 27; each fold drains ur = 4 rows
    assert counts.compute_cycles == sum(27 + 4 + uc - 2 + 4 for uc in (4, 2) for _ in range(9))
    assert counts.accesses_of(level="GLB", tensor="O", action="write") == 36 * 6   # no folds*(R+C) term


def test_difference_groups_packed_block_diagonally():
    dw = Layer("dw", Op.DEPTHWISE, K=16, C=16, G=16, P=8, Q=8, R=3, S=3, padding=1)
    arch = make_arch(32, 32, dram_bw=None)
    assert groups_per_fold(16, 9, 1, 32, 32, pack=True) == 3                  # 3 x (9 rows, 1 col) fit
    packed = run(dw, arch)
    serial = run(dw, arch, groups="serial")
    assert packed.detail("folds") == math.ceil(16 / 3)
    assert serial.detail("folds") == 16
    assert packed.compute_cycles < serial.compute_cycles
    assert packed.mac_ops == serial.mac_ops == dw.macs
    compat = run(dw, make_arch(32, 32, mode="scalesim"))                       # 16 serial layers
    assert compat.detail("copies") == 16


def test_difference_cores_split_pixels():
    layer = Layer("c", Op.CONV, K=32, C=32, P=16, Q=16, R=3, S=3, padding=1)
    one = run(layer, make_arch(16, 16, dram_bw=None))
    four = run(layer, make_arch(16, 16, cores=4, dram_bw=None))
    assert four.compute_cycles < one.compute_cycles / 3
    # ws: every core loads all weights, pixel-side counts are split
    assert four.accesses_of(level="GLB", tensor="W") == 4 * one.accesses_of(level="GLB", tensor="W")
    assert four.accesses_of(level="GLB", tensor="I") == one.accesses_of(level="GLB", tensor="I")


def test_difference_batch_streams_more_pixels():
    b1 = run(CONV, make_arch(4, 4, dram_bw=None))
    b4 = run(CONV.with_changes(N=4), make_arch(4, 4, dram_bw=None))
    assert b4.compute_cycles - b1.compute_cycles == 14 * 3 * 36                 # T grows by 3*36 per fold
    compat = run(CONV.with_changes(N=4), make_arch(4, 4, mode="scalesim"))
    assert compat.detail("copies") == 4


def test_difference_dram_refetch_when_sram_too_small():
    layer = Layer("c", Op.CONV, K=64, C=64, P=28, Q=28, R=3, S=3, padding=1)
    big = run(layer, make_arch(16, 16, sram_kb=(1024, 1024, 1024), dram_bw=None))
    small = run(layer, make_arch(16, 16, sram_kb=(2, 2, 2), dram_bw=None))
    assert big.accesses_of(level="DRAM", tensor="I") == layer.input_elems
    assert big.accesses_of(level="DRAM", tensor="W") == layer.weight_elems
    assert small.detail("dram_bytes") > big.detail("dram_bytes")


def test_psum_spill_when_outputs_do_not_fit():
    layer = Layer("c", Op.CONV, K=64, C=64, P=28, Q=28, R=3, S=3, padding=1)
    arch = make_arch(16, 16, sram_kb=(1, 1, 1))
    traffic = dram_traffic_bytes(layer, arch.memory[-1], dataflow="ws", row_folds=36, col_folds=4)
    assert traffic["O_read"] > 0 or traffic["I_read"] > layer.input_elems


def test_difference_stalls_from_dram_bandwidth():
    layer = Layer("c", Op.CONV, K=64, C=64, P=28, Q=28, R=3, S=3, padding=1)
    fast = run(layer, make_arch(16, 16, dram_bw=1000.0))
    slow = run(layer, make_arch(16, 16, dram_bw=0.05))
    assert slow.stall_cycles > 0
    assert fast.stall_cycles == math.ceil(16 * 16 / 1000.0)                  # only the first weight tile
    no_overlap = run(layer, make_arch(16, 16, dram_bw=1.0, double_buffered=False))
    # separate read and write ports (both declared): the slower direction sets the stall
    reads = sum(no_overlap.detail(f"dram_{k}_bytes") for k in ("W_read", "I_read", "O_read"))
    assert no_overlap.stall_cycles == math.ceil(max(reads, no_overlap.detail("dram_O_write_bytes")) / 1.0)
    shared = run(layer, make_arch(16, 16, dram_bw=1.0, double_buffered=False).with_overrides(
        {"memory.DRAM.write_bw_bytes_per_cycle": None}))
    assert shared.stall_cycles == math.ceil(shared.detail("dram_bytes") / 1.0) > no_overlap.stall_cycles


@pytest.mark.parametrize("rows, cols", [(1, 1), (64, 64), (5, 3)])
@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_edge_arrays_physical(rows, cols, dataflow):
    counts = run(CONV, make_arch(rows, cols, dataflow=dataflow, dram_bw=None))
    assert 0 < counts.utilization <= 1.0
    assert counts.mac_ops == CONV.macs
    if rows == cols == 1:
        assert counts.detail("mapping_efficiency") == 1.0


def test_linear_and_matmul():
    fc = Layer("fc", Op.LINEAR, N=8, K=10, C=16)
    counts = run(fc, make_arch(4, 4, dram_bw=None))
    assert counts.mac_ops == 8 * 10 * 16
    mm = Layer("qk", Op.MATMUL, N=2, K=8, C=4, P=8)
    assert run(mm, make_arch(4, 4, dram_bw=None)).mac_ops == mm.macs
