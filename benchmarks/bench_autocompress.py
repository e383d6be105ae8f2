"""Hardware pricing speed of the policy search: candidates per second on ResNet-18 (graph edit + simulate).

Random per-layer policies from each engine's default space are priced with ``HardwareCost`` (the same
object the search uses: layer results memoized per (layer record, arch)). The first pass over a fresh
cache pays each distinct layer once; the steady-state figure is what a long search sees.
Usage: python benchmarks/bench_autocompress.py [--model resnet18] [--candidates 400]
"""

from __future__ import annotations

import argparse
import random
import time

from hwsim.dse.autocompress import HardwareCost, _choice_lists, _policy
from hwsim.dse.autospace import load_space


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--archs", default="edge_tpu_like,bit_fusion,stripes,scnn,sparse_tc_2_4,eie")
    args = parser.parse_args()
    from hwsim import zoo
    from hwsim.compress.policy_stats import prunable_channels
    from hwsim.lower import lower
    from hwsim.models.arch import load_arch

    net = zoo.create(args.model, seed=0).eval()
    graph = lower(net, input_shape=zoo.input_shape(args.model), name=args.model)
    prunable = set(prunable_channels(net))
    for name in args.archs.split(","):
        arch = load_arch(name)
        choices = _choice_lists(graph, load_space(None, arch), prunable)
        rng = random.Random(0)
        policies = [_policy(choices, {g: (rng.choice(c["weight_bits"]), rng.choice(c["act_bits"]), rng.choice(c["prune"]))
                                      for g, c in choices.items()}) for _ in range(args.candidates)]
        cost = HardwareCost(graph, arch)
        start = time.perf_counter()
        for policy in policies[: args.candidates // 2]:
            cost(policy)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        for policy in policies[args.candidates // 2:]:
            cost(policy)
        warm = time.perf_counter() - start
        half = args.candidates // 2
        print(f"{name:14s} {len(choices):3d} groups  first {half}: {half / cold:7.0f}/s   next {half}: "
              f"{half / warm:7.0f}/s   ({len(cost.cache)} distinct layers simulated)")


if __name__ == "__main__":
    main()
