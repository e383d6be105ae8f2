"""Mapping construction shared by the engine's default mapping and the search mapper.

A ``Plan`` is the search-friendly form of a mapping: per level the temporal factor of each dim, the loop
order, the spatial X/Y loops and the kept tensors. ``greedy_plan`` fills the on-chip levels from the
inside out with as much of each dim as fits; ``spatial_candidates`` enumerates unrollings of each
fan-out over the dims the preset allows (``spatial.spatial_dims_x/_y``; ``G`` is allowed wherever
``K`` is, so depthwise layers use the array), padding a dim when that raises utilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwsim.mappers.mapping import DIMS, TENSORS, LevelMapping, Mapping
from hwsim.models.arch import ArchSpec
from hwsim.models.spatial.nest import Problem, fanouts

# loop orders outer -> inner, named by the tensor they keep stationary in the inner loops
ORDERS: dict[str, tuple[str, ...]] = {
    "W": ("G", "K", "C", "R", "S", "N", "P", "Q"),   # weight stationary: N P Q innermost
    "O": ("G", "N", "K", "P", "Q", "C", "R", "S"),   # output stationary: reduction innermost
    "I": ("N", "G", "C", "P", "Q", "R", "S", "K"),   # input stationary: K innermost
}
_DEFAULT_X, _DEFAULT_Y = ("K",), ("C",)
Spatial = tuple[tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]], ...]


@dataclass(frozen=True)
class Plan:
    """Temporal factors ``factors[level][dim]``, loop orders, spatial loops and kept tensors per level."""

    factors: tuple[tuple[int, ...], ...]
    orders: tuple[tuple[str, ...], ...]
    spatial: Spatial
    keep: tuple[tuple[str, ...], ...]

    def to_mapping(self, arch: ArchSpec, *, source: str = "") -> Mapping:
        levels = []
        for i, level in enumerate(arch.memory):
            factor = dict(zip(DIMS, self.factors[i]))
            temporal = tuple((d, factor[d]) for d in self.orders[i] if factor[d] > 1)
            levels.append(LevelMapping(level=level.name, temporal=temporal, spatial_x=self.spatial[i][0],
                                       spatial_y=self.spatial[i][1], keep=self.keep[i]))
        return Mapping(levels=tuple(levels), source=source)


def allowed_dims(arch: ArchSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Dims the preset lets each mesh axis unroll (``G`` joins wherever ``K`` is allowed)."""
    spec = arch.spatial
    x = tuple(spec.spatial_dims_x) if spec and spec.spatial_dims_x else _DEFAULT_X
    y = tuple(spec.spatial_dims_y) if spec and spec.spatial_dims_y else _DEFAULT_Y
    with_g = lambda dims: dims + ("G",) if "K" in dims and "G" not in dims else dims  # noqa: E731
    return with_g(x), with_g(y)


def default_keep(arch: ArchSpec) -> tuple[tuple[str, ...], ...]:
    """Every level keeps every tensor it may hold (and has a partition for)."""
    out = []
    for i, level in enumerate(arch.memory):
        allowed = TENSORS if i == 0 else level.tensors
        if level.partition_bytes:
            allowed = tuple(t for t in allowed if t in level.partition_bytes)
        out.append(tuple(t for t in TENSORS if t in allowed))
    return tuple(out)


def _axis_options(remaining: dict[str, int], dims: tuple[str, ...], size: int, *, pad: bool
                  ) -> list[tuple[tuple[str, int], ...]]:
    """Unrollings of one mesh axis of ``size`` over up to two of ``dims``."""
    options: set[tuple[tuple[str, int], ...]] = {()}
    def factors(dim: str, limit: int) -> list[int]:
        bound = remaining.get(dim, 1)
        out = [f for f in range(2, min(bound, limit) + 1) if bound % f == 0]
        if pad and bound > 1 and min(bound, limit) not in out and min(bound, limit) > 1:
            out.append(min(bound, limit))
        return out
    for dim in dims:
        for f in factors(dim, size):
            options.add(((dim, f),))
            for other in dims:
                if other != dim:
                    for g in factors(other, size // f):
                        options.add(((dim, f), (other, g)))
    return sorted(options, key=lambda opt: (-math.prod(f for _, f in opt), opt))[:16]   # best-filled first


def _spatial_tiles_fit(problem: Problem, arch: ArchSpec, chosen: list, keep: tuple[tuple[str, ...], ...]) -> bool:
    """Whether every on-chip level holds its kept tiles with no temporal loop below it (only the spatial
    unrolling below the level spans them): an unrolling that fails this can never map."""
    box = {d: 1 for d in DIMS}
    for level in range(len(chosen) - 1, 0, -1):
        for d, f in chosen[level][0] + chosen[level][1]:
            box[d] *= f
        if not fits(arch, level, tile_bytes(problem, box, keep[level])):
            return False
    return True


def spatial_candidates(problem: Problem, arch: ArchSpec, *, limit: int = 4, pad: bool = True,
                       dims: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
                       keep: tuple[tuple[str, ...], ...] | None = None, rules: Any = None
                       ) -> list[tuple[float, Spatial]]:
    """The ``limit`` best unrollings by MAC utilization (padded MACs count as idle), best first.

    ``rules`` (a ``hwsim.mappers.constraints.Resolved``) restricts them to the user's spatial constraints:
    its ``axis_dims`` / ``axis_options`` shape each axis's choices and only unrollings with no
    ``spatial_violations`` that leave room for the fixed temporal factors (``temporal_fits``) are returned
    (none at all when no unrolling satisfies them).

    Unrollings whose spatial tiles alone overflow a level that keeps them (``keep``, default every
    tensor a level may hold) are left out: on arrays whose per-operand register files sit at different
    depths (ZigZag's edge_tpu_like keeps one weight per 4 x 4 group of MACs) the best-filled unrollings
    would otherwise all be unmappable.
    """
    bound = problem.bound
    x_dims, y_dims = dims or allowed_dims(arch)
    per_level = fanouts(arch)
    keep = keep or default_keep(arch)
    results = []
    def axis_choices(level: int, axis: int, remaining: dict[str, int], dims: tuple[str, ...], size: int) -> list:
        if size <= 1:
            return [()]
        if rules is None:
            return _axis_options(remaining, dims, size, pad=pad)
        dims = rules.axis_dims(level, axis, dims)
        return rules.axis_options(level, axis, _axis_options(remaining, dims, size, pad=pad), size)
    def recurse(level: int, remaining: dict[str, int], chosen: list) -> None:
        if level == len(per_level):
            if rules is not None and (rules.spatial_violations(chosen) or not rules.temporal_fits(remaining)):
                return
            if not _spatial_tiles_fit(problem, arch, chosen, keep):
                return
            used = math.prod(b for x, y in chosen for _, b in x + y)
            covered = {d: math.ceil(bound[d] / remaining[d]) for d in DIMS}
            padded = math.prod(math.ceil(bound[d] / covered[d]) * covered[d] / bound[d] for d in DIMS)
            results.append((used / padded, tuple(chosen)))
            return
        fx, fy = per_level[level]
        xs = axis_choices(level, 0, remaining, x_dims, fx)
        for x in xs:
            rem = dict(remaining)
            for d, f in x:
                rem[d] = math.ceil(rem[d] / f)
            ys = axis_choices(level, 1, rem, y_dims, fy)
            for y in ys:
                rem2 = dict(rem)
                for d, f in y:
                    rem2[d] = math.ceil(rem2[d] / f)
                recurse(level + 1, rem2, chosen + [(x, y)])
    recurse(0, dict(bound), [])
    total = math.prod(fx * fy for fx, fy in per_level)
    results.sort(key=lambda r: (-r[0] / total, _spatial_key(r[1])))
    return [(u / total, s) for u, s in results[:limit]]


def _spatial_key(spatial: Spatial) -> str:
    return repr(spatial)


def remaining_after(problem: Problem, spatial: Spatial) -> dict[str, int]:
    """Per-dim trip count left for temporal loops after the spatial unrolling (ceil: padding)."""
    rem = dict(problem.bound)
    for x, y in spatial:
        for d, f in x + y:
            rem[d] = math.ceil(rem[d] / f)
    return rem


def tile_bytes(problem: Problem, box: dict[str, int], keep: tuple[str, ...]) -> dict[str, float]:
    """Bytes of each kept tensor's tile spanned by per-dim extents ``box``."""
    out = {}
    for t, ranks in enumerate(problem.proj):
        if TENSORS[t] in keep:
            size = math.prod(1 + sum(c * (box[d] - 1) for d, c in terms) for terms in ranks)
            out[TENSORS[t]] = size * problem.bits[t] / 8
    return out


def fits(arch: ArchSpec, level_index: int, need: dict[str, float]) -> bool:
    level = arch.memory[level_index]
    if level.partition_bytes:
        return all(size <= level.partition_bytes.get(t, 0) for t, size in need.items())
    return level.size_bytes is None or sum(need.values()) <= level.size_bytes


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else [])


def greedy_factors(problem: Problem, arch: ArchSpec, spatial: Spatial, keep: tuple[tuple[str, ...], ...], *,
                   priority: tuple[str, ...] = ("R", "S", "C", "K", "G", "Q", "P", "N")) -> tuple[tuple[int, ...], ...]:
    """Temporal factors per level: fill on-chip levels inside-out, growing each tile by prime factors while
    it (and every outer on-chip tile containing it) fits; the rest goes to the outermost level."""
    n = len(arch.memory)
    remaining = remaining_after(problem, spatial)
    box = {d: 1 for d in DIMS}                        # extent of everything below the current level
    factors = [[1] * len(DIMS) for _ in range(n)]
    for level in range(n - 1, 0, -1):
        for d, f in spatial[level][0] + spatial[level][1]:
            box[d] *= f
        grown = True
        while grown:
            grown = False
            for d in priority:
                for p in sorted(set(_primes(remaining[d]))):
                    trial = dict(box, **{d: box[d] * p})
                    if all(fits(arch, outer, tile_bytes(problem, trial, keep[outer]))
                           for outer in range(level, 0, -1)):
                        box, remaining[d] = trial, remaining[d] // p
                        factors[level][DIMS.index(d)] *= p
                        grown = True
                        break
    factors[0] = [remaining[d] for d in DIMS]
    return tuple(tuple(f) for f in factors)


def greedy_plan(problem: Problem, arch: ArchSpec, spatial: Spatial, *, order: str = "W",
                keep: tuple[tuple[str, ...], ...] | None = None,
                factors: tuple[tuple[int, ...], ...] | None = None, inner_order: str | None = None) -> Plan:
    """A plan with greedy factors (or the given ones) and one stationarity ``order`` at every level, except
    the innermost (the PEs' own storage), which takes ``inner_order`` when given."""
    keep = keep or default_keep(arch)
    factors = factors or greedy_factors(problem, arch, spatial, keep)
    orders = [ORDERS[order] for _ in arch.memory]
    if inner_order is not None:
        orders[-1] = ORDERS[inner_order]
    return Plan(factors=factors, orders=tuple(orders), spatial=tuple(spatial), keep=tuple(keep))


def greedy_mapping(problem: Problem, arch: ArchSpec, *, order: str | None = None) -> Mapping:
    """The engine's default mapping: best-utilization unrolling, greedy tiling, the order that moves the
    fewest bits across the outermost level. A declared stationarity ``order`` (``ORDERS``) is what the PEs
    keep: it orders the innermost level's loops; the levels above take the order that moves the fewest
    DRAM bits. (Forcing it on every level made nvdla_full's weight-stationary default refetch partial sums
    through DRAM, 143 MB for ResNet-18 against 17 MB: a worse mapping than the chip's, not its dataflow.)

    When the best unrolling leaves a tile that some buffer cannot hold, it degrades to the next
    unrollings (smaller spatial tiles, finally none) and raises only when no candidate is legal.
    """
    from hwsim.errors import InvalidMappingError
    from hwsim.models.spatial import analyze  # local: the package imports this module lazily

    candidates = [s for _, s in spatial_candidates(problem, arch, limit=32)]
    candidates.append(tuple(((), ()) for _ in arch.memory))   # nothing unrolled: the smallest tiles
    last_error: InvalidMappingError | None = None
    for spatial in candidates:
        factors = greedy_factors(problem, arch, spatial, default_keep(arch))
        best, best_bits = None, math.inf
        for name in ORDERS:
            mapping = greedy_plan(problem, arch, spatial, order=name, factors=factors,
                                  inner_order=order).to_mapping(arch, source="default")
            try:
                stats = analyze(problem, arch, mapping).stats
            except InvalidMappingError as err:
                last_error = err
                continue
            moved = sum(int(stats[0, t, :3].sum()) * problem.bits[t] for t in range(3))
            if moved < best_bits:
                best, best_bits = mapping, moved
        if best is not None:
            return best
    raise last_error
