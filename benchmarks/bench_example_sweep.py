"""The shipped example sweep (configs/sweeps/example.yaml, 60 points, 5 graphs) serially and with ``-j 2``.

    python benchmarks/bench_example_sweep.py                  # cold graph cache, 2 repeats, ~3 min
    python benchmarks/bench_example_sweep.py --repeats 3 --out benchmarks/results/example_sweep.json

Each run is the real CLI (``hwsim sweep ... -q``) in a fresh process tree, measured by ``proctree``
(wall and CPU of the whole tree), with an empty graph cache (``HWSIM_GRAPH_CACHE_DIR`` pointed at a
new folder; Numba's kernel cache stays warm) so both modes build all five graphs. A ``warm`` run then
repeats ``-j 2`` on the filled cache: a second sweep on the same machine. The timed runs are not
sampled: sampling every process's RSS 20 times a second costs CPU that a ``-j 2`` run on 2 cores
would otherwise use (in one session a sampled ``-j 2`` run took 7.35 s, four unsampled 6.85-7.26 s). One
further run of each mode is sampled, for the tree's peak summed RSS and the CPU of each process. The
serial and parallel runs alternate so a change in machine load hits both; the load average is
recorded with every run (the cores may be shared). Each ``-j 2`` store is compared point by point
with the serial one (objectives, totals, per-layer rows): the figures are only worth comparing if
the results are identical. ``PYTHONDONTWRITEBYTECODE`` is dropped from the runs' environment (a
normal install has its bytecode compiled; the sandbox sets it, which recompiles hwsim's sources in
every process).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "configs" / "sweeps" / "example.yaml"
HWSIM = str(Path(sys.executable).with_name("hwsim"))


def stored(path: Path) -> dict[str, tuple]:
    """Every point of a store: key -> (status, objectives, total, layers)."""
    with sqlite3.connect(path) as conn:
        return {key: (status, *(json.loads(v) if v else None for v in values)) for key, status, *values in
                conn.execute("SELECT key, status, objectives, total, layers FROM points")}


def run(folder: Path, label: str, workers: int, cache: Path, *, sampled: bool = False) -> dict:
    """One sweep; ``sampled``: also the tree's peak RSS and per-process CPU (the sampler costs CPU)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["HWSIM_GRAPH_CACHE_DIR"] = str(cache)
    store = folder / f"{label}.sqlite"
    result = measure([HWSIM, "sweep", str(SPEC), "--store", str(store), "-j", str(workers), "-q"], env=env,
                     interval=0.05 if sampled else None)
    if result["returncode"] != 0:
        raise SystemExit(f"{label}: hwsim sweep failed: {result['stderr_tail']}")
    result["store"] = str(store)
    memory = f", {result['peak_tree_rss_mb']} MB tree peak" if sampled else ""
    print(f"{label}: {result['wall_s']} s wall, {result['cpu_s']} s CPU{memory}, load {result['load1_before']}",
          flush=True)
    return result


def wait_for_quiet(max_load: float | None, timeout_s: float = 120.0) -> None:
    """Sleep until the 1-minute load average is below ``max_load`` (or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    while max_load is not None and os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(2.0)


def _idle_estimate(sampled: dict[str, dict]) -> dict[str, float]:
    serial = sampled["serial"]["cpu_s"]
    parallel = sampled["j2"]["cpu_s_root"] + sampled["j2"]["cpu_s_longest_chain_below_root"]
    chain = sampled["j2"]["cpu_s_longest_chain_below_root"]
    return {"serial_cpu_s_best": serial, "j2_parent_plus_longest_chain_cpu_s_best": round(parallel, 2),
            "j2_longest_chain_cpu_s_best": chain, "ratio": round(serial / parallel, 2),
            "ratio_without_parent": round(serial / chain, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--max-load", type=float, default=None,
                        help="before each run wait (up to 2 min) for the 1-minute load average to drop below this")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hwsim-bench-example-"))
    runs: dict[str, list[dict]] = {"serial": [], "j2": [], "j2_warm_cache": []}
    for i in range(args.repeats):
        order = ("serial", "j2") if i % 2 == 0 else ("j2", "serial")      # alternate: drifting load hits both
        for label in order:
            wait_for_quiet(args.max_load)
            if label == "serial":
                runs["serial"].append(run(folder, f"serial{i}", 1, folder / f"cache-serial{i}"))
            else:
                runs["j2"].append(run(folder, f"j2-{i}", 2, folder / f"cache-j2-{i}"))
        wait_for_quiet(args.max_load)
        runs["j2_warm_cache"].append(run(folder, f"j2warm-{i}", 2, folder / f"cache-j2-{i}"))
    # one more run of each, sampled for memory and per-process CPU (not timed: the sampler takes CPU)
    sampled = {}
    for label, workers in (("serial", 1), ("j2", 2)):
        wait_for_quiet(args.max_load)
        sampled[label] = run(folder, f"{label}-sampled", workers, folder / f"cache-{label}-sampled", sampled=True)
    wait_for_quiet(args.max_load)
    sampled["j2_warm_cache"] = run(folder, "j2warm-sampled", 2, folder / "cache-j2-sampled", sampled=True)

    def best(label: str, key: str) -> float:
        return min(r[key] for r in runs[label])

    reference = stored(Path(runs["serial"][0]["store"]))
    identical = all(stored(Path(r["store"])) == reference
                    for r in [*(r for rs in runs.values() for r in rs), *sampled.values()])
    summary = {
        "results_identical_to_serial": identical,
        "points": len(reference),
        "wall_s": {label: {"best": best(label, "wall_s"), "median": statistics.median(r["wall_s"] for r in rs)}
                   for label, rs in runs.items()},
        "cpu_s": {label: {"best": best(label, "cpu_s"), "median": statistics.median(r["cpu_s"] for r in rs)}
                  for label, rs in runs.items()},
        "load1_before": {label: [r["load1_before"] for r in rs] for label, rs in runs.items()},
        "speedup_wall_j2_vs_serial_best": round(best("serial", "wall_s") / best("j2", "wall_s"), 2),
        "speedup_wall_j2_vs_serial_median": round(statistics.median(r["wall_s"] for r in runs["serial"])
                                                  / statistics.median(r["wall_s"] for r in runs["j2"]), 2),
        "cpu_j2_over_serial": round(best("j2", "cpu_s") / best("serial", "cpu_s"), 2),
        "sampled_runs_wall_s": {label: r["wall_s"] for label, r in sampled.items()},
        "peak_tree_rss_mb": {label: r["peak_tree_rss_mb"] for label, r in sampled.items()},
        # where the CPU went, per process of the sampled runs (parent, fork server, stager, workers, resource
        # tracker): with a core per worker the busiest chain bounds the wall time on an otherwise idle machine
        "cpu_s_per_process": {label: r["cpu_s_per_process"] for label, r in sampled.items()},
        # CPU-time model of an idle 2-core machine: serial = its CPU; -j 2 = the parent's CPU (upper bound:
        # part of it overlaps the workers) + the longest chain below it (fork server + the busiest worker)
        "idle_estimate": _idle_estimate(sampled),
    }
    report = {"benchmark": "example sweep serial vs -j 2", "command": " ".join(sys.argv),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "summary": summary, "runs": runs, "sampled_runs": sampled}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
