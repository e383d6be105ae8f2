"""Simulate time for a lowered network on a preset: cold (fresh process, Numba cache as found) and warm.

Run: python benchmarks/bench_simulate.py [--model resnet50] [--arch edge_tpu_like] [--repeats 20]
The model is lowered once (torch) and saved; the timings cover ``simulate_graph`` only.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD = """
import sys, time
t0 = time.perf_counter()
from hwsim.ir import LayerGraph
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph
graph, arch = LayerGraph.load(sys.argv[1]), load_arch(sys.argv[2])
t1 = time.perf_counter()
simulate_graph(graph, arch)
t2 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--arch", default="edge_tpu_like")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from hwsim.lower import load_graph
    from hwsim.models.arch import load_arch
    from hwsim.simulate import simulate_graph

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        graph = load_graph(args.model)
        lower_s = time.perf_counter() - t0
        path = graph.save(Path(tmp) / f"{args.model}.json")
        cold = subprocess.run([sys.executable, "-c", COLD, str(path), args.arch], capture_output=True,
                              text=True, check=True).stdout.split()
        arch = load_arch(args.arch)
        simulate_graph(graph, arch)
        warm = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = simulate_graph(graph, arch)
            warm.append(time.perf_counter() - t0)
    print(f"{'model':<12} {'arch':<16} {'layers':>6} {'lower s':>8} {'import+load s':>13} "
          f"{'cold sim s':>10} {'warm sim ms (median)':>21}")
    print(f"{args.model:<12} {args.arch:<16} {len(graph):>6} {lower_s:>8.2f} {float(cold[0]):>13.3f} "
          f"{float(cold[1]):>10.3f} {1e3 * statistics.median(warm):>21.2f}")
    print(f"total: {result.total['cycles']:,} cycles, {result.total['latency_s'] * 1e3:.3f} ms, "
          f"{result.total['energy_pj'] / 1e6:.1f} uJ")


if __name__ == "__main__":
    main()
