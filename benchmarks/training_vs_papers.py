"""The survey's training-time methods on simulated hardware, each beside its paper's own number.

Each row runs one method the way its paper sets it up (network, k, bits, sparsity), on a preset where
the method's claim applies and on a dense one where it should not, and prints hwsim's figure next to the
paper's. Paper numbers are quoted from the text that could be read here (abstracts, the authors' own
repository or blog); where the paper's figure could not be read, the row says so instead of guessing.
The comparison is direction and rough size: the papers ran CPUs and GPUs, hwsim runs accelerator presets.

Usage: python benchmarks/training_vs_papers.py [--json benchmarks/results/training_vs_papers.json]
"""

from __future__ import annotations

import argparse
import json
import time

PAPERS = {
    "meprop": ("5.9x faster backprop (MNIST MLP 500d, top-80, CPU: 170 s -> 29 s); cost falls linearly in k/n",
               "Sun et al., ICML 2017 (PMLR 70:3299), abstract p. 3299; the 5.9x is the authors' results "
               "table in github.com/lancopku/meProp README"),
    "qsgd": ("1.8x faster end-to-end, ResNet-152 on 16 GPUs, 4-bit QSGD vs 32-bit",
             "Alistarh et al., NIPS 2017, abstract p. 1709"),
    "terngrad": ("2-bit gradients (levels {-1,0,1} + one scaler per layer): 1/16 of fp32 on the wire; "
                 "the throughput gains of Fig. 5 could not be read here",
                 "Wen et al., NIPS 2017, abstract and Sec. 3 (p. 1508-1510)"),
    "flexpoint": ("flex16+5 replaces fp32 with 16-bit mantissas and one 5-bit exponent per tensor "
                  "(half the bits per value) and matches fp32 training; no hardware figure given",
                  "Koster et al., NIPS 2017, abstract p. 1 and Sec. 3"),
    "sbnet": ("speed-up up to one order of magnitude for ResNet blocks at high block sparsity",
              "Ren, Pokrovsky, Yang, Urtasun (the authors), Uber Engineering blog 2018-01-16, on the CVPR 2018 paper"),
    "han": ("AlexNet 9x fewer parameters (61 M -> 6.7 M), VGG-16 13x, no accuracy loss after retraining",
            "Han et al., NIPS 2015, abstract p. 1"),
}


def _backward(result) -> tuple[float, float]:
    from hwsim.training import phase_totals

    totals = phase_totals(result)
    rows = [totals[p] for p in ("backward_data", "backward_weight") if p in totals]
    return sum(r["latency_s"] for r in rows), sum(r["energy_pj"] for r in rows)


def meprop_rows() -> list[dict]:
    """meProp's MNIST MLP (784-500-500-10, minibatch 50), top-80 output gradients in each hidden layer."""
    from torch import nn

    from hwsim.lower import lower
    from hwsim.models.arch import load_arch
    from hwsim.simulate import simulate_graph
    from hwsim.training import training_graph

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(),
                        nn.Linear(500, 10))
    graph = lower(mlp, (50, 1, 28, 28))
    sparse = graph.map_layers(lambda layer: layer.with_changes(grad_density=min(1.0, 80 / layer.K))
                              if layer.has_weights else layer)
    rows = []
    for name in ("edge_tpu_like", "eie", "scnn"):
        arch = load_arch(name)
        full_s, full_pj = _backward(simulate_graph(training_graph(graph), arch))
        top_s, top_pj = _backward(simulate_graph(training_graph(sparse), arch))
        rows.append({"method": "meprop", "arch": name, "setting": "MLP 784-500-500-10, batch 50, k=80",
                     "metric": "backward speed-up", "hwsim": full_s / top_s,
                     "hwsim_energy_ratio": top_pj / full_pj, "paper": 5.9, "paper_bound": 500 / 80})
    return rows


def gradient_rows(arch_names: list[str], link_names: list[str], devices: int, batch: int) -> list[dict]:
    """QSGD 4-bit and TernGrad against fp32 gradients: ResNet-152 data-parallel step (QSGD's network).

    The speed-up depends on how long the backward pass is against the link, so it is shown for a slow
    and a fast device on a slow and a fast link; the paper's GPUs and network are one point of that range.
    """
    from hwsim.models.arch import load_arch
    from hwsim.models.comm import data_parallel, load_link
    from hwsim.simulate import simulate

    rows = []
    for arch_name in arch_names:
        arch = load_arch(arch_name)
        result = simulate("resnet152", arch, batch=batch, training=True)
        for link_name in link_names:
            link = load_link(link_name)
            base = data_parallel(result, devices=devices, link=link, scheme="none", arch=arch)
            for method, scheme, paper in (("qsgd", "qsgd:4", 1.8), ("terngrad", "terngrad", None)):
                row = data_parallel(result, devices=devices, link=link, scheme=scheme, arch=arch)
                rows.append({"method": method, "arch": f"{arch_name} / {link_name}",
                             "setting": f"ResNet-152 training step, batch {batch}/device, {devices} devices",
                             "metric": "step speed-up vs fp32 gradients", "hwsim": base["step_s"] / row["step_s"],
                             "gradient_bytes_ratio": base["gradient_bytes"] / row["gradient_bytes"],
                             "compute_ms": result.latency_s * 1e3,
                             "exposed_comm_ms": (base["communication_s"] * 1e3, row["communication_s"] * 1e3),
                             "paper": paper, "coding": row["gradient_coding"]})
    return rows


def flexpoint_rows() -> list[dict]:
    """A ResNet-18 training step with every tensor in fp32 vs flex16+5, on the same 64x64 array."""
    from hwsim.lower import load_graph
    from hwsim.models.arch import load_arch
    from hwsim.simulate import simulate_graph
    from hwsim.training import training_graph

    graph = training_graph(load_graph("resnet18", batch=8))
    out = {}
    for fmt, bits in (("fp", 32), ("flex", 16)):
        arch = load_arch("edge_tpu_like").with_overrides({
            "compute.number_format": fmt, "compute.weight_bits": bits, "compute.act_bits": bits,
            "compute.acc_bits": 32})
        typed = graph.map_layers(lambda layer: layer.with_changes(   # every tensor, pools and adds included
            weight_bits=bits, act_bits=bits, out_bits=bits, number_format=fmt))
        result = simulate_graph(typed, arch)
        out[fmt] = (result.energy_pj, sum(lr.bytes_at(arch.dram.name) for lr in result.layers), result.latency_s)
    return [{"method": "flexpoint", "arch": "edge_tpu_like (fp32 vs flex16 datapath)",
             "setting": "ResNet-18 training step, batch 8", "metric": "DRAM bytes flex16 / fp32",
             "hwsim": out["flex"][1] / out["fp"][1], "hwsim_energy_ratio": out["flex"][0] / out["fp"][0],
             "hwsim_latency_ratio": out["flex"][2] / out["fp"][2], "paper": 0.5}]


def sbnet_rows(sparsity: float = 0.9) -> list[dict]:
    """ResNet-18 with SBNet skipping ``sparsity`` of the 8x8 output tiles of layer1-layer2's convs."""
    import torch

    from hwsim import zoo
    from hwsim.compress.recipe import apply_recipe
    from hwsim.lower import lower
    from hwsim.models.arch import load_arch
    from hwsim.simulate import simulate_graph

    shape = (1, 3, 224, 224)
    calib = torch.randn(2, *shape[1:], generator=torch.Generator().manual_seed(0))
    dense_model = zoo.create("resnet18", seed=0).eval()
    dense = lower(dense_model, shape)
    sparse_model, _ = apply_recipe(zoo.create("resnet18", seed=0).eval(), [
        {"method": "sbnet", "sparsity": sparsity, "block": [8, 8], "layers": ["layer1.*", "layer2.*"]}],
        calib=calib, input_shape=shape)
    sparse = lower(sparse_model, shape)

    def blocks(result) -> float:
        return sum(lr.latency_s for lr in result.layers if lr.name.startswith(("layer1", "layer2")))

    rows = []
    for name in ("edge_tpu_like", "eyeriss"):
        arch = load_arch(name)
        d, s = simulate_graph(dense, arch), simulate_graph(sparse, arch)
        rows.append({"method": "sbnet", "arch": name,
                     "setting": f"ResNet-18, {sparsity:.0%} of 8x8 tiles skipped in layer1-2 (gather/scatter paid)",
                     "metric": "layer1-2 speed-up", "hwsim": blocks(d) / blocks(s),
                     "network_speedup": d.latency_s / s.latency_s, "paper": 10.0, "paper_bound": 1 / (1 - sparsity)})
    return rows


def han_rows() -> list[dict]:
    """AlexNet magnitude-pruned to the paper's 9x (one global threshold), on a dense and a sparse engine."""
    from hwsim import zoo
    from hwsim.compress.recipe import apply_recipe
    from hwsim.lower import lower
    from hwsim.models.arch import load_arch
    from hwsim.simulate import simulate_graph

    shape = (1, 3, 224, 224)
    dense = lower(zoo.create("alexnet", seed=0).eval(), shape)
    pruned_model, _ = apply_recipe(zoo.create("alexnet", seed=0).eval(),
                                   [{"method": "magnitude_prune", "sparsity": 1 - 1 / 9, "scope": "global"}],
                                   input_shape=shape)
    pruned = lower(pruned_model, shape)
    rows = []
    for name in ("edge_tpu_like", "eie", "scnn"):
        arch = load_arch(name)

        def weight_bytes(result) -> float:
            return sum(a.total * a.word_bits / 8 for lr in result.layers for a in lr.counts.accesses
                       if a.level == arch.dram.name and a.tensor.startswith("W"))

        d, p = simulate_graph(dense, arch), simulate_graph(pruned, arch)
        rows.append({"method": "han", "arch": name, "setting": "AlexNet, 89 % of weights pruned (global threshold)",
                     "metric": "DRAM weight bytes dense / pruned", "hwsim": weight_bytes(d) / max(weight_bytes(p), 1),
                     "speedup": d.latency_s / p.latency_s, "energy_ratio": p.energy_pj / d.energy_pj, "paper": 9.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    parser.add_argument("--dp-archs", default="edge_tpu_like,tpu_v1_like")
    parser.add_argument("--links", default="ethernet_10g,pcie4_x16")
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = (meprop_rows() + gradient_rows(args.dp_archs.split(","), args.links.split(","), args.devices, args.batch)
            + flexpoint_rows() + sbnet_rows() + han_rows())
    for row in rows:
        claim, source = PAPERS[row["method"]]
        row["paper_claim"], row["paper_source"] = claim, source
        paper = "n/a" if row["paper"] is None else f"{row['paper']:g}"
        print(f"{row['method']:9s} {row['arch']:38s} {row['metric']:34s} hwsim {row['hwsim']:7.2f}  paper {paper}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
