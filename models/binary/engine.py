"""Binary engine: XNOR + popcount arrays for binarized layers, an integer fallback path for the rest.

A binarized layer (``number_format == "binary"`` or 1-bit weights and activations) runs on
``popcount_units`` units that each reduce ``xnor_width`` 1-bit products per cycle (XNOR-Net,
Rastegari et al. ECCV 2016; FINN, Umuroglu et al. FPGA 2017). Other layers (usually the first and
last, kept in higher precision) run on the fallback MAC path at ``fallback_bits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec, BinaryParams
from hwsim.models.counts import LayerCounts
from hwsim.models.sparse.engine import as_gemm_layer
from hwsim.models.memory.traffic import Operand, layer_traffic


@dataclass(frozen=True)
class BinaryMapping:
    """Which path the layer takes: ``xnor`` (binarized) or ``fallback`` (integer MACs)."""

    path: str


def is_binarized(layer: Layer) -> bool:
    """True for layers annotated binary or with 1-bit weights and activations."""
    return layer.number_format == "binary" or (layer.weight_bits == 1 and layer.act_bits == 1)


def default_mapping(layer: Layer, arch: ArchSpec) -> BinaryMapping:
    """XNOR path for binarized layers, the fallback path otherwise."""
    _params(arch)
    return BinaryMapping(path="xnor" if is_binarized(layer) else "fallback")


def _params(arch: ArchSpec) -> BinaryParams:
    if arch.binary is None:
        raise ConfigError(f"{arch.name}: the binary engine needs a 'binary' section")
    return arch.binary


def evaluate(layer: Layer, arch: ArchSpec, mapping: BinaryMapping) -> LayerCounts:
    """Cycles and action counts of one MAC layer on the XNOR or the fallback path."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: op {layer.op.value!r} has no MACs; use the vector unit")
    bp = _params(arch)
    if mapping.path not in ("xnor", "fallback"):
        raise ConfigError(f"binary mapping: path must be 'xnor' or 'fallback', got {mapping.path!r}")
    g_layer = as_gemm_layer(layer)
    groups, pixels, kred, kn = g_layer.gemm_shape
    outputs = groups * pixels * kn
    if mapping.path == "xnor":
        bits, kind, lanes = 1, "xnor", bp.xnor_width * bp.popcount_units
        cycles = math.ceil(outputs * math.ceil(kred / bp.xnor_width) / bp.popcount_units)
        reduce_width = bp.xnor_width
        active = min(bp.popcount_units, outputs) * min(bp.xnor_width, kred)
    else:
        bits, kind = bp.fallback_bits, "int"
        lanes = bp.fallback_macs_per_cycle or arch.compute.units
        cycles = math.ceil(g_layer.macs / lanes)
        reduce_width = max(1, math.isqrt(lanes))
        active = min(lanes, g_layer.macs)
    weights = Operand(float(g_layer.second_operand_elems or g_layer.weight_elems), bits)
    inputs = Operand(float(g_layer.input_elems), bits)
    traffic = layer_traffic(g_layer, arch, weights=weights, inputs=inputs,
                            act_deliveries=float(g_layer.input_elems), performed_macs=float(g_layer.macs),
                            compute_cycles=int(cycles), pe_output_updates=float(outputs * math.ceil(kred / reduce_width)))
    total = int(cycles) + traffic.stall_cycles
    return LayerCounts(compute_cycles=int(cycles), stall_cycles=traffic.stall_cycles, mac_ops=float(g_layer.macs),
                       weight_bits=bits, act_bits=bits, mac_kind=kind, accesses=traffic.accesses,
                       utilization=g_layer.macs / (total * lanes) if total else 0.0, engine="binary",
                       active_pes=int(active),
                       details=(("xnor_path", float(mapping.path == "xnor")), ("lanes", float(lanes)),
                                *traffic.details()))
