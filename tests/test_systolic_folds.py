"""The closed-form fold sum (``models/systolic/folds.py``) equals walking every fold, for groups and packing too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.models.systolic.folds import physical_cycles
from hwsim.models.systolic.physical import groups_per_fold
from reference.systolic_ref import physical_fold_loop_ref


@settings(deadline=None, max_examples=400)
@given(sr=st.integers(1, 70), sc=st.integers(1, 70), t=st.integers(1, 30), rows=st.integers(1, 12),
       cols=st.integers(1, 12), groups=st.integers(1, 9), load_before=st.booleans(), overlap=st.booleans())
def test_closed_form_matches_fold_loop(sr, sc, t, rows, cols, groups, load_before, overlap):
    expected = physical_fold_loop_ref(sr, sc, t, rows, cols, groups, 1, load_before, overlap)
    assert physical_cycles(sr, sc, t, rows, cols, groups, 1, load_before, overlap) == expected


@settings(deadline=None, max_examples=300)
@given(sr=st.integers(1, 6), sc=st.integers(1, 6), t=st.integers(1, 12), rows=st.integers(1, 16),
       cols=st.integers(1, 16), groups=st.integers(2, 40), load_before=st.booleans(), overlap=st.booleans())
def test_closed_form_matches_fold_loop_packed(sr, sc, t, rows, cols, groups, load_before, overlap):
    pack = groups_per_fold(groups, sr, sc, rows, cols, pack=True)
    expected = physical_fold_loop_ref(sr, sc, t, rows, cols, groups, pack, load_before, overlap)
    assert physical_cycles(sr, sc, t, rows, cols, groups, pack, load_before, overlap) == expected


def test_hand_values():
    """ws, 3x3 stationary on a 2x2 array, t=1: folds (2,2) (1,2) (2,1) (1,1) stream 3, 2, 2, 1 cycles."""
    # no overlap: every load exposed: streams 8 + loads 2 + 1 + 2 + 1 = 14
    assert physical_cycles(3, 3, 1, 2, 2, 1, 1, load_before=True, overlap=False) == (14, 4)
    # overlap: first load 2, then max(0, 1-3) + max(0, 2-2) + max(0, 1-2) = 0: 8 + 2 = 10
    assert physical_cycles(3, 3, 1, 2, 2, 1, 1, load_before=True, overlap=True) == (10, 4)
    # os, overlap: drains 2, 1, 2 under the next streams 2, 2, 1 expose 0 + 0 + 1, last drain 1: 8 + 2 = 10
    assert physical_cycles(3, 3, 1, 2, 2, 1, 1, load_before=False, overlap=True) == (10, 4)
    # 4 depthwise groups 1x1 packed 2 per fold on a 2x2 array: two folds (2,2) stream 3 each, loads 2 (+0)
    assert physical_cycles(1, 1, 1, 2, 2, 4, 2, load_before=True, overlap=True) == (8, 2)


def test_large_layer_is_exact():
    """A ResNet-like 4608 x 512 weight tile, 196 pixels, on a 64x64 array: 72 x 8 folds, closed form = loop."""
    args = (4608, 512, 196, 64, 64, 1, 1, True, True)
    assert physical_cycles(*args) == physical_fold_loop_ref(*args)
    assert physical_cycles(*args)[1] == 72 * 8
