"""Compressed tensor formats: how many payload words and metadata bits a (masked) matrix needs.

Formats follow the Sparseloop taxonomy (Wu et al., MICRO 2022): ``uncompressed``, ``bitmask``
(one bit per element), ``cp`` (coordinate-payload: a coordinate per nonzero), ``csr``/``csc``
(``cp`` plus an uncompressed offset-pair rank: fibers + 1 offsets), ``rle`` (run length per
nonzero, explicit zeros inserted for runs longer than the field allows) and ``nm`` (N:M: a
log2(M)-bit index per kept element). Fibers are the rows of the matrix given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.errors import ConfigError
from hwsim.models.sparse._kernels import _rle_entries_kernel

FORMATS = ("uncompressed", "bitmask", "cp", "csr", "csc", "rle", "nm")
COMPRESSED = frozenset(FORMATS) - {"uncompressed"}


@dataclass(frozen=True)
class Footprint:
    """Storage of one compressed matrix: payload words and metadata bits (plus the metadata word size)."""

    payload_words: float
    metadata_bits: float
    metadata_word_bits: int

    @property
    def metadata_words(self) -> float:
        return self.metadata_bits / self.metadata_word_bits if self.metadata_word_bits else 0.0


def check_format(name: str, *, where: str) -> str:
    """Validate a format name (one ConfigError line naming the place otherwise)."""
    if name not in FORMATS:
        raise ConfigError(f"{where}: unknown sparse format {name!r}; formats: {', '.join(FORMATS)}")
    return name


def coord_bits(fiber_len: int, metadata_bits: int | None) -> int:
    """Bits of one coordinate/run field: configured, else enough to address the fiber."""
    return int(metadata_bits) if metadata_bits else max(1, math.ceil(math.log2(max(fiber_len, 2))))


def footprint(fmt: str, *, fibers: int, fiber_len: int, nnz: float, metadata_bits: int | None = None,
              nm_m: int | None = None, rle_entries: float | None = None) -> Footprint:
    """Payload words and metadata bits of a fibers x fiber_len matrix holding ``nnz`` nonzeros.

    ``rle_entries`` (nonzeros plus padding zeros, from ``rle_entries``) makes ``rle`` exact;
    without it the expected padding of uniformly spread zeros is used.
    """
    total = fibers * fiber_len
    if fmt == "uncompressed":
        return Footprint(float(total), 0.0, 1)
    if fmt == "bitmask":
        return Footprint(float(nnz), float(total), 1)
    bits = coord_bits(fiber_len, metadata_bits)
    offset_bits = max(1, math.ceil(math.log2(total + 1)))
    if fmt == "cp":
        return Footprint(float(nnz), float(nnz * bits), bits)
    if fmt in ("csr", "csc"):
        return Footprint(float(nnz), float(nnz * bits + (fibers + 1) * offset_bits), bits)
    if fmt == "rle":
        entries = rle_entries if rle_entries is not None else expected_rle_entries(nnz, total, bits)
        return Footprint(float(entries), float(entries * bits), bits)
    if fmt == "nm":
        m = nm_m or 4
        index_bits = metadata_bits or max(1, math.ceil(math.log2(m)))
        return Footprint(float(nnz), float(nnz * index_bits), index_bits)
    raise ConfigError(f"unknown sparse format {fmt!r}; formats: {', '.join(FORMATS)}")


def expected_rle_entries(nnz: float, total: int, run_bits: int) -> float:
    """Nonzeros plus expected padding zeros when zeros are spread uniformly (geometric runs)."""
    if total == 0 or nnz <= 0:
        return 0.0
    density = min(1.0, nnz / total)
    if density >= 1.0:
        return float(nnz)
    span = 2 ** run_bits  # a padding zero is needed for every `span` zeros in one run
    # E[floor(L / span)] for geometric run length L with P(L >= x) = (1 - d)^x
    q = (1.0 - density) ** span
    return float(nnz * (1.0 + q / (1.0 - q)))


def rle_entries(mask: np.ndarray, run_bits: int) -> int:
    """Exact stored entries of each row of ``mask`` in run-length form with ``run_bits`` runs."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"rle_entries needs a 2-D mask, got shape {mask.shape}")
    if run_bits < 1:
        raise ValueError(f"run_bits must be >= 1, got {run_bits}")
    return int(_rle_entries_kernel(mask=mask, max_run=2 ** run_bits - 1))
