"""Worker side of a sweep: evaluate one ``Task`` (a fully resolved design point) into a record.

A (model, recipe) pair is compressed and lowered once per worker and cached in memory; with a
``graph_dir`` the LayerGraph (and its fidelity figures) is also saved as JSON so other workers and
later runs load it without torch. Hardware-only variations then only call ``simulate_graph``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwsim.ir import LayerGraph

PERFECT_FIDELITY = {"top1_agreement": 1.0, "kl": 0.0, "nrmse": 0.0}
LAYER_COLUMNS = ("name", "op", "macs", "cycles", "latency_s", "energy_pj", "power_mw", "utilization",
                 "dram_bytes")
_TOTAL_METRICS = ("latency_s", "energy_pj", "power_mw", "peak_power_mw", "area_mm2", "edp_pj_s", "tops_per_w",
                  "utilization", "cycles", "macs", "inferences_per_s")
_GRAPHS: OrderedDict[str, tuple[LayerGraph, dict[str, float] | None]] = OrderedDict()
_GRAPH_CACHE_SIZE = 8


@dataclass(frozen=True)
class Task:
    """Everything a worker needs for one point (picklable, JSON-friendly)."""

    key: str
    graph_key: str
    params: dict[str, Any]
    model: str
    recipe_name: str
    recipe: Any                         # resolved recipe data, or None for the uncompressed model
    arch: dict[str, Any]                # full ArchSpec dict (overrides applied)
    batch: int = 1
    input_shape: tuple[int, ...] | None = None
    mapper: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] | None = None   # {batch, seed} when fidelity is measured
    graph_dir: str | None = None
    weights: str | None = None          # state_dict file for a zoo-name model (``--weights``)


EvaluateFn = Callable[[Task], dict[str, Any]]


def run_batch(evaluate: EvaluateFn, tasks: list[Task]) -> list[dict[str, Any]]:
    """Evaluate ``tasks`` in turn; a failing point becomes an ``error`` record instead of aborting."""
    out = []
    for task in tasks:
        start = time.perf_counter()
        base = {"key": task.key, "model": task.model, "recipe": task.recipe_name, "params": task.params}
        try:
            result = evaluate(task)
            out.append({**base, "status": "ok", **result, "seconds": time.perf_counter() - start})
        except Exception as err:  # noqa: BLE001 - recorded per point; the sweep goes on
            message = f"{type(err).__name__}: {err}"
            out.append({**base, "status": "error", "objectives": {}, "error": message,
                        "meta": {"traceback": traceback.format_exc(limit=6)},
                        "seconds": time.perf_counter() - start})
    return out


def evaluate_point(task: Task) -> dict[str, Any]:
    """The real evaluator: cached graph -> ``simulate_graph`` -> objectives, totals, per-layer rows."""
    from hwsim.models.arch import validate_arch
    from hwsim.simulate import simulate_graph

    graph, fidelity = cached_graph(task)
    arch = validate_arch(task.arch, origin=f"point {task.key[:8]}")
    result = simulate_graph(graph, arch, mapper=_make_mapper(task.mapper))
    total = result.total
    objectives = {m: float(total[m]) for m in _TOTAL_METRICS if m in total}
    objectives.update(fidelity or {})
    dram = arch.memory[0]
    rows = [[lr.name, lr.op, lr.macs, lr.cycles, lr.latency_s, lr.energy_pj, lr.power_mw, lr.utilization,
             _dram_bytes(lr, dram.name)] for lr in result.layers]
    meta = {"graph": task.graph_key, "arch": arch.name, "clock_hz": arch.clock_hz,
            "peak_macs_per_cycle": arch.peak_macs_per_cycle,
            "dram_bw_bytes_per_cycle": dram.read_bw_bytes_per_cycle}
    return {"objectives": objectives, "total": total, "meta": meta,
            "layers": {"columns": list(LAYER_COLUMNS), "rows": rows}}


def _dram_bytes(layer_result: Any, level: str) -> float:
    counts = layer_result.counts
    if counts is None:
        return 0.0
    return float(sum(a.total * a.word_bits / 8 for a in counts.accesses if a.level == level))


def _make_mapper(settings: dict[str, Any]) -> Any:
    """``{}``/``{kind: default}``: the engine's fixed mapping; ``{kind: search, ...}``: ``SearchMapper(...)``."""
    options = dict(settings)
    kind = options.pop("kind", "default")
    if kind == "default":
        return None
    from hwsim import mappers

    return mappers.SearchMapper(**options)


# ----- lowered-graph cache ---------------------------------------------------------------------------
def cached_graph(task: Task) -> tuple[LayerGraph, dict[str, float] | None]:
    """The task's LayerGraph and fidelity: memory cache, then ``graph_dir`` JSON, then build (torch)."""
    if task.graph_key in _GRAPHS:
        _GRAPHS.move_to_end(task.graph_key)
        return _GRAPHS[task.graph_key]
    saved = task.recipe is None and task.model.endswith(".json")      # already a saved graph: no copy
    path = Path(task.graph_dir) / f"graph-{task.graph_key}.json" if task.graph_dir and not saved else None
    if path is not None and path.is_file():
        data = json.loads(path.read_text())
        entry = (LayerGraph.from_json(data["graph"]), data.get("fidelity"))
    else:
        entry = build_graph(task)
        if path is not None:
            _save_atomic(path, {"graph": entry[0].to_json(), "fidelity": entry[1]})
    _GRAPHS[task.graph_key] = entry
    while len(_GRAPHS) > _GRAPH_CACHE_SIZE:
        _GRAPHS.popitem(last=False)
    return entry


def _save_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".graph-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(tmp, path)          # atomic: a racing worker sees the old or the new file, never half
    except OSError:
        pass                           # the cache is an optimisation (e.g. a remote worker's unwritable path)


def build_graph(task: Task) -> tuple[LayerGraph, dict[str, float] | None]:
    """Lower (and compress) the task's model; measure fidelity (and accuracy with labelled data) when asked."""
    from hwsim.simulate import resolve_graph

    if task.fidelity is None:
        return resolve_graph(task.model, batch=task.batch, input_shape=task.input_shape, recipe=task.recipe,
                             weights=task.weights), None
    from hwsim.compress.pipeline import measured_graph

    return measured_graph(task.model, task.recipe, weights=task.weights, data=task.fidelity.get("data"),
                          finetune_epochs=int(task.fidelity.get("finetune_epochs") or 0), batch=task.batch,
                          input_shape=task.input_shape, fidelity_batch=int(task.fidelity.get("batch", 32)),
                          seed=int(task.fidelity.get("seed", 0)))
