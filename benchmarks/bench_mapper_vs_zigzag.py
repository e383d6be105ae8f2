"""hwsim's own searched mappings vs ZigZag's LOMA, in the same run, under ZigZag's accounting.

Usage::

    python benchmarks/bench_mapper_vs_zigzag.py [--pairs resnet18:tpu_like:energy,...] [--max-candidates N]
                                                [--zigzag-dumps DIR] [--out FILE]

For every (network, accelerator, objective) pair, one after the other on the same machine state:

1. **ZigZag** (zigzag-dse 3.9.1 ``get_hardware_performance_zigzag``, LOMA, its defaults, ``opt`` = the
   objective) runs with ``dump_folder``; its wall time is taken. ``--zigzag-dumps DIR`` reads earlier dumps
   from ``DIR/<network>_<accelerator>_<opt>`` instead (development only; the JSON then says ``cached``).
2. **Agreement check** where both tools model the same thing: ``hwsim.interop.zigzag.replay`` evaluates the
   mapping ZigZag chose on hwsim's ZigZag-semantics model; per layer energy and latency vs ZigZag's own.
3. **hwsim's search**: ``SearchMapper(objective, cost="zigzag")`` (and once more limited to the mapping
   file's spatial dims exactly, ``fixed_*``: hwsim otherwise also unrolls ``G`` wherever ``K`` may go) on the arch ``load_zigzag_accelerator``
   reads (memo cleared, Numba warmed first), each of its mappings ranked and reported in ZigZag's
   accounting (``hwsim.interop.zigzag_score``). For reference, the default engine-cost search's mappings
   (Timeloop-style accounting) are scored the same way (``engine_*``; a mapping whose tiles ZigZag's
   memories cannot hold -- the engine may bypass, ZigZag may not -- is counted as ``engine_not_fit``).

Ratios are hwsim / ZigZag over the network's MAC layers (<= 1: hwsim's mapping is at least as good).
Writes benchmarks/results/mapper_vs_zigzag.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "results" / "mapper_vs_zigzag.json"
MAPPINGS = {"tpu_like": "tpu_like", "eyeriss_like": "default", "edge_tpu_like": "edge_tpu_like",
            "meta_prototype": "meta_prototype_like", "ascend_like": "ascend_like", "tesla_npu_like": "tesla_npu_like"}
DEFAULT_PAIRS = ([f"resnet18:{a}:energy" for a in MAPPINGS]
                 + ["mobilenetv2:tpu_like:latency", "mobilenetv2:eyeriss_like:latency"])


def inputs() -> Path:
    import zigzag
    return Path(zigzag.__file__).parent / "inputs"


def paths(network: str, accel: str) -> tuple[Path, Path, Path]:
    root = inputs()
    return (root / "hardware" / f"{accel}.yaml", root / "mapping" / f"{MAPPINGS[accel]}.yaml",
            root / "workload" / f"{network}.onnx")


def run_zigzag(network: str, accel: str, opt: str, dump: Path) -> float:
    from zigzag.api import get_hardware_performance_zigzag
    hardware, mapping, workload = paths(network, accel)
    start = time.perf_counter()
    get_hardware_performance_zigzag(workload=str(workload), accelerator=str(hardware), mapping=str(mapping),
                                    opt=opt, dump_folder=str(dump), pickle_filename=str(dump / "cmes.pickle"))
    return time.perf_counter() - start


def hwsim_layers(workload: Path) -> dict[str, object]:
    """hwsim's own lowering of the ONNX file, per ZigZag layer name (the replay's pairing of MAC nodes)."""
    import onnx

    from hwsim.interop.onnx_import import lower_onnx
    model = onnx.load(str(workload), load_external_data=False)
    nodes = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    layers = [layer for layer in lower_onnx(workload).layers() if layer.op.has_macs]
    assert len(nodes) == len(layers), (len(nodes), len(layers))
    return dict(zip(nodes, layers))


def warm_up(arch) -> None:
    from hwsim.ir import Layer, Op
    from hwsim.mappers import SearchMapper
    SearchMapper(max_candidates=20).search(Layer("warm", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3), arch)


def search(layers: dict, names: list[str], arch, *, objective: str, cost: str, max_candidates: int,
           constraints: dict | None = None):
    from hwsim.mappers import SearchMapper
    from hwsim.mappers.search import clear_cache
    clear_cache()
    mapper = SearchMapper(objective=objective, cost=cost, max_candidates=max_candidates, constraints=constraints)
    from hwsim.errors import ConfigError, InvalidMappingError
    start = time.perf_counter()
    results = {}
    for name in names:
        try:
            results[name] = mapper.search(layers[name], arch)
        except (ConfigError, InvalidMappingError) as err:      # recorded, never hidden
            results[name] = err
    return results, time.perf_counter() - start


def run_pair(network: str, accel: str, opt: str, *, max_candidates: int, dumps: Path | None) -> dict:
    from hwsim.interop.zigzag import load_zigzag_accelerator, replay
    from hwsim.interop.zigzag_score import ZigZagScorer
    hardware, mapping, workload = paths(network, accel)
    with tempfile.TemporaryDirectory() as tmp:
        if dumps is not None:
            dump, zigzag_s, source = dumps / f"{network}_{accel}_{opt}", None, "cached dump"
            if not dump.is_dir():
                dump.mkdir(parents=True)
                zigzag_s, source = run_zigzag(network, accel, opt, dump), "run now (dump kept)"
        else:
            dump = Path(tmp)
            zigzag_s, source = run_zigzag(network, accel, opt, dump), "run in this benchmark"
        start = time.perf_counter()
        rows = replay(hardware, mapping, workload, dump)
        replay_s = time.perf_counter() - start
    arch = load_zigzag_accelerator(hardware, mapping=mapping)
    warm_up(arch)
    layers = hwsim_layers(workload)
    names = [row["name"] for row in rows]
    mine, hwsim_s = search(layers, names, arch, objective=opt, cost="zigzag", max_candidates=max_candidates)
    from hwsim.interop.zigzag import load_zigzag_mapping
    same = {"spatial": load_zigzag_mapping(mapping)["default"]["spatial"]}     # LOMA's spatial dims, no G
    fixed, fixed_s = search(layers, names, arch, objective=opt, cost="zigzag", max_candidates=max_candidates,
                            constraints=same)
    engine, engine_s = search(layers, names, arch, objective=opt, cost="engine", max_candidates=max_candidates)
    scorer = ZigZagScorer(arch)
    per_layer, engine_not_fit = [], 0
    failed = {label: sorted(n for n, r in res.items() if isinstance(r, Exception))
              for label, res in (("hwsim", mine), ("fixed", fixed), ("engine", engine))}
    nan = float("nan")
    pick = lambda res, name, attr: nan if isinstance(res[name], Exception) else getattr(res[name], attr)  # noqa: E731
    for row in rows:
        name = row["name"]
        eng = (scorer.score(layers[name], engine[name].mapping) if not isinstance(engine[name], Exception) else
               type("Failed", (), {"energy_pj": nan, "latency_cycles": nan, "fits": False})())
        engine_not_fit += not eng.fits
        per_layer.append({"name": name, "macs": row["macs"],
                          "zigzag_energy_pj": row["zigzag_energy_pj"], "zigzag_latency_cycles": row["zigzag_latency_cycles"],
                          "replay_energy_pj": row["energy_pj"], "replay_latency_cycles": row["latency_cycles"],
                          "hwsim_energy_pj": pick(mine, name, "energy_pj"),
                          "hwsim_latency_cycles": pick(mine, name, "cycles"),
                          "hwsim_mapping": (None if isinstance(mine[name], Exception) else
                                            mine[name].mapping.to_dict()),
                          "fixed_energy_pj": pick(fixed, name, "energy_pj"),
                          "fixed_latency_cycles": pick(fixed, name, "cycles"),
                          "engine_energy_pj": eng.energy_pj, "engine_latency_cycles": eng.latency_cycles,
                          "engine_fits": eng.fits})
    total = lambda key: sum(x[key] for x in per_layer)  # noqa: E731
    dev = lambda a, b: max(abs(x[a] / x[b] - 1) for x in per_layer)  # noqa: E731
    return {"network": network, "accelerator": accel, "opt": opt, "layers": len(per_layer), "zigzag": source,
            "zigzag_s": zigzag_s, "hwsim_search_s": hwsim_s, "hwsim_engine_search_s": engine_s, "replay_s": replay_s,
            "replay_max_energy_dev": dev("replay_energy_pj", "zigzag_energy_pj"),
            "replay_max_latency_dev": dev("replay_latency_cycles", "zigzag_latency_cycles"),
            "zigzag_energy_pj": total("zigzag_energy_pj"), "zigzag_latency_cycles": total("zigzag_latency_cycles"),
            "hwsim_energy_pj": total("hwsim_energy_pj"), "hwsim_latency_cycles": total("hwsim_latency_cycles"),
            "energy_ratio": total("hwsim_energy_pj") / total("zigzag_energy_pj"),
            "latency_ratio": total("hwsim_latency_cycles") / total("zigzag_latency_cycles"),
            "fixed_spatial_dims": same["spatial"], "hwsim_fixed_search_s": fixed_s,
            "fixed_energy_ratio": total("fixed_energy_pj") / total("zigzag_energy_pj"),
            "fixed_latency_ratio": total("fixed_latency_cycles") / total("zigzag_latency_cycles"),
            "engine_energy_ratio": total("engine_energy_pj") / total("zigzag_energy_pj"),
            "engine_latency_ratio": total("engine_latency_cycles") / total("zigzag_latency_cycles"),
            "engine_not_fit": engine_not_fit, "search_failed": failed,
            "layers_hwsim_energy_above_zigzag": sum(x["hwsim_energy_pj"] > x["zigzag_energy_pj"] * (1 + 1e-9)
                                                   for x in per_layer),
            "per_layer": per_layer}


HEAD = (f"{'network':12s} {'accelerator':15s} {'opt':7s} {'L':>3s} {'replay dE':>9s} {'replay dL':>9s} "
        f"{'ZigZag s':>8s} {'hwsim s':>7s} {'speedup':>7s} {'E ratio':>7s} {'L ratio':>7s} {'fixed E':>7s} {'fixed L':>7s} {'engine E':>8s}")


def line(r: dict) -> str:
    zz = f"{r['zigzag_s']:8.1f}" if r["zigzag_s"] is not None else f"{'cached':>8s}"
    speed = f"{r['zigzag_s'] / r['hwsim_search_s']:6.1f}x" if r["zigzag_s"] is not None else f"{'-':>7s}"
    return (f"{r['network']:12s} {r['accelerator']:15s} {r['opt']:7s} {r['layers']:3d} "
            f"{r['replay_max_energy_dev']:9.1e} {r['replay_max_latency_dev']:9.1e} {zz} {r['hwsim_search_s']:7.1f} "
            f"{speed} {r['energy_ratio']:7.3f} {r['latency_ratio']:7.3f} {r['fixed_energy_ratio']:7.3f} "
            f"{r['fixed_latency_ratio']:7.3f} {r['engine_energy_ratio']:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=",".join(DEFAULT_PAIRS), help="network:accelerator:opt,...")
    parser.add_argument("--max-candidates", type=int, default=400)
    parser.add_argument("--zigzag-dumps", type=Path, default=None, help="reuse/keep ZigZag dumps here (dev only)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = []
    print(HEAD, flush=True)
    for pair in args.pairs.split(","):
        network, accel, opt = pair.split(":")
        res = run_pair(network, accel, opt, max_candidates=args.max_candidates, dumps=args.zigzag_dumps)
        results.append(res)
        print(line(res), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "zigzag_version": "3.9.1", "max_candidates": args.max_candidates,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "note": ("ratios hwsim / ZigZag, both in ZigZag's accounting: hwsim = SearchMapper(opt, cost='zigzag'), "
                     "engine = SearchMapper(opt) (Timeloop-style ranking) scored by zigzag_score; replay dE/dL = max "
                     "per-layer deviation of hwsim's replay of ZigZag's mapping from ZigZag's own figures; hwsim s "
                     "= the cost='zigzag' search of all layers (memo cleared; repeated layer shapes searched once)"),
            "results": results}, indent=1) + "\n")
    print("E ratio / L ratio: hwsim-search / ZigZag-LOMA (ZigZag's accounting; hwsim's spatial dims: the mapping "
          "file's plus G wherever K); fixed E / fixed L: the same search limited to the mapping file's spatial dims "
          "(no G); engine E: the default engine-cost search's mappings under ZigZag's accounting. "
          "speedup = ZigZag s / hwsim s (the cost='zigzag' search).")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
