"""Cold compile time of the SCALE-Sim memory-port kernels (CALC and USER), each in a fresh process.

    python benchmarks/bench_kernel_compile.py --label after --out benchmarks/results/kernel_compile.json

Each mode runs in its own process with an empty ``NUMBA_CACHE_DIR`` (a new temporary directory), so
Numba compiles everything the mode's first ``simulate_buffers`` call needs; the figure is that call's
wall and CPU time (imports excluded; measured separately). A second call in a second process on the
now-filled cache shows the cache-load cost. ``--out`` merges the run into the JSON under ``--label``
(earlier labels are kept, so a before/after pair lives in one file). The machine's 1-minute load is
recorded with each figure because the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

# one tiny layer per dataflow: the compile cost does not depend on the layer, and the run is negligible
_PROBE = """
import json, os, resource, sys, time
t0 = time.perf_counter()
from hwsim.models.systolic.buffers import simulate_buffers
from hwsim.models.systolic.compat import ScaleSimLayer
imported = time.perf_counter() - t0
layer = ScaleSimLayer("l", 6, 6, 3, 3, 2, 4, 1, 1)
cpu0, t1 = time.process_time(), time.perf_counter()
for dataflow in ("ws", "os", "is"):
    simulate_buffers(layer, rows=4, cols=4, dataflow=dataflow, sram_words=(300, 300, 100), interface=sys.argv[1],
                     fill_words_per_cycle=(4, 4), drain_words_per_cycle=4)
print(json.dumps({"import_s": imported, "first_call_wall_s": time.perf_counter() - t1,
                  "first_call_cpu_s": time.process_time() - cpu0}))
"""


def _run(mode: str, cache: Path) -> dict[str, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    load1 = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout) | {"load1_before": round(load1, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="run", help="key of this run in --out (e.g. before / after)")
    parser.add_argument("--modes", default="CALC,USER")
    parser.add_argument("--out", type=Path, help="merge the figures into this JSON under --label")
    args = parser.parse_args()
    figures = {}
    for mode in args.modes.split(","):
        cache = Path(tempfile.mkdtemp(prefix=f"hwsim-compile-{mode}-"))
        figures[mode] = {"cold": _run(mode, cache), "warm": _run(mode, cache)}
        print(mode, json.dumps(figures[mode]), flush=True)
    if args.out:
        report = json.loads(args.out.read_text()) if args.out.exists() else {
            "benchmark": "cold compile of the SCALE-Sim memory-port kernels (empty NUMBA_CACHE_DIR per mode)",
            "cpus": os.cpu_count(), "runs": {}}
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        report["runs"][args.label] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
                                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      "modes": figures}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
