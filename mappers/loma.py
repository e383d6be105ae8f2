"""``LomaMapper``: temporal mapping search in ZigZag's per-operand space, scored by ZigZag's accounting.

ZigZag (zigzag-dse 3.9.1, LOMA: Symons et al., "LOMA: Fast Auto-Scheduling on DNN Accelerators through
Loop-Order-based Memory Allocation", AICAS 2021) maps a layer in three steps, which this module follows
(learnt from ZigZag's source and paper, reimplemented):

1. **Spatial mapping** from the mapping file (``hwsim.interop.zigzag_spatial``).
2. **Loop prime factors**: each dim's temporal trip count is split into prime factors; while there are more
   than ``lpf_limit`` (at least one per dim), the dim with the most has its two smallest merged.
3. **Orderings x allocation**: every distinct permutation of the factors is a loop order (inner to outer);
   each operand's memories (its chain in the hardware file, inner to outer) take a prefix of it -- the
   operand's *cut points*, which differ per operand. LOMA cuts greedily, bottom-up: each memory takes as
   many loops as fit, a memory shared by several operands the combination that fits and minimizes the
   traffic to the level above.

The search here enumerates the same orderings but, for the energy objective, does not stop at LOMA's
greedy cuts: per ordering it takes the best *feasible* cut points of every operand (each memory holds its
operands' tiles, shared memories together -- ZigZag's capacity rule, double-buffered memories counting
twice), so its best is never worse than LOMA's. This is exact and cheap because an operand's memory
energy depends on its own nest only (``zigzag_replay.flow_energy``) and, within a level, only on which
loops the level runs (plus, for an input, the irrelevant loops at the bottom of its innermost memory):
per-operand energies are memoized on that key and combined by branch and bound (operands sorted by their
own energy; a combination that cannot beat the best so far is not completed); among equal-energy mappings
the lowest latency wins. Latency (and EDP) are not separable: those objectives score LOMA's greedy cuts of
every ordering with the full model (orders equal in what the model reads -- each level's loops as a
multiset and its outermost relevant / irrelevant runs -- once), then move the cut points of the best
orders operand by operand while the objective improves. Every figure comes from
``hwsim.interop.zigzag_replay`` (``evaluate_nests``, ``flow_energy``) -- the replay's code path, one copy of
the accounting. Pure Python: with the memo the hot loop is dictionary look-ups, not arithmetic, so Numba
would not pay.

Results are memoized by (mapper, layer shape, arch), so repeated layer shapes are searched once.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from hwsim.errors import ConfigError, InvalidMappingError

Objective = Literal["energy", "latency", "edp"]
Allocation = Literal["best", "greedy"]
_CACHE: "OrderedDict[tuple, LomaResult]" = OrderedDict()
_CACHE_SIZE = 1024
_CONTEXTS: dict[str, "Context"] = {}
_TIE = 1e-12            # relative energy difference below which two mappings tie (then: lower latency wins)
_MAX_TIES = 64          # tied mappings scored in full
_REFINE = 2             # latency / EDP: the best orders whose cut points are then moved operand by operand
# ZigZag's ONNX parsers list a layer's dims in this order (it breaks ties when merging prime factors)
_CONV_ORDER = ("B", "K", "G", "OX", "OY", "C", "FX", "FY")
_GEMM_ORDER = ("C", "D", "K")


@dataclass(frozen=True)
class LomaResult:
    """The best per-operand mapping found: ZigZag-form nests, energy (pJ), latency (cycles), effort."""

    nests: dict[str, Any]              # operand -> hwsim.models.spatial.zigzag_nest.OperandNest
    energy_pj: float
    cycles: float
    orderings: int                     # loop orders enumerated
    evaluated: int                     # full model evaluations (energy + latency)
    macs: int
    chains: dict[str, tuple[str, ...]]  # operand -> its memories, inner to outer
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Per operand: each memory's temporal loops (inner to outer) and the spatial loops below it."""
        out: dict[str, Any] = {}
        for t, nest in self.nests.items():
            levels = [{"memory": mem, "temporal": [[d, b] for d, b in nest.temporal[m]],
                       "spatial_below": [[d, b] for d, b in nest.spatial[m]]} for m, mem in enumerate(self.chains[t])]
            out[t] = {"levels": levels, "spatial_above": [[d, b] for d, b in nest.spatial[-1]]}
        return out


@dataclass(frozen=True)
class LomaMapper:
    """Search ZigZag's per-operand mapspace of a layer on an arch read by ``load_zigzag_accelerator``.

    ``objective``: what to minimize (``energy``, ``latency`` or ``edp``, ZigZag's accounting).
    ``lpf_limit``: loop prime factors per layer (ZigZag's ``lpf_limit``, default 6).
    ``allocation``: ``"best"`` (energy objective: the best feasible cut points per ordering) or
    ``"greedy"`` (LOMA's bottom-up allocation only, as ZigZag); for latency and EDP, ``"best"`` starts from
    LOMA's allocation of every order and then moves the cut points of the best orders operand by operand
    while that improves the objective (never worse than LOMA's).
    ``max_orderings``: while the next finer split of the loops (``lpf_limit + 1``, ...) still has at most this
    many distinct orders, it is used instead (finer loops hold every coarser mapping -- a merged factor is
    two adjacent loops at the same memory -- and allow more cut points); 720 is LOMA's worst case, 6!.
    ``0`` keeps ZigZag's split exactly.
    """

    objective: Objective = "energy"
    lpf_limit: int = 6
    allocation: Allocation = "best"
    max_orderings: int = 720

    def __post_init__(self) -> None:
        if self.objective not in ("energy", "latency", "edp"):
            raise ConfigError(f"LomaMapper: objective must be energy, latency or edp (got {self.objective!r})")
        if self.allocation not in ("best", "greedy"):
            raise ConfigError(f"LomaMapper: allocation must be best or greedy (got {self.allocation!r})")
        if self.max_orderings < 0:
            raise ConfigError(f"LomaMapper: max_orderings must be >= 0 (got {self.max_orderings})")
        if self.lpf_limit < 1:
            raise ConfigError(f"LomaMapper: lpf_limit must be >= 1 (got {self.lpf_limit})")

    def with_params(self, **changes: object) -> "LomaMapper":
        """A copy with some parameters replaced (unknown names are rejected)."""
        valid = {f.name for f in fields(self)}
        if unknown := sorted(changes.keys() - valid):
            raise ValueError(f"unknown LomaMapper parameter(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **changes)

    def search(self, layer: Any, arch: Any) -> LomaResult:
        """Search (or recall) the best per-operand mapping of a hwsim ``layer`` on ``arch``."""
        arch_json = arch.model_dump_json()
        key = (self, _layer_key(layer), arch_json)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        from hwsim.interop.zigzag_score import layer_z
        if arch_json not in _CONTEXTS:
            _CONTEXTS.clear()                   # one accelerator at a time is the common case
            _CONTEXTS[arch_json] = _context(arch)
        context = _CONTEXTS[arch_json]
        lz = layer_z(layer, psum_bits=context.psum_bits)
        operator = "Gemm" if "D" in lz.sizes else "Conv"
        result = search_layer(self, lz, context, name=layer.name, operator=operator)
        _CACHE[key] = result
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return result


def _layer_key(layer: Any) -> tuple:
    return (layer.op.value, layer.N, layer.K, layer.C, layer.P, layer.Q, layer.R, layer.S, layer.G,
            tuple(layer.stride), tuple(layer.dilation), tuple(layer.padding),
            None if layer.input_size is None else tuple(layer.input_size),
            layer.weight_bits, layer.act_bits, layer.out_bits, layer.acc_bits)


def clear_cache() -> None:
    """Forget every memoized search result."""
    _CACHE.clear()
    _CONTEXTS.clear()


@dataclass(frozen=True)
class Context:
    """What the search needs of one ZigZag accelerator (read once per search call)."""

    hardware: Any
    links: dict[str, str]
    mac_pj: float
    psum_bits: int
    entries: list[dict[str, Any]]


def _context(arch: Any) -> Context:
    from hwsim.interop.zigzag import _read_yaml
    from hwsim.interop.zigzag_score import ZigZagScorer
    if "zigzag.hardware" not in arch.sources:
        raise ConfigError(f"LomaMapper: arch {arch.name!r} was not read from a ZigZag hardware file "
                          "(use hwsim.interop.zigzag.load_zigzag_accelerator)")
    mapping = arch.sources.get("zigzag.mapping")
    if not mapping:
        raise ConfigError(f"LomaMapper: arch {arch.name!r} has no ZigZag mapping file (load_zigzag_accelerator("
                          "..., mapping=...)); its spatial mapping is taken from there, as ZigZag does")
    scorer = ZigZagScorer(arch)
    return Context(hardware=scorer.hardware, links=scorer.links, mac_pj=scorer.mac_pj,
                   psum_bits=scorer.psum_bits, entries=list(_read_yaml(Path(mapping)) or []))


# --- loop prime factors and orderings ------------------------------------------------------------------------

def loop_prime_factors(temporal: dict[str, int], lpf_limit: int, order: tuple[str, ...]) -> list[tuple[str, int]]:
    """The temporal loops as prime factors, merged down to ``max(lpf_limit, number of dims)`` (LOMA's rule:
    the dim with the most factors -- first in ``order`` on ties -- multiplies its two smallest)."""
    dims = [d for d in order if d in temporal] + [d for d in temporal if d not in order]
    from hwsim.models.spatial.default import _primes
    factors = {d: sorted(_primes(temporal[d])) for d in dims}
    limit = max(lpf_limit, len(dims))
    while sum(len(v) for v in factors.values()) > limit:
        most = max(dims, key=lambda d: len(factors[d]))       # max() keeps the first of equal counts
        values = factors[most]
        merged = values[0] * values[1]
        factors[most] = sorted(values[2:] + [merged])
    return [(d, f) for d in dims for f in factors[d]]


def distinct_orders(lpfs: list[tuple[str, int]]) -> int:
    """How many distinct orders a multiset of loops has: n! over the factorials of the repeats."""
    count = math.factorial(len(lpfs))
    for loop in set(lpfs):
        count //= math.factorial(lpfs.count(loop))
    return count


def _loops(temporal: dict[str, int], mapper: "LomaMapper", order: tuple[str, ...]) -> list[tuple[str, int]]:
    """LOMA's loops at ``lpf_limit``, split finer while the orders stay within ``max_orderings``."""
    limit = mapper.lpf_limit
    lpfs = loop_prime_factors(temporal, limit, order)
    while mapper.max_orderings:
        finer = loop_prime_factors(temporal, limit + 1, order)
        if len(finer) == len(lpfs) or distinct_orders(finer) > mapper.max_orderings:
            break
        lpfs, limit = finer, limit + 1
    return lpfs


def orderings(lpfs: list[tuple[str, int]]) -> list[tuple[tuple[str, int], ...]]:
    """Every distinct order of the loops (inner to outer); a permutation of equal loops is one order."""
    distinct = list(dict.fromkeys(lpfs))
    counts = [lpfs.count(v) for v in distinct]
    out: list[tuple] = []
    prefix: list = []

    def visit() -> None:
        if len(prefix) == len(lpfs):
            out.append(tuple(prefix))
            return
        for i, v in enumerate(distinct):
            if counts[i]:
                counts[i] -= 1
                prefix.append(v)
                visit()
                prefix.pop()
                counts[i] += 1
    visit()
    return out


# --- per-operand allocation -----------------------------------------------------------------------------------

@dataclass
class _Operand:
    """One operand's fixed facts for a layer: chain, capacities, spatial levels, top level."""

    name: str
    chain: list[str]
    capacity: list[int]
    double_buffer: list[bool]
    spatial: tuple                       # integer spatial levels (OperandNest.spatial)
    decimal: tuple                       # fractional spatial levels (tile sizes)
    is_output: bool


def _tile_bits(layer: Any, t: str, loops: list[tuple[str, float]], precision: int) -> float:
    """Bits of ``t``'s tile spanned by ``loops`` (ZigZag's tensor size: relevant dims times window extents)."""
    bounds: dict[str, float] = {}
    for d, b in loops:
        bounds[d] = bounds.get(d, 1) * b
    size = math.prod(bounds.get(d, 1) for d in layer.relevant[t])
    for data in layer.windows.get(t, {}):
        size *= layer.window_size(t, data, bounds)
    return size * precision


class _Order:
    """One loop order with an id per prefix multiset (``keys[i]``: loops ``order[:i]``, order-free) and the
    prefix products (``products[i]``)."""

    def __init__(self, order: tuple, ids: dict[tuple[str, int], int]) -> None:
        self.order = order
        acc: list[int] = []
        self.keys: list[tuple] = [()]
        self.products: list[int] = [1]
        for loop in order:
            acc.append(ids[loop])
            self.keys.append(tuple(sorted(acc)))
            self.products.append(self.products[-1] * loop[1])


class _Sizes:
    """Tile sizes of a layer's operands per memory and prefix multiset, memoized across orders."""

    def __init__(self, layer: Any, ops: dict[str, _Operand]) -> None:
        self.layer, self.ops = layer, ops
        self.tiles: dict[tuple, float] = {}
        self.precisions: dict[tuple, int] = {}

    def precision(self, op: _Operand, order: _Order, start: int, level: int) -> int:
        """Bits an element of ``op`` takes at memory ``level`` when loops from ``start`` on are unallocated
        (the output keeps partial-sum width while an irrelevant loop, temporal or spatial, remains above)."""
        layer = self.layer
        if not op.is_output:
            return layer.precision[op.name]
        key = (level, order.keys[start])
        if key not in self.precisions:
            rest = [d for d, _ in order.order[start:]] + [d for lv in op.decimal[level + 1:] for d, _ in lv]
            self.precisions[key] = (layer.precision[op.name] if any(layer.is_irrelevant(op.name, d) for d in rest)
                                    else layer.final_precision)
        return self.precisions[key]

    def tile(self, op: _Operand, order: _Order, level: int, cut: int, precision: int) -> float:
        return self.tile_of(op, level, order.keys[cut], order.order[:cut], precision)

    def tile_of(self, op: _Operand, level: int, key: tuple, loops: tuple, precision: int) -> float:
        """Bits memory ``level`` of ``op`` holds when it runs ``loops`` (``key``: their multiset id)."""
        memo = (op.name, level, key, precision)
        if memo not in self.tiles:
            below = [loop for lv in op.decimal[:level + 1] for loop in lv]
            self.tiles[memo] = _tile_bits(self.layer, op.name, below + list(loops), precision)
        return self.tiles[memo]

    def level_sizes(self, op: _Operand, order: _Order, level: int, start: int) -> list[float]:
        """Tile bits memory ``level`` of ``op`` needs for each cut ``start..`` (LOMA: stop at the first that
        overflows; a double-buffered memory counts twice unless it holds everything)."""
        precision = self.precision(op, order, start, level)
        n = len(order.order)
        full = self.tile(op, order, level, n, precision) if op.double_buffer[level] else None
        sizes = []
        for cut in range(start, n + 1):
            size = self.tile(op, order, level, cut, precision)
            if full is not None and cut < n and size < full:
                size *= 2
            if size > op.capacity[level]:
                break
            sizes.append(size)
        return sizes

    def cut_vectors(self, op: _Operand, order: _Order) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
        """Every feasible (cuts, tile bits per memory) of one operand for one order; the top takes all."""
        n, levels = len(order.order), len(op.chain)
        out = []
        table: dict[tuple[int, int], list[float]] = {}

        def walk(level: int, start: int, cuts: tuple, sizes: tuple) -> None:
            options = table.get((level, start))
            if options is None:
                options = table[(level, start)] = self.level_sizes(op, order, level, start)
            if level == levels - 1:
                if len(options) == n - start + 1:
                    out.append((cuts + (n,), sizes + (options[-1],)))
                return
            for k, size in enumerate(options):
                walk(level + 1, start + k, cuts + (start + k,), sizes + (size,))
        walk(0, 0, (), ())
        return out


def _nest(op: _Operand, order: tuple, cuts: tuple[int, ...]) -> Any:
    from hwsim.models.spatial.zigzag_nest import OperandNest
    bounds = (0,) + cuts
    temporal = tuple(tuple(order[bounds[m]:bounds[m + 1]]) for m in range(len(cuts)))
    return OperandNest(operand=op.name, temporal=temporal, spatial=op.spatial)


def _greedy(sizes_of: _Sizes, order: _Order, hardware: Any, links: dict[str, str]
            ) -> dict[str, tuple[int, ...]] | None:
    """LOMA's bottom-up allocation of one order: per memory, the cut combination of its operands that fits
    and minimizes the traffic to the level above (``<=``: later combinations win ties), top memories take
    the rest. ``None`` when nothing fits."""
    ops, loops = sizes_of.ops, order.order
    n = len(loops)
    level = {t: 0 for t in ops}
    start = {t: 0 for t in ops}
    cuts: dict[str, list[int]] = {t: [] for t in ops}
    to_layer = {mem_op: t for t, mem_op in links.items()}
    for name, mem in hardware.memories:
        held = [to_layer[m] for m in mem.get("operands") or [] if m in to_layer and to_layer[m] in ops]
        held = [t for t in held if level[t] < len(ops[t].chain) and ops[t].chain[level[t]] == name]
        if not held:
            continue
        options = {}
        for t in held:
            sizes = sizes_of.level_sizes(ops[t], order, level[t], start[t])
            if not sizes:
                return None
            top = level[t] == len(ops[t].chain) - 1
            if top:
                if len(sizes) != n - start[t] + 1:
                    return None
                options[t] = [(n, sizes[-1], 0.0)]
            else:
                options[t] = [(start[t] + k, s, math.prod(b for _, b in loops[start[t] + k:]) * s)
                              for k, s in enumerate(sizes)]
        best, best_access = None, math.inf
        for combo in itertools.product(*(options[t] for t in held)):
            if sum(c[1] for c in combo) > int(mem["size"]):
                continue
            access = sum(c[2] for c in combo)
            if access <= best_access:
                best, best_access = combo, access
        if best is None:
            return None
        for t, (cut, _, _) in zip(held, best):
            cuts[t].append(cut)
            start[t] = cut
            level[t] += 1
    return {t: tuple(v) for t, v in cuts.items()}


# --- the search -------------------------------------------------------------------------------------------

def _operands(layer: Any, context: Context, spatial: Any) -> dict[str, _Operand]:
    chains = context.hardware.chains(context.links)
    mems = dict(context.hardware.memories)
    return {t: _Operand(name=t, chain=chains[t], capacity=[int(mems[m]["size"]) for m in chains[t]],
                        double_buffer=[bool(mems[m].get("force_double_buffering", False)) for m in chains[t]],
                        spatial=spatial.per_operand[t], decimal=spatial.decimal[t], is_output=t == layer.output)
            for t in layer.operands}


def _model_key(layer: Any, nest: Any) -> tuple:
    """What the full model (energy and latency) reads of one operand's nest: per level the loops as a
    multiset and the outermost relevant and irrelevant runs (double buffering, transfer windows), and the
    irrelevant loops at the bottom of the innermost level; orders equal in these score the same."""
    key = []
    for level in nest.temporal:
        top_r = top_ir = 1
        for relevant in (True, False):
            product = 1
            for d, b in reversed(level):
                is_r = d in layer.relevant[nest.operand]
                if (relevant and not is_r) or (not relevant and not layer.is_irrelevant(nest.operand, d)):
                    break
                product *= b
            top_r, top_ir = (product, top_ir) if relevant else (top_r, product)
        key.append((tuple(sorted(level)), top_r, top_ir))
    bottom = 1
    for d, b in nest.temporal[0] if nest.temporal else ():
        if not layer.is_irrelevant(nest.operand, d):
            break
        bottom *= b
    return tuple(key) + (bottom,)


def _leading_irrelevant(layer: Any, t: str, order: tuple) -> int:
    """How many loops at the start of ``order`` are irrelevant to input ``t`` (0 for the output)."""
    if t == layer.output:
        return 0
    run = 0
    for d, _ in order:
        if not layer.is_irrelevant(t, d):
            break
        run += 1
    return run


def search_layer(mapper: LomaMapper, layer: Any, context: Context, *, name: str, operator: str) -> LomaResult:
    """The best per-operand mapping of ``layer`` (a ``LayerZ``) for ``mapper`` on ``context``'s hardware."""
    from hwsim.interop.zigzag_replay import evaluate_nests, flow_energy, fractional_spatial
    from hwsim.interop.zigzag_spatial import mapping_entry, zigzag_spatial
    from hwsim.models.spatial.zigzag_nest import operand_flow
    hardware, links = context.hardware, context.links
    spatial = zigzag_spatial(layer, hardware, links, mapping_entry(context.entries, name=name, operator=operator))
    ops = _operands(layer, context, spatial)
    order_of = _GEMM_ORDER if "D" in layer.sizes else _CONV_ORDER
    lpfs = _loops(spatial.temporal, mapper, order_of) or [(layer.operands[0], 1)]
    _, width, min_width, _, _ = hardware.ports(links)
    chains = hardware.chains(links)
    memo: dict[tuple, float] = {}
    sizes_of = _Sizes(layer, ops)
    ids = {loop: i for i, loop in enumerate(dict.fromkeys(lpfs))}
    energy_only = mapper.objective == "energy" and mapper.allocation == "best"
    orders = orderings(lpfs)

    def energy_of(t: str, order: _Order, cuts: tuple[int, ...], run: int) -> float:
        """Memory energy of operand ``t`` cut at ``cuts``: it depends on each level's loops as a multiset and
        on the irrelevant loops at the bottom of an input's innermost memory (the MAC keeps it meanwhile)."""
        key = (t, order.products[min(run, cuts[0])]) + tuple(order.keys[c] for c in cuts[:-1])
        if key not in memo:
            flow = operand_flow(layer, fractional_spatial(_nest(ops[t], order.order, cuts), layer.sizes))
            memo[key] = flow_energy(flow, chains[t], hardware, width, min_width, links[t])[0]
        return memo[key]

    def full(nests: dict[str, Any]) -> dict[str, Any]:
        row = evaluate_nests(layer, nests, hardware, links, spatial.unrolling, mac_pj=context.mac_pj)
        row.pop("_flows", None)
        return row

    rank = {"energy": lambda r: (r["energy_pj"], r["latency_cycles"]),
            "latency": lambda r: (r["latency_cycles"], r["energy_pj"]),
            "edp": lambda r: (r["energy_pj"] * r["latency_cycles"], r["energy_pj"])}[mapper.objective]
    evaluated = 0
    best_nests, best_row = None, None
    shared = []                                     # memories several operands share: (members, bits)
    for mem, spec in hardware.memories:
        group = [(t, ops[t].chain.index(mem)) for t in layer.operands if mem in ops[t].chain]
        if len(group) > 1:
            shared.append((group, int(spec["size"])))
    if energy_only:
        best_energy, ties = math.inf, []          # ties: equal-energy nests, ranked by latency at the end
        for loops in orders:
            order = _Order(loops, ids)
            options = []
            for t in layer.operands:
                run = _leading_irrelevant(layer, t, loops)
                per = [(energy_of(t, order, cuts, run), sizes, cuts)
                       for cuts, sizes in sizes_of.cut_vectors(ops[t], order)]
                if not per:
                    break
                per.sort(key=lambda p: p[0])
                options.append(per)
            else:
                floor = [per[0][0] for per in options]
                bound = best_energy * (1 + _TIE)
                if sum(floor) > bound:
                    continue
                found = _combine(options, floor, shared, list(layer.operands), bound)
                if found is None:
                    continue
                energy, picks = found
                nests = {t: _nest(ops[t], loops, pick[2]) for t, pick in zip(layer.operands, picks)}
                if energy < best_energy * (1 - _TIE):
                    ties = []
                best_energy = min(best_energy, energy)
                ties.append(nests)
        for nests in ties[:_MAX_TIES]:
            row = full(nests)
            evaluated += 1
            if best_row is None or rank(row) < rank(best_row):
                best_nests, best_row = nests, row
    else:
        seen: dict[tuple, dict[str, Any]] = {}
        scored = []                                 # (rank, loops, cuts) of LOMA's allocation of each order

        def score(loops: tuple, cuts: dict[str, tuple[int, ...]]) -> tuple | None:
            nests = {t: _nest(ops[t], loops, cuts[t]) for t in layer.operands}
            key = tuple(_model_key(layer, nests[t]) for t in layer.operands)
            if key in seen:
                return None
            seen[key] = row = full(nests)
            return rank(row), nests, row

        for loops in orders:
            cuts = _greedy(sizes_of, _Order(loops, ids), hardware, links)
            if cuts is None:
                continue
            entry = score(loops, cuts)
            if entry is not None:
                scored.append((entry[0], loops, cuts))
                if best_row is None or entry[0] < rank(best_row):
                    best_nests, best_row = entry[1], entry[2]
        if mapper.allocation == "best":             # the best orders' cuts moved operand by operand
            scored.sort(key=lambda e: e[0])
            for current, loops, cuts in scored[:_REFINE]:
                order = _Order(loops, ids)
                vectors = {t: dict(sizes_of.cut_vectors(ops[t], order)) for t in layer.operands}
                improved = True
                while improved:
                    improved = False
                    for t in layer.operands:
                        for alternative in vectors[t]:
                            trial = dict(cuts, **{t: alternative})
                            if not _shared_fit(trial, vectors, shared):
                                continue
                            entry = score(loops, trial)
                            if entry is not None and entry[0] < current:
                                current, cuts, improved = entry[0], trial, True
                                if entry[0] < rank(best_row):
                                    best_nests, best_row = entry[1], entry[2]
        evaluated = len(seen)
    if best_nests is None:
        raise InvalidMappingError(name, [f"no loop order of {lpfs} fits the memories of {hardware.where}"])
    return LomaResult(nests=best_nests, energy_pj=float(best_row["energy_pj"]),
                      cycles=float(best_row["latency_cycles"]), orderings=len(orders), evaluated=evaluated,
                      macs=layer.macs, chains={t: tuple(c) for t, c in chains.items()}, detail=best_row)


def _shared_fit(cuts: dict[str, tuple[int, ...]], vectors: dict[str, dict], shared: list[tuple]) -> bool:
    """Whether the operands' tiles at ``cuts`` fit the memories they share (``vectors``: cuts -> tile bits)."""
    for group, capacity in shared:
        if sum(vectors[t][cuts[t]][level] for t, level in group) > capacity:
            return False
    return True


def _combine(options: list[list[tuple]], floor: list[float], shared: list[tuple], operands: list[str],
             bound: float) -> tuple[float, list[tuple]] | None:
    """Cheapest pick of one option per operand whose tiles fit the shared memories, below ``bound``.

    Options are sorted by energy; ``floor[i]`` is operand ``i``'s cheapest, so a partial pick whose energy
    plus the remaining floors reaches the bound is not extended."""
    index = {t: i for i, t in enumerate(operands)}
    rest = [sum(floor[i:]) for i in range(len(floor))] + [0.0]
    best: list[Any] = [bound, None]

    def fits(picks: list[tuple]) -> bool:
        for group, capacity in shared:
            members = [(index[t], level) for t, level in group if index[t] < len(picks)]
            if sum(picks[i][1][level] for i, level in members) > capacity:
                return False
        return True

    def visit(i: int, energy: float, picks: list[tuple]) -> None:
        if i == len(options):
            best[0], best[1] = energy, list(picks)
            return
        for option in options[i]:
            if energy + option[0] + rest[i + 1] > best[0]:
                break
            picks.append(option)
            if fits(picks):
                visit(i + 1, energy + option[0], picks)
            picks.pop()
    visit(0, 0.0, [])
    return None if best[1] is None else (best[0], best[1])


__all__ = ["LomaMapper", "LomaResult", "clear_cache", "distinct_orders", "loop_prime_factors", "orderings",
           "search_layer"]
