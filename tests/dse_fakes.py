"""Test doubles for the DSE tests: a tiny arch preset file and a fast analytic evaluator (no engines)."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

TINY_ARCH = {
    "name": "tiny_systolic", "engine": "systolic", "clock_hz": 1.0e9, "technology_nm": 45,
    "memory": [
        {"name": "DRAM", "kind": "dram", "word_bits": 8, "read_bw_bytes_per_cycle": 16.0},
        {"name": "GLB", "kind": "sram", "size_bytes": 65536, "word_bits": 8},
    ],
    "compute": {"units": 256},
    "systolic": {"rows": 16, "cols": 16, "dataflow": "ws"},
}
MACS = 1_000_000


def write_tiny_arch(folder: Path) -> Path:
    """Write the tiny arch preset as YAML in ``folder`` and return its path."""
    path = Path(folder) / "tiny_systolic.yaml"
    path.write_text(yaml.safe_dump(TINY_ARCH))
    return path


def fake_evaluate(task: Any) -> dict[str, Any]:
    """Analytic stand-in for ``evaluate_point``: latency ~ MACs/PEs, energy grows with buffer and PEs."""
    rows, cols = task.arch["systolic"]["rows"], task.arch["systolic"]["cols"]
    glb = next(level for level in task.arch["memory"] if level["name"] == "GLB")["size_bytes"]
    density = float(task.params.get("recipe.density", 1.0))
    macs = MACS * density
    cycles = macs / (rows * cols) + rows + cols
    latency_s = cycles / task.arch["clock_hz"]
    energy_pj = macs * 1.0 + glb * 0.01 + rows * cols * 100.0
    area_mm2 = rows * cols * 0.001 + glb / 1e6
    power_mw = energy_pj / 1e12 / latency_s * 1e3
    objectives = {"latency_s": latency_s, "energy_pj": energy_pj, "area_mm2": area_mm2, "power_mw": power_mw,
                  "edp_pj_s": energy_pj * latency_s, "top1_agreement": density ** 0.25, "cycles": cycles,
                  "macs": macs}
    layers = {"columns": ["name", "op", "macs", "cycles", "latency_s", "energy_pj", "power_mw", "utilization",
                          "dram_bytes"],
              "rows": [[f"l{i}", "conv", macs / 2, cycles / 2, latency_s / 2, energy_pj / 2, power_mw, 0.5,
                        1000.0 * (i + 1)] for i in range(2)]}
    meta = {"clock_hz": task.arch["clock_hz"], "peak_macs_per_cycle": rows * cols, "dram_bw_bytes_per_cycle": 16.0}
    return {"objectives": objectives, "total": dict(objectives), "layers": layers, "meta": meta}


def slow_fake_evaluate(task: Any) -> dict[str, Any]:
    """``fake_evaluate`` taking ~50 ms, so a sweep can be killed part-way."""
    time.sleep(0.05)
    return fake_evaluate(task)


def failing_evaluate(task: Any) -> dict[str, Any]:
    """Fails for 32-row arrays (to test error records)."""
    if task.arch["systolic"]["rows"] == 32:
        raise ValueError("no mapping fits a 32-row array")
    return fake_evaluate(task)


def fake_spec(folder: Path, **changes: Any) -> dict[str, Any]:
    """A 2-recipe x 3-array x 3-buffer spec (27 grid points) on the tiny arch."""
    spec = {"name": "fake", "models": ["m"],
            "recipes": {"dense": None, "prune": {"template": {"steps": [{"method": "magnitude_prune",
                                                                         "density": "${density}"}]},
                                                 "params": {"density": [0.25, 0.5]}}},
            "arch": {"base": str(write_tiny_arch(folder)),
                     "params": {"systolic.rows": [8, 16, 32],
                                "memory.GLB.size_bytes": {"low": 16384, "high": 262144, "num": 3, "log": True,
                                                          "int": True}},
                     "link": {"systolic.cols": "systolic.rows"}},
            "objectives": ["latency", "energy"], "constraints": ["area_mm2 <= 1"]}
    spec.update(changes)
    return spec


def run_fake_sweep(folder: str, store_path: str, workers: int, sleep_s: float) -> None:
    """Entry point for subprocess tests: a 27-point fake sweep, each point taking ``sleep_s``."""
    import functools

    from hwsim.dse.runner import ProcessBackend, SerialBackend, run_sweep
    from hwsim.dse.store import ResultStore

    backend = ProcessBackend(workers) if workers > 1 else SerialBackend()
    with ResultStore(store_path) as store:
        run_sweep(fake_spec(Path(folder)), store, backend=backend,
                  evaluate=functools.partial(sleepy_evaluate, sleep_s=sleep_s))
    backend.close()


def sleepy_evaluate(task: Any, *, sleep_s: float) -> dict[str, Any]:
    time.sleep(sleep_s)
    return fake_evaluate(task)


def torch_probe_evaluate(task: Any) -> dict[str, Any]:
    """The real ``evaluate_point``, recording in ``meta`` whether this worker had imported torch."""
    from hwsim.dse.evaluate import evaluate_point

    result = evaluate_point(task)
    result["meta"].update(torch_imported="torch" in sys.modules, pid=os.getpid())
    return result


def worker_state() -> dict[str, Any]:
    """Worker job: what this worker process has loaded (torch? the fork server's warm-up?) and who started it."""
    state = {"torch": "torch" in sys.modules, "warm_torch": "hwsim.dse.warm_torch" in sys.modules,
             "pid": os.getpid(), "ppid": os.getppid(), "os_threads": len(os.listdir("/proc/self/task")),
             "gc_frozen": gc.get_freeze_count()}
    if state["torch"]:
        state["torch_threads"] = sys.modules["torch"].get_num_threads()
    return state
