"""Run ZigZag (zigzag-dse, LOMA) once on one (network, accelerator, opt) and write a JSON summary.

Usage: python benchmarks/_zigzag_run.py NETWORK ACCEL OPT OUT.json   (NETWORK: resnet18 | mobilenetv2)
Uses the ONNX workloads, accelerator YAMLs and mapping YAMLs shipped inside the zigzag-dse wheel.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import zigzag
from zigzag.api import get_hardware_performance_zigzag

ROOT = os.path.dirname(zigzag.__file__)
MAPPINGS = {"tpu_like": "tpu_like.yaml", "eyeriss_like": "default.yaml"}


def main() -> None:
    network, accel, opt, out = sys.argv[1:5]
    workload = os.path.join(ROOT, "inputs", "workload", f"{network}.onnx")
    hardware = os.path.join(ROOT, "inputs", "hardware", f"{accel}.yaml")
    mapping = os.path.join(ROOT, "inputs", "mapping", MAPPINGS[accel])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        energy, latency, cmes = get_hardware_performance_zigzag(
            workload=workload, accelerator=hardware, mapping=mapping, opt=opt,
            dump_folder=tmp, pickle_filename=os.path.join(tmp, "cmes.pickle"))
        wall = time.perf_counter() - start
    layers = []
    for cme, _ in cmes[0][1]:
        layers.append({"name": str(cme.layer.name), "energy_pj": float(cme.energy_total),
                       "latency_cycles": float(cme.latency_total2),
                       "loop_sizes": {str(k): int(v) for k, v in cme.layer.layer_dim_sizes.items()}})
    json.dump({"network": network, "accelerator": accel, "opt": opt, "energy_pj": float(energy),
               "latency_cycles": float(latency), "wall_s": wall, "layers": layers,
               "zigzag_version": "3.9.1"}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
