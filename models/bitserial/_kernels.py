"""Numba kernels of the bit-serial engine (reference: tests/reference/bitserial_ref.py)."""

from __future__ import annotations

from hwsim._numba import njit


@njit(cache=True)
def _essential_bits_kernel(values, group, min_terms):
    """Sum over groups of ``group`` consecutive values of max(min_terms, max popcount); returns (sum, groups)."""
    n = values.shape[0]
    total = 0
    groups = 0
    for start in range(0, n, group):
        worst = 0
        for i in range(start, min(start + group, n)):
            v = values[i]
            bits = 0
            while v:
                v &= v - 1
                bits += 1
            if bits > worst:
                worst = bits
        total += worst if worst > min_terms else min_terms
        groups += 1
    return total, groups
