"""Sparse-engine kernels against their plain references (tests/reference/sparse_ref.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hwsim.models.sparse.formats import expected_rle_entries, footprint, rle_entries
from hwsim.models.sparse.partition import cartesian_cycles, column_pe_counts, queue_cycles, row_rounds_cycles
from tests.reference.sparse_ref import (cartesian_cycles_ref, column_pe_counts_ref, queue_cycles_ref,
                                        rle_entries_ref, row_rounds_cycles_ref)


def _mask(seed: int, rows: int, cols: int, density: float) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, cols)) < density


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 40), cols=st.integers(1, 30),
       density=st.floats(0.0, 1.0), pes=st.integers(1, 9))
def test_column_pe_counts_matches_reference(seed, rows, cols, density, pes):
    mask = _mask(seed, rows, cols, density)
    np.testing.assert_array_equal(column_pe_counts(mask, pes), column_pe_counts_ref(mask, pes))


@settings(deadline=None, max_examples=80)
@given(seed=st.integers(0, 10_000), n_act=st.integers(0, 25), pes=st.integers(1, 6),
       depth=st.integers(1, 5), high=st.integers(1, 4))
def test_queue_cycles_matches_cycle_stepped_reference(seed, n_act, pes, depth, high):
    work = np.random.default_rng(seed).integers(0, high + 1, size=(n_act, pes))
    assert queue_cycles(work, depth) == queue_cycles_ref(work, depth)


@pytest.mark.parametrize(("work", "depth", "expected"), [
    ([[2, 0], [1, 1], [0, 0], [1, 0]], 1, 4),     # PE0 has 4 cycles of work; no stall beyond it
    ([[2, 0], [0, 2]], 1, 3),                     # depth-1 FIFO hides one cycle of the imbalance
    ([[0, 0], [0, 0], [0, 0]], 4, 3),             # all-zero columns still cost one broadcast each
    ([[3, 0], [0, 3], [3, 0], [0, 3]], 8, 7),     # deep FIFOs: the busiest PE (6) + 1 broadcast lag
])
def test_queue_cycles_hand_computed(work, depth, expected):
    assert queue_cycles(np.array(work), depth) == expected


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 10_000), pes=st.integers(1, 5), chans=st.integers(1, 6), groups=st.integers(1, 4),
       f_width=st.integers(1, 4), i_width=st.integers(1, 4))
def test_cartesian_cycles_matches_reference(seed, pes, chans, groups, f_width, i_width):
    rng = np.random.default_rng(seed)
    act = rng.integers(0, 20, size=(pes, chans))
    w = rng.integers(0, 20, size=(chans, groups))
    assert cartesian_cycles(act, w, f_width=f_width, i_width=i_width) == cartesian_cycles_ref(act, w, f_width, i_width)


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 40), pes=st.integers(1, 8), lanes=st.integers(1, 16))
def test_row_rounds_matches_reference(seed, rows, pes, lanes):
    nnz = np.random.default_rng(seed).integers(0, 50, size=rows)
    assert row_rounds_cycles(nnz, pes=pes, lanes=lanes) == row_rounds_cycles_ref(nnz, pes, lanes)


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 8), cols=st.integers(1, 80),
       density=st.floats(0.0, 1.0), run_bits=st.integers(1, 4))
def test_rle_entries_matches_reference(seed, rows, cols, density, run_bits):
    mask = _mask(seed, rows, cols, density)
    assert rle_entries(mask, run_bits) == rle_entries_ref(mask, run_bits)


def test_rle_eie_padding_example():
    # EIE (Han et al. ISCA 2016 Fig. 3): 4-bit runs; a non-zero after 16 zeros needs one padding zero
    row = np.zeros((1, 18), dtype=bool)
    row[0, 0] = row[0, 17] = True
    assert rle_entries(row, 4) == 3


def test_expected_rle_entries_close_to_sampled():
    mask = _mask(1, 64, 4096, 0.05)
    assert expected_rle_entries(mask.sum(), mask.size, 4) == pytest.approx(rle_entries(mask, 4), rel=0.03)


@pytest.mark.parametrize(("fmt", "payload", "meta_bits"), [
    ("uncompressed", 64, 0),        # 8 x 8 stored dense
    ("bitmask", 16, 64),            # 16 non-zeros + one bit per element
    ("cp", 16, 16 * 3),             # 3-bit coordinate (fiber of 8) per non-zero
    ("csr", 16, 16 * 3 + 9 * 7),    # + 9 row offsets of ceil(log2(65)) = 7 bits
    ("nm", 16, 16 * 2),             # 2-bit index per kept value (4-wide groups)
])
def test_footprint_hand_computed(fmt, payload, meta_bits):
    fp = footprint(fmt, fibers=8, fiber_len=8, nnz=16, nm_m=4)
    assert fp.payload_words == payload
    assert fp.metadata_bits == meta_bits


@settings(deadline=None, max_examples=60)
@given(population=st.integers(1, 400), frac=st.floats(0, 1), draw_frac=st.floats(0, 1), copies=st.integers(1, 16),
       lanes=st.integers(1, 5))
@example(population=260, frac=0.015625, draw_frac=0.015625, copies=1, lanes=1)   # skewed tail a 12-sd cut lost
def test_expected_max_ceil_matches_full_cdf(population, frac, draw_frac, copies, lanes):
    from hwsim.models.sparse.statistical import expected_max_ceil
    from tests.reference.sparse_ref import expected_max_ceil_ref

    successes, draws = int(frac * population), int(draw_frac * population)
    got = expected_max_ceil(population=population, successes=successes, draws=draws, copies=copies, lanes=lanes,
                            model="hypergeometric")
    assert got == pytest.approx(expected_max_ceil_ref(population, successes, draws, copies, lanes), abs=1e-9)


def test_expected_max_of_standard_normals_matches_closed_forms():
    """E[max of 2] = 1/sqrt(pi), E[max of 3] = 3/(2 sqrt(pi)) (order statistics of the normal)."""
    import math

    from hwsim.models.sparse.statistical import expected_max_std_normal

    assert expected_max_std_normal(1) == 0.0
    assert expected_max_std_normal(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-6)
    assert expected_max_std_normal(3) == pytest.approx(3 / (2 * math.sqrt(math.pi)), abs=1e-6)
    import numpy as np

    sampled = np.random.default_rng(0).standard_normal((200_000, 64)).max(axis=1).mean()
    assert expected_max_std_normal(64) == pytest.approx(sampled, abs=0.01)   # Monte Carlo reference


@pytest.mark.parametrize("population, successes, draws, lanes", [(200, 60, 20, 1), (500, 100, 64, 4), (90, 45, 9, 2)])
def test_ceil_moments_match_scipy_hypergeom(population, successes, draws, lanes):
    import numpy as np
    from scipy.stats import hypergeom

    from hwsim.models.sparse.statistical import ceil_moments

    x = np.arange(0, draws + 1)
    pmf = hypergeom(population, successes, draws).pmf(x)
    y = np.ceil(x / lanes)
    mean, second = ceil_moments(population=population, successes=successes, draws=draws, lanes=lanes,
                                model="hypergeometric")
    assert mean == pytest.approx(float(y @ pmf), rel=1e-9) and second == pytest.approx(float((y ** 2) @ pmf), rel=1e-9)
