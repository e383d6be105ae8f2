"""The search loop behind ``SearchMapper`` (exhaustive for small spaces, seeded hill climb otherwise)."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from hwsim.errors import ConfigError, InvalidMappingError
from hwsim.mappers._evaluator import Evaluator
from hwsim.mappers.constraints import Resolved, parse_constraints
from hwsim.mappers.mapping import DIMS, TENSORS
from hwsim.models.spatial.default import (ORDERS, Plan, _primes, allowed_dims, greedy_factors, greedy_plan,
                                          remaining_after, spatial_candidates)
from hwsim.models.spatial.nest import problem_from_layer


def _objective(mapper: Any) -> Callable[[float, int, float, float], tuple]:
    w_e, w_l = mapper.weights
    return {
        "energy": lambda e, c, e0, c0: (e, c),
        "latency": lambda e, c, e0, c0: (c, e),
        "edp": lambda e, c, e0, c0: (e * c, e),
        "weighted": lambda e, c, e0, c0: (w_e * e / e0 + w_l * c / c0, e),
    }[mapper.objective]


def _count_factorizations(value: int, parts: int) -> int:
    """Ordered factorizations of ``value`` into ``parts`` factors: prod over primes of C(e + parts - 1, parts - 1)."""
    count = 1
    for p in set(_primes(value)):
        e = _primes(value).count(p)
        count *= math.comb(e + parts - 1, parts - 1)
    return count


class _Search:
    """State of one layer's search: evaluator, best so far, seen plans, RNG."""

    def __init__(self, mapper: Any, evaluator: Evaluator, cons: Resolved, arch: Any) -> None:
        self.ev, self.cons, self.arch = evaluator, cons, arch
        self.rank = _objective(mapper)
        self.rng = np.random.default_rng(mapper.seed)
        self.seen: set = set()
        self.best: tuple | None = None          # (rank, plan, energy, cycles)
        self.ref: tuple[float, float] | None = None
        self.active = not cons.cons.empty

    def try_plan(self, plan: Plan | None) -> tuple | None:
        """Score ``plan`` projected onto the constraints (so no violating plan is ever evaluated)."""
        if plan is None:
            return None
        plan = self.cons.project(plan) if self.active else plan
        if plan is None:
            return None
        arrays = self.ev.arrays(plan)
        key = (arrays[0].tobytes(), arrays[1].tobytes(), arrays[2].tobytes(), arrays[3].tobytes(),
               None if self.ev.ignores_keep else plan.keep)
        if key in self.seen:
            return None
        self.seen.add(key)
        scored = self.ev.score(plan, arrays)
        if scored is None:
            return None
        energy, cycles = scored
        self.ref = self.ref or (energy, float(cycles))
        rank = self.rank(energy, cycles, *self.ref)
        entry = (rank, plan, energy, cycles)
        if self.best is None or rank < self.best[0]:
            self.best = entry
        return entry

    def neighbors(self, plan: Plan) -> list[Plan]:
        """Every plan one move away: a prime factor moved between levels, another order, a bypass toggled."""
        out, n = [], len(plan.factors)
        for i, d in itertools.product(range(n), range(len(DIMS))):
            if plan.factors[i][d] == 1 or (i, d) in self.cons.fixed:
                continue
            for p in set(_primes(plan.factors[i][d])):
                for j in range(n):
                    if j != i and (j, d) not in self.cons.fixed:
                        factors = [list(f) for f in plan.factors]
                        factors[i][d] //= p
                        factors[j][d] *= p
                        out.append(replace(plan, factors=tuple(tuple(f) for f in factors)))
        for i in range(n):
            if len(self.cons.perms.get(i, ())) >= len(DIMS) - 1:       # the whole order is fixed
                continue
            for order in ORDERS.values():
                out.append(replace(plan, orders=plan.orders[:i] + (order,) + plan.orders[i + 1:]))
            live = [d for d in plan.orders[i] if plan.factors[i][DIMS.index(d)] > 1]
            for k in range(len(live) - 1):
                swapped = live[:k] + [live[k + 1], live[k]] + live[k + 2:]
                order = tuple(swapped) + tuple(d for d in plan.orders[i] if d not in swapped)
                out.append(replace(plan, orders=plan.orders[:i] + (order,) + plan.orders[i + 1:]))
        for i in range(1, n):
            for t in self.cons.toggles[i]:
                keep = tuple(x for x in TENSORS if (x in plan.keep[i]) != (x == t))
                out.append(replace(plan, keep=plan.keep[:i] + (keep,) + plan.keep[i + 1:]))
        return out


@functools.lru_cache(maxsize=4096)
def _ordered_factorizations(value: int, parts: int) -> list[tuple[int, ...]]:
    if parts == 1:
        return [(value,)]
    return [(d,) + rest for d in range(1, value + 1) if value % d == 0
            for rest in _ordered_factorizations(value // d, parts - 1)]


def _exhaustive(search: _Search, problem: Any, spatial: Any, keep: tuple, n: int) -> None:
    """Every factorization x stationarity order of one unrolling (those the constraints fix, only as fixed)."""
    remaining = remaining_after(problem, spatial)
    fixed = search.cons.fixed
    per_dim = [[f for f in _ordered_factorizations(remaining[d], n)
                if all(f[i] == v for (i, k), v in fixed.items() if k == di)] for di, d in enumerate(DIMS)]
    per_level = [list(dict.fromkeys(search.cons.order(i, o) for o in ORDERS.values())) for i in range(n)]
    order_sets = list(itertools.product(*per_level))
    for combo in itertools.product(*per_dim):
        factors = tuple(tuple(combo[d][i] for d in range(len(DIMS))) for i in range(n))
        for orders in order_sets:
            search.try_plan(Plan(factors=factors, orders=orders, spatial=spatial, keep=keep))


def _space_size(problem: Any, spatial: Any, n: int) -> int:
    remaining = remaining_after(problem, spatial)
    size = len(ORDERS) ** n
    for d in DIMS:
        size *= _count_factorizations(remaining[d], n)
        if size > 10 ** 7:
            break
    return size


def _descend(search: _Search, seeds: list[tuple], budget: int) -> None:
    """Steepest descent over one-move neighbourhoods from each seed, then seeded random kicks."""
    start = search.ev.evaluated
    starts = sorted(seeds, key=lambda s: s[0])
    while starts and search.ev.evaluated - start < budget:
        current = starts.pop(0)
        while search.ev.evaluated - start < budget:
            scored = [e for e in (search.try_plan(p) for p in search.neighbors(current[1])) if e is not None]
            better = min(scored, key=lambda e: e[0], default=None)
            if better is None or better[0] >= current[0]:
                break
            current = better
        if not starts and search.ev.evaluated - start < budget:      # kick the best with two random moves
            kicked = _kick(search)
            if kicked is not None:
                starts.append(kicked)


def _kick(search: _Search, attempts: int = 20) -> tuple | None:
    """A not-yet-seen plan two random moves away from the best one (``None`` after ``attempts`` misses)."""
    for _ in range(attempts):
        options = search.neighbors(search.best[1])
        if not options:
            return None
        options = search.neighbors(options[search.rng.integers(len(options))])
        entry = search.try_plan(options[search.rng.integers(len(options))]) if options else None
        if entry is not None:
            return entry
    return None


class _ZigZagEvaluator(Evaluator):
    """Scores plans with ZigZag's accounting (``hwsim.interop.zigzag_score``) instead of the engine kernel."""

    ignores_keep = False         # a bypass: the memory runs none of the operand's loops (zigzag_score)

    def __init__(self, problem: Any, arch: Any, layer: Any, *, mac_kind: str) -> None:
        from hwsim.interop.zigzag_score import ZigZagScorer
        super().__init__(problem, arch, mac_kind=mac_kind)
        self.layer, self.scorer = layer, ZigZagScorer(arch)

    def score(self, plan: Plan, arrays: tuple[np.ndarray, ...] | None = None) -> tuple[float, float] | None:
        self.evaluated += 1
        result = self.scorer.score(self.layer, plan.to_mapping(self.arch))
        return (result.energy_pj, result.latency_cycles) if result.fits else None


def _zigzag_spatial_fits(evaluator: Any, problem: Any, spatial: Any, n: int) -> bool:
    """Whether an unrolling's tiles, with every temporal loop at the backing store, fit ZigZag's memories."""
    remaining = remaining_after(problem, spatial)
    outer = tuple(tuple(remaining[d] if i == 0 else 1 for d in DIMS) for i in range(n))
    plan = Plan(factors=outer, orders=(next(iter(ORDERS.values())),) * n, spatial=spatial,
                keep=tuple(() for _ in range(n)))
    return evaluator.scorer.score(evaluator.layer, plan.to_mapping(evaluator.arch)).fits


def run_search(mapper: Any, layer: Any, arch: Any) -> Any:
    """Search the best mapping of ``layer`` on ``arch`` for ``mapper``'s objective."""
    from hwsim.mappers.search import SearchResult
    from hwsim.models import spatial as engine
    from hwsim.models.energy import price
    if arch.engine != "spatial":
        raise ConfigError(f"SearchMapper maps onto the spatial engine; arch {arch.name!r} uses {arch.engine!r}")
    zigzag = mapper.cost == "zigzag"
    if zigzag:
        from hwsim.interop.zigzag_score import zigzag_search_arch
        if "zigzag.hardware" not in arch.sources:
            raise ConfigError(f"SearchMapper(cost='zigzag'): arch {arch.name!r} was not read from a ZigZag hardware "
                              "file (use hwsim.interop.zigzag.load_zigzag_accelerator)")
        arch = zigzag_search_arch(arch)
    problem = problem_from_layer(layer, arch)
    constraint_set = parse_constraints(mapper.constraints)
    cons = Resolved(constraint_set, arch, problem)
    mac_kind = "fp" if layer.number_format == "fp" else "int"
    evaluator = (_ZigZagEvaluator(problem, arch, layer, mac_kind=mac_kind) if zigzag
                 else Evaluator(problem, arch, mac_kind=mac_kind))
    search = _Search(mapper, evaluator, cons, arch)
    n = len(arch.memory)
    candidates = spatial_candidates(problem, arch, limit=mapper.spatial_limit * (64 if zigzag else 1),
                                    pad=mapper.allow_padding, dims=allowed_dims(arch), keep=cons.keep_seed,
                                    rules=cons if search.active else None)
    if zigzag:           # unrollings whose spatial tiles ZigZag's memories hold (no bypass), best first,
        from hwsim.interop.zigzag_score import loma_spatial      # and the mapping file's own (LOMA's)
        candidates = [c for c in candidates if _zigzag_spatial_fits(evaluator, problem, c[1], n)][:mapper.spatial_limit]
        own = loma_spatial(arch, dict(problem.bound), gemm=layer.op.value in ("linear", "matmul"))
        if own is not None and all(own != c[1] for c in candidates) and \
                (not search.active or not cons.spatial_violations(list(own))) and \
                _zigzag_spatial_fits(evaluator, problem, own, n):
            candidates.append((0.0, own))
    if not candidates and search.active:
        raise ConfigError(f"constraints: no spatial unrolling of layer {layer.name!r} on {arch.name} satisfies "
                          f"them (spatial rules, room left for the fixed temporal factors, spatial tiles that fit)")
    seeds = []
    for _, spatial in candidates:
        factors = greedy_factors(problem, arch, spatial, cons.keep_seed)
        if _space_size(problem, spatial, n) <= mapper.max_candidates // max(1, len(candidates)):
            _exhaustive(search, problem, spatial, cons.keep_seed, n)
        for order in ORDERS:
            entry = search.try_plan(greedy_plan(problem, arch, spatial, order=order, keep=cons.keep_seed,
                                                factors=factors))
            seeds += [entry] if entry is not None else []
        if zigzag:       # every temporal loop at the backing store, or every inner memory bypassed (it
            remaining = remaining_after(problem, spatial)      # then holds only its spatial tile): seeds
            outer = tuple(tuple(remaining[d] if i == 0 else 1 for d in DIMS) for i in range(n))  # that fit
            bypass = (cons.keep_seed[0],) + tuple(() for _ in range(n - 1))
            for order in ORDERS.values():
                for plan_factors, keep in ((outer, cons.keep_seed), (outer, bypass), (factors, bypass)):
                    entry = search.try_plan(Plan(factors=plan_factors, orders=(order,) * n, spatial=spatial,
                                                 keep=keep))
                    seeds += [entry] if entry is not None else []
    if seeds:
        _descend(search, seeds, max(0, mapper.max_candidates - evaluator.evaluated))
    if search.best is None and search.active:
        raise ConfigError(f"constraints: no mapping of layer {layer.name!r} on {arch.name} satisfies them "
                          f"(none of the {evaluator.evaluated} mappings that obey them has tiles that fit)")
    if search.best is None:
        raise InvalidMappingError(layer.name, [f"no valid mapping found on {arch.name} within "
                                               f"{mapper.max_candidates} candidates (tiles never fit)"])
    mapping = search.best[1].to_mapping(arch, source=f"SearchMapper({mapper.objective}, seed={mapper.seed}"
                                        + (", cost=zigzag)" if zigzag else ")"))
    if broken := cons.violations(mapping):          # projection guarantees this; a failure is a bug here
        raise RuntimeError(f"SearchMapper returned a mapping that breaks its constraints: {broken}")
    if zigzag:                                      # figures in ZigZag's accounting, as ranked
        padded = math.prod(mapping.dim_product(d) for d in DIMS)
        return SearchResult(mapping=mapping, energy_pj=search.best[2], cycles=int(math.ceil(search.best[3])),
                            evaluated=evaluator.evaluated, padded_macs=int(padded), macs=layer.macs)
    counts = engine.evaluate(layer, arch, mapping)
    energy = price(counts, arch).total_pj
    try:                                 # the dataflow's own mapping (e.g. Eyeriss RS) is a candidate too
        default = engine.default_mapping(layer, arch)
    except InvalidMappingError:
        if not search.active:
            raise
        default = None
    if default is not None and (not search.active or not cons.violations(default)):
        d_counts = engine.evaluate(layer, arch, default)
        d_energy = price(d_counts, arch).total_pj
        better = _objective(mapper)
        padded = d_counts.detail("padded_macs", d_counts.mac_ops) > layer.macs
        if (mapper.allow_padding or not padded) and (
                better(d_energy, d_counts.cycles, energy, counts.cycles) < better(energy, counts.cycles, energy, counts.cycles)):
            mapping, counts, energy = default, d_counts, d_energy
    return SearchResult(mapping=mapping, energy_pj=energy, cycles=counts.cycles, evaluated=evaluator.evaluated,
                        padded_macs=int(counts.detail("padded_macs", counts.mac_ops)), macs=layer.macs)
