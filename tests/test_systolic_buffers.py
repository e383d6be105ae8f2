"""The Numba SCALE-Sim memory port vs the literal reference (whole demand matrices, Python sets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Layer, Op
from hwsim.models import systolic
from hwsim.models.systolic import _buffer_kernels as bk
from hwsim.models.systolic import buffers as buffers_module
from hwsim.models.systolic._kernels import DATAFLOW_CODES
from hwsim.models.systolic.buffers import _shape_vector, simulate_buffers, simulate_calc
from hwsim.models.systolic.compat import ScaleSimLayer, ifmap_valid
from hwsim.models.systolic.compat_engine import compat_report
from hwsim.models.systolic.report import sram_trace_rows
from reference.systolic_ref import (calc_memory_ref, demand_matrices_ref, make_arch, memory_ref,
                                    prefetch_sequence_ref)


@st.composite
def small_layers(draw):
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return ScaleSimLayer("l", draw(st.integers(r, 9)), draw(st.integers(s, 9)), r, s, draw(st.integers(1, 4)),
                         draw(st.integers(1, 7)), *(draw(st.integers(1, 2)),) * 2)


@settings(deadline=None, max_examples=60)
@given(layer=small_layers(), rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["ws", "os", "is"]), size=st.integers(100, 1500), out_size=st.integers(8, 200))
def test_calc_port_matches_literal_reference(layer, rows, cols, dataflow, size, out_size):
    sizes = (size, size, out_size)
    got = simulate_calc(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=sizes)
    ref = calc_memory_ref(layer, rows, cols, dataflow, sizes)
    assert got.stall_cycles == ref["stalls"]
    assert got.total_cycles == ref["total"]
    assert [(int(a), int(b)) for a, b, _ in got.sram] == ref["windows"]
    assert [(int(a), int(b), n) for a, b, n in got.dram] == [tuple(int(v) for v in d) for d in ref["dram"]]


@settings(deadline=None, max_examples=60)
@given(layer=small_layers(), rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["ws", "os", "is"]), size=st.integers(60, 1500), out_size=st.integers(8, 200),
       fill=st.integers(1, 10), drain=st.integers(1, 10))
def test_user_port_matches_literal_reference(layer, rows, cols, dataflow, size, out_size, fill, drain):
    sizes = (size, size, out_size)
    try:
        ref = memory_ref(layer, rows, cols, dataflow, sizes, interface="USER", fill=(fill, fill), drain=drain)
    except RuntimeError:                          # SCALE-Sim would loop forever; the port refuses
        with pytest.raises(UnsupportedOpError):
            simulate_buffers(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=sizes, interface="USER",
                             fill_words_per_cycle=(fill, fill), drain_words_per_cycle=drain)
        return
    got = simulate_buffers(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=sizes, interface="USER",
                           fill_words_per_cycle=(fill, fill), drain_words_per_cycle=drain)
    assert (got.stall_cycles, got.total_cycles) == (ref["stalls"], ref["total"])
    assert [(int(a), int(b)) for a, b, _ in got.sram] == ref["windows"]
    assert [(int(a), int(b), n) for a, b, n in got.dram] == [tuple(int(v) for v in d) for d in ref["dram"]]


@settings(deadline=None, max_examples=40)
@given(layer=small_layers(), rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["ws", "os", "is"]))
def test_trace_rows_match_literal_demand_matrices(layer, rows, cols, dataflow):
    demands = demand_matrices_ref(layer, rows, cols, dataflow)
    for operand, matrix in enumerate(demands):
        rows_out = [line for _, line in sram_trace_rows(layer, rows=rows, cols=cols, dataflow=dataflow,
                                                         operand=operand)]
        assert rows_out == matrix.tolist()


@settings(deadline=None, max_examples=40)
@given(layer=small_layers(), rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["ws", "os", "is"]))
def test_closed_forms_equal_port_when_nothing_stalls(layer, rows, cols, dataflow):
    simulated = simulate_calc(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=(1 << 16,) * 3)
    closed = compat_report(layer, rows=rows, cols=cols, dataflow=dataflow)
    assert simulated.stall_cycles == 0
    assert (simulated.total_cycles, simulated.sram) == (closed.total_cycles, closed.sram)
    assert [d[2] for d in simulated.dram] == [d[2] for d in closed.dram]


# USER-mode rows of SCALE-Sim 3.0.0 reports (python -m scalesim.scale, 1 kB SRAMs, bank bandwidth
# fill words/cycle, Bandwidth = drain; run 2026-11-25 in tests/test_scalesim_peers.py seeds 15 and 16):
# (layer, dataflow, rows, cols, fill, drain, incl. prefetch, total, stalls, DRAM (start, stop, count) x 3)
USER_RECORDED = [
    (ScaleSimLayer("c1", 8, 7, 2, 1, 6, 3), "os", 4, 4, 1, 2, 1460, 875, 642,
     ((-512, 512, 1024), (-48, -1, 48), (875, 948, 147))),
    (ScaleSimLayer.gemm("g1", m=18, n=31, k=35), "is", 8, 4, 2, 2, 4729, 4358, 3134,
     ((-256, 256, 1024), (-256, 4111, 8704), (1572, 4473, 2791))),
]


@pytest.mark.parametrize("case", USER_RECORDED, ids=lambda c: c[0].name)
def test_user_mode_matches_recorded_scalesim(case):
    layer, dataflow, rows, cols, fill, drain, overall, total, stalls, dram = case
    report = simulate_buffers(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=(1024,) * 3,
                              interface="USER", fill_words_per_cycle=(fill, fill), drain_words_per_cycle=drain)
    assert (report.total_cycles_incl_prefetch, report.total_cycles, report.stall_cycles) == (overall, total, stalls)
    assert tuple((int(a), int(b), n) for a, b, n in report.dram) == dram


def test_evaluate_with_simulated_buffers():
    arch = make_arch(4, 4, mode="scalesim", sram_kb=(1, 1, 1))
    layer = Layer("c", Op.CONV, K=6, C=3, P=6, Q=6, R=3, S=3, padding=1)
    closed = systolic.evaluate(layer, arch, systolic.default_mapping(layer, arch))
    mapping = systolic.default_mapping(layer, arch).with_params(buffer_model="simulate")
    simulated = systolic.evaluate(layer, arch, mapping)
    assert simulated.compute_cycles == closed.compute_cycles
    assert simulated.accesses_of(level="GLB") == closed.accesses_of(level="GLB")
    assert simulated.accesses_of(level="DRAM", tensor="I") >= closed.accesses_of(level="DRAM", tensor="I")
    user = systolic.evaluate(layer, arch.with_overrides({"systolic.interface_bandwidth": "USER"}),
                             mapping.with_params(interface_bandwidth="USER"))
    assert user.stall_cycles >= 0


@pytest.mark.parametrize("rows, cols", [(1, 1), (9, 9), (2, 7)])
def test_edge_arrays_port(rows, cols):
    layer = ScaleSimLayer("c", 7, 5, 3, 2, 2, 5, 2, 2)
    for dataflow in ("ws", "os", "is"):
        got = simulate_calc(layer, rows=rows, cols=cols, dataflow=dataflow, sram_words=(200, 200, 50))
        ref = calc_memory_ref(layer, rows, cols, dataflow, (200, 200, 50))
        assert (got.stall_cycles, got.total_cycles) == (ref["stalls"], ref["total"])
        assert [d[2] for d in got.dram] == [d[2] for d in ref["dram"]]


# --- the port's building blocks against their plain twins -----------------------------------------

@settings(deadline=None, max_examples=60)
@given(layer=small_layers(), rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["ws", "os", "is"]), operand=st.integers(0, 1))
def test_prefetch_kernel_matches_reference_order(layer, rows, cols, dataflow, operand):
    sr, sc, t = layer.spatial_dims(dataflow)
    df = DATAFLOW_CODES[dataflow]
    block_rows, total_rows, width, diagonal = bk._prefetch_layout(df, operand, rows, cols, sr, sc, t)
    shape = _shape_vector(layer)
    ptab, ktab = bk.ifmap_tables(shape)
    out = np.full(total_rows * width, 99, dtype=np.int32)       # reused memory: any contents
    unit_valid = np.full(total_rows + width, 99, dtype=np.int32)
    bk._prefetch_kernel(shape, ptab, ktab, df, operand, rows, cols, sr, sc, block_rows,
                        total_rows, width, diagonal, out, unit_valid)
    expected = prefetch_sequence_ref(layer, rows, cols, dataflow, operand)
    assert out.tolist() == expected
    # units: the matrix rows in row order, else its anti-diagonals (row g + column j = d)
    lengths = ([width] * total_rows if not diagonal else
               [min(d, width - 1) - max(0, d - total_rows + 1) + 1 for d in range(total_rows + width - 1)])
    prefix, position = [0], 0
    for length in lengths:
        prefix.append(prefix[-1] + sum(word >= 0 for word in expected[position:position + length]))
        position += length
    assert unit_valid[:len(prefix)].tolist() == prefix


@settings(deadline=None, max_examples=80)
@given(sequence=st.lists(st.integers(-1, 11), max_size=120), per_set=st.integers(1, 7))
def test_user_tables_chain_every_address_through_its_sets(sequence, per_set):
    """Each address's chain lists, in order, the distinct sets holding it (valid word i -> set i // per_set)."""
    valid = [x for x in sequence if x >= 0]
    expected: dict[int, list[int]] = {}
    for i, x in enumerate(valid):
        if i // per_set not in expected.setdefault(x, []):
            expected[x].append(i // per_set)
    where = np.full((12, 2), 7, dtype=np.int32)                   # reused memory: any contents
    first = np.full(12, 7, dtype=np.int32)
    entries = np.full((max(len(sequence), 1), 2), 7, dtype=np.int32)
    count = bk._user_tables_kernel(np.array(sequence, dtype=np.int32), per_set, where, first, entries)
    assert count == len(valid)
    for address in range(12):
        chain, e = [], first[address]
        while e >= 0:
            chain.append(int(entries[e, 0]))
            e = entries[e, 1]
        assert chain == expected.get(address, [])
        # the cached current copy starts at the head, linked to the second
        head = (chain[0], entries[first[address], 1]) if chain else (bk.NO_SET, -1)
        assert tuple(where[address]) == head


@settings(deadline=None, max_examples=300)
@given(counts=st.lists(st.integers(0, 9), min_size=1, max_size=12), per_set=st.integers(1, 7), data=st.data())
def test_unit_resident_iff_every_set_of_its_words_is_in_the_window(counts, per_set, data):
    """A unit (row or anti-diagonal of the prefetch matrix) is resident iff every set holding one of
    its valid words lies in the circular window [start, start + active) (mod the number of sets)."""
    unit_valid = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    num_sets = int(unit_valid[-1]) // per_set + 1
    start, active = data.draw(st.integers(0, num_sets - 1)), data.draw(st.integers(1, num_sets))
    state = np.zeros(bk._UR_SIZE, dtype=np.int64)
    bk._user_read_state(state, per_set * 100, 1, int(unit_valid[-1]), int(unit_valid[-1]))
    assert (state[bk._UR_PER_SET], state[bk._UR_SETS]) == (per_set, num_sets)
    state[bk._UR_START], state[bk._UR_ACTIVE] = start, active
    window = {(start + i) % num_sets for i in range(active)}
    for u, count in enumerate(counts):
        sets = {word // per_set for word in range(unit_valid[u], unit_valid[u] + count)}
        assert bk._unit_resident(state, unit_valid, u) == (bool(sets) and sets <= window)


@settings(deadline=None, max_examples=200)
@given(layer=small_layers(), data=st.data())
def test_range_inside_test_agrees_with_every_element(layer, data):
    """The O(1) "whole row/fold inside the ifmap" test equals checking each (pixel, window index)."""
    p_first = data.draw(st.integers(0, layer.pixels - 1))
    p_last = data.draw(st.integers(p_first, layer.pixels - 1))
    k_first = data.draw(st.integers(0, layer.window - 1))
    k_last = data.draw(st.integers(k_first, layer.window - 1))
    pixels, ks = np.meshgrid(np.arange(p_first, p_last + 1), np.arange(k_first, k_last + 1))
    every = bool(ifmap_valid(layer, pixels.ravel(), ks.ravel()).all())
    assert bk._ranges_inside(_shape_vector(layer), p_first, p_last, k_first, k_last) == every


def test_port_refuses_layers_beyond_its_int32_tables(monkeypatch):
    """ifmap 576 words, filter 144, USER ifmap prefetch sequence 9 row folds x 100 rows x 4 = 3600."""
    layer = ScaleSimLayer("big", 12, 12, 3, 3, 4, 4)
    monkeypatch.setattr(buffers_module, "MAX_TABLE_WORDS", 1000)
    with pytest.raises(UnsupportedOpError, match=r"'big': the USER-mode prefetch sequence \(3600 words\)"):
        simulate_buffers(layer, rows=4, cols=4, dataflow="ws", sram_words=(1024,) * 3, interface="USER")
    simulate_buffers(layer, rows=4, cols=4, dataflow="ws", sram_words=(1024,) * 3)      # CALC needs no sequence
    monkeypatch.setattr(buffers_module, "MAX_TABLE_WORDS", 500)
    with pytest.raises(UnsupportedOpError, match=r"'big': the ifmap \(576 words\)"):
        simulate_buffers(layer, rows=4, cols=4, dataflow="ws", sram_words=(1024,) * 3)


def test_reused_scratch_memory_gives_identical_reports():
    """Scratch buffers persist between calls: a big layer, then a small one, then the big one again."""
    big, small = ScaleSimLayer("big", 14, 14, 3, 3, 6, 10), ScaleSimLayer("small", 6, 5, 2, 2, 3, 4)
    for interface in ("CALC", "USER"):
        run = [simulate_buffers(layer, rows=4, cols=3, dataflow="ws", sram_words=(300, 300, 80), interface=interface)
               for layer in (big, small, big)]
        assert run[0] == run[2]
        ref = memory_ref(small, 4, 3, "ws", (300, 300, 80), interface=interface)
        assert (run[1].stall_cycles, run[1].total_cycles) == (ref["stalls"], ref["total"])
        assert [d[2] for d in run[1].dram] == [d[2] for d in ref["dram"]]
