"""A 10,000-point hardware-only ResNet-18 sweep with ``-j 2``: peak RSS of the whole process tree and points/hour.

    python benchmarks/bench_sweep_memory.py                               # 10,000 points, cold then warm cache
    python benchmarks/bench_sweep_memory.py --points 1000 --out /tmp/m.json

The sweep is the real CLI (``hwsim sweep SPEC -j 2 --chunk-size 32 -q``) on ``edge_tpu_like``
(array rows x cols x filter-SRAM size grid, ``bench_sweep.memory_spec``), measured by ``proctree``:
the summed RSS of the parent and every worker, sampled every 50 ms, with a timeline every 5 s so
flat memory over the run is visible. ``cold``: an empty graph cache, so one worker lowers ResNet-18
with torch first (the pool is then recycled); ``warm``: the same sweep again into a new store, the
graph loaded from the cache by workers that never import torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep import memory_spec  # noqa: E402
from proctree import measure  # noqa: E402

HWSIM = str(Path(sys.executable).with_name("hwsim"))


def run(folder: Path, spec_path: Path, label: str, cache: Path, workers: int, chunk: int) -> dict:
    env = {**os.environ, "HWSIM_GRAPH_CACHE_DIR": str(cache)}
    command = [HWSIM, "sweep", str(spec_path), "--store", str(folder / f"{label}.sqlite"), "-j", str(workers),
               "--chunk-size", str(chunk), "-q"]
    result = measure(command, env=env, timeline_s=5.0)
    if result["returncode"] != 0:
        raise SystemExit(f"{label}: hwsim sweep failed: {result['stderr_tail']}")
    evaluated = int(result["stderr_tail"][0].split()[0]) if result["stderr_tail"] else 0
    result["points"] = evaluated
    result["points_per_hour"] = round(evaluated / result["wall_s"] * 3600)
    print(f"{label}: {evaluated} points in {result['wall_s']} s wall ({result['points_per_hour']:,} points/h), "
          f"{result['cpu_s']} s CPU, tree peak {result['peak_tree_rss_mb']} MB, load {result['load1_before']}",
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hwsim-bench-memory-"))
    spec_path = folder / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(memory_spec(args.points)))
    cache = folder / "graph-cache"
    runs = {label: run(folder, spec_path, label, cache, args.workers, args.chunk_size) for label in ("cold", "warm")}
    report = {"benchmark": f"{args.points}-point hardware-only ResNet-18 sweep, -j {args.workers}",
              "command": " ".join(sys.argv), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "targets": {"peak_tree_rss_mb": "< 500", "points_per_hour": ">= 100000"},
              "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
