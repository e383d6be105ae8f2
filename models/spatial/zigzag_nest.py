"""Per-operand loop-nest accounting with ZigZag's semantics (the model behind ``hwsim.interop.zigzag.replay``).

hwsim's Timeloop-style engine (``_kernels.py``) walks one chain of levels and counts delta refills of
axis-aligned tiles. ZigZag (zigzag-dse 3.x) describes the same hardware differently, and a replay of a
ZigZag mapping has to follow ZigZag's description to be comparable:

* every operand has its own chain of memories and its own loop cut points (``OperandNest.temporal``: the
  temporal loops each of its levels runs, inner to outer; ``OperandNest.spatial``: the spatial loops
  below each of its levels, index 0 being the MAC level);
* a loop is *relevant* (``r``) to an operand when it indexes it, *irrelevant* (``ir``) when it does not, and
  *partially relevant* (``pr``) when it enters through a sliding-window relation such as ``ix = s*ox + d*fx``.
  The window's data size comes from the combined bounds of its two loops (``window_size``); the rest of
  their product counts as reuse, so a pr loop is split into a (fractional) relevant and irrelevant part;
* traffic is periodic: a level refills once per *period* (the cycles of the loops at and below it,
  stretched by irrelevant loops at the bottom of the innermost level when the MAC units keep their
  operands -- ``access_same_data_considered_as_no_access``), moving its lower level's tile each time;
* a transfer of ``n`` bits on a port of ``min``/``max`` bits costs ``ceil(n / min) * min / max`` accesses,
  per unit memory, times the number of unit memories.

``transfers(layer, nest)`` returns, per memory level of one operand, the four directions' per-period
amounts, precisions, periods and period counts (``Link`` records) from which both the energy
(``word_accesses``) and the latency (``models/spatial/zigzag_latency.py``) are derived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# the four directions of a link between a memory and its neighbours (ZigZag's tl, fl, th, fh)
TO_LOW, FROM_LOW, TO_HIGH, FROM_HIGH = "to_low", "from_low", "to_high", "from_high"
DIRECTIONS = (TO_LOW, FROM_LOW, TO_HIGH, FROM_HIGH)
READ_DIRECTIONS = (TO_LOW, TO_HIGH)

Loop = tuple[str, int]


@dataclass(frozen=True)
class LayerZ:
    """One layer as ZigZag sees it: loop sizes, which loops index which operand, precisions.

    ``relevant[t]``: loop dims that index operand ``t`` directly. ``windows[t]``: per sliding-window data
    dim of ``t`` (e.g. ``IX``) the two loops and their coefficients, ``((OX, 2), (FX, 1))``;
    ``window_limit[t][dim]``: the real extent of that dim (the input's width; windows are clipped to it).
    ``operands`` lists the output first, then the inputs, in the equation's order.
    """

    name: str
    sizes: dict[str, int]
    operands: tuple[str, ...]
    relevant: dict[str, frozenset[str]]
    windows: dict[str, dict[str, tuple[tuple[str, int], tuple[str, int]]]]
    window_limit: dict[str, dict[str, int]]
    precision: dict[str, int]          # per operand; the output's is the partial-sum width
    final_precision: int               # the output's width once complete

    @property
    def output(self) -> str:
        return self.operands[0]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.operands[1:]

    @property
    def macs(self) -> int:
        return math.prod(self.sizes.values())

    def pr_dims(self, operand: str) -> dict[str, str]:
        """Loop dim -> the window data dim it enters ``operand`` through."""
        return {loop: data for data, pair in self.windows.get(operand, {}).items() for loop, _ in pair}

    def is_irrelevant(self, operand: str, dim: str) -> bool:
        return dim not in self.relevant[operand] and dim not in self.pr_dims(operand)

    def operand_elements(self, operand: str) -> int:
        size = math.prod(self.sizes.get(d, 1) for d in self.relevant[operand])
        for data, pair in self.windows.get(operand, {}).items():
            size *= self.window_size(operand, data, {loop: self.sizes.get(loop, 1) for loop, _ in pair})
        return size

    def window_size(self, operand: str, data: str, bounds: dict[str, int]) -> int:
        """Distinct indices of ``s_a * a + s_b * b`` over ``a < A``, ``b < B`` (clipped to the real extent)."""
        (dim_a, s_a), (dim_b, s_b) = self.windows[operand][data]
        a, b = int(bounds.get(dim_a, 1)), int(bounds.get(dim_b, 1))
        g = math.gcd(s_a, s_b)
        size = a * b - max(0, b - s_a // g) * (a - s_b // g)
        return min(self.window_limit[operand].get(data, size), size)


@dataclass(frozen=True)
class OperandNest:
    """One operand's mapping: temporal loops per memory level and spatial loops per architecture level."""

    operand: str
    temporal: tuple[tuple[Loop, ...], ...]        # per memory level (inner to outer), loops inner to outer
    spatial: tuple[tuple[Loop, ...], ...]         # len(temporal) + 1 entries; [0] unrolls below the innermost

    def __post_init__(self) -> None:
        if len(self.spatial) != len(self.temporal) + 1:
            raise ValueError(f"operand {self.operand}: {len(self.temporal)} memory levels need "
                             f"{len(self.temporal) + 1} spatial levels, got {len(self.spatial)}")


@dataclass
class Link:
    """Per memory level of one operand, per direction: amount per period (elements), precision (bits),
    period (cycles), period count, and the average bandwidth it needs (bits/cycle)."""

    amount: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    precision: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    period: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    avg_bw: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    window: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))

    def set(self, direction: str, *, amount: float, precision: int, period: float, count: int, avg_bw: int) -> None:
        self.amount[direction], self.precision[direction] = amount, precision
        self.period[direction], self.count[direction], self.avg_bw[direction] = period, count, avg_bw

    def clear(self, direction: str) -> None:
        for table in (self.amount, self.precision, self.period, self.count, self.avg_bw, self.window):
            table[direction] = 0


@dataclass(frozen=True)
class OperandFlow:
    """Everything the energy and latency passes need about one operand."""

    operand: str
    links: tuple[Link, ...]                # per memory level
    unit_count: tuple[int, ...]            # unit memories per architecture level
    tile_elems: tuple[int, ...]            # elements one unit at each architecture level holds
    tile_bits: tuple[int, ...]
    top_r: tuple[int, ...]                 # per architecture level: outermost relevant loops of the level below
    top_ir: tuple[int, ...]
    total_cycles: int


def _split(layer: LayerZ, operand: str, levels: list[list[Loop]]) -> tuple[list[float], list[float]]:
    """Per level: product of the relevant and of the irrelevant parts of its loops (pr loops split)."""
    pr = layer.pr_dims(operand)
    cum = {data: {} for data in layer.windows.get(operand, {})}
    prev_size = dict.fromkeys(cum, 1.0)
    prev_reuse = dict.fromkeys(cum, 1.0)
    rel, irr = [], []
    for loops in levels:
        r, ir = 1.0, 1.0
        for dim, bound in loops:
            if dim in layer.relevant[operand]:
                r *= bound
            elif dim in pr:
                data = pr[dim]
                cum[data][dim] = cum[data].get(dim, 1) * bound
                size = layer.window_size(operand, data, cum[data])
                reuse = math.prod(cum[data].values()) / size
                r *= size / prev_size[data]
                ir *= reuse / prev_reuse[data]
                prev_size[data], prev_reuse[data] = size, reuse
            else:
                ir *= bound
        rel.append(r)
        irr.append(ir)
    return rel, irr


def _cumprod(values: list[float]) -> list[float]:
    out, acc = [], 1.0
    for v in values:
        acc *= v
        out.append(acc)
    return out


def _outer_run(layer: LayerZ, operand: str, loops: tuple[Loop, ...], *, relevant: bool) -> int:
    """Product of the outermost loops of a level that are (ir)relevant to ``operand``, up to the first other."""
    product = 1
    for dim, bound in reversed(loops):
        is_r = dim in layer.relevant[operand]
        is_ir = layer.is_irrelevant(operand, dim)
        if (relevant and not is_r) or (not relevant and not is_ir):
            break
        product *= bound
    return product


@dataclass(frozen=True)
class _Geometry:
    """Sizes of one operand's nest per architecture level (index 0: the MAC level)."""

    at_level: list[list[Loop]]      # a level's own temporal loops with the spatial loops below it
    ir_at: list[float]              # irrelevant part of ``at_level`` per level
    unit_count: list[int]           # unit memories per level
    boost: list[int]                # distinct-data fan-out from a level to the one below it
    tile: list[int]                 # elements one unit holds


def _geometry(layer: LayerZ, nest: OperandNest) -> _Geometry:
    t, tm, su = nest.operand, [list(v) for v in nest.temporal], [list(v) for v in nest.spatial]
    arch = len(tm) + 1
    at_level = [(tm[lv - 1] if lv else []) + su[lv] for lv in range(arch)]
    tile_level = [[]] + [tm[lv - 1] + su[lv - 1] for lv in range(1, arch)]
    _, ir_at = _split(layer, t, at_level)
    r_tile, _ = _split(layer, t, tile_level)
    r_sp, _ = _split(layer, t, su)
    total_sp = [math.prod(b for _, b in level) for level in su]
    unit_count = [round(round(math.prod(total_sp[lv:]), 3)) for lv in range(arch)]
    unique = [math.prod(r_sp[lv:]) for lv in range(arch)]
    boost = [round(unique[lv] / unique[lv + 1]) for lv in range(arch - 1)] + [1]
    return _Geometry(at_level=at_level, ir_at=ir_at, unit_count=unit_count, boost=boost,
                     tile=[round(v) for v in _cumprod(r_tile)])


def _periods(layer: LayerZ, nest: OperandNest, *, mac_keeps_operands: bool) -> tuple[list[float], int]:
    """Refill period of each architecture level (cycles) and the layer's temporal cycles."""
    cycles = _cumprod([math.prod(b for _, b in level) for level in nest.temporal])
    total = int(round(cycles[-1])) if cycles else 1
    stationary = 1                  # irrelevant loops at the bottom: the MAC units keep the operand meanwhile
    if mac_keeps_operands and nest.operand != layer.output and nest.temporal:
        for dim, bound in nest.temporal[0]:
            if not layer.is_irrelevant(nest.operand, dim):
                break
            stationary *= bound
    return [stationary] + cycles, total


def _partial(layer: LayerZ, geo: _Geometry) -> list[bool]:
    """Output levels that hold partial sums (an irrelevant loop at or above them)."""
    arch = len(geo.at_level)
    flag = [any(layer.is_irrelevant(layer.output, d) and b > 1 for d, b in geo.at_level[lv]) for lv in range(arch)]
    return [any(flag[lv + 1:]) for lv in range(arch - 1)] + [False]


def operand_flow(layer: LayerZ, nest: OperandNest, *, mac_keeps_operands: bool = True) -> OperandFlow:
    """Per-period transfers of one operand at each of its memory levels (ZigZag's accounting)."""
    t, n = nest.operand, len(nest.temporal)
    geo = _geometry(layer, nest)
    period, total = _periods(layer, nest, mac_keeps_operands=mac_keeps_operands)
    is_output = t == layer.output
    partial = _partial(layer, geo) if is_output else [False] * (n + 1)
    precision = [(layer.precision[t] if partial[lv] else layer.final_precision) if is_output else layer.precision[t]
                 for lv in range(n + 1)]
    ir_above = [math.prod(geo.ir_at[lv:]) for lv in range(n + 1)] + [1, 1]
    out_elems = layer.operand_elements(t) if is_output else 0
    top_r = [1] + [_outer_run(layer, t, level, relevant=True) for level in nest.temporal]
    top_ir = [1] + [_outer_run(layer, t, level, relevant=False) for level in nest.temporal]
    tile, boost = geo.tile, geo.boost
    links = []
    for m in range(n):
        link = Link()
        low = dict(period=period[m], count=int(total // period[m]),
                   avg_bw=int(tile[m] * precision[m] / period[m] * boost[m]))
        high = dict(period=period[m + 1], count=int(total // period[m + 1]),
                    avg_bw=int(tile[m + 1] * precision[m + 1] / period[m + 1]))
        if not is_output:
            link.set(TO_LOW, amount=tile[m] * boost[m], precision=precision[m], **low)
            link.set(FROM_HIGH, amount=tile[m + 1], precision=precision[m + 1], **high)
        else:                       # partial sums go down (to_low) and come back (from_high) at psum width
            psum_low = out_elems * (ir_above[m + 1] - 1) != 0
            psum_high = out_elems * (ir_above[m + 2] - 1) != 0
            p_low = layer.precision[t] if psum_low else layer.final_precision
            p_high = layer.precision[t] if psum_high else layer.final_precision
            link.set(FROM_LOW, amount=int(tile[m] * boost[m]), precision=p_low, **low)
            link.set(TO_HIGH, amount=tile[m + 1], precision=p_high, **high)
            if partial[m]:
                link.set(TO_LOW, amount=int(tile[m] * boost[m]), precision=p_low if psum_low else 0, **low)
            if partial[m + 1]:
                link.set(FROM_HIGH, amount=tile[m + 1], precision=p_high if psum_high else 0, **high)
        for direction in DIRECTIONS:        # window of a non-double-buffered memory: the period / top ir loops
            factor = top_ir[m + 1] if direction in (TO_HIGH, FROM_HIGH) else top_ir[m]
            link.window[direction] = int(link.period[direction] / int(factor))
        links.append(link)
    if links:                               # traffic between the outermost memory and the world is not counted
        links[-1].clear(TO_HIGH)
        links[-1].clear(FROM_HIGH)
    return OperandFlow(operand=t, links=tuple(links), unit_count=tuple(geo.unit_count), tile_elems=tuple(tile),
                       tile_bits=tuple(tile[lv] * precision[lv] for lv in range(n + 1)), top_r=tuple(top_r),
                       top_ir=tuple(top_ir), total_cycles=total)


def word_accesses(link: Link, direction: str, *, min_bw: int, max_bw: int, units: int) -> int:
    """Accesses of ``max_bw``-bit words one direction of a link makes over the layer, over all unit memories."""
    amount, bits = link.amount[direction], link.precision[direction]
    if amount == 0 or bits == 0:
        return 0
    return int(math.ceil(amount * bits / min_bw) * (min_bw / max_bw) * link.count[direction] * units)
