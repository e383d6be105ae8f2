"""Latency of a ZigZag-described mapping: compute, port stalls, onload, offload and systolic drain.

The model (reimplemented from the description of zigzag-dse 3.9.1's ``cost_model.py``, in hwsim's terms):

* **compute**: the product of the temporal loops.
* **stall / slack per port**: every link direction a port serves moves its per-period amount in
  ``ceil(bits / port width)`` cycles and may take a window per period: the whole period when the memory
  can double-buffer (its tile, less the outermost relevant loops, fills at most half of it, counting the
  operands sharing it), else the period divided by the outermost irrelevant loops. Over ``count - 1``
  periods the difference is a stall (+) or slack (-). Directions sharing a port add their stalls; their
  slack only helps as far as their windows overlap (the union of the periodic windows).
  The layer's stall is the worst port's.
* **onload**: before computing, the inputs' levels are filled once: each link pair (memory, the level
  below) takes the slower side's cycles; transfers that happen once per layer may overlap the computation
  with whatever bandwidth the periodic transfers leave free on that port (largest first, never below the
  cycles of one innermost tile). Two inputs load in parallel except over ports they share.
* **offload**: the output's final tiles leave level by level, in series.
* **drain**: along each systolic array dimension the last results need one cycle per unit to leave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.models.spatial.zigzag_nest import FROM_HIGH, FROM_LOW, TO_HIGH, TO_LOW, OperandFlow


@dataclass(frozen=True)
class PortZ:
    """A physical memory port: width in bits/cycle and the (operand, level, direction) links it serves.

    ``serves`` names operands by the *layer* operand they hold in this layer; ``memory_operands`` are the
    memory operands (``I1``, ``I2``, ``O``) it is allocated to in the hardware file, whatever the layer.
    """

    name: str
    bw_min: int
    bw_max: int
    serves: tuple[tuple[str, int, str], ...]
    memory_operands: frozenset[str]

    @property
    def shared_by_inputs(self) -> bool:
        return len(self.memory_operands & {"I1", "I2"}) > 1


@dataclass(frozen=True)
class LatencyZ:
    compute_cycles: int
    stall_cycles: float
    onload_cycles: float
    offload_cycles: float
    drain_cycles: int

    @property
    def total_cycles(self) -> float:
        return self.compute_cycles + self.stall_cycles + self.onload_cycles + self.offload_cycles + self.drain_cycles


def double_buffered(flows: dict[str, OperandFlow], operands: tuple[str, ...], size_bits: dict[tuple[str, int], int],
                    groups: list[list[tuple[str, int]]]) -> dict[str, list[bool]]:
    """Per operand, per architecture level (MAC level first, always False): may the memory double-buffer?"""
    individual = {}
    for t in operands:
        flow = flows[t]
        for m in range(len(flow.links)):
            effective = flow.tile_bits[m + 1] // flow.top_r[m + 1]
            individual[(t, m)] = effective / size_bits[(t, m)]
    shared = dict(individual)
    group_of = {}
    for group in groups:
        members = [key for key in group if key in individual]
        total = sum(individual[key] for key in members)
        for key in members:
            shared[key] = total
            group_of[key] = members
    flags = {}
    for t in operands:
        flags[t] = [False]
        for m in range(len(flows[t].links)):
            key = (t, m)
            if shared[key] <= 0.5:
                flags[t].append(True)
            elif individual[key] <= 1 - shared[key]:
                flags[t].append(True)
                for other in group_of.get(key, []) if len(group_of.get(key, [])) > 1 else []:
                    shared[other] += individual[key]
            else:
                flags[t].append(False)
    return flags


def _window_union(activities: list[tuple[float, float, float, int]]) -> float:
    """Union over the layer of periodic windows ``(real, allowed, period, count)`` sharing one port."""
    for _, allowed, period, count in activities:
        if period == allowed:
            return period * count
    longest = max(range(len(activities)), key=lambda i: (activities[i][2], -i))
    p_max = int(activities[longest][2])
    busy = np.zeros(p_max, dtype=bool)
    for _, allowed, period, _ in activities:
        phase = np.arange(p_max) % int(period)
        busy |= phase < int(allowed)
    return int(busy.sum()) * activities[longest][3]


def _port_stall(activities: list[tuple[float, float, float, int]]) -> float:
    if len(activities) == 1:
        real, allowed, _, count = activities[0]
        return (real - allowed) * (count - 1)
    stalls = [(real - allowed) * (count - 1) for real, allowed, _, count in activities]
    windows = sum(allowed * (count - 1) for _, allowed, _, count in activities)
    positive = sum(s for s in stalls if s > 0)
    negative = sum(s for s in stalls if s <= 0)
    return positive + max(0, negative + windows - _window_union(activities))


def _real_cycles(flows: dict[str, OperandFlow], t: str, m: int, direction: str, width: int | None) -> int:
    link = flows[t].links[m]
    if not width:
        return 0
    return math.ceil(link.amount[direction] * link.precision[direction] / width)


def _allowed(flows: dict[str, OperandFlow], flags: dict[str, list[bool]], t: str, m: int, direction: str) -> int:
    link = flows[t].links[m]
    flag = flags[t][m + 1] if direction in (TO_HIGH, FROM_HIGH) else flags[t][m]
    return math.ceil(link.period[direction] if flag else link.window[direction])


def stall_cycles(flows: dict[str, OperandFlow], ports: list[PortZ], flags: dict[str, list[bool]],
                 width_of: dict[tuple[str, int, str], int]) -> float:
    """The worst port's stall (never negative)."""
    worst = 0.0
    for port in ports:
        activities = []
        for t, m, direction in port.serves:
            link = flows[t].links[m]
            if link.count[direction] == 0:
                continue
            real = _real_cycles(flows, t, m, direction, width_of.get((t, m, direction)))
            activities.append((real, _allowed(flows, flags, t, m, direction), math.ceil(link.period[direction]),
                               link.count[direction]))
        if activities:
            worst = max(worst, _port_stall(activities))
    return worst


def _reduce_largest_first(totals: list[float], floors: list[float], budget: float) -> list[float]:
    """Lower the largest totals towards their floors until ``budget`` cycles are used up."""
    out = list(totals)
    for i in sorted(range(len(totals)), key=lambda i: totals[i], reverse=True):
        if budget <= 0:
            break
        cut = min(max(0.0, out[i] - floors[i]), budget)
        out[i] -= cut
        budget -= cut
    return out


def loading_cycles(flows: dict[str, OperandFlow], output: str, ports: list[PortZ], compute_and_stall: float,
                   width_of: dict[tuple[str, int, str], int]) -> dict[tuple[str, int, str], tuple[float, bool]]:
    """Per (operand, level, direction): cycles of the one-off transfer before/after the computation."""
    out = {}
    for port in ports:
        once, periodic = [], []
        for t, m, direction in port.serves:
            if t == output and direction in (TO_LOW, FROM_HIGH):      # partial sums do not flow at the end
                continue
            count = flows[t].links[m].count[direction]
            if count == 1:
                once.append((t, m, direction))
            elif count > 1:
                periodic.append((t, m, direction))
        busy_bw = sum(math.ceil(flows[t].links[m].avg_bw[d]) for t, m, d in periodic)
        if once:
            floors = [math.ceil(flows[t].tile_bits[1] / port.bw_max) for t, _, _ in once]
            totals = [_real_cycles(flows, t, m, d, width_of.get((t, m, d))) for t, m, d in once]
            spare = max(0.0, (port.bw_max - busy_bw) / port.bw_max * compute_and_stall)
            for key, cycles in zip(once, _reduce_largest_first(totals, floors, spare)):
                out[key] = (cycles, port.shared_by_inputs)
        for t, m, d in periodic:
            out[(t, m, d)] = (_real_cycles(flows, t, m, d, width_of.get((t, m, d))), port.shared_by_inputs)
    return out


def onload_cycles(flows: dict[str, OperandFlow], inputs: tuple[str, ...],
                  loads: dict[tuple[str, int, str], tuple[float, bool]]) -> float:
    parts = {t: {"own": 0.0, "half": 0.0, "shared": 0.0} for t in inputs}
    for t in inputs:
        for m in range(len(flows[t].links) - 1):
            upper, up_shared = loads.get((t, m, FROM_HIGH), (0, False))
            lower, low_shared = loads.get((t, m + 1, TO_LOW), (0, False))
            longest = max(upper, lower)
            if up_shared and low_shared:
                parts[t]["shared"] += longest
            elif not up_shared and not low_shared:
                parts[t]["own"] += longest
            else:
                parts[t]["half"] = longest      # as zigzag-dse 3.9.1 does: the last half-shared link counts
    if len(inputs) == 1:
        return parts[inputs[0]]["own"]
    a, b = (parts[t] for t in inputs[:2])
    first = a["shared"] + max(b["shared"] + b["half"] + b["own"], a["half"] + a["own"])
    second = b["shared"] + max(a["shared"] + a["half"] + a["own"], b["half"] + b["own"])
    return min(first, second)


def offload_cycles(flows: dict[str, OperandFlow], output: str,
                   loads: dict[tuple[str, int, str], tuple[float, bool]]) -> float:
    total = 0.0
    for m in range(len(flows[output].links) - 1):
        total += max(loads.get((output, m, TO_HIGH), (0, False))[0],
                     loads.get((output, m + 1, FROM_LOW), (0, False))[0])
    return total


def drain_cycles(unrolling: dict[str, float], systolic: frozenset[str]) -> int:
    """One cycle per unit along each systolic dimension the layer is unrolled on, less one."""
    return sum(max(math.ceil(unrolling[dim]) - 1, 0) for dim in systolic if dim in unrolling)
