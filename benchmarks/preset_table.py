"""ResNet-18 (batch 1, unquantized, dense) on every preset: latency, energy, DRAM traffic.

Usage: python benchmarks/preset_table.py [--model resnet18] [--json out.json]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from hwsim.lower import load_graph
    from hwsim.models.arch import load_arch, preset_names
    from hwsim.simulate import simulate_graph

    graph = load_graph(args.model)
    rows = []
    for name in preset_names():
        arch = load_arch(name)
        result = simulate_graph(graph, arch)
        dram = arch.memory[0].name
        dram_bytes = sum(a.total * a.word_bits / 8 for layer in result.layers for a in layer.counts.accesses
                         if a.level == dram)
        rows.append({"arch": name, "latency_ms": result.latency_s * 1e3, "energy_uj": result.energy_pj / 1e6,
                     "dram_mb": dram_bytes / 1e6})
        print(f"{name:16s} {rows[-1]['latency_ms']:10.4f} ms {rows[-1]['energy_uj']:12.1f} uJ "
              f"{rows[-1]['dram_mb']:9.2f} MB")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
