"""Plain reference for the essential-bit count (string popcounts instead of bit tricks)."""

from __future__ import annotations

import numpy as np


def essential_bits_ref(values: np.ndarray, group: int, min_terms: int = 0) -> float:
    counts = [bin(int(v)).count("1") for v in values]
    chunks = [counts[i:i + group] for i in range(0, len(counts), group)]
    return float(np.mean([max(min_terms, max(chunk)) for chunk in chunks]))
