"""Bit-serial and multi-precision engines: Stripes, Loom, Bit-Pragmatic, Bit Fusion.

``lanes`` counts the engine's smallest compute units and each design's cycles follow its paper:

* Stripes (Judd et al., MICRO 2016): lanes are 1-bit x ``compute.weight_bits`` serial inner-product
  units; a MAC takes ``p_a`` cycles, the layer's activation precision -> ceil(MACs / lanes) * p_a.
* Loom (Sharify et al., DAC 2018): 1b x 1b lanes, weights and activations both serial ->
  ceil(MACs / lanes) * p_a * p_w.
* Bit-Pragmatic (Albericio et al., MICRO 2017): like Stripes but only the essential (non-zero) bits
  of the activations are processed, lanes in lock-step groups of ``sync_group`` ->
  ceil(MACs / lanes) * e, e from the mapping, ``layer.act_essential_bits`` (a quantizer's mean), the
  layer's calibration histogram at the run width with groups of ``sync_group`` waiting for their
  slowest lane (``layer.essential_bits_at``), or else ``act_bits``.
* Bit Fusion (Sharma et al., ISCA 2018): ``lanes`` 2-bit BitBricks in ``fusion_units`` groups; a
  p_w x p_a MAC needs ceil(p_w/2)*ceil(p_a/2) bricks, a unit fuses its bricks into
  floor(bricks_per_unit / that) MACs per cycle (or spends several cycles on one 16-bit MAC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec, BitSerialParams
from hwsim.models.counts import LayerCounts
from hwsim.models.sparse.engine import as_gemm_layer
from hwsim.models.memory.traffic import Operand, layer_traffic

DESIGNS = ("stripes", "loom", "pragmatic", "bit_fusion")
# A fetched weight serves 16 windows and a 16-input adder tree reduces before each accumulator
# write (DaDianNao/Stripes tiles: 16 filters x 16 synapses x 16 windows; Judd et al. MICRO 2016).
REUSE = 16


@dataclass(frozen=True)
class BitSerialMapping:
    """Per-layer precisions the engine runs at (a profile-table entry) and, for Pragmatic, the
    essential bits per activation; ``None`` takes them from the Layer."""

    design: str
    weight_bits: int | None = None
    act_bits: int | None = None
    essential_bits: float | None = None


def default_mapping(layer: Layer, arch: ArchSpec) -> BitSerialMapping:
    """Run at the layer's own (quantization-annotated) precisions."""
    return BitSerialMapping(design=_params(arch).design)


def profile_mapping(layer: Layer, arch: ArchSpec, profile: dict[str, dict[str, float]]) -> BitSerialMapping:
    """Precisions from a per-layer profile table ``{layer name: {"weight_bits", "act_bits",
    "essential_bits"}}`` (e.g. the Stripes paper's per-layer precisions); missing entries use the Layer."""
    entry = profile.get(layer.name, {})
    if unknown := sorted(set(entry) - {"weight_bits", "act_bits", "essential_bits"}):
        raise ConfigError(f"precision profile for layer {layer.name!r}: unknown key(s) {unknown}")
    return BitSerialMapping(design=_params(arch).design, weight_bits=entry.get("weight_bits"),
                            act_bits=entry.get("act_bits"), essential_bits=entry.get("essential_bits"))


def pragmatic_mapping(layer: Layer, arch: ArchSpec, activations) -> BitSerialMapping:
    """Bit-Pragmatic mapping with essential bits profiled from a real activation array (the layer's
    input, any shape), lanes advancing in lock-step groups of ``sync_group``."""
    from hwsim.models.bitserial.essential import essential_bits

    bp = _params(arch)
    ess = essential_bits(activations, layer.act_bits, group=bp.sync_group, min_terms=1)
    return BitSerialMapping(design=bp.design, essential_bits=ess)


def _params(arch: ArchSpec) -> BitSerialParams:
    if arch.bitserial is None:
        raise ConfigError(f"{arch.name}: the bitserial engine needs a 'bitserial' section")
    return arch.bitserial


def _clamp(bits: int, bp: BitSerialParams) -> int:
    return max(bp.min_bits, min(int(bits), bp.max_bits))


def fusion_macs_per_cycle(weight_bits: int, act_bits: int, *, brick_bits: int, bricks_per_unit: int) -> float:
    """MACs one Bit Fusion unit completes per cycle at the given (fused) precisions."""
    need = math.ceil(weight_bits / brick_bits) * math.ceil(act_bits / brick_bits)
    if need <= bricks_per_unit:
        return float(bricks_per_unit // need)
    return 1.0 / math.ceil(need / bricks_per_unit)


def _cycles_and_steps(layer: Layer, arch: ArchSpec, bp: BitSerialParams, mapping: BitSerialMapping
                      ) -> tuple[int, float, int, int, dict[str, float]]:
    """(cycles, MAC actions to price, priced weight bits, priced act bits, details)."""
    p_w = _clamp(mapping.weight_bits or layer.weight_bits, bp)
    p_a = _clamp(mapping.act_bits or layer.act_bits, bp)
    macs = layer.macs
    waves = math.ceil(macs / bp.lanes)
    if bp.design == "stripes":
        return waves * p_a, float(macs * p_a), arch.compute.weight_bits, 1, {"serial_bits": float(p_a)}
    if bp.design == "loom":
        return waves * p_a * p_w, float(macs * p_a * p_w), 1, 1, {"serial_bits": float(p_a * p_w)}
    if bp.design == "pragmatic":
        profiled = layer.essential_bits_at(p_a, group=bp.sync_group, min_terms=1)   # lock-step groups
        ess = next((e for e in (mapping.essential_bits, layer.act_essential_bits, profiled) if e is not None), None)
        known = ess is not None
        ess = float(p_a if ess is None else min(ess, p_a))
        return math.ceil(waves * ess - 1e-9), macs * ess, arch.compute.weight_bits, 1, {
            "serial_bits": ess, "essential_bits_known": float(known)}
    units = bp.fusion_units or bp.lanes
    per_unit = fusion_macs_per_cycle(p_w, p_a, brick_bits=bp.brick_bits, bricks_per_unit=max(1, bp.lanes // units))
    cycles = math.ceil(macs / (units * per_unit) - 1e-9)
    bricks = math.ceil(p_w / bp.brick_bits) * math.ceil(p_a / bp.brick_bits)
    return cycles, float(macs), p_w, p_a, {"fused_macs_per_unit": per_unit, "busy_lane_cycles": float(macs * bricks)}


def evaluate(layer: Layer, arch: ArchSpec, mapping: BitSerialMapping) -> LayerCounts:
    """Cycles and action counts of one MAC layer on a bit-serial / bit-fusion engine."""
    if not layer.op.has_macs:
        raise UnsupportedOpError(f"layer {layer.name!r}: op {layer.op.value!r} has no MACs; use the vector unit")
    bp = _params(arch)
    if mapping.design != bp.design:
        raise ConfigError(f"bitserial mapping: design {mapping.design!r} does not match the arch's {bp.design!r}")
    g_layer = as_gemm_layer(layer)
    cycles, actions, w_bits, a_bits, extra = _cycles_and_steps(g_layer, arch, bp, mapping)
    stored_w = layer.weight_bits if bp.design in ("loom", "bit_fusion") else max(layer.weight_bits,
                                                                                 arch.compute.weight_bits)
    weights = Operand(float(g_layer.second_operand_elems or g_layer.weight_elems), stored_w)
    inputs = Operand(float(g_layer.input_elems), layer.act_bits)
    kred = g_layer.gemm_shape[2]
    traffic = layer_traffic(g_layer, arch, weights=weights, inputs=inputs,
                            act_deliveries=float(g_layer.input_elems), performed_macs=float(g_layer.macs),
                            compute_cycles=int(cycles), pe_weight_reads=g_layer.macs / REUSE,
                            pe_output_updates=float(g_layer.output_elems * math.ceil(kred / REUSE)))
    kind = "int" if bp.design == "bit_fusion" else "bitserial"
    details = {"bitserial_parallel_bits": float(w_bits), "dense_macs": float(g_layer.macs), **extra,
               **dict(traffic.details())}
    busy = details.pop("busy_lane_cycles", actions)
    total = int(cycles) + traffic.stall_cycles
    units = arch.compute.units   # native multipliers; the lanes (or fused bricks) behind them work in step
    parallel = units * details["fused_macs_per_unit"] if bp.design == "bit_fusion" else bp.lanes
    active = math.ceil(units * min(g_layer.macs, parallel) / parallel - 1e-9)
    return LayerCounts(compute_cycles=int(cycles), stall_cycles=traffic.stall_cycles, mac_ops=actions,
                       weight_bits=w_bits if kind == "int" else layer.weight_bits,
                       act_bits=a_bits if kind == "int" else layer.act_bits, mac_kind=kind, accesses=traffic.accesses,
                       utilization=min(1.0, busy / (total * bp.lanes)) if total else 0.0,
                       engine="bitserial", active_pes=active, details=tuple(details.items()))
