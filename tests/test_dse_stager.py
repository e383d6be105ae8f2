"""The sweep's stager (issue 20): the eager half of a build (compress, measure fidelity) in a torch-only
process, the lowering on a warm worker. Checked: a staged build gives the graph and fidelity a whole
build gives, what cannot be staged is built whole, the scheduler keeps one build per core with the
stager counted, and a parallel sweep that stages stores what a serial one stores."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import time

import pytest

from tests.conftest import tiny_graph

_PRUNE = {"name": "prune_half", "steps": [{"method": "magnitude_prune", "sparsity": 0.5}]}


def _task(tmp_path, recipe=_PRUNE, folder="graphs"):
    from hwsim.dse import graphcache
    from hwsim.dse.evaluate import Task

    graph_key = f"digits-{json.dumps(recipe, sort_keys=True)}"
    return Task(key="k", graph_key=graph_key, params={}, model="digits_cnn", recipe_name="prune", recipe=recipe,
                arch={}, fidelity={"batch": 8, "seed": 0}, graph_dir=str(tmp_path / folder),
                cache_key=graphcache.entry_key(graph_key))


def _entry_file(task):
    from hwsim.dse import graphcache

    return graphcache.entry_path(task.graph_dir, task.cache_key).read_text()


@pytest.mark.parametrize("recipe", [_PRUNE, None], ids=["pruned", "uncompressed"])
def test_a_staged_build_saves_the_entry_a_whole_build_saves(tmp_path, recipe):
    from hwsim.dse import evaluate

    staged_task, whole_task = _task(tmp_path, recipe, "staged"), _task(tmp_path, recipe, "whole")
    assert evaluate.can_stage(staged_task)
    staged = evaluate.stage_graph(staged_task)["staged"]
    assert staged is not None and os.path.isfile(staged) and "/staged/" in staged
    assert evaluate.prepare_graph(staged_task, staged) == {"built": True, "saved": True}
    assert not os.path.exists(staged)                                    # consumed by the lowering
    assert evaluate.prepare_graph(whole_task) == {"built": True, "saved": True}
    # byte-identical entries: same layers, operand statistics, compression report and fidelity
    assert _entry_file(staged_task) == _entry_file(whole_task)
    fidelity = json.loads(_entry_file(staged_task))["fidelity"]
    assert (fidelity["nrmse"] > 0) == (recipe is not None)


def test_a_staged_file_for_a_graph_already_cached_is_dropped(tmp_path):
    from hwsim.dse import evaluate, graphcache

    task = _task(tmp_path)
    staged = evaluate.stage_graph(task)["staged"]
    graphcache.save_entry(graphcache.entry_path(task.graph_dir, task.cache_key), (tiny_graph(), None))
    assert evaluate.stage_graph(task) == {"staged": None}               # cached meanwhile: nothing to stage
    assert evaluate.prepare_graph(task, staged) == {"built": False, "saved": True}
    assert not os.path.exists(staged)


def test_what_cannot_be_staged_is_left_for_a_whole_build(tmp_path, monkeypatch, tiny_graph_path):
    import torch

    from hwsim.compress import pipeline
    from hwsim.dse import evaluate
    from hwsim.dse.evaluate import Task

    class Hooked(torch.nn.Linear):
        """A module holding a closure, as a user's forward hook would: torch.save cannot pickle it."""

    module = Hooked(2, 2)
    module.hook = lambda x: x
    monkeypatch.setattr(pipeline, "measured_variant", lambda *a, **k: pipeline.Variant(
        module, "hooked", (1, 2), None, {"top1_agreement": 1.0}))
    task = _task(tmp_path)
    assert evaluate.stage_graph(task) == {"staged": None}
    assert list((tmp_path / "graphs" / "staged").iterdir()) == []        # no half-written file left
    # saved graphs and ONNX files are compressed without torch; a task without fidelity is built by resolve_graph
    saved = Task(key="k", graph_key="g", params={}, model=str(tiny_graph_path), recipe_name="p", recipe=_PRUNE,
                 arch={}, fidelity={"batch": 8}, graph_dir=str(tmp_path))
    assert not evaluate.can_stage(saved)
    assert not evaluate.can_stage(Task(**{**saved.__dict__, "model": "net.onnx"}))
    assert not evaluate.can_stage(Task(**{**saved.__dict__, "model": "digits_cnn", "fidelity": None}))
    assert evaluate.can_stage(Task(**{**saved.__dict__, "model": "digits_cnn"}))


def test_stale_staged_models_of_killed_sweeps_are_cleared(tmp_path):
    from hwsim.dse import graphcache

    folder = tmp_path / "staged"
    folder.mkdir()
    old, fresh = folder / "a.1.pt", folder / "b.2.pt"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert graphcache.clear_stale_staged(tmp_path) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["b.2.pt"]          # a live sweep's file stays
    assert graphcache.clear_stale_staged(tmp_path / "missing") == 0
    assert graphcache.clear_stale_staged(None) == 0


# ----- scheduling -------------------------------------------------------------------------------------------
class _ManualBackend:
    """Two workers and a stager whose jobs run only when the loop waits, oldest first (one per wait).

    Records every submission with the builds running at that moment, so the test sees the schedule.
    """

    workers = 2

    def __init__(self, fail_stage: float | None = None):
        self.jobs: list[tuple[cf.Future, str, object, tuple]] = []
        self.log: list[tuple] = []
        self.released = 0
        self.fail_stage = fail_stage

    def _add(self, where, fn, args):
        future: cf.Future = cf.Future()
        self.jobs.append((future, where, fn, args))
        return future

    def running(self, where, name):
        return sum(1 for f, w, fn, _ in self.jobs if w == where and fn.__name__ == name and not f.done())

    def submit(self, fn, *args):
        if fn.__name__ == "prepare_graph":
            task, staged = args
            self.log.append(("build", task.recipe_name, task.params.get("recipe.density"), staged,
                             self.running("pool", "prepare_graph"), self.running("stager", "stage_graph")))
        return self._add("pool", fn, args)

    def stage(self, fn, *args):
        self.log.append(("stage", args[0].recipe_name, args[0].params.get("recipe.density")))
        return self._add("stager", fn, args)

    def release_stager(self):
        self.released += 1

    def wait_any(self, futures):
        wanted = set(futures)
        future, where, fn, args = next(job for job in self.jobs if job[0] in wanted and not job[0].done())
        try:
            if where == "stager" and self.fail_stage == args[0].params.get("recipe.density", "dense"):
                raise ValueError("compression failed in the stager")
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 - handed to the loop through the future
            future.set_exception(err)
        return {future}

    def close(self):
        pass


def _fake_builds(monkeypatch, built):
    from hwsim.dse import graphcache, runner

    def stage_graph(task):
        return {"staged": f"staged-{task.params.get('recipe.density')}"}

    def prepare_graph(task, staged=None):
        built.append((task.params.get("recipe.density"), staged))
        graphcache.save_entry(graphcache.entry_path(task.graph_dir, task.cache_key), (tiny_graph(), None))
        return {"built": True}

    monkeypatch.setattr(runner, "stage_graph", stage_graph)
    monkeypatch.setattr(runner, "prepare_graph", prepare_graph)
    monkeypatch.setattr(runner, "can_stage", lambda task: True)


def test_the_stager_takes_builds_one_at_a_time_and_the_workers_one_fewer(tmp_path, monkeypatch):
    from hwsim.dse.runner import run_sweep
    from hwsim.dse.store import ResultStore
    from tests.dse_fakes import fake_evaluate, fake_spec

    built: list = []
    _fake_builds(monkeypatch, built)
    backend = _ManualBackend()
    with ResultStore(tmp_path / "a.sqlite") as store:
        summary = run_sweep(fake_spec(tmp_path), store, backend=backend, evaluate=fake_evaluate, share_graphs=True,
                            graph_dir=str(tmp_path / "graphs"))
    assert summary.evaluated == 27 and summary.failed == 0 and summary.graphs_built == 3
    # (kind, recipe, density, staged file, builds already running on the workers, stages running)
    assert backend.log[:5] == [
        ("stage", "prune", 0.25),                         # the first compressed build goes to the stager
        ("build", "prune", 0.5, None, 0, 1),              # with it at work, one worker takes the next build
        ("stage", "dense", None),                         # the stager takes the last one
        ("build", "prune", 0.25, "staged-0.25", 0, 1),    # the staged lowering waited for the free worker
        ("build", "dense", None, "staged-None", 1, 0),    # the stager is done: both workers may build
    ]
    assert len(backend.log) == 5 and sorted(map(str, built)) == sorted(
        map(str, [(0.5, None), (0.25, "staged-0.25"), (None, "staged-None")]))          # each graph once
    assert backend.released == 1                          # let go once nothing was left to stage


def test_a_stage_that_fails_is_built_whole_and_the_stager_stays(tmp_path, monkeypatch):
    from hwsim.dse.runner import run_sweep
    from hwsim.dse.store import ResultStore
    from tests.dse_fakes import fake_evaluate, fake_spec

    built: list = []
    _fake_builds(monkeypatch, built)
    backend = _ManualBackend(fail_stage=0.25)
    with ResultStore(tmp_path / "a.sqlite") as store:
        summary = run_sweep(fake_spec(tmp_path), store, backend=backend, evaluate=fake_evaluate, share_graphs=True,
                            graph_dir=str(tmp_path / "graphs"))
    assert summary.evaluated == 27 and summary.graphs_built == 3
    assert (0.25, None) in built                                   # its whole build ran on a worker
    assert ("stage", "dense", None) in backend.log                 # and the stager took the next build
    assert (None, "staged-None") in built


# ----- the real stager process ---------------------------------------------------------------------------------
def test_a_stager_stopped_while_it_warms_up_is_killed_at_once():
    from hwsim.dse import warm_server

    warm_server.start_stager()
    stager = warm_server._STAGER
    deadline = time.monotonic() + 60
    while not stager._processes and time.monotonic() < deadline:      # spawned on its warm-up job
        time.sleep(0.01)
    process = next(iter(stager._processes.values()))
    warm_server.stop_stager()
    process.join(timeout=30)
    assert process.exitcode == -signal.SIGTERM                       # not left to finish importing torch
    assert warm_server._STAGER is None
    warm_server.stop_stager()                                        # a second stop is a no-op


def test_a_parallel_sweep_that_stages_stores_what_a_serial_one_does(tmp_path):
    from hwsim.dse.runner import ProcessBackend, run_sweep
    from hwsim.dse.store import ResultStore

    class CountingBackend(ProcessBackend):
        staged = 0

        def stage(self, fn, *args):
            future = super().stage(fn, *args)
            self.staged += future is not None
            return future

    spec = {"name": "digits", "models": ["digits_cnn"],
            "recipes": {"dense": None, "prune": {"template": {"steps": [{"method": "magnitude_prune",
                                                                         "sparsity": "${sparsity}"}]},
                                                 "params": {"sparsity": [0.5, 0.8]}},
                        "int8": "int8"},
            "arch": {"base": "edge_tpu_like", "params": {"systolic.rows": [8, 16]}},
            "objectives": ["latency", "energy", "fidelity"]}
    stores = {}
    for label in ("serial", "j2"):
        backend = 1 if label == "serial" else CountingBackend(2, preload_torch=True)
        if label == "j2":
            backend.start()                                           # the fork server and the stager
        try:
            with ResultStore(tmp_path / f"{label}.sqlite") as store:
                summary = run_sweep(spec, store, backend=backend, graph_dir=str(tmp_path / f"graphs-{label}"))
                stores[label] = {r["key"]: (r["status"], r["objectives"], r["total"], r["layers"])
                                 for r in store.records()}
        finally:
            if label == "j2":
                backend.close()
        assert summary.evaluated == 8 and summary.failed == 0 and summary.graphs_built == 4
    assert backend.staged >= 1
    assert stores["j2"] == stores["serial"]
    assert not list((tmp_path / "graphs-j2" / "staged").iterdir())     # every staged model was lowered
