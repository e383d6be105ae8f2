"""The sparse engine: ``default_mapping`` and ``evaluate`` for one MAC layer.

Cycles come from the dataflow's per-PE work partition (``partition.py``, real masks) or from the
density models (``statistical.py``). Skipping removes cycles; gating (``gate``) keeps them and turns
the zero-operand MACs into ``gated_mac_ops``. Compressed weights/activations carry metadata that is
counted as its own traffic (``W_meta``/``I_meta``, ``metadata_read``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer, Op, PackedMask, SparsityKind
from hwsim.models.arch import ArchSpec, SparseParams
from hwsim.models.counts import LayerCounts
from hwsim.models.sparse import partition as part
from hwsim.models.sparse import statistical as stat
from hwsim.models.sparse.formats import check_format, footprint, rle_entries
from hwsim.models.memory.traffic import Operand, layer_traffic


@dataclass(frozen=True)
class SparseMapping:
    """How a layer runs on a sparse engine: dataflow, data-driven or statistical, sampling knobs.

    ``act_samples`` output pixels are simulated (column_broadcast; shared by the groups, at least
    one per group) and scaled to the layer;
    ``act_mask`` optionally gives real activation non-zeros, shape (pixels sampled, C/G*R*S).
    """

    dataflow: str
    mode: str = "data"
    act_samples: int = 16
    seed: int = 0
    act_mask: PackedMask | None = None


def default_mapping(layer: Layer, arch: ArchSpec) -> SparseMapping:
    """The preset's dataflow and mode, 16 sampled pixels, seed 0."""
    sp = _params(arch)
    return SparseMapping(dataflow=sp.dataflow, mode=sp.mode)


def _params(arch: ArchSpec) -> SparseParams:
    if arch.sparse is None:
        raise ConfigError(f"{arch.name}: the sparse engine needs a 'sparse' section")
    check_format(arch.sparse.weight_format, where=f"{arch.name}: sparse.weight_format")
    check_format(arch.sparse.act_format, where=f"{arch.name}: sparse.act_format")
    return arch.sparse


def as_gemm_layer(layer: Layer) -> Layer:
    """Activation x activation matmuls run as a linear layer with a dense second operand."""
    if layer.op is Op.MATMUL:
        return layer.with_changes(op=Op.LINEAR, N=1, P=layer.N * layer.P * layer.Q, Q=1, G=1,
                                  weight_density=1.0, weight_mask=None)
    return layer


def weight_mask(layer: Layer, *, seed: int) -> tuple[np.ndarray, bool]:
    """The (K, C/G*R*S) weight mask and whether it had to be synthesized from the density."""
    rows, cols = layer.K, layer.gemm_shape[2]
    if layer.weight_mask is not None:
        mask = layer.weight_mask.to_array()
        if mask.shape != (rows, cols):
            raise ConfigError(f"layer {layer.name!r}: weight_mask shape {mask.shape} != (K, C/G*R*S) = {(rows, cols)}")
        return mask.astype(np.uint8), False
    if layer.weight_density >= 1.0:
        return np.ones((rows, cols), dtype=np.uint8), False
    rng = np.random.default_rng(seed)
    sp = layer.sparsity
    if sp.kind is SparsityKind.NM:
        padded = -(-cols // sp.m) * sp.m
        keys = rng.random((rows, padded // sp.m, sp.m)).argsort(axis=2) < sp.n
        return keys.reshape(rows, padded)[:, :cols].astype(np.uint8), True
    flat = np.zeros(rows * cols, dtype=np.uint8)
    flat[rng.permutation(rows * cols)[:int(round(layer.weight_density * rows * cols))]] = 1
    return flat.reshape(rows, cols), True


def _conforms_nm(layer: Layer, sp: SparseParams, mask: np.ndarray | None) -> bool:
    n, m = sp.structured_n or 2, sp.structured_m or 4
    if mask is not None:
        return part.nm_conforms(mask, n, m)
    s = layer.sparsity
    return s.kind is SparsityKind.NM and s.m == m and s.n <= n


def _work(layer: Layer, arch: ArchSpec, sp: SparseParams, mapping: SparseMapping, mask: np.ndarray | None,
          nnz: float) -> part.Work:
    if mapping.mode == "statistical":
        fn = {"column_broadcast": stat.column_broadcast_stat, "cartesian": stat.cartesian_stat,
              "row_parallel": stat.row_parallel_stat}[mapping.dataflow]
        return fn(layer, sp, nnz)
    if mapping.dataflow == "column_broadcast":
        act = mapping.act_mask.to_array() if mapping.act_mask is not None else None
        return part.column_broadcast_work(layer, sp, mask, samples=mapping.act_samples, seed=mapping.seed,
                                          act_mask=act)
    if mapping.dataflow == "cartesian":
        return part.cartesian_work(layer, sp, mask, seed=mapping.seed)
    return part.row_parallel_work(layer, sp, mask)


def _check_mapping(mapping: SparseMapping) -> None:
    if mapping.dataflow not in ("column_broadcast", "cartesian", "row_parallel", "nm_dense"):
        raise ConfigError(f"sparse mapping: unknown dataflow {mapping.dataflow!r}")
    if mapping.mode not in ("data", "statistical"):
        raise ConfigError(f"sparse mapping: mode must be 'data' or 'statistical', got {mapping.mode!r}")
    if mapping.act_samples < 1:
        raise ConfigError(f"sparse mapping: act_samples must be >= 1, got {mapping.act_samples}")


def _weight_operand(layer: Layer, sp: SparseParams, mask: np.ndarray | None, nnz: float) -> Operand:
    """Stored weights: exact from the mask, expected (uniform zeros) without one."""
    fmt = sp.weight_format
    if fmt == "nm" and not _conforms_nm(layer, sp, mask):
        fmt = "uncompressed"
    rle = None
    if fmt == "rle" and mask is not None:
        rle = rle_entries(mask.T if sp.dataflow == "column_broadcast" else mask, sp.metadata_bits or 4)
    rows, cols = layer.K, layer.gemm_shape[2]
    fp = footprint(fmt, fibers=rows, fiber_len=cols, nnz=nnz, metadata_bits=sp.metadata_bits,
                   nm_m=sp.structured_m, rle_entries=rle)
    return Operand(fp.payload_words, layer.weight_bits, fp.metadata_words, fp.metadata_word_bits)


def _input_operand(layer: Layer, sp: SparseParams) -> Operand:
    elems = layer.input_elems
    nnz = elems * layer.act_density
    h, w = layer.input_hw
    fp = footprint(sp.act_format, fibers=max(1, elems // max(w, 1)), fiber_len=max(w, 1), nnz=nnz,
                   metadata_bits=sp.metadata_bits)
    return Operand(fp.payload_words, layer.act_bits, fp.metadata_words, fp.metadata_word_bits)


def evaluate(layer: Layer, arch: ArchSpec, mapping: SparseMapping) -> LayerCounts:
    """Cycles and action counts of one MAC layer on a sparse engine (pure; no energy)."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: op {layer.op.value!r} has no MACs; use the vector unit")
    sp = _params(arch)
    _check_mapping(mapping)
    g_layer = as_gemm_layer(layer)
    if mapping.dataflow == "nm_dense":
        from hwsim.models.sparse.nm_array import evaluate_nm_array

        mask = layer.weight_mask.to_array() if layer.weight_mask is not None and mapping.mode == "data" else None
        return evaluate_nm_array(g_layer, arch, sp, conforming=_conforms_nm(g_layer, sp, mask))
    size = g_layer.K * g_layer.gemm_shape[2]
    if mapping.mode == "statistical":   # densities only: no mask is unpacked or synthesized
        mask, synthetic, nnz = None, False, round(g_layer.weight_density * size)
    else:
        mask, synthetic = weight_mask(g_layer, seed=mapping.seed)
        nnz = float(mask.sum())
    work = _work(g_layer, arch, sp, mapping, mask, nnz)
    lanes = sp.pes * sp.multipliers_per_pe
    w_d = nnz / size if size else 1.0
    gated_density = (w_d if part.skips(sp.gate, "weights") and not part.skips(sp.skip, "weights") else 1.0) * (
        layer.act_density if part.skips(sp.gate, "activations") and not part.skips(sp.skip, "activations") else 1.0)
    performed = work.performed * gated_density
    cycles = int(math.ceil(work.cycles - 1e-9))
    weights = _weight_operand(g_layer, sp, mask, nnz)
    inputs = _input_operand(g_layer, sp)
    traffic = layer_traffic(g_layer, arch, weights=weights, inputs=inputs, act_deliveries=work.act_reads,
                            performed_macs=performed, compute_cycles=cycles)
    details = (("effectual_macs", g_layer.macs * w_d * layer.act_density), ("dense_macs", float(g_layer.macs)),
               ("ideal_cycles", g_layer.macs * w_d * layer.act_density / lanes),
               ("statistical", float(mapping.mode == "statistical")), ("synthetic_mask", float(synthetic)),
               *((("statistical_error", stat.STATED_ERROR[sp.dataflow]),) if mapping.mode == "statistical" else ()),
               ("weight_payload_words", weights.payload_words), ("weight_metadata_words", weights.metadata_words),
               *traffic.details())
    total = cycles + traffic.stall_cycles
    return LayerCounts(compute_cycles=cycles, stall_cycles=traffic.stall_cycles, mac_ops=performed,
                       gated_mac_ops=work.performed - performed, weight_bits=layer.weight_bits, act_bits=layer.act_bits,
                       mac_kind="int", accesses=traffic.accesses,
                       utilization=(performed / (total * lanes)) if total else 0.0, engine="sparse",
                       active_pes=part.active_pes(g_layer, sp) * sp.multipliers_per_pe, details=details)
