"""The vector unit: non-MAC layers (pooling, elementwise, softmax, norm, data movement).

Every accelerator preset has a SIMD vector unit beside its MAC array (the TPU's "activation
pipeline", NVDLA's SDP/PDP, Eyeriss' pooling in the top level). We model it as ``lanes`` ops per
cycle reading its inputs from and writing its outputs to the innermost shared on-chip buffer.
``concat``/``split``/``reshape`` are free (the producer writes in the consumer's layout);
``shuffle`` is one read and one write per element.
"""

from __future__ import annotations

import math

from hwsim.ir import Layer, Op
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import Access, LayerCounts

FREE_OPS = frozenset({Op.CONCAT, Op.SPLIT, Op.RESHAPE})


def vector_lanes(arch: ArchSpec) -> int:
    """Lanes of the vector unit: configured, else the array width, else sqrt of the MAC count."""
    if arch.vector_lanes:
        return arch.vector_lanes
    if arch.systolic is not None:
        return arch.systolic.cols * arch.systolic.cores
    return max(1, math.isqrt(arch.compute.units))


def buffer_level(arch: ArchSpec) -> str:
    """The on-chip level the vector unit works from: the outermost non-DRAM level (or DRAM)."""
    return arch.memory[1].name if len(arch.memory) > 1 else arch.memory[0].name


def evaluate_vector(layer: Layer, arch: ArchSpec) -> LayerCounts:
    """Cycles and buffer accesses of one non-MAC layer on the vector unit."""
    if layer.op.has_macs:
        raise ValueError(f"layer {layer.name!r} is a MAC layer ({layer.op.value}); use the engine, not the vector unit")
    if layer.op in FREE_OPS:
        return LayerCounts(compute_cycles=0, mac_ops=0, weight_bits=layer.weight_bits, act_bits=layer.act_bits,
                           engine="vector", details=(("free_data_movement", 1.0),))
    lanes = vector_lanes(arch)
    out = layer.output_elems
    if layer.op is Op.SHUFFLE:
        ops, reads = out, out
    elif layer.op is Op.ELTWISE:
        ops, reads = layer.vector_ops, 2 * out
    else:
        ops, reads = layer.vector_ops, layer.input_elems
    level = buffer_level(arch)
    accesses = (
        Access(level=level, tensor="I", action="read", count=reads, word_bits=layer.act_bits),
        Access(level=level, tensor="O", action="write", count=out, word_bits=layer.out_bits),
    )
    cycles = math.ceil(ops / lanes)
    return LayerCounts(compute_cycles=cycles, mac_ops=0, vector_ops=ops, weight_bits=layer.weight_bits,
                       act_bits=layer.act_bits, accesses=accesses, engine="vector",
                       utilization=(ops / (cycles * lanes)) if cycles else 0.0,
                       active_pes=int(min(lanes, ops)),
                       details=(("vector_lanes", float(lanes)),))
