"""Pareto fronts over 2-3 objectives (with constraints) and their hypervolume.

``pareto_mask`` marks the non-dominated rows of an ``(n, k)`` array (a point is dominated when another
is no worse in every objective and strictly better in one). ``hypervolume`` is exact for 2 objectives
(a sweep) and 3 objectives (slices along the third axis, each a 2-D sweep). Objectives to maximise are
negated first, so both work on minimisation problems.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from pydantic import ValidationError

from hwsim.errors import ConfigError

from hwsim.dse.spec import Constraint, Objective, _constraint, _objective


def as_minimized(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """``values`` with every ``max`` column negated."""
    signs = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(values: np.ndarray, senses: Sequence[str] | None = None, *, block: int = 512) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n points x k objectives)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"values must be 2-D (points x objectives), got shape {data.shape}")
    if senses is not None:
        data = as_minimized(data, senses)
    n = len(data)
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, block):                      # blocks keep memory at block x n x k
        rows = data[start:start + block]
        no_worse = (data[None, :, :] <= rows[:, None, :]).all(axis=2)
        better = (data[None, :, :] < rows[:, None, :]).any(axis=2)
        mask[start:start + block] = ~(no_worse & better).any(axis=1)
    return mask


def hypervolume(front: np.ndarray, reference: Sequence[float], senses: Sequence[str] | None = None) -> float:
    """Volume dominated by ``front`` and bounded by ``reference`` (2 or 3 objectives, exact)."""
    pts = np.asarray(front, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if senses is not None:
        pts, ref = as_minimized(pts, senses), as_minimized(ref[None, :], senses)[0]
    if pts.size == 0:
        return 0.0
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 2:
        return _hv2(pts, ref)
    if pts.shape[1] == 3:
        return _hv3(pts, ref)
    raise ValueError(f"hypervolume supports 2 or 3 objectives, got {pts.shape[1]}")


def _hv2(pts: np.ndarray, ref: np.ndarray) -> float:
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    volume, best_y = 0.0, ref[1]
    for x, y in pts:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _hv3(pts: np.ndarray, ref: np.ndarray) -> float:
    pts = pts[np.argsort(pts[:, 2])]
    volume = 0.0
    for i in range(len(pts)):
        z_next = pts[i + 1, 2] if i + 1 < len(pts) else ref[2]
        if z_next > pts[i, 2]:
            volume += _hv2(pts[: i + 1, :2], ref[:2]) * (z_next - pts[i, 2])
    return float(volume)


def parse_objectives(items: Iterable[Any]) -> list[Objective]:
    """Objectives from names (``latency``, ``max:tops_per_w``) or dicts; ``ConfigError`` if malformed."""
    return [_parsed(Objective, _objective, item, "objective") for item in items]


def parse_constraints(items: Iterable[Any]) -> list[Constraint]:
    """Constraints from strings (``power_mw <= 500``) or dicts; ``ConfigError`` if malformed."""
    return [_parsed(Constraint, _constraint, item, "constraint") for item in items]


def _parsed(cls: type, normalise: Any, item: Any, what: str) -> Any:
    if isinstance(item, cls):
        return item
    try:
        return cls.model_validate(normalise(item))
    except (ValueError, ValidationError) as err:
        raise ConfigError(f"{what} {item!r}: {str(err).splitlines()[-1] if isinstance(err, ValidationError) else err}") from None


def front(records: Iterable[dict[str, Any]], objectives: Sequence[Any], *,
          constraints: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The feasible, non-dominated records (each gets ``pareto: True``), sorted by the first objective."""
    objs, cons = parse_objectives(objectives), parse_constraints(constraints)
    if not 1 <= len(objs) <= 3:
        raise ValueError(f"a Pareto front needs 1 to 3 objectives, got {len(objs)}")
    feasible = [r for r in records if _feasible(r["objectives"], objs, cons)]
    if not feasible:
        return []
    values = np.array([[r["objectives"][o.metric] for o in objs] for r in feasible], dtype=float)
    mask = pareto_mask(values, [o.sense for o in objs])
    chosen = [dict(r, pareto=True) for r, keep in zip(feasible, mask) if keep]
    sign = -1.0 if objs[0].sense == "max" else 1.0
    return sorted(chosen, key=lambda r: sign * r["objectives"][objs[0].metric])


def _feasible(values: dict[str, float], objs: list[Objective], cons: list[Constraint]) -> bool:
    if any(values.get(o.metric) is None for o in objs):
        return False
    return all(c.ok(values.get(c.metric)) for c in cons)


def hypervolume_history(records: Sequence[dict[str, Any]], objectives: Sequence[Any], *,
                        constraints: Sequence[Any] = (), reference: Sequence[float] | None = None) -> list[float]:
    """Hypervolume of the feasible front after each record in order (how a sweep converged).

    ``reference`` defaults to 1.1x the worst feasible value of every objective (in minimisation form).
    """
    objs, cons = parse_objectives(objectives), parse_constraints(constraints)
    senses = [o.sense for o in objs]
    ok = [_feasible(r["objectives"], objs, cons) for r in records]
    values = np.array([[r["objectives"].get(o.metric, np.nan) for o in objs] for r in records], dtype=float)
    if reference is None:
        feas = as_minimized(values[np.array(ok, dtype=bool)], senses) if any(ok) else np.zeros((1, len(objs)))
        worst = feas.max(axis=0)
        ref_min = worst + 0.1 * np.abs(worst) + 1e-300
    else:
        ref_min = as_minimized(np.asarray(reference, dtype=float)[None, :], senses)[0]
    out, kept = [], np.empty((0, len(objs)))
    for row, good in zip(as_minimized(values, senses), ok):
        if good:
            kept = np.vstack([kept, row])
            kept = kept[pareto_mask(kept)]
        out.append(hypervolume(kept, ref_min) if len(objs) > 1 else 0.0)
    return out
