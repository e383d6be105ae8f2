"""Speed of the data-driven sparse engine on a whole network with real masks, and how far the
statistical (densities-only) mode lands from it.

Masks: magnitude pruning of random weights to ``--sparsity`` per layer (numpy; the same builder as
rank_resnet18_engines.py). Lowering (torch) is done once and not timed; the Numba kernels are
compiled by a warm-up layer first, so the figures are steady-state time per network.

Usage: python benchmarks/bench_sparse.py [--model resnet50] [--sparsity 0.8] [--archs scnn eie ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rank_resnet18_engines import unstructured  # noqa: E402

from hwsim.ir import Layer, Op  # noqa: E402
from hwsim.models import sparse  # noqa: E402
from hwsim.models.arch import load_arch  # noqa: E402


def network_cycles(layers, arch, mode: str) -> tuple[int, float]:
    """(total cycles, seconds) of every MAC layer on ``arch`` in ``mode``."""
    start = time.perf_counter()
    total = 0
    for layer in layers:
        mapping = replace(sparse.default_mapping(layer, arch), mode=mode)
        total += sparse.evaluate(layer, arch, mapping).cycles
    return total, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--act-density", type=float, default=0.5)
    parser.add_argument("--archs", nargs="+", default=["scnn", "eie", "eyeriss_v2", "cambricon_x"])
    args = parser.parse_args(argv)
    from hwsim.simulate import resolve_graph

    graph = resolve_graph(args.model)
    layers = [unstructured(l, args.sparsity).with_changes(act_density=args.act_density)
              for l in graph.compute_layers()]
    warm = Layer("warm", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3, padding=1, weight_density=0.5, act_density=0.5)
    print(f"# {args.model}: {len(layers)} MAC layers, {sum(l.macs for l in layers) / 1e9:.2f} GMAC, "
          f"weights {args.sparsity:.0%} pruned (real masks), act density {args.act_density}")
    print(f"{'arch':<13}{'data_cycles':>14}{'data_s':>9}{'stat_cycles':>14}{'stat_s':>9}{'stat/data':>11}")
    for name in args.archs:
        arch = load_arch(name)
        for mode in ("data", "statistical"):
            sparse.evaluate(warm, arch, replace(sparse.default_mapping(warm, arch), mode=mode))
        data, data_s = network_cycles(layers, arch, "data")
        stat, stat_s = network_cycles(layers, arch, "statistical")
        print(f"{name:<13}{data:>14,}{data_s:>9.2f}{stat:>14,}{stat_s:>9.2f}{stat / data:>11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
