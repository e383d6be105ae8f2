"""The N:M sparse tensor-core-like array, evaluated on the systolic engine.

NVIDIA's A100 sparse tensor cores (A100 whitepaper, 2020) keep 2 of every 4 weights plus a 2-bit
index each and select the matching activations, so a conforming layer needs half the reduction
steps: the same array covers twice the dense reduction length per pass. We model that by running
the dense systolic engine (``hwsim.models.systolic``, same array and buffers as the dense preset it
is compared with) on the layer with its reduction length scaled by n/m, then putting back the full
activation traffic (all activations are still fetched; the array selects among them) and adding the
index metadata as ``W_meta`` rows. ``mac_cycles`` is the ideal MAC-bound figure, exactly
dense / (m/n) when the layer divides the array.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hwsim.ir import Layer, Sparsity
from hwsim.models.arch import ArchSpec, SparseParams, validate_arch
from hwsim.models.counts import Access, LayerCounts


def systolic_view(arch: ArchSpec, sp: SparseParams) -> ArchSpec:
    """The same hardware seen as a dense weight-stationary array of ``pe_grid`` (rows x cols)."""
    rows, cols = sp.pe_grid or (math.isqrt(arch.compute.units),) * 2
    data = arch.model_dump(mode="python")
    data.update(engine="systolic", sparse=None, systolic={"rows": int(rows), "cols": int(cols), "dataflow": "ws"})
    return validate_arch(data, origin=f"{arch.name} (systolic view)")


def compressed_layer(layer: Layer, n: int, m: int) -> Layer | None:
    """The layer with C/G scaled by n/m (the reduction the array actually walks), if integral."""
    cg = layer.c_per_group
    if (cg * n) % m:
        return None
    return layer.with_changes(C=cg * n // m * layer.G, weight_density=1.0, weight_mask=None, sparsity=Sparsity())


def evaluate_nm_array(layer: Layer, arch: ArchSpec, sp: SparseParams, *, conforming: bool) -> LayerCounts:
    """Counts of one layer on the N:M array: systolic cycles on the compressed reduction + metadata."""
    from hwsim.models import systolic

    n, m = sp.structured_n or 2, sp.structured_m or 4
    view = systolic_view(arch, sp)
    small = compressed_layer(layer, n, m) if conforming else None
    run = small or layer.with_changes(weight_mask=None)
    counts = systolic.evaluate(run, view, systolic.default_mapping(run, view))
    ratio = layer.input_elems / run.input_elems if small else 1.0
    accesses = tuple(replace(a, count=a.count * ratio) if a.tensor == "I" else a for a in counts.accesses)
    kept = run.weight_elems if small else 0
    meta_bits = sp.metadata_bits or max(1, math.ceil(math.log2(m)))
    levels = [arch.memory[0].name] + ([arch.memory[1].name] if len(arch.memory) > 1 else [])
    accesses += tuple(Access(level=lvl, tensor="W_meta", action="metadata_read", count=float(kept),
                             word_bits=meta_bits) for lvl in levels if kept)
    units = arch.compute.units
    mac_cycles = math.ceil(run.macs / units)
    details = counts.details + (("mac_cycles", float(mac_cycles)), ("nm_conforming", float(bool(small))),
                                ("dense_macs", float(layer.macs)))
    return replace(counts, accesses=accesses, engine="sparse", details=details)
