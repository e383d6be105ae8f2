"""Warm-cache ``hwsim simulate resnet18.json --arch edge_tpu_like``: the whole process, and where its time goes.

    python benchmarks/bench_cold_start.py                     # 7 runs, ~20 s
    python benchmarks/bench_cold_start.py --runs 11 --out benchmarks/results/cold_start.json

ResNet-18 is lowered once (torch, not timed) to a saved graph; one untimed run fills Numba's cache.
Each timed run is a fresh ``hwsim simulate`` process (wall and CPU from ``proctree``). One more run
under ``python -X importtime`` splits the time into imports by top-level package (self time summed
over each package's modules); the rest of the wall time is the simulation and printing (and, for
engines with Numba kernels, loading them: the physical systolic model of ``edge_tpu_like`` has none
since its fold sums became a closed form). Target (issue 20): <= 0.8 s wall on an idle machine.
CPU seconds (user + system of the process, ``RUSAGE_CHILDREN``) and the load average come with every
run: on shared cores the CPU time is the steadier figure.

Runs use the environment with ``PYTHONDONTWRITEBYTECODE`` dropped, as on a normal install (bytecode
compiled once; the sandbox sets it, which recompiles hwsim's ~40 imported modules in every process,
~0.1 s); ``--keep-bytecode-env`` measures with the environment as it is. ``hwsim --help`` is timed
too. Runs of the two commands alternate, and the load average is kept with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import measure  # noqa: E402

HWSIM = str(Path(sys.executable).with_name("hwsim"))


def import_breakdown(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Milliseconds of import self-time per top-level package for one run of ``command`` (a Python -m call)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "hwsim.cli", *command[1:]],
                         capture_output=True, text=True, check=True, env=env)
    per_package: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, name = _fields(line)
        per_package[name.split(".")[0]] += int(self_us) / 1000
    return {name: round(ms, 1) for name, ms in per_package.most_common(15)} | {
        "_total_ms": round(sum(per_package.values()), 1)}


def _fields(line: str) -> tuple[str, str]:
    """(self microseconds, module name) of one ``-X importtime`` line."""
    self_us, _cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
    return self_us, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--arch", default="edge_tpu_like")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--keep-bytecode-env", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE if set (hwsim's sources recompiled in every run)")
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.keep_bytecode_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    folder = Path(tempfile.mkdtemp(prefix="hwsim-bench-start-"))
    graph = folder / "resnet18.json"
    subprocess.run([HWSIM, "lower", "resnet18", "-o", str(graph)], check=True, capture_output=True, env=env)
    command = [HWSIM, "simulate", str(graph), "--arch", args.arch]
    help_command = [HWSIM, "--help"]
    measure(command, env=env)                                  # fills Numba's (and Python's bytecode) cache
    measure(help_command, env=env)
    runs, help_runs = [], []
    for _ in range(args.runs):
        runs.append(measure(command, env=env))
        help_runs.append(measure(help_command, env=env))
    walls = [r["wall_s"] for r in runs]
    summary = {"wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
               "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
               "peak_rss_mb": max(r["peak_tree_rss_mb"] for r in runs),
               "load1_during": [r["load1_before"] for r in runs], "target_wall_s": 0.8,
               "help_wall_s_median": statistics.median(r["wall_s"] for r in help_runs),
               "help_wall_s_min": min(r["wall_s"] for r in help_runs),
               "bytecode_cached": "PYTHONDONTWRITEBYTECODE" not in env,
               "imports_ms_by_package": import_breakdown(command, env)}
    print(json.dumps(summary, indent=1))
    if args.out:
        report = {"benchmark": "warm-cache hwsim simulate resnet18.json", "command": " ".join(sys.argv),
                  "measured": " ".join(command), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "cpus": os.cpu_count(), "summary": summary, "runs": runs, "help_runs": help_runs}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
