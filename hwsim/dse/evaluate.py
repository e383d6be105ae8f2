"""Worker side of a sweep: evaluate one ``Task`` (a fully resolved design point) into a record.

A (model, recipe) pair is compressed and lowered once (``prepare_graph``, sent by the runner to one
worker; or split in two, ``stage_graph`` compressing and measuring it in the sweep's stager and
``prepare_graph`` lowering what it staged) and saved as JSON in the shared, content-addressed
``graph_dir`` (``graphcache``); every worker then loads it without torch and keeps a few graphs in
memory. Hardware-only variations only call ``simulate_graph``.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from hwsim.dse import graphcache
from hwsim.dse.graphcache import Entry

PERFECT_FIDELITY = {"top1_agreement": 1.0, "kl": 0.0, "nrmse": 0.0}
LAYER_COLUMNS = ("name", "op", "macs", "cycles", "latency_s", "energy_pj", "power_mw", "utilization",
                 "dram_bytes")
_TOTAL_METRICS = ("latency_s", "energy_pj", "power_mw", "peak_power_mw", "area_mm2", "edp_pj_s", "tops_per_w",
                  "utilization", "cycles", "macs", "inferences_per_s")
_GRAPHS: OrderedDict[str, Entry] = OrderedDict()
_GRAPH_CACHE_SIZE = 8
# torch threads while a graph is built: a convolution's rounding depends on how many threads share it,
# and quantization amplifies that (int8 ResNet-18's logit NRMSE moves in the 3rd digit between 1 and 2
# threads), so a build uses the same count whatever the core count or ``-j``: a cached graph and its
# fidelity are then the same whichever process built it, and a parallel sweep stores what a serial one does
BUILD_TORCH_THREADS = 1


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
    graph_dir: str | None = None           # the shared graph cache (``graphcache``); None: build in memory only
    weights: str | None = None             # state_dict file for a zoo-name model (``--weights``)
    cache_key: str | None = None           # the graph's entry in ``graph_dir`` (inputs + code version)


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
             lr.bytes_at(dram.name)] for lr in result.layers]
    meta = {"graph": task.graph_key, "arch": arch.name, "clock_hz": arch.clock_hz,
            "peak_macs_per_cycle": arch.peak_macs_per_cycle,
            "dram_bw_bytes_per_cycle": dram.read_bw_bytes_per_cycle}
    return {"objectives": objectives, "total": total, "meta": meta,
            "layers": {"columns": list(LAYER_COLUMNS), "rows": rows}}


def _make_mapper(settings: dict[str, Any]) -> Any:
    """``{}``/``{kind: default}``: the engine's fixed mapping; ``{kind: search, ...}``: ``SearchMapper(...)``."""
    options = dict(settings)
    kind = options.pop("kind", "default")
    if kind == "default":
        return None
    from hwsim import mappers

    return mappers.SearchMapper(**options)


# ----- lowered-graph cache ---------------------------------------------------------------------------
def cached_graph(task: Task) -> Entry:
    """The task's LayerGraph and fidelity: memory cache, then the shared JSON cache, then build (torch)."""
    if task.graph_key in _GRAPHS:
        _GRAPHS.move_to_end(task.graph_key)
        return _GRAPHS[task.graph_key]
    path = _cache_path(task)
    entry = graphcache.load_entry(path) if path is not None else None
    if entry is None:                      # missing or corrupt: build it (and replace a corrupt file)
        entry = build_graph(task)
        if path is not None:
            graphcache.save_entry(path, entry)
    _remember(task.graph_key, entry)
    return entry


def prepare_graph(task: Task, staged: str | None = None) -> dict[str, Any]:
    """Make sure the task's graph is in the shared cache (build and save it unless a loadable entry exists).

    The sweep runner sends one of these per distinct graph to one worker and holds that graph's points
    until it returns, so no two workers build the same graph. ``staged``: a file from ``stage_graph``
    holding the graph's compressed model and fidelity, so only the lowering is left (the file is removed).
    Returns ``{"built": bool, "saved": bool}``.
    """
    path = _cache_path(task)
    if path is None:
        return {"built": False, "saved": False}
    entry = graphcache.load_entry(path)
    if entry is not None:
        if staged is not None:
            Path(staged).unlink(missing_ok=True)
        _remember(task.graph_key, entry)
        return {"built": False, "saved": True}
    entry = build_graph(task) if staged is None else _lower_staged(staged)
    _remember(task.graph_key, entry)
    return {"built": True, "saved": graphcache.save_entry(path, entry)}


def can_stage(task: Task) -> bool:
    """True when ``stage_graph`` can take the eager half of the task's build (a torch model measured for fidelity)."""
    return needs_build(task) and task.fidelity is not None and not task.model.endswith((".json", ".onnx"))


def stage_graph(task: Task) -> dict[str, Any]:
    """The eager half of a build: compress the model, measure its fidelity, save both for ``prepare_graph``.

    Runs in a process that imported torch but not ``torch.export`` (the sweep's stager), so a build
    starts before the fork server's warm-up is over. Returns ``{"staged": path}``, or ``{"staged": None}``
    when there is nothing to stage (the graph is cached, or the model is a saved graph) or the variant
    cannot be saved (not picklable, or the cache is read-only): ``prepare_graph`` then builds it whole.
    """
    import pickle

    import torch

    from hwsim.compress.pipeline import measured_variant

    if _cache_path(task) is None or graphcache.has_entry(task.graph_dir, task.cache_key or task.graph_key):
        return {"staged": None}
    with _build_threads():
        variant = measured_variant(task.model, task.recipe, weights=task.weights, **_fidelity_options(task))
    if variant is None:
        return {"staged": None}
    staged = graphcache.staged_path(task.graph_dir, task.cache_key or task.graph_key)
    tmp = staged.with_suffix(".tmp")
    try:
        staged.parent.mkdir(parents=True, exist_ok=True)
        torch.save(variant, tmp)
        os.replace(tmp, staged)
    except (pickle.PicklingError, AttributeError, TypeError, OSError):   # e.g. a hook closure: built whole
        tmp.unlink(missing_ok=True)
        return {"staged": None}
    return {"staged": str(staged)}


def _lower_staged(staged: str) -> Entry:
    """Load a staged ``Variant`` (removing its file) and lower it."""
    import torch

    from hwsim.compress.pipeline import lower_variant

    try:
        variant = torch.load(staged, weights_only=False)     # written by this sweep's stager, not user input
    finally:
        Path(staged).unlink(missing_ok=True)
    with _build_threads():
        return lower_variant(variant), variant.fidelity


def needs_build(task: Task) -> bool:
    """True when the task's graph comes from the shared cache (a saved graph without a recipe is read as is)."""
    return task.graph_dir is not None and not _is_saved_graph(task)


def _is_saved_graph(task: Task) -> bool:
    return task.recipe is None and task.model.endswith(".json")


def _cache_path(task: Task) -> Path | None:
    if not needs_build(task):
        return None
    return graphcache.entry_path(task.graph_dir, task.cache_key or task.graph_key)


def _remember(graph_key: str, entry: Entry) -> None:
    _GRAPHS[graph_key] = entry
    while len(_GRAPHS) > _GRAPH_CACHE_SIZE:
        _GRAPHS.popitem(last=False)


def build_graph(task: Task) -> Entry:
    """Lower (and compress) the task's model; measure fidelity (and accuracy with labelled data) when asked.

    Torch runs on ``BUILD_TORCH_THREADS`` threads meanwhile (the same numbers in every process); a saved
    graph (``.json``) is edited without torch.
    """
    if task.model.endswith(".json"):
        return _build_graph(task)
    with _build_threads():
        return _build_graph(task)


@contextmanager
def _build_threads() -> Iterator[None]:
    """Torch on ``BUILD_TORCH_THREADS`` threads inside the block (the count every build uses)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_TORCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fidelity_options(task: Task) -> dict[str, Any]:
    fidelity = task.fidelity or {}
    return {"data": fidelity.get("data"), "finetune_epochs": int(fidelity.get("finetune_epochs") or 0),
            "batch": task.batch, "input_shape": task.input_shape, "fidelity_batch": int(fidelity.get("batch", 32)),
            "seed": int(fidelity.get("seed", 0))}


def _build_graph(task: Task) -> Entry:
    from hwsim.simulate import resolve_graph

    if task.fidelity is None:
        return resolve_graph(task.model, batch=task.batch, input_shape=task.input_shape, recipe=task.recipe,
                             weights=task.weights), None
    from hwsim.compress.pipeline import measured_graph

    return measured_graph(task.model, task.recipe, weights=task.weights, **_fidelity_options(task))
