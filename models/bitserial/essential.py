"""Essential (non-zero) bits of real activations, the quantity that sets Bit-Pragmatic's cycles.

Albericio et al., "Bit-Pragmatic Deep Neural Network Computing", MICRO 2017: activations are
processed one non-zero bit (term) at a time, and the activations that advance together wait for
the one with the most terms.
"""

from __future__ import annotations

import numpy as np

from hwsim.models.bitserial._kernels import _essential_bits_kernel


def quantize_magnitudes(activations: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit magnitudes: integers are masked, floats scaled so max |x| -> 2**bits - 1."""
    values = np.asarray(activations)
    if np.issubdtype(values.dtype, np.integer):
        return (np.abs(values.astype(np.int64)) & ((1 << bits) - 1)).ravel()
    mags = np.abs(values.astype(np.float64)).ravel()
    top = mags.max() if mags.size else 0.0
    if top == 0.0:
        return np.zeros(mags.size, dtype=np.int64)
    return np.rint(mags / top * ((1 << bits) - 1)).astype(np.int64)


def essential_bits(activations: np.ndarray, bits: int, *, group: int = 1, min_terms: int = 0) -> float:
    """Mean essential (non-zero) bits per activation at ``bits``-bit precision.

    With ``group > 1``, the mean over groups of ``group`` consecutive activations (flattened order) of
    the largest popcount in the group (lock-step lanes wait for the slowest); each group costs at
    least ``min_terms`` (a term-serial unit spends one cycle even on an all-zero group: 1).
    """
    if bits < 1 or bits > 62:
        raise ValueError(f"bits must be in 1..62, got {bits}")
    if group < 1 or min_terms < 0:
        raise ValueError(f"group must be >= 1 and min_terms >= 0, got {group}, {min_terms}")
    values = np.ascontiguousarray(quantize_magnitudes(activations, bits), dtype=np.int64)
    if values.size == 0:
        raise ValueError("essential_bits needs a non-empty activation array")
    total, groups = _essential_bits_kernel(values=values, group=int(group), min_terms=int(min_terms))
    return float(total) / float(groups)
