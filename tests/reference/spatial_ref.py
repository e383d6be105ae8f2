"""Literal loop-nest simulation: the slow, obviously-right twin of ``hwsim.models.spatial._kernels``.

Walks every temporal iteration of the mapping in order, builds the tile each level holds (instance 0) and
the data its fan-out demands as explicit sets of data points, and counts every element that enters
(fills), is handed down (reads) or comes back up (updates). Same semantics as the kernel: a tile is the
bounding box of the projected points (Timeloop's AAHR); a fan-out is served as one multicast consumer
whose demand is the bounding box of its children's tiles; compute units keep nothing; outputs are
read-modify-write (first update of an output needs no read; a partial sum returning to a level is a fill).
With ``mac_reuse`` the compute units hold their last operands and partial sum (ZigZag's convention).
With ``identical`` a fan-out is served per distinct child tile instead: at each level's fan-out, children
whose (union) tiles are the very same set share one read, all others are read separately (Timeloop).
For small problems only.
"""

from __future__ import annotations

import itertools

TENSORS = ("W", "I", "O")


def _loops(mapping):
    """Flattened loops (dim, bound, level, spatial), outer to inner; unit loops dropped."""
    out = []
    for index, lvl in enumerate(mapping.levels):
        for loops, spatial in ((lvl.temporal, False), (lvl.spatial_x, True), (lvl.spatial_y, True)):
            out.extend((dim, bound, index, spatial) for dim, bound in loops if bound > 1)
    return out


def _dim_value(loops, indices, dim):
    value, scale = 0, 1
    for (d, bound, _, _), i in zip(reversed(loops), reversed(indices)):
        if d == dim:
            value += i * scale
            scale *= bound
    return value


def _box(problem, loops, fixed, free):
    """Bounding-box data points of each tensor over the loops in ``free`` (others at ``fixed``)."""
    ranges = [range(b) if j in free else (fixed[j],) for j, (_, b, _, _) in enumerate(loops)]
    coords = {t: [] for t in range(3)}
    for indices in itertools.product(*ranges):
        values = {d: _dim_value(loops, indices, d) for d, _ in problem.bounds}
        for t, ranks in enumerate(problem.proj):
            coords[t].append(tuple(sum(c * values[d] for d, c in terms) for terms in ranks))
    boxes = []
    for t in range(3):
        spans = [range(min(p[r] for p in coords[t]), max(p[r] for p in coords[t]) + 1)
                 for r in range(len(problem.proj[t]))]
        boxes.append(set(itertools.product(*spans)))
    return boxes


def _distinct_children(problem, loops, fixed, t, groups, child):
    """Representatives ``(key, leaf tile)`` of the distinct child tiles, fan-out level by fan-out level."""
    if not groups:
        leaf = _box(problem, loops, fixed, {j for j, lp in enumerate(loops) if lp[2] >= child})[t]
        return [((), leaf)]
    level, rest = groups[0], groups[1:]
    mine = [j for j, lp in enumerate(loops) if lp[3] and lp[2] == level]
    inner = {j for j, lp in enumerate(loops) if lp[2] >= child or (lp[3] and lp[2] in rest)}
    seen, out = [], []
    for indices in itertools.product(*(range(loops[j][1]) for j in mine)):
        here = list(fixed)
        for j, i in zip(mine, indices):
            here[j] = i
        tile = _box(problem, loops, here, inner)[t]
        if tile in seen:
            continue
        seen.append(tile)
        out += [((indices,) + key, leaf) for key, leaf in _distinct_children(problem, loops, here, t, rest, child)]
    return out


def simulate_nest_ref(problem, mapping, mac_reuse=False, identical=False):
    """``{(level, tensor): {'reads', 'fills', 'updates', 'tile', 'partition'}}`` per instance, by simulation."""
    loops = _loops(mapping)
    n_levels = len(mapping.levels)
    keep = [[t in lvl.keep for t in TENSORS] for lvl in mapping.levels]
    temporal = [j for j, loop in enumerate(loops) if not loop[3]]
    stats, held, demanded, union = {}, {}, {}, {}

    def child_of(level, t):
        child = level + 1
        while child < n_levels and not keep[child][t]:
            child += 1
        return child

    def moved_into(new, old, level_bound):
        # Timeloop's delta rule: the partial overlap (halo) is reused only when the stepping loop is the
        # innermost loop stepping this tile; if a loop inside it (outside the tile) wrapped, the tile is
        # refetched whole unless unchanged
        wrapped = any(loops[j][2] < level_bound and fixed[j] == 0 for j in temporal if j > changed)
        if wrapped and new != old:
            return len(new)
        return len(new - old)

    previous = None
    for step in itertools.product(*(range(loops[j][1]) for j in temporal)):
        fixed = [0] * len(loops)
        for j, i in zip(temporal, step):
            fixed[j] = i
        changed = -1 if previous is None else next(j for j, a, b in zip(temporal, step, previous) if a != b)
        previous = step
        for level in range(n_levels):
            for t in range(3):
                if not keep[level][t]:
                    continue
                entry = stats.setdefault((level, TENSORS[t]), dict(reads=0, fills=0, updates=0, tile=0, partition=0))
                own = _box(problem, loops, fixed, {j for j, lp in enumerate(loops) if lp[2] >= level})[t]
                entry["tile"] = len(own)
                entry["fills"] += moved_into(own, held.get((level, t), set()), level)
                held[(level, t)] = own
                union.setdefault((level, t), set()).update(own)
                child = child_of(level, t)
                if identical:
                    parts = _distinct_children(problem, loops, fixed, t, list(range(level, child)), child)
                else:
                    free = {j for j, lp in enumerate(loops) if lp[2] >= child or (lp[3] and lp[2] >= level)}
                    parts = [((), _box(problem, loops, fixed, free)[t])]
                # identical (Timeloop): compute units behind a fan-out keep their last operands
                fanout = identical and any(lp[3] and lp[2] >= level for lp in loops)
                for key, need in parts:
                    moved = len(need) if (child == n_levels and not mac_reuse and not fanout) else moved_into(
                        need, demanded.get((level, t, key), set()), child)
                    demanded[(level, t, key)] = need
                    entry["updates" if t == 2 else "reads"] += moved
    for (level, name), entry in stats.items():
        entry["partition"] = len(union[(level, TENSORS.index(name))])
        if name == "O":
            entry["reads"] = entry["updates"] - entry["partition"]
            entry["fills"] = entry["fills"] - entry["partition"] if level > 0 else 0
        elif level == 0:
            entry["fills"] = 0
    return stats
