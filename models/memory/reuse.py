"""How often each GEMM operand crosses DRAM when the on-chip buffers cannot hold it whole.

A GEMM ``W (Kred x Ncol)``, ``I (M x Kred)``, ``O (M x Ncol)`` runs as tiles. Two loop orders:
weight tiles outside (each weight tile is fetched once and every input tile streams past it; the
inputs come back once per weight tile unless they fit whole) or input tiles outside (the mirror
image). A tile must fit the capacity the chip has for its tensor; the cheaper order wins. When
not even one output column's weights (``Kred`` of them) fit, the reduction is split and partial
sums leave the chip and come back (write + read at ``acc_bits``) once per extra split, which is the
textbook tile-reuse analysis (Timeloop's temporal reuse at the DRAM boundary; the systolic engine's
fold-based version in ``hwsim.models.systolic.physical``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Fetches:
    """DRAM fetches per operand (1 = compulsory only) and partial-sum round trips."""

    weights: int
    inputs: int
    psum_spills: int
    order: str            # "weights_outer" | "inputs_outer" | "resident"

    def dram_bytes(self, w_bytes: float, i_bytes: float, o_bytes: float, psum_bytes: float) -> dict[str, float]:
        """Bytes per (tensor, direction): ``W_read``, ``I_read``, ``O_write``, ``O_read``."""
        return {"W_read": w_bytes * self.weights, "I_read": i_bytes * self.inputs,
                "O_write": o_bytes + psum_bytes * self.psum_spills, "O_read": psum_bytes * self.psum_spills}


def _tiles(size: float, capacity: float) -> int:
    if size <= 0:
        return 1
    if capacity <= 0:
        return math.inf  # type: ignore[return-value]
    return max(1, math.ceil(size / capacity - 1e-12))


def gemm_fetches(*, w_bytes: float, i_bytes: float, w_capacity: float, i_capacity: float,
                 w_column_bytes: float) -> Fetches:
    """The cheaper loop order's DRAM fetches for weights and inputs (see the module docstring).

    ``w_column_bytes`` is one output column's weights (its whole reduction); a capacity of 0 means no
    on-chip level holds that tensor, so it streams from DRAM once per use of the other operand's tiles.
    """
    if w_bytes <= w_capacity and i_bytes <= i_capacity:
        return Fetches(1, 1, 0, "resident")
    spills = 0
    if w_column_bytes > w_capacity and w_capacity > 0:
        spills = math.ceil(w_column_bytes / w_capacity - 1e-12) - 1
    w_tiles, i_tiles = _tiles(w_bytes, w_capacity), _tiles(i_bytes, i_capacity)
    # weights outside: each weight tile fetched once; inputs re-streamed per weight tile unless resident
    w_outer = (1, 1 if i_bytes <= i_capacity else w_tiles)
    # inputs outside: each input tile fetched once; weights re-streamed per input tile unless resident
    i_outer = (1 if w_bytes <= w_capacity else i_tiles, 1)
    finite = lambda pair: all(math.isfinite(v) for v in pair)  # noqa: E731
    options = [(pair, name) for pair, name in ((w_outer, "weights_outer"), (i_outer, "inputs_outer")) if finite(pair)]
    if not options:   # neither operand fits anywhere on chip: each MAC's operands stream (worst case)
        raise ValueError("no on-chip level can hold a weight or an input tile")
    (w_f, i_f), order = min(options, key=lambda o: o[0][0] * w_bytes + o[0][1] * i_bytes)
    return Fetches(int(w_f), int(i_f), spills, order)
