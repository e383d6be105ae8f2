"""Bit-serial and multi-precision engines (Stripes, Loom, Bit-Pragmatic, Bit Fusion).

Engine contract: ``default_mapping(layer, arch)`` and ``evaluate(layer, arch, mapping) -> LayerCounts``;
``essential_bits(activations, bits)`` profiles real activations for Bit-Pragmatic.
"""

from hwsim.models.bitserial.engine import (DESIGNS, BitSerialMapping, default_mapping, evaluate,
                                           fusion_macs_per_cycle, pragmatic_mapping, profile_mapping)
from hwsim.models.bitserial.essential import essential_bits, quantize_magnitudes

__all__ = ["DESIGNS", "BitSerialMapping", "default_mapping", "essential_bits", "evaluate",
           "fusion_macs_per_cycle", "pragmatic_mapping", "profile_mapping", "quantize_magnitudes"]
