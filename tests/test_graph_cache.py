"""The content-addressed graph cache: one build per distinct graph, atomic entries, corrupt ones rebuilt,
a code change is a new key, and workers evaluating cached graphs never import torch."""

from __future__ import annotations

import json
import sys

import pytest

from hwsim.dse import evaluate, graphcache
from hwsim.dse import runner
from hwsim.dse.runner import ProcessBackend, SerialBackend, run_sweep
from hwsim.dse.store import ResultStore
from tests.conftest import tiny_graph
from tests.dse_fakes import fake_spec, torch_probe_evaluate


@pytest.fixture
def counted_builds(monkeypatch):
    """Replace the torch build with the tiny graph and count the builds per (model, recipe)."""
    calls: list[tuple[str, str]] = []

    def build(task):
        calls.append((task.model, task.recipe_name))
        if task.recipe_name == "broken":
            raise ValueError("no such layer")
        return tiny_graph(), {"top1_agreement": 0.5}

    monkeypatch.setattr(evaluate, "build_graph", build)
    evaluate._GRAPHS.clear()
    yield calls
    evaluate._GRAPHS.clear()


def test_each_graph_is_built_once_per_sweep_and_never_again(tmp_path, counted_builds, private_graph_cache):
    spec = fake_spec(tmp_path)                      # 3 graphs (dense, prune 0.25, prune 0.5) x 9 arch points
    with ResultStore(tmp_path / "a.sqlite") as store:
        summary = run_sweep(spec, store)
    assert summary.evaluated == 27 and summary.graphs_built == 3
    assert sorted(counted_builds) == [("m", "dense"), ("m", "prune"), ("m", "prune")]
    assert graphcache.describe(private_graph_cache)["entries"] == 3
    evaluate._GRAPHS.clear()                        # a new process: only the files remain
    with ResultStore(tmp_path / "b.sqlite") as store:
        again = run_sweep(spec, store)
        fidelity = {r["objectives"]["top1_agreement"] for r in store.records()}
    assert again.evaluated == 27 and again.graphs_built == 0 and len(counted_builds) == 3
    assert fidelity == {0.5}                        # the saved fidelity figures came back with the graphs


def test_a_failed_build_fails_its_points_once_and_not_the_others(tmp_path, counted_builds):
    spec = fake_spec(tmp_path, recipes={"dense": None, "broken": {"steps": [{"method": "magnitude_prune"}]}})
    with ResultStore(tmp_path / "a.sqlite") as store:
        summary = run_sweep(spec, store)
        errors = [r["error"] for r in store.records(status="error")]
    assert summary.evaluated == 9 and summary.failed == 9
    assert counted_builds.count(("m", "broken")) == 1
    assert set(errors) == {"building the graph of m (broken): ValueError: no such layer"}


def test_corrupt_or_truncated_entry_is_rebuilt_not_an_error(tmp_path, counted_builds, private_graph_cache):
    spec = fake_spec(tmp_path, recipes={"dense": None})
    with ResultStore(tmp_path / "a.sqlite") as store:
        run_sweep(spec, store)
    (entry,) = private_graph_cache.glob("graph-*.json")
    good = entry.read_text()
    for bad in (good[: len(good) // 2], "not json", json.dumps({"graph": {"layers": 3}}), '{"fidelity": 1}'):
        entry.write_text(bad)
        evaluate._GRAPHS.clear()
        with ResultStore(tmp_path / "b.sqlite") as store:
            summary = run_sweep(spec, store, retry_errors=True)
        assert summary.failed == 0
        assert graphcache.load_entry(entry) is not None           # replaced by a whole, loadable entry
        (tmp_path / "b.sqlite").unlink()
    assert len(counted_builds) == 1 + 4


def test_entries_are_written_atomically_and_unwritable_is_not_an_error(tmp_path):
    path = tmp_path / "c" / "graph-k.json"
    assert graphcache.save_entry(path, (tiny_graph(), None))
    assert [p.name for p in path.parent.iterdir()] == ["graph-k.json"]          # no temporary file left
    graph, fidelity = graphcache.load_entry(path)
    assert fidelity is None and graph.to_json() == tiny_graph().to_json()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert graphcache.save_entry(blocker / "graph-k.json", (tiny_graph(), None)) is False


def test_code_version_is_a_hash_of_the_sources(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(graphcache, "_SOURCE_PACKAGES", ("fakepkg",))
    graphcache.code_version.cache_clear()
    try:
        first, first_key = graphcache.code_version(), graphcache.entry_key("g")
        (package / "__init__.py").write_text("X = 2\n")
        graphcache.code_version.cache_clear()
        assert graphcache.code_version() != first and graphcache.entry_key("g") != first_key
        (package / "__init__.py").write_text("X = 1\n")
        graphcache.code_version.cache_clear()
        assert graphcache.code_version() == first                  # content, not modification time
    finally:
        graphcache.code_version.cache_clear()


def test_builders_are_recycled_only_before_a_long_tail(tmp_path, counted_builds, monkeypatch):
    class Recycling(SerialBackend):
        recycled = 0

        def recycle(self, *, idle: bool = False) -> None:
            self.recycled += 1

    short, long = Recycling(), Recycling()
    with ResultStore(tmp_path / "a.sqlite") as store:
        run_sweep(fake_spec(tmp_path), store, backend=short)          # 27 points: < 100 left per worker
    monkeypatch.setattr(runner, "_RECYCLE_MIN", 0)
    evaluate._GRAPHS.clear()
    with ResultStore(tmp_path / "b.sqlite") as store:
        run_sweep(fake_spec(tmp_path, name="other"), store, backend=long, graph_dir=str(tmp_path / "g2"))
    assert short.recycled == 0 and long.recycled >= 1


def test_pool_workers_on_cached_graphs_never_import_torch(tmp_path, private_graph_cache, monkeypatch):
    monkeypatch.setattr(runner, "_RECYCLE_MIN", 0)       # recycle after the build even for this short sweep
    spec = {"name": "digits", "models": ["digits_cnn"],
            "arch": {"base": "edge_tpu_like", "params": {"systolic.rows": [8, 16, 32, 64]}},
            "objectives": ["latency", "energy"]}
    backend = ProcessBackend(2)
    try:
        with ResultStore(tmp_path / "a.sqlite") as store:
            first = run_sweep(spec, store, backend=backend, evaluate=torch_probe_evaluate, share_graphs=True)
            first_meta = [r["meta"] for r in store.records()]
        with ResultStore(tmp_path / "b.sqlite") as store:
            second = run_sweep(spec, store, backend=backend, evaluate=torch_probe_evaluate, share_graphs=True)
            second_meta = [r["meta"] for r in store.records()]
    finally:
        backend.close()
    assert first.evaluated == second.evaluated == 4
    assert first.graphs_built == 1 and second.graphs_built == 0
    # the build ran in a worker that imported torch; the pool was then recycled, so no point saw torch
    assert [m["torch_imported"] for m in first_meta + second_meta] == [False] * 8
