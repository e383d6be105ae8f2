"""meProp on hardware: one ResNet-18 training step with top-k sparsified output gradients.

meProp (Sun et al., ICML 2017) keeps the k largest output-gradient entries of each layer, so both
backward GEMMs of a layer read a ``dY`` of density k/K (``Layer.grad_density``; ``hwsim.training``).
A dense array computes the zeros anyway; engines that skip zero activations gain. This prints the
step's backward latency and energy per arch at full gradients and at meProp's k, and the ratio.

Usage: python benchmarks/training_meprop.py [--batch 8] [--k 8,32] [--archs ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

ARCHS = "edge_tpu_like,eyeriss,scnn,eie"


def _step(graph, arch, k: int | None) -> dict[str, float]:
    from hwsim.simulate import simulate_graph
    from hwsim.training import phase_totals, training_graph

    if k is not None:
        graph = graph.map_layers(lambda layer: layer.with_changes(grad_density=min(1.0, k / layer.K))
                                 if layer.has_weights else layer)
    totals = phase_totals(simulate_graph(training_graph(graph), arch))
    backward = [totals[p] for p in ("backward_data", "backward_weight") if p in totals]
    return {"backward_ms": sum(r["latency_s"] for r in backward) * 1e3,
            "backward_uj": sum(r["energy_pj"] for r in backward) / 1e6,
            "step_ms": sum(r["latency_s"] for r in totals.values()) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--k", default="8,32", help="meProp k values (output-gradient entries kept)")
    parser.add_argument("--archs", default=ARCHS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from hwsim.lower import load_graph
    from hwsim.models.arch import load_arch

    graph = load_graph("resnet18", batch=args.batch)
    rows = []
    print(f"ResNet-18 training step, batch {args.batch}: backward ms / µJ, full gradients vs meProp top-k")
    for name in args.archs.split(","):
        arch = load_arch(name)
        full = _step(graph, arch, None)
        for k in (int(v) for v in args.k.split(",")):
            sparse = _step(graph, arch, k)
            row = {"arch": name, "k": k, **{f"full_{key}": v for key, v in full.items()},
                   **{f"meprop_{key}": v for key, v in sparse.items()},
                   "backward_speedup": full["backward_ms"] / sparse["backward_ms"],
                   "backward_energy_ratio": sparse["backward_uj"] / full["backward_uj"]}
            rows.append(row)
            print(f"{name:14s} k={k:<3d} backward {full['backward_ms']:9.2f} -> {sparse['backward_ms']:9.2f} ms "
                  f"(x{row['backward_speedup']:.2f})  energy {full['backward_uj']:9.0f} -> {sparse['backward_uj']:9.0f} µJ "
                  f"(x{row['backward_energy_ratio']:.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": "python benchmarks/training_meprop.py", "batch": args.batch, "rows": rows}, fh,
                      indent=1)


if __name__ == "__main__":
    main()
