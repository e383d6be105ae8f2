"""ZigZag's own mappings replayed on hwsim: per-accelerator energy/latency ratios and both tools' times.

Usage: python benchmarks/zigzag_replay.py [--network resnet18] [--accelerators tpu_like,...] [--keep DIR] [--out F]

For every ZigZag 3.9.1 accelerator that ships a ResNet-18 mapping, in one run on the same machine state:
run ZigZag (``get_hardware_performance_zigzag``, opt=energy, LOMA, its defaults) with ``dump_folder``, then
``hwsim.interop.zigzag.replay`` on that dump, and compare per layer (MACs, energy, latency). Prints the table
and writes benchmarks/results/zigzag_replay.json. ``--keep DIR`` keeps the dumps in DIR/<accelerator>.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import zigzag
from zigzag.api import get_hardware_performance_zigzag

from hwsim.interop.zigzag import replay

INPUTS = Path(zigzag.__file__).parent / "inputs"
MAPPINGS = {"tpu_like": "tpu_like", "eyeriss_like": "default", "edge_tpu_like": "edge_tpu_like",
            "meta_prototype": "meta_prototype_like", "ascend_like": "ascend_like", "tesla_npu_like": "tesla_npu_like"}
OUT = Path(__file__).parent / "results" / "zigzag_replay.json"


def run_one(accel: str, network: str, dump: Path) -> dict:
    hardware = INPUTS / "hardware" / f"{accel}.yaml"
    mapping = INPUTS / "mapping" / f"{MAPPINGS[accel]}.yaml"
    workload = INPUTS / "workload" / f"{network}.onnx"
    start = time.perf_counter()
    _, _, cmes = get_hardware_performance_zigzag(workload=str(workload), accelerator=str(hardware),
                                                 mapping=str(mapping), opt="energy", dump_folder=str(dump),
                                                 pickle_filename=str(dump / "cmes.pickle"))
    zigzag_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = replay(hardware, mapping, workload, dump)
    hwsim_s = time.perf_counter() - start
    theirs = {str(cme.layer.name): cme for cme, _ in cmes[0][1]}
    layers = []
    for row in rows:
        cme = theirs[row["name"]]
        layers.append({"name": row["name"], "macs": row["macs"], "zigzag_macs": int(cme.layer.total_mac_count),
                       "energy_pj": row["energy_pj"], "zigzag_energy_pj": float(cme.energy_total),
                       "latency_cycles": row["latency_cycles"], "zigzag_latency_cycles": float(cme.latency_total2),
                       "onload_cycles": row["onload_cycles"], "offload_cycles": row["offload_cycles"],
                       "drain_cycles": row["drain_cycles"], "stall_cycles": row["stall_cycles"]})
    energy = sum(x["energy_pj"] for x in layers) / sum(x["zigzag_energy_pj"] for x in layers)
    latency = sum(x["latency_cycles"] for x in layers) / sum(x["zigzag_latency_cycles"] for x in layers)
    dev = lambda a, b: max(abs(x[a] / x[b] - 1) for x in layers)  # noqa: E731
    return {"accelerator": accel, "layers": len(layers), "macs_exact": all(x["macs"] == x["zigzag_macs"] for x in layers),
            "missing_layers": sorted(set(theirs) - {x["name"] for x in layers}),
            "energy_ratio": energy, "latency_ratio": latency,
            "max_layer_energy_dev": dev("energy_pj", "zigzag_energy_pj"),
            "max_layer_latency_dev": dev("latency_cycles", "zigzag_latency_cycles"),
            "zigzag_s": zigzag_s, "hwsim_replay_s": hwsim_s, "per_layer": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resnet18")
    parser.add_argument("--accelerators", default=",".join(MAPPINGS))
    parser.add_argument("--keep", type=Path, default=None, help="keep ZigZag's dumps in this folder")
    parser.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default {OUT.name})")
    args = parser.parse_args()
    results = []
    print(f"{'accelerator':16s} {'layers':>6s} {'MACs':>5s} {'energy':>9s} {'max dev':>8s} {'latency':>9s} "
          f"{'max dev':>8s} {'ZigZag s':>9s} {'hwsim s':>8s}")
    for accel in args.accelerators.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            dump = args.keep / accel if args.keep else Path(tmp)
            dump.mkdir(parents=True, exist_ok=True)
            res = run_one(accel, args.network, dump)
        results.append(res)
        print(f"{accel:16s} {res['layers']:6d} {'exact' if res['macs_exact'] else 'DIFF':>5s} "
              f"{res['energy_ratio']:9.6f} {res['max_layer_energy_dev']:8.2e} {res['latency_ratio']:9.6f} "
              f"{res['max_layer_latency_dev']:8.2e} {res['zigzag_s']:9.1f} {res['hwsim_replay_s']:8.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"network": args.network, "zigzag_version": "3.9.1", "opt": "energy",
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                               "note": "ratios are hwsim / ZigZag at ZigZag's own mapping (replay)",
                               "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
