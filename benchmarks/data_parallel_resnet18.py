"""ResNet-18 data-parallel training step: devices x gradient compression x link (hwsim.models.comm).

One training step (batch per device as given) is simulated once on the arch; the all-reduce model
then prices each (devices, compression, link). Usage:
  python benchmarks/data_parallel_resnet18.py [--arch edge_tpu_like] [--batch 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="edge_tpu_like")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--links", default="ethernet_10g,pcie4_x16")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from hwsim.models.arch import load_arch
    from hwsim.models.comm import data_parallel, load_link
    from hwsim.simulate import simulate

    arch = load_arch(args.arch)
    result = simulate("resnet18", arch, batch=args.batch, training=True)
    print(f"ResNet-18 training step, batch {args.batch}/device on {arch.name}: {result.latency_s * 1e3:.2f} ms")
    rows = []
    for link_name in args.links.split(","):
        link = load_link(link_name)
        for scheme in ("none", "qsgd:4", "terngrad"):
            for devices in (1, 2, 4, 8, 16):
                row = data_parallel(result, devices=devices, link=link, scheme=scheme,
                                    arch=arch)
                rows.append(row)
                print(f"{link_name:13s} {scheme:9s} {devices:3d} devices: step {row['step_s'] * 1e3:9.2f} ms, "
                      f"exposed comm {row['communication_s'] * 1e3:9.2f} ms, speed-up {row['speedup_vs_one_device']:6.2f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
