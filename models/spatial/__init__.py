"""Spatial loop-nest engine: any memory-level tree, tiling, loop order, spatial unrolling and bypass.

``evaluate(layer, arch, mapping)`` counts, per memory level and tensor, the reads, fills (``write``) and
updates per *utilized* instance with Timeloop's accounting (delta refills incl. sliding windows,
multicast and spatial reduction over fan-outs, read-modify-write outputs whose first update needs no
read), checks capacities and fan-outs (``InvalidMappingError`` listing every reason) and derives
bandwidth-limited cycles. ``default_mapping(layer, arch)`` builds a valid mapping greedily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.errors import InvalidMappingError
from hwsim.ir import Layer
from hwsim.mappers.mapping import TENSORS, Mapping
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.spatial._kernels import FILLS, PARTITION, READS, TILE, UPDATES, _nest_stats_kernel
from hwsim.models.spatial.nest import (Problem, active_instances, capacity_problems, check_mapping, flatten,
                                       problem_from_layer)
from hwsim.models.spatial.zeros import dram_input_scale, zero_handling

# the loop order (``default.ORDERS``) each stationary dataflow names
STATIONARY_ORDER = {"weight_stationary": "W", "output_stationary": "O", "input_stationary": "I"}

__all__ = ["NestStats", "analyze", "default_mapping", "evaluate", "problem_from_layer"]


@dataclass(frozen=True)
class NestStats:
    """Per level x tensor counts of one mapping (per utilized instance) plus cycles."""

    levels: tuple[str, ...]
    stats: np.ndarray                 # [level, tensor, (reads, fills, updates, tile, partition)]
    instances: tuple[int, ...]        # utilized instances per level
    compute_cycles: int
    level_cycles: tuple[float, ...]   # bandwidth-limited cycles per level
    padded_macs: int
    utilized_macs: int                # MAC units the spatial unrolling spans (padding included)
    active_macs: int = 0              # of those, the ones holding real work (``active_instances``)

    @property
    def cycles(self) -> int:
        return max(self.compute_cycles, math.ceil(max(self.level_cycles, default=0) - 1e-9))

    def count(self, level: str, tensor: str, action: str) -> int:
        column = {"read": READS, "write": FILLS, "fill": FILLS, "update": UPDATES, "tile": TILE,
                  "partition": PARTITION}[action]
        return int(self.stats[self.levels.index(level), TENSORS.index(tensor), column])


def _utilized_instances(mapping: Mapping) -> list[int]:
    out, product = [], 1
    for lvl in mapping.levels:
        out.append(product)
        product *= math.prod(b for _, b in lvl.spatial)
    return out + [product]


def _dram_input_scale(problem: Problem, arch: ArchSpec) -> float:
    return dram_input_scale(arch, density=problem.act_density, act_bits=problem.bits[1])


def _bandwidth_cycles(problem: Problem, arch: ArchSpec, stats: np.ndarray) -> tuple[float, ...]:
    out = []
    for i, level in enumerate(arch.memory):
        bits = list(problem.bits)
        if i == 0:
            bits[2] = problem.out_bits
            bits[1] = bits[1] * _dram_input_scale(problem, arch)     # run-length coded on the link
        read_b = sum(stats[i, t, READS] * bits[t] for t in range(3)) / 8
        write_b = sum((stats[i, t, FILLS] + stats[i, t, UPDATES]) * bits[t] for t in range(3)) / 8
        cycles = 0.0
        if level.read_bw_bytes_per_cycle:
            cycles = max(cycles, read_b / level.read_bw_bytes_per_cycle)
        if level.write_bw_bytes_per_cycle:
            cycles = max(cycles, write_b / level.write_bw_bytes_per_cycle)
        out.append(cycles)
    return tuple(out)


def analyze(problem: Problem, arch: ArchSpec, mapping: Mapping, *, check: bool = True) -> NestStats:
    """Loop-nest analysis of ``mapping``; raises ``InvalidMappingError`` with every reason when ``check``."""
    if check and (problems := check_mapping(problem, arch, mapping)):
        raise InvalidMappingError(problem.name, problems)
    nest = flatten(mapping)
    proj, nranks = problem.proj_array()
    stats = _nest_stats_kernel(loop_dim=nest.loop_dim, loop_bound=nest.loop_bound,
                               loop_level=nest.loop_level, loop_spatial=nest.loop_spatial, proj=proj,
                               nranks=nranks, keep=nest.keep, n_levels=len(mapping.levels), rw_tensor=2,
                               mac_reuse=bool(arch.spatial and arch.spatial.mac_operand_reuse),
                               identical_multicast=bool(arch.spatial and arch.spatial.multicast == "identical"))
    if check and (problems := capacity_problems(arch, mapping, stats[:, :, TILE], problem.bits)):
        raise InvalidMappingError(problem.name, problems)
    temporal = nest.loop_spatial == 0
    instances = _utilized_instances(mapping)
    return NestStats(levels=tuple(lvl.level for lvl in mapping.levels), stats=stats,
                     instances=tuple(instances[:-1]),
                     compute_cycles=int(np.prod(nest.loop_bound[temporal])),
                     level_cycles=_bandwidth_cycles(problem, arch, stats),
                     padded_macs=int(np.prod(nest.loop_bound)), utilized_macs=instances[-1],
                     active_macs=active_instances(problem, mapping))


def counts_from_stats(problem: Problem, arch: ArchSpec, result: NestStats, *, layer: Layer | None = None
                      ) -> LayerCounts:
    """``LayerCounts`` (accesses per utilized instance, action names read/write/update) of an analysis."""
    zeros, density = zero_handling(arch), problem.act_density
    scale = {(0, 1, "read"): _dram_input_scale(problem, arch)}        # RLC input words on the DRAM link
    if zeros != "none":                                               # a zero ifmap skips the filter-spad read
        scale[(len(result.levels) - 1, 0, "read")] = density
    accesses = []
    for i, level in enumerate(result.levels):
        for t, tensor in enumerate(TENSORS):
            bits = problem.out_bits if (i == 0 and t == 2) else problem.bits[t]
            for action, column in (("read", READS), ("write", FILLS), ("update", UPDATES)):
                count = int(result.stats[i, t, column]) * scale.get((i, t, action), 1.0)
                if count:
                    accesses.append(Access(level=level, tensor=tensor, action=action, count=float(count),
                                           instances=result.instances[i], word_bits=bits))
    compute = math.ceil(result.compute_cycles * density - 1e-9) if zeros == "skip" else result.compute_cycles
    cycles = max(compute, math.ceil(max(result.level_cycles, default=0) - 1e-9))
    effectual = result.padded_macs * (density if zeros != "none" else 1.0)
    details = [("padded_macs", float(result.padded_macs)), ("macs", float(problem.macs)),
               ("utilized_macs", float(result.utilized_macs)), ("dram_input_scale", scale[(0, 1, "read")])]
    details += [(f"tile.{lvl}.{t}", float(result.stats[i, k, TILE]))
                for i, lvl in enumerate(result.levels) for k, t in enumerate(TENSORS) if result.stats[i, k, TILE]]
    return LayerCounts(
        compute_cycles=compute, stall_cycles=cycles - compute, mac_ops=float(effectual),
        gated_mac_ops=float(result.padded_macs - effectual) if zeros == "gate" else 0.0,
        weight_bits=problem.bits[0], act_bits=problem.bits[1],
        mac_kind="fp" if layer is not None and layer.number_format == "fp" else "int",
        accesses=tuple(accesses), utilization=problem.macs / (cycles * arch.compute.units) if cycles else 0.0,
        engine="spatial", active_pes=result.active_macs, details=tuple(details))


def evaluate(layer: Layer, arch: ArchSpec, mapping: Mapping) -> LayerCounts:
    """Cycles and per-level x tensor access counts of ``layer`` on ``arch`` under ``mapping``."""
    problem = problem_from_layer(layer, arch)
    return counts_from_stats(problem, arch, analyze(problem, arch, mapping), layer=layer)


def default_mapping(layer: Layer, arch: ArchSpec) -> Mapping:
    """The mapping ``spatial.dataflow`` names.

    ``row_stationary``: Eyeriss's RS mapping (``row_stationary.py``), or the greedy mapping when a layer
    does not fit the RS constraints (a filter taller than the array, a row wider than the ifmap spad);
    ``weight_/output_/input_stationary``: greedy unrolling and tiling with that tensor's loop order (its
    reuse loops innermost, so it stays resident in the PE level); none declared: the greedy mapping with
    the order that moves the fewest bits across DRAM.
    """
    from hwsim.models.spatial.default import greedy_mapping
    from hwsim.models.spatial.row_stationary import row_stationary_mapping

    problem = problem_from_layer(layer, arch)
    dataflow = arch.spatial.dataflow if arch.spatial else None
    if dataflow == "row_stationary" and (mapping := row_stationary_mapping(problem, arch)) is not None:
        return mapping
    return greedy_mapping(problem, arch, order=STATIONARY_ORDER.get(dataflow or ""))
