"""hwsim SearchMapper vs ZigZag LOMA, side by side: mapper time, best energy, best latency.

Networks: ResNet-18 and MobileNet v2 exactly as ZigZag parses its shipped ONNX files (zigzag-dse 3.9.1,
``zigzag/inputs/workload/{resnet18,mobilenetv2}.onnx``; ZigZag's parser gives the layer shapes, so both
tools see the same layers). Accelerators: ZigZag's ``tpu_like`` (32x32, mapping tpu_like.yaml) and
``eyeriss_like`` (14x12, mapping default.yaml), converted with ``hwsim.interop.zigzag`` so hwsim prices
with ZigZag's own per-access energies and MAC energy.

ZigZag runs are slow (minutes per network); run them once in the background with
``python benchmarks/_zigzag_run.py NET ACCEL energy benchmarks/results/zigzag_NET_ACCEL_energy.json``
(or ``--run-zigzag`` here) and this script reads the JSON. Usage::

    python benchmarks/bench_mapper_vs_zigzag.py [--run-zigzag] [--max-candidates N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
PAIRS = [("resnet18", "tpu_like"), ("mobilenetv2", "tpu_like"), ("resnet18", "eyeriss_like"),
         ("mobilenetv2", "eyeriss_like")]
MAPPINGS = {"tpu_like": "tpu_like.yaml", "eyeriss_like": "default.yaml"}


def zigzag_root() -> Path:
    import zigzag
    return Path(zigzag.__file__).parent / "inputs"


def zigzag_layers(network: str, accel: str):
    """The network's MAC layers as ZigZag's ONNX parser sees them, as hwsim ``Layer``s."""
    from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser
    from zigzag.workload.layer_node import LayerNode

    from hwsim.interop.zigzag import zigzag_layer
    root = zigzag_root()
    workload = ONNXModelParser(str(root / "workload" / f"{network}.onnx"),
                               str(root / "mapping" / MAPPINGS[accel])).run()
    layers = []
    for node in workload.topological_sort():
        if not isinstance(node, LayerNode):
            continue
        sizes = node.layer_dim_sizes
        entry = {"id": node.id, "name": node.name, "operator_type": node.type,
                 "loop_dims": [str(d) for d in sizes], "loop_sizes": [int(sizes[d]) for d in sizes],
                 "dimension_relations": [str(r).replace(" ", "") for r in node.dimension_relations],
                 "operand_precision": {str(k): int(v) for k, v in node.operand_precision.data.items()}}
        layers.append(zigzag_layer(entry, where=f"{network}.onnx"))
    return layers


def hwsim_arch(accel: str):
    from hwsim.interop.zigzag import load_zigzag_accelerator
    root = zigzag_root()
    return load_zigzag_accelerator(root / "hardware" / f"{accel}.yaml", mapping=root / "mapping" / MAPPINGS[accel])


def run_hwsim(layers, arch, *, objective: str, max_candidates: int) -> dict:
    from hwsim.mappers import SearchMapper
    from hwsim.mappers.search import clear_cache
    clear_cache()
    mapper = SearchMapper(objective=objective, max_candidates=max_candidates)
    start = time.perf_counter()
    results = [mapper.search(layer, arch) for layer in layers]
    wall = time.perf_counter() - start
    return {"wall_s": wall, "energy_pj": sum(r.energy_pj for r in results),
            "latency_cycles": sum(r.cycles for r in results),
            "evaluated": sum(r.evaluated for r in results), "unique_layers": len({id(r) for r in results})}


def warm_up() -> None:
    """Compile the Numba kernels once (cache=True) so timings measure the search, not the compiler."""
    from hwsim.ir import Layer, Op
    from hwsim.mappers import SearchMapper
    SearchMapper(max_candidates=20).search(Layer("warm", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3), hwsim_arch("tpu_like"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-zigzag", action="store_true", help="run missing ZigZag pairs first (slow)")
    parser.add_argument("--max-candidates", type=int, default=400)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    warm_up()
    rows = []
    for network, accel in PAIRS:
        zz_path = RESULTS / f"zigzag_{network}_{accel}_energy.json"
        if args.run_zigzag and not zz_path.exists():
            subprocess.run([sys.executable, str(HERE / "_zigzag_run.py"), network, accel, "energy", str(zz_path)],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        zz = json.loads(zz_path.read_text()) if zz_path.exists() else None
        lat_path = RESULTS / f"zigzag_{network}_{accel}_latency.json"
        if zz and lat_path.exists():                 # a latency-optimized ZigZag run, when one was made
            zz["latency_cycles"] = json.loads(lat_path.read_text())["latency_cycles"]
            zz["latency_opt"] = "latency"
        layers, arch = zigzag_layers(network, accel), hwsim_arch(accel)
        energy = run_hwsim(layers, arch, objective="energy", max_candidates=args.max_candidates)
        latency = run_hwsim(layers, arch, objective="latency", max_candidates=args.max_candidates)
        rows.append({"network": network, "accelerator": accel, "layers": len(layers),
                     "hwsim_energy_search": energy, "hwsim_latency_search": latency, "zigzag": zz})
    print_table(rows)
    (RESULTS / "mapper_vs_zigzag.json").write_text(json.dumps(rows, indent=1))


def print_table(rows: list[dict]) -> None:
    head = (f"{'network':<12} {'accel':<13} {'L':>3} {'hwsim s':>8} {'zigzag s':>9} {'speedup':>8} "
            f"{'hwsim E pJ':>11} {'zigzag E pJ':>11} {'E ratio':>7} {'hwsim cyc':>10} {'zigzag cyc':>10} {'L ratio':>7}")
    print(head)
    for row in rows:
        hw_e, hw_l, zz = row["hwsim_energy_search"], row["hwsim_latency_search"], row["zigzag"]
        hw_s = hw_e["wall_s"] + hw_l["wall_s"]
        if zz:
            cells = (f"{zz['wall_s']:>9.1f} {zz['wall_s'] / hw_s:>7.0f}x {hw_e['energy_pj']:>11.4g} "
                     f"{zz['energy_pj']:>11.4g} {hw_e['energy_pj'] / zz['energy_pj']:>7.3f} "
                     f"{hw_l['latency_cycles']:>10.0f} {zz['latency_cycles']:>10.0f} "
                     f"{hw_l['latency_cycles'] / zz['latency_cycles']:>7.3f}")
        else:
            cells = f"{'pending':>9} {'-':>8} {hw_e['energy_pj']:>11.4g} {'-':>11} {'-':>7} {hw_l['latency_cycles']:>10.0f}"
        print(f"{row['network']:<12} {row['accelerator']:<13} {row['layers']:>3} {hw_s:>8.2f} {cells}")
    print("hwsim s = energy search + latency search (memoized per network); zigzag s = one LOMA run, opt=energy;"
          " zigzag cycles = latency_total2 of the opt=latency run where one exists (else of the opt=energy run)."
          " E ratio / L ratio = hwsim / zigzag (<= 1 is better).")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
