"""Rank one ResNet-18 compressed three ways on four kinds of hardware.

Variants: unstructured magnitude pruning to 80 % sparsity, 2:4 structured pruning, and 4-bit
weights + activations (first conv and classifier stay 8-bit). Hardware: a dense systolic array
(edge_tpu_like), the 2:4 sparse tensor-core-like array (sparse_tc_2_4), SCNN (scnn: skips
zero weights) and Bit Fusion (fuses its bit bricks to the layer's precision).

The variants come from ``hwsim.compress`` recipes when that works (``--from recipes``); otherwise
(or with ``--from masks``) they are built directly on the lowered LayerGraph: masks from numpy
magnitude pruning of random weights, which is what the recipes do to an untrained model.

Usage: python benchmarks/rank_resnet18_engines.py [--from auto|recipes|masks] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib

import numpy as np

from hwsim.ir import Layer, LayerGraph, PackedMask, Sparsity

ARCHS = ("edge_tpu_like", "sparse_tc_2_4", "scnn", "bit_fusion")
VARIANTS = ("unstructured_80", "nm_2_4", "int4")
RECIPES = {  # the three variants as hwsim.compress recipes
    "unstructured_80": {"name": "u80", "steps": [{"method": "magnitude_prune", "sparsity": 0.8, "scope": "global",
                                                  "ops": ["conv", "linear"]}]},
    "nm_2_4": "nm_2_4",
    "int4": {"name": "int4", "model": "resnet18", "input_shape": [3, 224, 224],
             "steps": [{"method": "quantize", "weight_bits": 4, "act_bits": 4,
                        "ops": ["conv", "linear"],
                        "overrides": {"conv1": {"weight_bits": 8, "act_bits": 8},
                                      "fc": {"weight_bits": 8, "act_bits": 8}}}]},
}


def _weights(layer: Layer, seed: int) -> np.ndarray:
    rng = np.random.default_rng([zlib.crc32(layer.name.encode()), seed])
    return np.abs(rng.standard_normal((layer.K, layer.gemm_shape[2])))


def unstructured(layer: Layer, sparsity: float, seed: int = 0) -> Layer:
    """Magnitude-prune random weights of one layer to ``sparsity`` (a real mask)."""
    if not layer.has_weights:
        return layer
    w = _weights(layer, seed)
    keep = int(round((1 - sparsity) * w.size))
    mask = np.zeros(w.size, dtype=bool)
    mask[np.argsort(-w, axis=None)[:keep]] = True
    return layer.with_changes(weight_density=keep / w.size, sparsity=Sparsity("unstructured"),
                              weight_mask=PackedMask.from_array(mask.reshape(w.shape)),
                              compression=layer.compression + (f"magnitude_prune({sparsity})",))


def n_m(layer: Layer, n: int = 2, m: int = 4, seed: int = 0) -> Layer:
    """Keep the n largest of every m consecutive reduction weights (layers with C/G*R*S % m == 0)."""
    if not layer.has_weights or layer.gemm_shape[2] % m:
        return layer
    w = _weights(layer, seed)
    groups = w.reshape(w.shape[0], -1, m)
    mask = np.argsort(np.argsort(-groups, axis=2), axis=2) < n
    return layer.with_changes(weight_density=n / m, sparsity=Sparsity("n:m", n=n, m=m),
                              weight_mask=PackedMask.from_array(mask.reshape(w.shape)),
                              compression=layer.compression + (f"nm_prune({n}:{m})",))


def int4(layer: Layer, first_last: tuple[str, str]) -> Layer:
    """4-bit weights and activations except the first and last MAC layer (8-bit)."""
    if not layer.op.has_macs or layer.name in first_last:
        return layer
    return layer.with_changes(weight_bits=4, act_bits=4, compression=layer.compression + ("quantize(w4a4)",))


def variants_from_masks(graph: LayerGraph) -> dict[str, LayerGraph]:
    """The three compressed variants built on the lowered graph with numpy masks."""
    macs = graph.compute_layers()
    first_last = (macs[0].name, macs[-1].name)
    return {"unstructured_80": graph.map_layers(lambda l: unstructured(l, 0.8)),
            "nm_2_4": graph.map_layers(n_m),
            "int4": graph.map_layers(lambda l: int4(l, first_last))}


def variants_from_recipes() -> dict[str, LayerGraph]:
    """The three variants from hwsim.compress recipes (imports torch)."""
    from hwsim.simulate import resolve_graph

    return {name: resolve_graph("resnet18", recipe=RECIPES[name]) for name in VARIANTS}


def build_variants(source: str = "auto") -> tuple[dict[str, LayerGraph], str]:
    """Variants and where they came from ("recipes" or "masks")."""
    if source in ("auto", "recipes"):
        try:
            return variants_from_recipes(), "recipes"
        except Exception:  # noqa: BLE001 - compression stack unavailable: fall back to masks
            if source == "recipes":
                raise
    from hwsim.simulate import resolve_graph

    return variants_from_masks(resolve_graph("resnet18")), "masks"


def rank_table(graphs: dict[str, LayerGraph], archs=ARCHS) -> list[dict]:
    """One row per (arch, variant): latency, energy, rank of the variant on that arch."""
    from hwsim.simulate import simulate_graph
    from hwsim.models.arch import load_arch

    rows = []
    for arch_name in archs:
        arch = load_arch(arch_name)
        results = {v: simulate_graph(g, arch) for v, g in graphs.items()}
        for v, res in results.items():
            faster = sum(1 for o in results.values() if o.latency_s < res.latency_s * (1 - 1e-9))
            rows.append({"arch": arch_name, "variant": v, "latency_ms": res.latency_s * 1e3,
                         "energy_uj": res.energy_pj / 1e6, "rank_latency": faster + 1})  # ties share a rank
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default="auto", choices=["auto", "recipes", "masks"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    graphs, source = build_variants(args.source)
    rows = rank_table(graphs)
    print(f"# ResNet-18 variants from {source}; {time.perf_counter() - start:.1f} s")
    print(f"{'arch':<15}{'variant':<17}{'latency_ms':>11}{'energy_uJ':>11}{'rank':>6}")
    for r in rows:
        print(f"{r['arch']:<15}{r['variant']:<17}{r['latency_ms']:>11.3f}{r['energy_uj']:>11.1f}{r['rank_latency']:>6}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"source": source, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
