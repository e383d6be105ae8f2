"""What a spatial array does with zero input activations: gate, skip, and run-length code them off chip.

Declared per preset under ``spatial`` and read with the layer's measured ``act_density``:

* ``act_zeros: gate`` (Eyeriss): a PE that sees a zero ifmap skips the filter-spad read and the MAC; the
  cycle is kept, the MAC is priced as gated (``gated_mac_fraction`` of the energy table).
* ``act_zeros: skip``: the zero's cycle is removed as well (ideal skipping: no load imbalance modelled,
  so this is the bound of what skipping can save).
* ``act_dram_format: rle`` (Eyeriss RLC): input activations cross the DRAM link as (run, level) pairs,
  ``run_bits`` zeros at most per pair, as many pairs as fit a ``rle_word_bits`` word next to one
  terminator bit; the runs and the packing are the metadata overhead.
"""

from __future__ import annotations

from hwsim.models.arch import ArchSpec


def rle_pairs_per_value(density: float, run_bits: int) -> float:
    """Expected (run, level) pairs per activation when zeros are independent with probability 1-density.

    A pair covers one level after at most ``2**run_bits - 1`` zeros, so it spans ``min(G, 2**run_bits)``
    values with G the geometric distance to the next non-zero: E[min(G, L)] = (1 - z**L) / (1 - z).
    """
    span = 2 ** run_bits
    zero = 1.0 - density
    if zero >= 1.0:
        return 1.0 / span
    return (1.0 - zero) / (1.0 - zero ** span)


def rle_bits_per_value(density: float, *, act_bits: int, run_bits: int, word_bits: int) -> float:
    """DRAM bits per activation under run-length coding (pairs packed ``(word-1) // (run+level)`` a word)."""
    pairs_per_word = (word_bits - 1) // (run_bits + act_bits)
    return rle_pairs_per_value(density, run_bits) * word_bits / pairs_per_word


def dram_input_scale(arch: ArchSpec, *, density: float, act_bits: int) -> float:
    """Factor on the input activations' DRAM words (1.0 when the link carries them uncompressed)."""
    spec = arch.spatial
    if spec is None or spec.act_dram_format != "rle":
        return 1.0
    return rle_bits_per_value(density, act_bits=act_bits, run_bits=spec.rle_run_bits,
                              word_bits=spec.rle_word_bits) / act_bits


def zero_handling(arch: ArchSpec) -> str:
    """``none`` | ``gate`` | ``skip``: the preset's response to a zero input activation."""
    return arch.spatial.act_zeros if arch.spatial is not None else "none"
