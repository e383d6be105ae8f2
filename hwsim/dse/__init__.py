"""Design-space exploration: sweep specs, samplers, runners (serial, process pool, Dask), the SQLite
results store, Pareto fronts, reports and compression ranking. Torch-free (workers import torch only
when they must compress a model).

    from hwsim.dse import load_spec, run_sweep, ResultStore, ProcessBackend, write_report
    with ResultStore("results.sqlite") as store:
        run_sweep(load_spec("configs/sweeps/example.yaml"), store, backend=ProcessBackend())
        write_report(store, "report.html")
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module defining it; imported on first use (PEP 562), so ``import hwsim.dse.warm_server``
# (the sweep CLI's first step) does not pull in NumPy, pydantic and the report code
_EXPORTS = {"front": "pareto", "hypervolume": "pareto", "pareto_mask": "pareto", "rank_recipes": "rank",
            "write_report": "report", "DaskBackend": "runner", "ProcessBackend": "runner",
            "SerialBackend": "runner", "SweepSummary": "runner", "as_backend": "runner", "run_sweep": "runner",
            "SweepSpec": "spec", "load_spec": "spec", "space_size": "spec", "ResultStore": "store"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsim.dse' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hwsim.dse.{module}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
