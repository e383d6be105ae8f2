"""Eyeriss's row-stationary (RS) mapping as a loop-nest ``Mapping`` (Chen et al., ISCA 2016 Sec. V; JSSC 2017
Sec. III and Table III).

A *logical PE set* is R filter rows x e output rows: each PE convolves one filter row with one ifmap row
(1-D, the ``S`` loop), psums accumulate down the R rows. A set wider than the array is *folded*: its e
rows are cut into ``segments`` of at most the array width, stacked vertically. Sets that leave room are
*replicated*: ``r`` copies on different input channels and ``t`` on different filters. Inside a PE, ``q``
channels and ``p`` filters share the spads (ifmap ``q*S``, filter ``p*q*S``, psum ``p`` words); output
columns (Q) stream through the PE (sliding window), ``n`` images and ``m`` filters share a GLB pass.

The parameters are not read from the paper's table: they are chosen by what the hardware is built for,
the fewest compute cycles on the array under the spad capacities, then the fewest padded (idle) MACs,
then the fewest bits moved across DRAM by the GLB tiling, checked by the loop-nest engine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

from hwsim.errors import InvalidMappingError
from hwsim.mappers.mapping import DIMS, LevelMapping, Mapping
from hwsim.models.arch import ArchSpec
from hwsim.models.spatial.default import default_keep
from hwsim.models.spatial.nest import Problem, fanouts
from hwsim.models.spatial.zeros import dram_input_scale

# loop orders (outer -> inner) tried for the dims left above the PE array; Q is always innermost in the GLB
_OUTER_ORDERS = (("G", "N", "K", "P", "C"), ("G", "N", "P", "K", "C"))
_KEPT = 512          # best-ranked parameter sets remembered per layer shape (the cache stays small)
_CANDIDATES = 3       # RS parameter sets (tied on cycles and padding) whose GLB tiling is evaluated


@dataclass(frozen=True)
class RSParams:
    """The RS mapping parameters of one layer (names as in Chen et al., JSSC 2017, Table III)."""

    e: int            # output rows a PE set covers (its width before folding)
    segments: int     # vertical folds of the set (1: not folded)
    r: int            # PE sets on different input channels
    t: int            # PE sets on different filters
    p: int            # filters per PE (psum spad entries)
    q: int            # input channels per PE
    placement: tuple[int, int, int]   # (r_y, t_y, t_x): channel / filter copies over array rows and columns


def _spad_words(arch: ArchSpec) -> tuple[int, int, int, int | None]:
    """(W, I, O) words of the per-PE level (``partition_bytes``), or a shared size in words."""
    level = arch.memory[-1]
    word = level.word_bits / 8
    if level.partition_bytes:
        parts = level.partition_bytes
        return (int(parts.get("W", 0) // word), int(parts.get("I", 0) // word), int(parts.get("O", 0) // word),
                None)
    size = int((level.size_bytes or 0) // word)
    return size, size, size, size


@lru_cache(maxsize=4096)
def _ranked_params(R: int, S: int, E: int, C: int, K: int, fx: int, fy: int, w_words: int, i_words: int,
                   o_words: int, shared: int | None) -> tuple[tuple[int, int, RSParams], ...]:
    """Every feasible ``RSParams`` as (relative compute cycles, padded MAC slots, params), best first."""
    out = []
    pq = [(p, q) for q in range(1, max(1, i_words // S) + 1) for p in range(1, o_words + 1)
          if p * q * S <= w_words and q * S <= i_words
          and (shared is None or p * q * S + q * S + p <= shared) and p <= K and q <= C]
    for e, segments in _set_shapes(R, E, fx, fy):
        cols = e if segments == 1 else fx
        vertical, horizontal = fy // (segments * R), fx // cols
        for ry, ty, tx in _placements(vertical, horizontal):
            r, t = ry, ty * tx
            if r > C or t > K:
                continue
            passes = math.ceil(E / e)
            for p, q in pq:
                c_steps, k_steps = math.ceil(C / (q * r)), math.ceil(K / (p * t))
                cycles = passes * c_steps * k_steps * p * q
                padded = passes * e * c_steps * q * r * k_steps * p * t
                out.append((cycles, padded, RSParams(e=e, segments=segments, r=r, t=t, p=p, q=q,
                                                     placement=(ry, ty, tx))))
    out.sort(key=lambda item: (item[0], item[1], -item[2].p * item[2].q, item[2].segments, repr(item[2])))
    return tuple(out[:_KEPT])


def _set_shapes(R: int, E: int, fx: int, fy: int) -> list[tuple[int, int]]:
    """(e, segments) of the logical PE set: the whole R x E set, folded into ``ceil(E / fx)`` segments
    stacked vertically, when they fit the array; else E strip-mined into sets of e <= fx rows."""
    segments = math.ceil(E / fx)
    if segments * R <= fy:
        return [(E, segments)]
    return [(e, 1) for e in range(1, min(E, fx) + 1)]


def _placements(vertical: int, horizontal: int) -> list[tuple[int, int, int]]:
    """Ways to fill the ``vertical`` x ``horizontal`` set slots: (r_y, t_y, t_x).

    Sets on different channels (r) sum their psums, which flow down the array's columns, so they are
    stacked vertically; sets on different filters (t) go either way.
    """
    return [(ry, ty, tx) for ry in range(1, vertical + 1) for ty in range(1, vertical // ry + 1)
            for tx in range(1, horizontal + 1)]


def rs_candidates(problem: Problem, arch: ArchSpec) -> list[list[RSParams]]:
    """RS parameter sets in tiers of equal (cycles, padding), best tier first (at most ``_CANDIDATES``
    sets per tier); empty when RS cannot map the layer."""
    b = problem.bound
    fx, fy = fanouts(arch)[-2]
    w_words, i_words, o_words, shared = _spad_words(arch)
    if b["R"] > fy or b["S"] > i_words:
        return []
    ranked = _ranked_params(b["R"], b["S"], b["P"], b["C"], b["K"], fx, fy, w_words, i_words, o_words, shared)
    if not ranked:
        return []
    tiers: dict[tuple[int, int], list[RSParams]] = {}
    for cycles, padded, params in ranked:
        tier = tiers.setdefault((cycles, padded), [])
        if len(tier) < _CANDIDATES:
            tier.append(params)
    return list(tiers.values())


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def rs_mappings(problem: Problem, arch: ArchSpec, params: RSParams):
    """Every GLB/DRAM tiling of one RS parameter set (the PE array and PE loops fixed by ``params``)."""
    b = problem.bound
    ry, ty, tx = params.placement
    cols = params.e if params.segments == 1 else math.ceil(params.e / params.segments)
    x = tuple(loop for loop in (("P", cols), ("K", tx)) if loop[1] > 1)
    y = tuple(loop for loop in (("K", ty), ("C", ry), ("P", params.segments), ("R", b["R"])) if loop[1] > 1)
    pe = tuple(loop for loop in (("C", params.q), ("S", b["S"]), ("K", params.p)) if loop[1] > 1)
    covered = {"P": cols * params.segments, "K": params.p * params.t, "C": params.q * params.r,
               "R": b["R"], "S": b["S"]}
    rem = {d: math.ceil(b[d] / covered.get(d, 1)) for d in DIMS if d != "Q"}
    rem.pop("R"), rem.pop("S")
    names = [d for d in rem if d != "G"]          # groups run one after the other from DRAM
    keep = default_keep(arch)
    for glb in itertools.product(*(_divisors(rem[d]) for d in names)):
        glb_f = dict(zip(names, glb), G=1)
        for glb_order, dram_order in zip(_OUTER_ORDERS, _OUTER_ORDERS):
            glb_loops = tuple((d, glb_f[d]) for d in glb_order if glb_f[d] > 1) + (("Q", b["Q"]),)
            dram_loops = tuple((d, rem[d] // glb_f[d]) for d in dram_order if rem[d] // glb_f[d] > 1)
            levels = [LevelMapping(arch.memory[0].name, temporal=dram_loops)]
            levels += [LevelMapping(lvl.name) for lvl in arch.memory[1:-2]]
            levels += [LevelMapping(arch.memory[-2].name, temporal=glb_loops, spatial_x=x, spatial_y=y,
                                    keep=keep[-2]),
                       LevelMapping(arch.memory[-1].name, temporal=pe, keep=keep[-1])]
            yield Mapping(levels=tuple(levels), source="row_stationary",
                          notes=(("rs_e", float(params.e)), ("rs_r", float(params.r)), ("rs_t", float(params.t)),
                                 ("rs_p", float(params.p)), ("rs_q", float(params.q)),
                                 ("rs_n", float(glb_f["N"])), ("rs_m", float(glb_f["K"] * params.p * params.t))))


def row_stationary_mapping(problem: Problem, arch: ArchSpec) -> Mapping | None:
    """The RS mapping of ``problem`` on ``arch`` (fewest cycles, then padding, then DRAM bits), or None."""
    from hwsim.models.spatial import analyze  # local: the package imports this module lazily

    if len(arch.memory) < 3:
        return None
    # bits on the DRAM link per word of W, I (run-length coded when the preset says so) and O
    bits = (problem.bits[0], problem.bits[1] * dram_input_scale(arch, density=problem.act_density,
                                                                 act_bits=problem.bits[1]), problem.out_bits)
    for tier in rs_candidates(problem, arch):     # the first tier with a tiling that fits wins
        best, best_bits = None, math.inf
        for params in tier:
            for mapping in rs_mappings(problem, arch, params):
                try:
                    stats = analyze(problem, arch, mapping).stats
                except InvalidMappingError:
                    continue
                dram_bits = sum(int(stats[0, t, :3].sum()) * bits[t] for t in range(3))
                if dram_bits < best_bits:
                    best, best_bits = mapping, dram_bits
        if best is not None:
            return best
    return None
