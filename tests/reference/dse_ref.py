"""Slow, obviously-right references for hwsim.dse.pareto (pure Python)."""

from __future__ import annotations

import itertools


def dominates_ref(a, b) -> bool:
    """``a`` dominates ``b`` (minimisation): no worse everywhere, better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_ref(points) -> list[bool]:
    """True for every point no other point dominates (O(n^2) double loop)."""
    return [not any(dominates_ref(q, p) for j, q in enumerate(points) if j != i) for i, p in enumerate(points)]


def hypervolume_grid_ref(points, reference) -> int:
    """Hypervolume for integer coordinates by counting the unit cells some point dominates."""
    ranges = [range(int(lo), int(hi)) for lo, hi in zip(map(min, zip(*points)), reference)] if points else []
    count = 0
    for cell in itertools.product(*ranges):
        if any(all(p_i <= c_i for p_i, c_i in zip(p, cell)) for p in points):
            count += 1
    return count
