"""Sweep throughput and memory: design points per second, local pool vs Dask, vs ZigZag, peak RSS.

    python benchmarks/bench_sweep.py                       # everything (a few minutes on 2 cores)
    python benchmarks/bench_sweep.py --memory-points 1000  # smaller memory run
    python benchmarks/bench_sweep.py --skip-dask --skip-memory

1. ResNet-18 x 3 recipes (dense, nm_2_4, int8) x 4 array sizes x 3 buffer sizes = 36 points on
   ``edge_tpu_like``: cold (compress + lower + fidelity once per recipe) and warm (graphs cached),
   on the local process pool and on a 2-worker Dask LocalCluster.
2. The 6 points ZigZag was timed on (research/zigzag.md §7: tpu-like, ResNet-18, PE array 16^2/32^2/64^2 x
   global buffer 512 KiB/2 MiB, 246 s wall for 6 points, ~41 s a point) on ``tpu_v1_like``, one process.
3. Peak RSS of the sweep process and of its workers for an N-point hardware-only sweep (default 10,000),
   against a sweep a tenth that size: flat memory means the two peaks are about equal.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from hwsim.dse.runner import DaskBackend, ProcessBackend, SerialBackend, run_sweep
from hwsim.dse.store import ResultStore

ZIGZAG_S_PER_POINT = 246.0 / 6        # research/zigzag.md §7: 246 s wall for 6 ResNet-18 points (ZigZag 3.9.1)
RECIPES = {"dense": None, "nm_2_4": "nm_2_4", "int8": "int8"}


def points_spec(name: str) -> dict:
    return {"name": name, "models": ["resnet18"], "recipes": RECIPES,
            "arch": {"base": "edge_tpu_like",
                     "params": {"systolic.rows": [16, 32, 64, 128],
                                "memory.SRAM.partition_bytes.W": [1048576, 2097152, 6291456]},
                     "link": {"systolic.cols": "systolic.rows"}},
            "objectives": ["latency", "energy", "fidelity"], "fidelity": {"batch": 8}}


def zigzag_spec() -> dict:
    return {"name": "zigzag6", "models": ["resnet18"],
            "arch": {"base": "tpu_v1_like", "params": {"systolic.rows": [16, 32, 64],
                                                       "memory.SRAM.partition_bytes.I": [524288, 2097152]},
                     "link": {"systolic.cols": "systolic.rows"}},
            "objectives": ["latency", "energy"]}


def timed(spec: dict, store_path: Path, backend, graph_dir: Path, chunk_size: int = 1) -> dict:
    with ResultStore(store_path) as store:
        summary = run_sweep(spec, store, backend=backend, graph_dir=str(graph_dir), chunk_size=chunk_size)
    return {"points": summary.evaluated, "failed": summary.failed, "seconds": round(summary.seconds, 2),
            "points_per_s": round(summary.evaluated / summary.seconds, 2)}


def warm_up(backend, folder: Path, workers: int) -> None:
    """A few other points first, so every worker has imported hwsim and loaded the Numba caches."""
    spec = points_spec("warmup")
    spec["recipes"] = {"dense": None}
    spec["arch"]["params"] = {"systolic.rows": [8 + 2 * i for i in range(2 * workers)]}
    timed(spec, folder / f"warmup-{type(backend).__name__}.sqlite", backend, folder / "graphs")


def throughput(folder: Path, workers: int, skip_dask: bool) -> dict:
    """Cold: compress + lower + fidelity per recipe inside the sweep; warm: graphs cached, workers warmed."""
    graphs = folder / "graphs"
    out = {}
    backend = ProcessBackend(workers)
    try:
        out["local_cold"] = timed(points_spec("cold"), folder / "cold.sqlite", backend, graphs)
    finally:
        backend.close()
    backend = ProcessBackend(workers)
    try:
        warm_up(backend, folder, workers)
        out["local_warm"] = timed(points_spec("warm"), folder / "warm.sqlite", backend, graphs)
    finally:
        backend.close()
    if not skip_dask:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            backend = DaskBackend(client)
            warm_up(backend, folder, workers)
            out["dask_warm"] = timed(points_spec("dask"), folder / "dask.sqlite", backend, graphs)
    return out


def zigzag_ratio(folder: Path) -> dict:
    graphs = folder / "graphs"
    first = timed(zigzag_spec(), folder / "zz-cold.sqlite", SerialBackend(), graphs)   # lowers resnet18 once
    warm = timed(zigzag_spec(), folder / "zz.sqlite", SerialBackend(), graphs)
    per_point = warm["seconds"] / max(warm["points"], 1)
    return {"hwsim_serial_cold": first, "hwsim_serial_warm": warm, "hwsim_s_per_point": round(per_point, 4),
            "zigzag_s_per_point": round(ZIGZAG_S_PER_POINT, 1),
            "speedup_vs_zigzag": round(ZIGZAG_S_PER_POINT / per_point, 0) if per_point else None}


def memory_spec(points: int) -> dict:
    rows = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    sizes = [65536 * k for k in range(1, points // (len(rows) * len(rows)) + 1)]
    return {"name": f"mem{points}", "models": ["resnet18"],
            "arch": {"base": "edge_tpu_like", "params": {"systolic.rows": rows, "systolic.cols": rows,
                                                         "memory.SRAM.partition_bytes.W": sizes}},
            "objectives": ["latency", "energy"]}


def peak_memory(folder: Path, points: int, workers: int) -> dict:
    """Run each size in a fresh interpreter so the peak is that sweep's own."""
    import subprocess
    import sys

    out = {}
    for n in (max(points // 10, 100), points):
        code = (f"import json, resource, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from bench_sweep import _memory_child; print(json.dumps(_memory_child({str(folder)!r}, {n}, {workers})))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[f"{n}_points"] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _memory_child(folder: str, points: int, workers: int) -> dict:
    backend = ProcessBackend(workers)
    try:
        result = timed(memory_spec(points), Path(folder) / f"mem{points}.sqlite", backend, Path(folder) / "graphs",
                       chunk_size=32)
    finally:
        backend.close()
    result["parent_peak_rss_mb"] = _vm_hwm_mb()
    result["worker_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def _vm_hwm_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited across fork+exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-points", type=int, default=10_000)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hwsim-bench-sweep-"))
    report = {"throughput": throughput(folder, args.workers, args.skip_dask), "zigzag_6_points": zigzag_ratio(folder)}
    if not args.skip_memory:
        report["memory"] = peak_memory(folder, args.memory_points, args.workers)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
