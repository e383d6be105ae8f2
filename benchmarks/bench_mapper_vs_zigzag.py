"""hwsim's own searched mappings vs ZigZag's LOMA, in the same run, under ZigZag's accounting.

Usage::

    python benchmarks/bench_mapper_vs_zigzag.py [--pairs resnet18:tpu_like:energy,...] [--max-candidates N]
                                                [--zigzag-dumps DIR] [--out FILE]

For every (network, accelerator, objective) pair, one after the other on the same machine state:

1. **ZigZag** (zigzag-dse 3.9.1 ``get_hardware_performance_zigzag``, LOMA, its defaults, ``opt`` = the
   objective) runs with ``dump_folder``; its wall and CPU time are taken. ``--zigzag-dumps DIR`` reads
   earlier dumps from ``DIR/<network>_<accelerator>_<opt>`` instead (development only; the JSON then says
   ``cached``).
2. **Agreement check first**, where both tools model the same thing: ``hwsim.interop.zigzag.replay``
   evaluates the mapping ZigZag chose on hwsim's ZigZag-semantics model; per layer energy and latency vs
   ZigZag's own (``replay_max_*_dev``; the pair is flagged ``replay_agrees`` at <= 1e-9).
3. **hwsim's per-operand search**: ``SearchMapper(objective, cost="zigzag", space="per_operand")``
   (``hwsim.mappers.loma``: ZigZag's own mapspace -- the mapping file's spatial mapping, loop orders of the
   prime-factor loops, every operand its own cut points) on the arch ``load_zigzag_accelerator`` reads,
   layers with their real input extents (``onnx_layers``), memo cleared first; wall and CPU time. Its
   per-operand nests go into the JSON (``hwsim_nests``).
4. For reference, hwsim's one-chain search ``SearchMapper(objective, cost="zigzag")`` (``chain_*``; its
   spatial search also unrolls ``G`` wherever ``K`` may go, which ZigZag's fixed spatial mapping does not).

Ratios are hwsim / ZigZag over the network's MAC layers (<= 1: hwsim's mapping is at least as good).
Times: wall seconds and CPU seconds (user+sys of this process), with ``os.getloadavg()`` at the time.
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


def run_zigzag(network: str, accel: str, opt: str, dump: Path) -> tuple[float, float]:
    """ZigZag's run (in this process): wall and CPU seconds."""
    from zigzag.api import get_hardware_performance_zigzag
    hardware, mapping, workload = paths(network, accel)
    wall, cpu = time.perf_counter(), time.process_time()
    get_hardware_performance_zigzag(workload=str(workload), accelerator=str(hardware), mapping=str(mapping),
                                    opt=opt, dump_folder=str(dump), pickle_filename=str(dump / "cmes.pickle"))
    return time.perf_counter() - wall, time.process_time() - cpu


def hwsim_layers(workload: Path) -> dict[str, object]:
    """hwsim's own lowering of the ONNX file, per ZigZag layer name, real input extents set (the replay's
    pairing of MAC nodes)."""
    from hwsim.interop.zigzag_score import onnx_layers
    return onnx_layers(workload)


def warm_up(arch) -> None:
    from hwsim.ir import Layer, Op
    from hwsim.mappers import SearchMapper
    SearchMapper(max_candidates=20).search(Layer("warm", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3), arch)


def search(layers: dict, names: list[str], arch, mapper) -> tuple[dict, float, float]:
    """Every layer searched by ``mapper`` (memo cleared first; repeated shapes pay once): results, wall s, CPU s."""
    from hwsim.errors import ConfigError, InvalidMappingError
    from hwsim.mappers.search import clear_cache
    clear_cache()
    wall, cpu = time.perf_counter(), time.process_time()
    results = {}
    for name in names:
        try:
            results[name] = mapper.search(layers[name], arch)
        except (ConfigError, InvalidMappingError) as err:      # recorded, never hidden
            results[name] = err
    return results, time.perf_counter() - wall, time.process_time() - cpu


def run_pair(network: str, accel: str, opt: str, *, max_candidates: int, dumps: Path | None) -> dict:
    from hwsim.interop.zigzag import load_zigzag_accelerator, replay
    from hwsim.mappers import SearchMapper
    hardware, mapping, workload = paths(network, accel)
    load = {"zigzag": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if dumps is not None:
            dump, zigzag_s, zigzag_cpu_s, source = dumps / f"{network}_{accel}_{opt}", None, None, "cached dump"
            if not dump.is_dir():
                dump.mkdir(parents=True)
                (zigzag_s, zigzag_cpu_s), source = run_zigzag(network, accel, opt, dump), "run now (dump kept)"
        else:
            dump = Path(tmp)
            (zigzag_s, zigzag_cpu_s), source = run_zigzag(network, accel, opt, dump), "run in this benchmark"
        start = time.perf_counter()
        rows = replay(hardware, mapping, workload, dump)
        replay_s = time.perf_counter() - start
    dev = lambda a, b: max(abs(x[a] / x[b] - 1) for x in rows)  # noqa: E731
    replay_e, replay_l = dev("energy_pj", "zigzag_energy_pj"), dev("latency_cycles", "zigzag_latency_cycles")
    arch = load_zigzag_accelerator(hardware, mapping=mapping)
    warm_up(arch)
    layers = hwsim_layers(workload)
    names = [row["name"] for row in rows]
    load["hwsim"] = os.getloadavg()
    mine, hwsim_s, hwsim_cpu_s = search(layers, names, arch, SearchMapper(objective=opt, cost="zigzag",
                                                                        space="per_operand"))
    load["chain"] = os.getloadavg()
    chain, chain_s, chain_cpu_s = search(layers, names, arch, SearchMapper(objective=opt, cost="zigzag",
                                                                         max_candidates=max_candidates))
    failed = {label: sorted(n for n, r in res.items() if isinstance(r, Exception))
              for label, res in (("hwsim", mine), ("chain", chain))}
    nan = float("nan")
    pick = lambda res, name, attr: nan if isinstance(res[name], Exception) else float(getattr(res[name], attr))  # noqa: E731
    per_layer = []
    for row in rows:
        name = row["name"]
        per_layer.append({"name": name, "macs": row["macs"],
                          "zigzag_energy_pj": row["zigzag_energy_pj"], "zigzag_latency_cycles": row["zigzag_latency_cycles"],
                          "replay_energy_pj": row["energy_pj"], "replay_latency_cycles": row["latency_cycles"],
                          "hwsim_energy_pj": pick(mine, name, "energy_pj"),
                          "hwsim_latency_cycles": pick(mine, name, "cycles"),
                          "hwsim_nests": None if isinstance(mine[name], Exception) else mine[name].to_dict(),
                          "chain_energy_pj": pick(chain, name, "energy_pj"),
                          "chain_latency_cycles": pick(chain, name, "cycles")})
    total = lambda key: sum(x[key] for x in per_layer)  # noqa: E731
    return {"network": network, "accelerator": accel, "opt": opt, "layers": len(per_layer), "zigzag": source,
            "zigzag_s": zigzag_s, "zigzag_cpu_s": zigzag_cpu_s, "replay_s": replay_s,
            "replay_max_energy_dev": replay_e, "replay_max_latency_dev": replay_l,
            "replay_agrees": replay_e <= 1e-9 and replay_l <= 1e-9,
            "hwsim_search_s": hwsim_s, "hwsim_search_cpu_s": hwsim_cpu_s,
            "chain_search_s": chain_s, "chain_search_cpu_s": chain_cpu_s, "loadavg": load,
            "zigzag_energy_pj": total("zigzag_energy_pj"), "zigzag_latency_cycles": total("zigzag_latency_cycles"),
            "hwsim_energy_pj": total("hwsim_energy_pj"), "hwsim_latency_cycles": total("hwsim_latency_cycles"),
            "energy_ratio": total("hwsim_energy_pj") / total("zigzag_energy_pj"),
            "latency_ratio": total("hwsim_latency_cycles") / total("zigzag_latency_cycles"),
            "chain_energy_ratio": total("chain_energy_pj") / total("zigzag_energy_pj"),
            "chain_latency_ratio": total("chain_latency_cycles") / total("zigzag_latency_cycles"),
            "search_failed": failed,
            "layers_hwsim_energy_above_zigzag": sum(x["hwsim_energy_pj"] > x["zigzag_energy_pj"] * (1 + 1e-9)
                                                   for x in per_layer),
            "layers_hwsim_latency_above_zigzag": sum(
                x["hwsim_latency_cycles"] > x["zigzag_latency_cycles"] * (1 + 1e-9) for x in per_layer),
            "per_layer": per_layer}


HEAD = (f"{'network':12s} {'accelerator':15s} {'opt':7s} {'L':>3s} {'replay dE':>9s} {'replay dL':>9s} "
        f"{'ZZ wall':>7s} {'ZZ cpu':>7s} {'hw wall':>7s} {'hw cpu':>7s} {'cpu x':>6s} {'E ratio':>11s} "
        f"{'L ratio':>7s} {'chain E':>7s} {'chain L':>7s}")


def line(r: dict) -> str:
    zz = (f"{r['zigzag_s']:7.1f} {r['zigzag_cpu_s']:7.1f}" if r["zigzag_s"] is not None
          else f"{'cached':>7s} {'-':>7s}")
    speed = f"{r['zigzag_cpu_s'] / r['hwsim_search_cpu_s']:5.1f}x" if r["zigzag_s"] is not None else f"{'-':>6s}"
    return (f"{r['network']:12s} {r['accelerator']:15s} {r['opt']:7s} {r['layers']:3d} "
            f"{r['replay_max_energy_dev']:9.1e} {r['replay_max_latency_dev']:9.1e} {zz} {r['hwsim_search_s']:7.1f} "
            f"{r['hwsim_search_cpu_s']:7.1f} {speed} {r['energy_ratio']:11.9f} {r['latency_ratio']:7.4f} "
            f"{r['chain_energy_ratio']:7.3f} {r['chain_latency_ratio']:7.3f}")


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
            "note": ("ratios hwsim / ZigZag, both in ZigZag's accounting: hwsim = SearchMapper(opt, cost='zigzag', "
                     "space='per_operand') (hwsim.mappers.loma), chain = SearchMapper(opt, cost='zigzag') (one chain "
                     "of levels); replay dE/dL = max per-layer deviation of hwsim's replay of ZigZag's mapping from "
                     "ZigZag's own figures; times: wall and CPU (user+sys) seconds of all layers (memo cleared; "
                     "repeated layer shapes searched once), loadavg = os.getloadavg() before each step"),
            "results": results}, indent=1) + "\n")
    print("E ratio / L ratio: hwsim per-operand search / ZigZag-LOMA (ZigZag's accounting, the mapping file's "
          "spatial mapping); chain E / chain L: hwsim's one-chain search (cost='zigzag'; also unrolls G). "
          "cpu x = ZigZag CPU s / hwsim per-operand search CPU s.")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
