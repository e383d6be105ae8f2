"""Data-driven work partition: per-PE effectual work from the layer's real weight mask.

Each dataflow deals the work to PEs the way its accelerator does and lets the slowest PE of each
synchronization step set the cycles:

* ``column_broadcast`` (EIE; Eyeriss v2-like): output rows interleaved over PEs (row r -> PE r %
  pes), non-zero activations broadcast one per cycle into per-PE FIFOs of ``queue_depth``; a PE
  spends ceil(nnz of that column in its rows / lanes) cycles per activation (Han et al., ISCA 2016).
* ``cartesian`` (SCNN PT-IS-CP-sparse): the output plane tiled over a PE grid, weights broadcast in
  groups of Kc output channels; per channel a PE multiplies F non-zero weights by I non-zero
  activations per cycle; PEs meet at a barrier after each group (Parashar et al., ISCA 2017).
* ``row_parallel`` (Cambricon-X): one output row per PE per round, ``lanes`` indexed non-zero
  weights per cycle, rounds synchronized (Zhang et al., MICRO 2016).
* ``nm_dense`` (sparse tensor core) is evaluated on the systolic engine, see ``nm_array.py``.

Activations have no mask in the IR: their non-zeros are sampled (seeded) from ``act_density``
unless the mapping carries a real activation mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.ir import Layer
from hwsim.models.arch import SparseParams
from hwsim.models.sparse._kernels import (_cartesian_cycles_kernel, _column_pe_counts_kernel,
                                          _queue_cycles_kernel, _row_rounds_cycles_kernel)


@dataclass(frozen=True)
class Work:
    """Cycles of the compute array and multiplier actions performed (zeros skipped ones excluded)."""

    cycles: float
    performed: float
    act_reads: float          # activation words delivered to PEs (broadcasts x PEs reached)


# ----- validated wrappers around the kernels ------------------------------------------------------
def column_pe_counts(mask: np.ndarray, pes: int) -> np.ndarray:
    """(cols, pes) nonzeros per column among each PE's interleaved rows."""
    if pes < 1:
        raise ValueError(f"pes must be >= 1, got {pes}")
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (rows, cols), got shape {mask.shape}")
    return _column_pe_counts_kernel(mask=mask, pes=int(pes))


def queue_cycles(work: np.ndarray, queue_depth: int) -> int:
    """Cycles to stream per-(activation, PE) work through FIFOs of ``queue_depth``."""
    if queue_depth < 1:
        raise ValueError(f"queue_depth must be >= 1, got {queue_depth}")
    work = np.ascontiguousarray(work, dtype=np.int64)
    if work.ndim != 2:
        raise ValueError(f"work must be 2-D (activations, pes), got shape {work.shape}")
    return int(_queue_cycles_kernel(work=work, queue_depth=int(queue_depth)))


def cartesian_cycles(act_nnz: np.ndarray, w_nnz: np.ndarray, *, f_width: int, i_width: int) -> tuple[int, int]:
    """(cycles, products) of SCNN's Cartesian product with a barrier per output-channel group."""
    act_nnz = np.ascontiguousarray(act_nnz, dtype=np.int64)
    w_nnz = np.ascontiguousarray(w_nnz, dtype=np.int64)
    if act_nnz.ndim != 2 or w_nnz.ndim != 2 or act_nnz.shape[1] != w_nnz.shape[0]:
        raise ValueError(f"need act_nnz (pes, C) and w_nnz (C, groups), got {act_nnz.shape} and {w_nnz.shape}")
    if f_width < 1 or i_width < 1:
        raise ValueError(f"f_width and i_width must be >= 1, got {f_width}, {i_width}")
    cycles, products = _cartesian_cycles_kernel(act_nnz=act_nnz, w_nnz=w_nnz, f_width=int(f_width),
                                                i_width=int(i_width))
    return int(cycles), int(products)


def row_rounds_cycles(row_nnz: np.ndarray, *, pes: int, lanes: int) -> int:
    """Cycles of round-robin rows, one per PE per round, ``lanes`` nonzeros per cycle."""
    if pes < 1 or lanes < 1:
        raise ValueError(f"pes and lanes must be >= 1, got {pes}, {lanes}")
    row_nnz = np.ascontiguousarray(row_nnz, dtype=np.int64)
    return int(_row_rounds_cycles_kernel(row_nnz=row_nnz, pes=int(pes), lanes=int(lanes)))


# ----- helpers -------------------------------------------------------------------------------------
def skips(setting: str, operand: str) -> bool:
    """Whether a skip/gate setting ('none'|'weights'|'activations'|'both') covers an operand."""
    return setting in (operand, "both")


def sample_active(rng: np.random.Generator, length: int, density: float) -> np.ndarray:
    """Indices of exactly round(density * length) non-zero positions (a hypergeometric draw)."""
    nnz = int(round(density * length))
    order = rng.permutation(length)  # a prefix of one permutation: lower densities give nested sets
    return np.sort(order[:nnz]) if nnz < length else np.arange(length)


def threshold_counts(rng: np.random.Generator, planes: np.ndarray, chans: int, density: float) -> np.ndarray:
    """(pes, chans) non-zeros among each PE's ``planes[p]`` activations per channel (u < density,
    so lower densities give nested non-zero sets for the same seed)."""
    width = int(planes.max()) if planes.size else 0
    u = rng.random((planes.size, chans, width))
    valid = np.arange(width)[None, None, :] < planes[:, None, None]
    return ((u < density) & valid).sum(axis=2)


def group_rows(mask: np.ndarray, layer: Layer, g: int) -> np.ndarray:
    """The weight-mask rows (output channels) of group ``g``."""
    kn = layer.k_per_group
    return mask[g * kn:(g + 1) * kn]


def pe_grid(sp: SparseParams) -> tuple[int, int]:
    """PE mesh over the output plane: configured, else the squarest factorization of ``pes``."""
    if sp.pe_grid:
        return int(sp.pe_grid[0]), int(sp.pe_grid[1])
    gx = math.isqrt(sp.pes)
    while sp.pes % gx:
        gx -= 1
    return gx, sp.pes // gx


def plane_tiles(layer: Layer, sp: SparseParams) -> np.ndarray:
    """Input activations per channel held by each PE (output tile x stride, SCNN's planar tiling)."""
    gx, gy = pe_grid(sp)
    rows = np.diff(np.minimum(np.arange(gx + 1) * math.ceil(layer.P / gx), layer.P))
    cols = np.diff(np.minimum(np.arange(gy + 1) * math.ceil(layer.Q / gy), layer.Q))
    return np.outer(rows * layer.stride[0], cols * layer.stride[1]).ravel().astype(np.int64)


def output_group_k(layer: Layer, sp: SparseParams) -> int:
    """Kc: output channels per barrier group, sized so a PE's output tile fits its accumulators."""
    if not sp.accumulator_entries:
        return layer.k_per_group
    gx, gy = pe_grid(sp)
    tile = math.ceil(layer.P / gx) * math.ceil(layer.Q / gy)
    return max(1, min(layer.k_per_group, sp.accumulator_entries // max(tile, 1)))


def active_pes(layer: Layer, sp: SparseParams) -> int:
    """PEs the dataflow's partition gives work (rows interleaved over PEs, or output-plane tiles)."""
    _, pixels, _, _ = layer.gemm_shape
    if sp.dataflow == "column_broadcast":
        domains = min(sp.pixel_parallel, pixels)
        return min(max(1, sp.pes // sp.pixel_parallel), layer.k_per_group) * domains
    if sp.dataflow == "cartesian":
        return int(np.count_nonzero(plane_tiles(layer, sp)))
    return min(sp.pes, layer.k_per_group)


# ----- the data-driven dataflows ------------------------------------------------------------------
def column_broadcast_work(layer: Layer, sp: SparseParams, mask: np.ndarray, *, samples: int, seed: int,
                          act_mask: np.ndarray | None = None) -> Work:
    """EIE-style: per-PE FIFOs fed by broadcast non-zero activations; cycles summed over pixels."""
    _, pixels, kred, _ = layer.gemm_shape
    budget = max(1, samples // layer.G)   # grouped layers share the sample budget (>= 1 pixel per group)
    n_samples = act_mask.shape[0] if act_mask is not None else min(budget, pixels)
    rng = np.random.default_rng(seed)
    use = mask if skips(sp.skip, "weights") else np.ones_like(mask)
    domains = min(sp.pixel_parallel, pixels)          # streams working on different pixels
    pes = max(1, sp.pes // sp.pixel_parallel)         # PEs sharing one activation stream
    cycles = performed = reads = 0.0
    for g in range(layer.G):
        counts = column_pe_counts(group_rows(use, layer, g), pes)
        work = -(-counts // sp.multipliers_per_pe)
        pes_used = min(pes, layer.k_per_group)
        if sp.intersection_width:   # scanning each PE's fiber metadata to intersect takes time too
            rows_in_pe = np.bincount(np.arange(layer.k_per_group) % pes, minlength=pes)
            work = np.maximum(work, -(-rows_in_pe // sp.intersection_width)[None, :])
        for s in range(n_samples):
            if act_mask is not None:
                active = np.flatnonzero(act_mask[s])
            elif skips(sp.skip, "activations"):
                active = sample_active(rng, kred, layer.act_density)
            else:
                active = np.arange(kred)
            cycles += queue_cycles(work[active], sp.queue_depth)
            performed += float(counts[active].sum())
            reads += float(active.size * pes_used)
    scale = pixels / n_samples
    return Work(cycles=cycles * scale / domains, performed=performed * scale, act_reads=reads * scale)


def cartesian_work(layer: Layer, sp: SparseParams, mask: np.ndarray, *, seed: int) -> Work:
    """SCNN PT-IS-CP-sparse: Cartesian products per PE tile, barrier per Kc output channels."""
    rng = np.random.default_rng(seed)
    planes = plane_tiles(layer, sp)
    cg, kn, rs = layer.c_per_group, layer.k_per_group, layer.R * layer.S
    kc = output_group_k(layer, sp)
    f_width = max(1, sp.multipliers_per_pe // sp.act_lanes)
    use = mask if skips(sp.skip, "weights") else np.ones_like(mask)
    cycles = performed = reads = 0.0
    for g in range(layer.G):
        per_kc = group_rows(use, layer, g).reshape(kn, cg, rs).sum(axis=2)          # (Kn, Cg)
        bounds = np.arange(0, kn, kc)
        w_nnz = np.add.reduceat(per_kc, bounds, axis=0).T                           # (Cg, groups)
        for _ in range(layer.N):
            if skips(sp.skip, "activations"):
                act = threshold_counts(rng, planes, cg, layer.act_density)
            else:
                act = np.repeat(planes[:, None], cg, axis=1)
            c, p = cartesian_cycles(act, w_nnz, f_width=f_width, i_width=sp.act_lanes)
            cycles += c
            performed += p
            reads += float(act.sum()) * len(bounds)
    return Work(cycles=cycles, performed=performed, act_reads=reads)


def row_parallel_work(layer: Layer, sp: SparseParams, mask: np.ndarray) -> Work:
    """Cambricon-X-style: rows round-robin over PEs, ``lanes`` indexed nonzeros per cycle."""
    _, pixels, kred, _ = layer.gemm_shape
    use = mask if skips(sp.skip, "weights") else np.ones_like(mask)
    cycles = 0.0
    for g in range(layer.G):
        row_nnz = group_rows(use, layer, g).sum(axis=1)
        cycles += row_rounds_cycles(row_nnz, pes=sp.pes, lanes=sp.multipliers_per_pe)
    performed = float(use.sum()) * pixels
    return Work(cycles=cycles * pixels, performed=performed, act_reads=performed)


def nm_conforms(mask: np.ndarray, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive reduction positions keeps at most ``n`` weights."""
    rows, cols = mask.shape
    padded = np.zeros((rows, -(-cols // m) * m), dtype=np.int64)
    padded[:, :cols] = mask
    return bool((padded.reshape(rows, -1, m).sum(axis=2) <= n).all())
