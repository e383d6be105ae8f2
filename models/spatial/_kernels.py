"""Numba kernels of the spatial loop-nest analysis (private; called by ``hwsim.models.spatial.nest``).

The loop nest is flattened outer to inner (per level: temporal loops, then spatial loops) into parallel
arrays ``loop_dim``, ``loop_bound``, ``loop_level``, ``loop_spatial``. Tensors are projected onto data
ranks by ``proj[t, r, d]`` (coefficient of dim ``d`` in rank ``r`` of tensor ``t``); a tile is the
axis-aligned box spanned by its projection (Timeloop's AAHR tiles).

Semantics (Timeloop's accounting): a level's fills are the tile's first fill plus, at every step of the
temporal loops above it, the elements of the new tile that were not in the previous one (delta refills,
sliding windows included). A parent serves its whole fan-out as one multicast consumer whose demand is
the bounding box of the children's tiles. Compute units keep nothing: every compute step reads its
operands from the innermost level that keeps them (``mac_reuse`` instead lets the compute units hold their
last operands and partial sum, ZigZag's convention). Outputs are read-modify-write.
"""

from __future__ import annotations

import numpy as np
from hwsim._numba import njit

N_DIMS = 8
MAX_RANKS = 6
# stats columns
READS, FILLS, UPDATES, TILE, PARTITION = 0, 1, 2, 3, 4


@njit(cache=True)
def _loop_strides_kernel(loop_dim, loop_bound):
    """Index step of each loop in its dim: product of the same-dim bounds inner to it."""
    n = loop_dim.shape[0]
    strides = np.ones(n, dtype=np.int64)
    acc = np.ones(N_DIMS, dtype=np.int64)
    for j in range(n - 1, -1, -1):
        strides[j] = acc[loop_dim[j]]
        acc[loop_dim[j]] *= loop_bound[j]
    return strides


@njit(cache=True)
def _box_size_kernel(tensor, box, proj, nranks):
    """Elements in the data box of ``tensor`` spanned by a dim box."""
    size = 1
    for r in range(nranks[tensor]):
        extent = 1
        for d in range(N_DIMS):
            extent += proj[tensor, r, d] * (box[d] - 1)
        size *= extent
    return size


@njit(cache=True)
def _transfers_kernel(tensor, box, time_mask, reuse, proj, nranks, loop_dim, loop_bound, strides):
    """Elements moved into a box over all steps of the loops in ``time_mask`` (delta refills if ``reuse``)."""
    size = _box_size_kernel(tensor, box, proj, nranks)
    n = loop_dim.shape[0]
    if not reuse:
        steps = 1
        for j in range(n):
            if time_mask[j]:
                steps *= loop_bound[j]
        return steps * size
    total = size
    prefix = 1
    shift = np.zeros(N_DIMS, dtype=np.int64)
    for j in range(n):
        if not time_mask[j]:
            continue
        bound = loop_bound[j]
        if bound > 1:
            shift[:] = 0
            shift[loop_dim[j]] += strides[j]
            for k in range(j + 1, n):
                if time_mask[k]:
                    shift[loop_dim[k]] -= (loop_bound[k] - 1) * strides[k]
            # Timeloop's delta rule: the halo (partial overlap) is reused only when loop j is the innermost
            # stepping loop; when inner loops wrap at that step the tile is refetched whole unless it is
            # unchanged (ref cases tl_ex04 and ex_simple_os; ex03's 16 x (3 + 15) is the innermost case)
            inner = False
            for k in range(j + 1, n):
                if time_mask[k] and loop_bound[k] > 1:
                    inner = True
            overlap = 1
            for r in range(nranks[tensor]):
                extent = 1
                moved = 0
                for d in range(N_DIMS):
                    extent += proj[tensor, r, d] * (box[d] - 1)
                    moved += proj[tensor, r, d] * shift[d]
                overlap *= max(0, extent - abs(moved))
            if inner and overlap != size:
                overlap = 0
            total += prefix * (bound - 1) * (size - overlap)
        prefix *= bound
    return total


@njit(cache=True)
def _box_and_time_kernel(parent, child, loop_dim, loop_bound, loop_level, loop_spatial, strides, box, time_mask):
    """Fill ``box`` with the per-dim index span of the ``child`` tiles under one ``parent`` instance and
    ``time_mask`` with the loops that step it (spans, not counts: a strided union is its bounding box)."""
    box[:] = 1
    for j in range(loop_dim.shape[0]):
        lvl = loop_level[j]
        inside = lvl >= child or (loop_spatial[j] == 1 and lvl >= parent)
        if inside:
            box[loop_dim[j]] += (loop_bound[j] - 1) * strides[j]
        time_mask[j] = loop_spatial[j] == 0 and lvl < child


@njit(cache=True)
def _distinct_tiles_kernel(tensor, level, loop_dim, loop_bound, loop_level, loop_spatial, strides, proj, nranks):
    """Distinct tiles of ``tensor`` among the children of one fan-out (the spatial loops of ``level``).

    Children whose tiles sit at the same data offset need the same data (one multicast read serves them);
    all others are served separately, however much their tiles overlap (Timeloop's nest analysis matches
    only identical deltas: ComputeAccurateMulticastedAccesses / CheckEquality).
    """
    n = loop_dim.shape[0]
    positions = 1
    for j in range(n):
        if loop_spatial[j] == 1 and loop_level[j] == level:
            positions *= loop_bound[j]
    if positions == 1:
        return 1
    radix = np.ones(MAX_RANKS, dtype=np.int64)
    for r in range(nranks[tensor]):
        span = 0
        for j in range(n):
            if loop_spatial[j] == 1 and loop_level[j] == level:
                span += proj[tensor, r, loop_dim[j]] * strides[j] * (loop_bound[j] - 1)
        radix[r] = span + 1
    codes = np.empty(positions, dtype=np.int64)
    index = np.zeros(n, dtype=np.int64)
    for p in range(positions):
        rest = p
        for j in range(n - 1, -1, -1):
            if loop_spatial[j] == 1 and loop_level[j] == level:
                index[j] = rest % loop_bound[j]
                rest //= loop_bound[j]
        code = 0
        scale = 1
        for r in range(nranks[tensor]):
            offset = 0
            for j in range(n):
                if loop_spatial[j] == 1 and loop_level[j] == level:
                    offset += proj[tensor, r, loop_dim[j]] * strides[j] * index[j]
            code += offset * scale
            scale *= radix[r]
        codes[p] = code
    return np.unique(codes).shape[0]


@njit(cache=True)
def _nest_stats_kernel(loop_dim, loop_bound, loop_level, loop_spatial, proj, nranks, keep, n_levels,
                       rw_tensor, mac_reuse, identical_multicast=False):
    """Per level x tensor: reads, fills, updates, tile size and partition size, all per instance.

    A parent serves its fan-out as one multicast consumer whose demand is the bounding box of the children's
    tiles (overlaps read once), or with ``identical_multicast`` as one read per distinct child tile at each
    fan-out level (Timeloop's accounting).
    """
    stats = np.zeros((n_levels, 3, 5), dtype=np.int64)
    strides = _loop_strides_kernel(loop_dim, loop_bound)
    n = loop_dim.shape[0]
    box = np.ones(N_DIMS, dtype=np.int64)
    time_mask = np.zeros(n, dtype=np.bool_)
    for t in range(3):
        for lvl in range(n_levels):
            if not keep[lvl, t]:
                continue
            # own tile and its refills
            _box_and_time_kernel(lvl, lvl, loop_dim, loop_bound, loop_level, loop_spatial, strides, box, time_mask)
            stats[lvl, t, TILE] = _box_size_kernel(t, box, proj, nranks)
            own = _transfers_kernel(t, box, time_mask, True, proj, nranks, loop_dim, loop_bound, strides)
            # partition: distinct data one instance ever holds (all loops but the spatial ones above it)
            box[:] = 1
            for j in range(n):
                if loop_spatial[j] == 0 or loop_level[j] >= lvl:
                    box[loop_dim[j]] *= loop_bound[j]
            partition = _box_size_kernel(t, box, proj, nranks)
            stats[lvl, t, PARTITION] = partition
            # demand of the next inner keeper (or the compute units)
            child = lvl + 1
            while child < n_levels and not keep[child, t]:
                child += 1
            _box_and_time_kernel(child if identical_multicast else lvl, child, loop_dim, loop_bound, loop_level,
                                 loop_spatial, strides, box, time_mask)
            reuse = child < n_levels or mac_reuse
            if identical_multicast and not reuse:
                # Timeloop tracks each child's previous tile at a fan-out, so compute units reached through
                # one re-receive only changed operands; without a fan-out every compute reads
                for j in range(n):
                    if loop_spatial[j] == 1 and loop_level[j] >= lvl and loop_bound[j] > 1:
                        reuse = True
            demand = _transfers_kernel(t, box, time_mask, reuse, proj, nranks,
                                       loop_dim, loop_bound, strides)
            if identical_multicast:
                for g in range(lvl, child):
                    demand *= _distinct_tiles_kernel(t, g, loop_dim, loop_bound, loop_level, loop_spatial, strides,
                                                     proj, nranks)
            if t == rw_tensor:
                stats[lvl, t, UPDATES] = demand
                stats[lvl, t, READS] = demand - partition
                stats[lvl, t, FILLS] = own - partition if lvl > 0 else 0
            else:
                stats[lvl, t, READS] = demand
                stats[lvl, t, FILLS] = own if lvl > 0 else 0
    return stats


@njit(cache=True)
def _plan_cost_kernel(loop_dim, loop_bound, loop_level, loop_spatial, proj, nranks, keep, n_levels, bits,
                      words_per_vector, vectors_per_word, pj, part_cap, total_cap, read_bw, write_bw,
                      mac_pj, leak_pj, mac_reuse, count_scale, compute_scale, identical_multicast=False):
    """``(valid, energy_pj, cycles)`` of one mapping: tile capacities, vector-granular energy, bandwidth.

    ``count_scale[level, tensor, action]`` scales the counted words (gated reads, run-length coded
    transfers) and ``compute_scale`` the compute cycles (skipped zeros), as the engine does.
    """
    stats = _nest_stats_kernel(loop_dim, loop_bound, loop_level, loop_spatial, proj, nranks, keep, n_levels, 2,
                               mac_reuse, identical_multicast)
    for lvl in range(n_levels):
        total = 0.0
        for t in range(3):
            need = stats[lvl, t, TILE] * bits[lvl, t] / 8.0
            if need > part_cap[lvl, t]:
                return False, 0.0, 0
            total += need
        if total > total_cap[lvl]:
            return False, 0.0, 0
    compute = 1
    macs = 1
    for j in range(loop_dim.shape[0]):
        macs *= loop_bound[j]
        if loop_spatial[j] == 0:
            compute *= loop_bound[j]
    if compute_scale < 1.0:
        compute = int(np.ceil(compute * compute_scale - 1e-9))
    energy = macs * mac_pj
    worst = 0.0
    for lvl in range(n_levels):
        instances = 1
        for j in range(loop_dim.shape[0]):
            if loop_spatial[j] == 1 and loop_level[j] < lvl:
                instances *= loop_bound[j]
        read_bytes = 0.0
        write_bytes = 0.0
        for t in range(3):
            for a in range(3):
                count = stats[lvl, t, a] * count_scale[lvl, t, a]
                if count > 0:
                    vectors = np.ceil(count / words_per_vector[lvl, t] - 1e-9) * vectors_per_word[lvl, t]
                    energy += vectors * pj[lvl, t, a] * instances
                if a == 0:
                    read_bytes += count * bits[lvl, t] / 8.0
                else:
                    write_bytes += count * bits[lvl, t] / 8.0
        if read_bw[lvl] > 0:
            worst = max(worst, read_bytes / read_bw[lvl])
        if write_bw[lvl] > 0:
            worst = max(worst, write_bytes / write_bw[lvl])
    cycles = max(compute, int(np.ceil(worst - 1e-9)))
    return True, energy + cycles * leak_pj, cycles


@njit(cache=True)
def _loops_kernel(factors, order_idx, sp_dim, sp_bound, sp_level):
    """Flattened loop arrays of a plan: per level its non-unit temporal loops in order, then its spatial loops."""
    n_levels = factors.shape[0]
    total = sp_dim.shape[0]
    for i in range(n_levels):
        for k in range(factors.shape[1]):
            if factors[i, k] > 1:
                total += 1
    dims = np.empty(total, dtype=np.int64)
    bounds = np.empty(total, dtype=np.int64)
    levels = np.empty(total, dtype=np.int64)
    spatial = np.empty(total, dtype=np.int64)
    pos = 0
    for i in range(n_levels):
        for k in range(order_idx.shape[1]):
            d = order_idx[i, k]
            if factors[i, d] > 1:
                dims[pos], bounds[pos], levels[pos], spatial[pos] = d, factors[i, d], i, 0
                pos += 1
        for j in range(sp_dim.shape[0]):
            if sp_level[j] == i:
                dims[pos], bounds[pos], levels[pos], spatial[pos] = sp_dim[j], sp_bound[j], i, 1
                pos += 1
    return dims, bounds, levels, spatial
