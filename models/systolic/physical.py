"""hwsim's own systolic-array model (``mode="physical"``, the default).

Every difference from the SCALE-Sim compatibility mode (``compat.py``), and why:

1. **Real padding and batch.** Output size comes from the layer (its padding), DRAM input traffic
   is the *unpadded* input tensor (pad zeros are generated on chip) and batch N multiplies the
   streamed pixel dimension (M = N*P*Q) instead of running N serial copies.
2. **Partial folds shrink.** A fold using ``ur x uc`` PEs streams ``T + ur + uc - 2`` cycles; SCALE-Sim
   pads every fold to the full array (``2R + C + T - 2``).
3. **Double-buffered stationary operand.** ws/is preload a fold's stationary tile (``ur`` cycles)
   while the previous fold streams; os drains outputs (``ur`` cycles) while the next fold streams.
   Only the first load / last drain is exposed (SCALE-Sim: every fold pays R, os never drains).
   ``mapping.overlap_swaps=False`` turns this off. No final ``-1``.
4. **Groups map per group.** Each group is its own GEMM (C/G x K/G). When one group's tile fits the
   array, ``floor(min(rows/Sr, cols/Sc))`` groups are packed block-diagonally into one fold (a
   group's rows only meet its own columns, valid for ws/os/is); otherwise groups run one after the
   other. SCALE-Sim (and compat) runs a grouped layer as G serial layers, depthwise as C layers.
5. **Cores split the output pixels** (M) evenly; every core reads the whole stationary weight tile
   set for ws (weights are replicated into each array), pixels/outputs are not duplicated.
6. **SRAM counts** are the same streaming counts as SCALE-Sim minus its os ``folds*(R+C)`` bug,
   plus partial-sum *reads* (read-modify-write of ws/is outputs across row folds).
7. **DRAM traffic from tile reuse** instead of a per-address set/window simulation: the stationary
   operand is fetched once; of the two streamed operands, the one indexed by the outer fold loop is
   fetched once if its per-fold slice fits its SRAM partition (half of it when double-buffered),
   else once per inner fold; the other is fetched once if it fits whole, else once per outer fold.
   Outputs that cannot stay on chip across row folds spill partial sums (write + read back at
   ``acc_bits``). The cheaper of the two loop orders is used.
8. **Stalls from DRAM bandwidth**: the first stationary tile is an exposed prologue, the rest of the
   traffic overlaps compute when the SRAM is double-buffered; stall = prologue + max(0, transfer -
   compute). Without double buffering nothing overlaps. Traffic is assumed uniform over folds.
   Output writes use the DRAM write port when ``write_bw_bytes_per_cycle`` is declared (separate
   direction, overlapping the reads), else they share the read port (``hwsim.models.memory``).
"""

from __future__ import annotations

import math

from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec, MemoryLevel
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.memory import partition_capacity_bytes, stall_cycles, transfer_cycles
from hwsim.models.systolic.folds import physical_cycles

# tensor roles per dataflow: stationary (Sr x Sc), row-streamed (Sr x T), column side (Sc x T)
ROLES = {"ws": ("W", "I", "O"), "os": ("O", "I", "W"), "is": ("I", "W", "O")}


def spatial_dims(m: int, kred: int, ncols: int, dataflow: str) -> tuple[int, int, int]:
    """``(Sr, Sc, T)`` of a GEMM ``M x Kred x Ncols`` under ``dataflow``."""
    return {"ws": (kred, ncols, m), "os": (m, ncols, kred), "is": (kred, m, ncols)}[dataflow]


def groups_per_fold(groups: int, sr: int, sc: int, rows: int, cols: int, *, pack: bool) -> int:
    """How many groups share one fold block-diagonally (1 = no packing)."""
    if not pack or groups == 1 or sr > rows or sc > cols:
        return 1
    return max(1, min(groups, rows // sr, cols // sc))


def fold_cycles(m: int, kred: int, ncols: int, groups: int, *, rows: int, cols: int, dataflow: str,
                pack: bool, overlap: bool) -> tuple[int, int]:
    """Compute cycles and folds of ``groups`` GEMMs of ``m x kred x ncols`` on one array."""
    sr, sc, t = spatial_dims(m, kred, ncols, dataflow)
    per_fold = groups_per_fold(groups, sr, sc, rows, cols, pack=pack)
    return physical_cycles(sr, sc, t, rows, cols, groups, per_fold, load_before=dataflow != "os", overlap=overlap)


def sram_counts(m: int, kred: int, ncols: int, groups: int, *, rows: int, cols: int,
                dataflow: str, pack: bool) -> dict[str, int]:
    """SRAM words moved for ``groups`` GEMMs: stationary, row-streamed, column-side, psum reads."""
    sr, sc, t = spatial_dims(m, kred, ncols, dataflow)
    if groups_per_fold(groups, sr, sc, rows, cols, pack=pack) > 1:
        row_folds = col_folds = 1
    else:
        row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    col_side = groups * row_folds * sc * t
    psum_reads = groups * (row_folds - 1) * sc * t if dataflow != "os" else 0
    return {"stationary": groups * sr * sc, "row": groups * col_folds * sr * t,
            "col": col_side, "psum_reads": psum_reads, "row_folds": row_folds, "col_folds": col_folds}


def tensor_bytes(layer: Layer) -> dict[str, float]:
    """Compulsory DRAM bytes per tensor (unpadded input, weights once, final outputs once)."""
    weight_elems = layer.second_operand_elems
    return {"W": weight_elems * layer.weight_bits / 8, "I": layer.input_elems * layer.act_bits / 8,
            "O": layer.output_elems * layer.out_bits / 8}


def dram_traffic_bytes(layer: Layer, sram: MemoryLevel, *, dataflow: str, row_folds: int,
                       col_folds: int) -> dict[str, float]:
    """DRAM bytes per (tensor, direction) from tile reuse; the cheaper loop order wins."""
    sizes = tensor_bytes(layer)
    psum_bytes = layer.output_elems * layer.acc_bits / 8
    stat, row_t, col_t = ROLES[dataflow]
    best: dict[str, float] | None = None
    for outer_rows in (True, False):
        outer, inner = (row_folds, col_folds) if outer_rows else (col_folds, row_folds)
        # operand indexed by the outer loop: its one-fold slice must stay for all inner folds
        slice_t, whole_t = (row_t, col_t) if outer_rows else (col_t, row_t)
        slice_fits = sizes[slice_t] / outer <= partition_capacity_bytes(sram, slice_t)
        whole_fits = sizes[whole_t] <= partition_capacity_bytes(sram, whole_t)
        fetches = {stat: 1, slice_t: 1 if slice_fits else inner, whole_t: 1 if whole_fits else outer}
        traffic = {f"{t}_read": sizes[t] * fetches[t] for t in ("W", "I")}
        traffic["O_write"], traffic["O_read"] = sizes["O"], 0.0
        spills = fetches["O"] if dataflow != "os" else 1
        if spills > 1:   # partial sums leave the chip between row folds and come back
            traffic["O_write"] += (spills - 1) * psum_bytes
            traffic["O_read"] = (spills - 1) * psum_bytes
        if best is None or sum(traffic.values()) < sum(best.values()):
            best = traffic
    return best


def _core_split(m: int, cores: int) -> list[tuple[int, int]]:
    """``[(pixels, how many cores get that many)]`` for an even split of M over the cores."""
    share, extra = divmod(m, cores)
    return [(size, count) for size, count in ((share + 1, extra), (share, cores - extra)) if size and count]


def evaluate_physical(layer: Layer, arch: ArchSpec, mapping) -> LayerCounts:
    """Cycles, stalls and accesses of one MAC layer on the physical model."""
    groups, m, kred, ncols = layer.gemm_shape
    rows, cols, dataflow = mapping.rows, mapping.cols, mapping.dataflow
    pack = mapping.groups == "pack"
    split = _core_split(m, mapping.cores)
    cycles, folds = fold_cycles(split[0][0], kred, ncols, groups, rows=rows, cols=cols, dataflow=dataflow,
                                pack=pack, overlap=mapping.overlap_swaps)
    counts = {key: 0 for key in ("stationary", "row", "col", "psum_reads")}
    for size, count in split:
        part = sram_counts(size, kred, ncols, groups, rows=rows, cols=cols, dataflow=dataflow, pack=pack)
        for key in counts:
            counts[key] += count * part[key]
    first = sram_counts(split[0][0], kred, ncols, groups, rows=rows, cols=cols, dataflow=dataflow, pack=pack)
    sram, dram = arch.memory[-1], arch.memory[0]
    traffic = dram_traffic_bytes(layer, sram, dataflow=dataflow, row_folds=first["row_folds"],
                                 col_folds=first["col_folds"])
    sr, sc, _ = spatial_dims(split[0][0], kred, ncols, dataflow)
    stat_tensor = ROLES[dataflow][0]
    first_tile = 0.0 if stat_tensor == "O" else min(rows, sr) * min(cols, sc) * _bits(layer, stat_tensor) / 8
    reads = traffic["W_read"] + traffic["I_read"] + traffic["O_read"]
    stalls = stall_cycles(transfer_cycles(dram, reads, traffic["O_write"]), transfer_cycles(dram, first_tile, 0.0),
                          cycles, double_buffered=sram.double_buffered)
    accesses = _sram_accesses(layer, sram.name, dataflow, counts) + _dram_accesses(layer, dram.name, traffic)
    peak = rows * cols * mapping.cores
    per_fold = groups_per_fold(groups, sr, sc, rows, cols, pack=pack)
    active = per_fold * min(rows, sr) * min(cols, sc) * sum(count for _, count in split)
    details = (("folds", float(folds)), ("row_folds", float(first["row_folds"])),
               ("col_folds", float(first["col_folds"])),
               ("mapping_efficiency", groups * sr * sc / (folds * rows * cols)),
               ("compute_util", layer.macs / (cycles * peak)),
               ("groups_per_fold", float(groups_per_fold(groups, sr, sc, rows, cols, pack=pack))),
               ("dram_bytes", float(sum(traffic.values()))),
               *((f"dram_{key}_bytes", float(value)) for key, value in sorted(traffic.items())),
               *((f"sram_{key}", float(value)) for key, value in sorted(counts.items())))
    return LayerCounts(compute_cycles=cycles, stall_cycles=stalls, mac_ops=float(layer.macs),
                       weight_bits=layer.weight_bits, act_bits=layer.act_bits, mac_kind=_mac_kind(layer),
                       accesses=accesses, utilization=layer.macs / ((cycles + stalls) * peak),
                       engine="systolic", active_pes=active, details=details)


def _bits(layer: Layer, tensor: str) -> int:
    return {"W": layer.weight_bits, "I": layer.act_bits, "O": layer.out_bits}[tensor]


def _mac_kind(layer: Layer) -> str:
    return "fp" if layer.number_format == "fp" else "int"


def _sram_accesses(layer: Layer, level: str, dataflow: str, counts: dict[str, int]) -> tuple[Access, ...]:
    stat, row_t, col_t = ROLES[dataflow]
    out = []
    for tensor, key in ((stat, "stationary"), (row_t, "row"), (col_t, "col")):
        action = "write" if tensor == "O" else "read"
        out.append(Access(level=level, tensor=tensor, action=action, count=float(counts[key]),
                          word_bits=_bits(layer, tensor)))
    if counts["psum_reads"]:
        out.append(Access(level=level, tensor="O", action="read", count=float(counts["psum_reads"]),
                          word_bits=layer.acc_bits))
    return tuple(out)


def _dram_accesses(layer: Layer, level: str, traffic: dict[str, float]) -> tuple[Access, ...]:
    out = []
    for key, value in sorted(traffic.items()):
        tensor, action = key.split("_")
        if value:
            bits = _bits(layer, tensor)
            out.append(Access(level=level, tensor=tensor, action=action, count=value * 8 / bits, word_bits=bits))
    return tuple(out)
