"""The closed forms agree with a literal cycle-by-cycle simulation of a tiny array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.models.systolic.compat import ScaleSimLayer, compat_compute
from hwsim.models.systolic.folds import physical_cycles
from hwsim.models.systolic.physical import spatial_dims
from reference.systolic_ref import fold_list_ref, physical_cycles_ref, run_fold_ref

DIMS = st.integers(1, 7)


def _tiles(a, b, rows, cols, dataflow):
    """Yield (a_tile, b_tile, ur, uc) for every fold, row folds inner."""
    m, k = a.shape
    n = b.shape[1]
    sr, sc, _ = spatial_dims(m, k, n, dataflow)
    for c0 in range(0, sc, cols):
        for r0 in range(0, sr, rows):
            rs, cs = slice(r0, r0 + rows), slice(c0, c0 + cols)
            if dataflow == "ws":
                yield a[:, rs], b[rs, cs]
            elif dataflow == "is":
                yield a[cs, rs], b[rs, :]
            else:
                yield a[rs, :], b[:, cs]


def _padded(tile, shape):
    out = np.zeros(shape)
    out[:tile.shape[0], :tile.shape[1]] = tile
    return out


def _pad_to_array(a_t, b_t, rows, cols, dataflow):
    if dataflow == "ws":
        return _padded(a_t, (a_t.shape[0], rows)), _padded(b_t, (rows, cols))
    if dataflow == "is":
        return _padded(a_t, (cols, rows)), _padded(b_t, (rows, b_t.shape[1]))
    return _padded(a_t, (rows, a_t.shape[1])), _padded(b_t, (b_t.shape[0], cols))


@settings(deadline=None, max_examples=40)
@given(m=DIMS, k=DIMS, n=DIMS, rows=st.integers(1, 4), cols=st.integers(1, 4),
       dataflow=st.sampled_from(["ws", "os", "is"]), seed=st.integers(0, 99))
def test_literal_array_matches_compat_closed_form(m, k, n, rows, cols, dataflow, seed):
    """Full-array padded folds run back to back: SCALE-Sim's total + 1 (its -1 is a row index)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-3, 4, (m, k)).astype(float), rng.integers(-3, 4, (k, n)).astype(float)
    total = 0
    for a_t, b_t in _tiles(a, b, rows, cols, dataflow):
        cycles, out = run_fold_ref(*_pad_to_array(a_t, b_t, rows, cols, dataflow), dataflow)
        total += cycles
        product = a_t @ b_t                      # padding only adds zero rows/cols
        assert np.allclose(out[: product.shape[0], : product.shape[1]], product)
    # GEMM m x k x n is SCALE-Sim's layer: ifmap m x k, filter 1 x k, n filters
    layer = ScaleSimLayer.gemm("g", m=m, n=n, k=k)
    assert compat_compute(layer, rows=rows, cols=cols, dataflow=dataflow).cycles == total - 1


@settings(deadline=None, max_examples=40)
@given(m=DIMS, k=DIMS, n=DIMS, rows=st.integers(1, 4), cols=st.integers(1, 4),
       dataflow=st.sampled_from(["ws", "os", "is"]), seed=st.integers(0, 99))
def test_literal_array_matches_physical_closed_form_without_overlap(m, k, n, rows, cols, dataflow, seed):
    """Unpadded folds, stationary swaps not hidden: sum of literal fold cycles (+ os drains)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-3, 4, (m, k)).astype(float), rng.integers(-3, 4, (k, n)).astype(float)
    total = 0
    sr, sc, t = spatial_dims(m, k, n, dataflow)
    for (a_t, b_t), (ur, uc) in zip(_tiles(a, b, rows, cols, dataflow), fold_list_ref(sr, sc, rows, cols)):
        cycles, out = run_fold_ref(a_t, b_t, dataflow, drain=True)
        total += cycles
        assert np.allclose(out, a_t @ b_t)
    got, _ = physical_cycles(sr, sc, t, rows, cols, groups=1, pack=1, load_before=dataflow != "os", overlap=False)
    assert got == total


@settings(deadline=None, max_examples=300)
@given(sr=st.integers(1, 90), sc=st.integers(1, 90), t=st.integers(1, 40), rows=st.integers(1, 16),
       cols=st.integers(1, 16), dataflow=st.sampled_from(["ws", "os", "is"]), overlap=st.booleans())
def test_physical_closed_form_matches_event_schedule(sr, sc, t, rows, cols, dataflow, overlap):
    got, folds = physical_cycles(sr, sc, t, rows, cols, groups=1, pack=1, load_before=dataflow != "os",
                                 overlap=overlap)
    assert folds == len(fold_list_ref(sr, sc, rows, cols))
    assert got == physical_cycles_ref(sr, sc, t, rows, cols, dataflow, overlap)


def test_literal_fold_hand_values():
    """2x2 weights on a 2x2 ws array, 3 inputs: load 2 + stream 3 + 2 + 2 - 2 = 7 cycles."""
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([[1.0, 0.0], [0.0, 1.0]])
    cycles, out = run_fold_ref(a, b, "ws")
    assert cycles == 7
    assert np.allclose(out, a)
    cycles_os, out_os = run_fold_ref(a, np.eye(2), "os", drain=False)
    assert cycles_os == 2 + 3 + 2 - 2 and np.allclose(out_os, a)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_one_by_one_array_literal(dataflow):
    a = np.arange(6.0).reshape(3, 2)
    b = np.arange(4.0).reshape(2, 2)
    total = sum(run_fold_ref(*_pad_to_array(at, bt, 1, 1, dataflow), dataflow)[0]
                for at, bt in _tiles(a, b, 1, 1, dataflow))
    layer = ScaleSimLayer.gemm("g", m=3, n=2, k=2)
    assert compat_compute(layer, rows=1, cols=1, dataflow=dataflow).cycles == total - 1
