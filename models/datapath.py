"""The datapath belongs to the hardware: what a preset's MACs do with a layer's operand widths.

* ``resolve_layer``: an unquantized layer (``Layer.native_bits`` lists the widths no recipe set) runs
  at the hardware's native width, so a 16-bit array moves 16-bit words; partial sums are kept at the
  accumulator width ``compute.acc_bits`` on every engine.
* ``apply_datapath``: on a fixed-width MAC array (``compute.precision: fixed``) a narrower operand
  still occupies a native multiplier and pays its energy; ``gated`` saves the declared fraction
  ``gated_saving`` of the difference to a MAC of the layer's own width (operand gating); a wider
  operand takes ``ceil(w/W) x ceil(a/A)`` passes through the array (``wider: multipass``: cycles and
  MAC actions scale) or is refused (``wider: refuse``). Bit-serial engines (``scalable``) model every
  width themselves; the binary engine runs its XNOR path at 1 bit and its fallback at ``fallback_bits``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Layer
from hwsim.models.arch import ArchSpec
from hwsim.models.counts import LayerCounts


def native_widths(arch: ArchSpec) -> dict[str, int]:
    """Native ``weight_bits``/``act_bits``/``out_bits`` of ``arch`` (the binary engine's integer path)."""
    if arch.engine == "binary":
        bits = arch.binary.fallback_bits
        return {"weight_bits": bits, "act_bits": bits, "out_bits": bits}
    return {"weight_bits": arch.compute.weight_bits, "act_bits": arch.compute.act_bits,
            "out_bits": arch.compute.act_bits}


def resolve_layer(layer: Layer, arch: ArchSpec) -> Layer:
    """``layer`` with its unquantized widths set to the hardware's native ones, and its partial sums
    at the hardware's accumulator width ``compute.acc_bits`` (they live in its accumulators)."""
    native = native_widths(arch)
    changes = {name: native[name] for name in layer.native_bits}
    acc = arch.compute.acc_bits
    if not changes and layer.acc_bits == acc:
        return layer
    return layer.with_changes(**changes, acc_bits=acc, native_bits=())


def _fixed(arch: ArchSpec) -> bool:
    return arch.compute.precision != "scalable" and arch.engine != "binary"


def clamp_to_datapath(layer: Layer, arch: ArchSpec) -> Layer:
    """The layer as one pass of a fixed-width array sees it: operands at most the native width.

    ``apply_datapath`` then multiplies the passes and the slices back in (or refuses the layer).
    """
    c = arch.compute
    if not _fixed(arch) or (layer.weight_bits <= c.weight_bits and layer.act_bits <= c.act_bits):
        return layer
    if c.wider == "refuse":
        raise UnsupportedOpError(
            f"layer {layer.name!r}: {layer.weight_bits}x{layer.act_bits}-bit operands exceed {arch.name}'s "
            f"{c.weight_bits}x{c.act_bits}-bit datapath (compute.wider: refuse); quantize the layer or use multipass")
    return layer.with_changes(weight_bits=min(layer.weight_bits, c.weight_bits),
                              act_bits=min(layer.act_bits, c.act_bits), out_bits=min(layer.out_bits, c.act_bits))


def passes(layer: Layer, arch: ArchSpec) -> int:
    """Passes a fixed-width array needs for the layer's operands (1 when they fit the datapath)."""
    c = arch.compute
    return math.ceil(layer.weight_bits / c.weight_bits) * math.ceil(layer.act_bits / c.act_bits)


def apply_datapath(layer: Layer, arch: ArchSpec, counts: LayerCounts) -> LayerCounts:
    """Counts as the hardware's datapath runs them (module docstring); bit-serial/binary pass through."""
    c = arch.compute
    if not _fixed(arch) or counts.mac_kind in ("xnor", "bitserial"):
        return counts
    n = passes(layer, arch)
    details = counts.details + (("layer_weight_bits", float(layer.weight_bits)),
                                ("layer_act_bits", float(layer.act_bits)), ("datapath_passes", float(n)))
    scaled = {}
    if n > 1:   # each operand is split into native-width slices: more words moved, one pass per slice pair
        slices = {"W": math.ceil(layer.weight_bits / c.weight_bits), "I": math.ceil(layer.act_bits / c.act_bits)}
        accesses = tuple(replace(a, count=a.count * slices.get(a.tensor, 1)) for a in counts.accesses)
        scaled = dict(compute_cycles=counts.compute_cycles * n, mac_ops=counts.mac_ops * n,
                      gated_mac_ops=counts.gated_mac_ops * n, utilization=counts.utilization / n, accesses=accesses)
    return replace(counts, weight_bits=c.weight_bits, act_bits=c.act_bits, details=details, **scaled)
