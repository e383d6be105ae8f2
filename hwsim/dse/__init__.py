"""Design-space exploration: sweep specs, samplers, runners (serial, process pool, Dask), the SQLite
results store, Pareto fronts, reports and compression ranking. Torch-free (workers import torch only
when they must compress a model).

    from hwsim.dse import load_spec, run_sweep, ResultStore, ProcessBackend, write_report
    with ResultStore("results.sqlite") as store:
        run_sweep(load_spec("configs/sweeps/example.yaml"), store, backend=ProcessBackend())
        write_report(store, "report.html")
"""

from __future__ import annotations

from hwsim.dse.pareto import front, hypervolume, pareto_mask
from hwsim.dse.rank import rank_recipes
from hwsim.dse.report import write_report
from hwsim.dse.runner import DaskBackend, ProcessBackend, SerialBackend, SweepSummary, as_backend, run_sweep
from hwsim.dse.spec import SweepSpec, load_spec, space_size
from hwsim.dse.store import ResultStore

__all__ = ["DaskBackend", "ProcessBackend", "ResultStore", "SerialBackend", "SweepSpec", "SweepSummary",
           "as_backend", "front", "hypervolume", "load_spec", "pareto_mask", "rank_recipes", "run_sweep",
           "space_size", "write_report"]
