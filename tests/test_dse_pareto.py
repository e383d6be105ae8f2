"""Pareto fronts and hypervolume against the references in tests/reference/dse_ref.py and hand values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.dse.pareto import front, hypervolume, hypervolume_history, pareto_mask
from hwsim.errors import ConfigError
from tests.reference.dse_ref import hypervolume_grid_ref, pareto_ref

points_2d = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=25)
points_3d = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12)


@settings(deadline=None, max_examples=150)
@given(points=st.one_of(points_2d, points_3d), block=st.integers(1, 8))
def test_pareto_mask_matches_reference(points, block):
    assert pareto_mask(np.array(points), block=block).tolist() == pareto_ref(points)


@settings(deadline=None, max_examples=150)
@given(points=points_2d)
def test_hypervolume_2d_matches_cell_count(points):
    assert hypervolume(np.array(points), [10, 10]) == pytest.approx(hypervolume_grid_ref(points, [10, 10]))


@settings(deadline=None, max_examples=100)
@given(points=points_3d)
def test_hypervolume_3d_matches_cell_count(points):
    assert hypervolume(np.array(points), [6, 6, 6]) == pytest.approx(hypervolume_grid_ref(points, [6, 6, 6]))


def test_hand_computed_front_and_hypervolume():
    # (1,3) (2,2) (3,1) form the front; (3,3) is dominated by (2,2). Ref (4,4):
    # staircase area = 1*3 (x 1..2) + 1*2 (x 2..3) + 1*1 (x 3..4) = 6.
    pts = np.array([[1, 3], [2, 2], [3, 1], [3, 3]])
    assert pareto_mask(pts).tolist() == [True, True, True, False]
    assert hypervolume(pts, [4, 4]) == pytest.approx(6.0)
    # maximising the second objective: negate -> front is (1,3) and (3,3)
    assert pareto_mask(pts, ["min", "max"]).tolist() == [True, False, False, False]
    assert hypervolume(pts[:1], [4, 0], ["min", "max"]) == pytest.approx(3 * 3)


def test_points_outside_reference_add_nothing():
    assert hypervolume(np.array([[5.0, 1.0]]), [4.0, 4.0]) == 0.0
    assert hypervolume(np.empty((0, 2)), [1.0, 1.0]) == 0.0


def _rec(key, **objectives):
    return {"key": key, "params": {"p": key}, "objectives": objectives}


def test_front_applies_constraints_and_senses():
    records = [_rec("a", latency_s=1.0, energy_pj=9.0, power_mw=10.0),
               _rec("b", latency_s=2.0, energy_pj=5.0, power_mw=900.0),
               _rec("c", latency_s=3.0, energy_pj=6.0, power_mw=10.0),
               _rec("d", latency_s=4.0, energy_pj=1.0, power_mw=10.0)]
    keys = [r["key"] for r in front(records, ["latency", "energy"])]
    assert keys == ["a", "b", "d"]
    # b violates the power cap; c is then no longer dominated
    keys = [r["key"] for r in front(records, ["latency", "energy"], constraints=["power_mw <= 500"])]
    assert keys == ["a", "c", "d"]


def test_hypervolume_history_is_monotone():
    records = [_rec(str(i), latency_s=float(10 - i), energy_pj=float(i * i % 7 + 1)) for i in range(8)]
    history = hypervolume_history(records, ["latency", "energy"], reference=[11.0, 11.0])
    assert all(b >= a for a, b in zip(history, history[1:]))
    best = np.array([[r["objectives"]["latency_s"], r["objectives"]["energy_pj"]] for r in records])
    assert history[-1] == pytest.approx(hypervolume(best[pareto_mask(best)], [11.0, 11.0]))


def test_bad_objective_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown metric 'speed'"):
        front([], ["speed"])
