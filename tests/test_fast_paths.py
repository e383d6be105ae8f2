"""The everyday paths stay lean (issue 20): what ``hwsim simulate graph.json`` and ``hwsim --help`` import,
the networkx-free LayerGraph, libyaml parsing, reference logits computed once, and graph builds that
give the same numbers in every process. No timed asserts: each test checks what is done, not how fast."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from importlib import resources

import pytest
import yaml

from hwsim import _yaml
from hwsim.errors import ConfigError
from hwsim.ir import Layer, LayerGraph, Op
from tests.conftest import tiny_graph

# never needed to simulate a saved graph (scipy's top level is imported by Numba's version check only)
_HEAVY = ("torch", "pandas", "networkx", "scipy.linalg", "scipy.sparse", "scipy.stats", "optuna", "dask",
          "distributed", "plotly", "matplotlib", "sklearn", "numpy.f2py", "onnx")


def _modules_after(argv: list[str]) -> dict:
    """Run the ``hwsim`` CLI with ``argv`` in a fresh interpreter; the modules it imported (and a BLAS check)."""
    code = (
        "import json, sys\n"
        "from hwsim.cli import main\n"
        f"sys.argv = ['hwsim', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "arraymath = sys.modules.get('numba.np.arraymath')\n"
        "restored = arraymath is None or arraymath.ensure_blas is sys.modules['numba.np.linalg'].ensure_blas\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'blas_check_restored': restored}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_simulate_graph_json_imports_only_what_it_uses(tiny_graph_path):
    seen = _modules_after(["simulate", str(tiny_graph_path), "--arch", "edge_tpu_like", "--quiet"])
    modules = set(seen["modules"])
    assert {"pydantic", "hwsim.models.systolic.physical"} <= modules       # it did simulate
    assert sorted(m for m in modules if m.split(".")[0] in _HEAVY or m in _HEAVY) == []
    # the physical systolic model sums its folds in closed form: no Numba (its import + target set-up ~0.5 s)
    assert sorted(m for m in modules if m.split(".")[0] in ("numba", "llvmlite")) == []


def test_simulate_with_numba_kernels_restores_the_blas_check(tiny_graph_path):
    seen = _modules_after(["simulate", str(tiny_graph_path), "--arch", "eyeriss", "--quiet"])
    modules = set(seen["modules"])
    assert {"numba", "numba.np.arraymath", "hwsim.models.spatial"} <= modules     # a Numba kernel ran
    assert sorted(m for m in modules if m.split(".")[0] in _HEAVY or m in _HEAVY) == []
    assert seen["blas_check_restored"]          # hwsim._numba put Numba's real BLAS check back


def test_help_imports_no_numerics():
    proc = subprocess.run([sys.executable, "-c", "import json, sys\nfrom hwsim.cli import main\n"
                           "sys.argv = ['hwsim', '--help']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
                           "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "simulate" in proc.stdout and "sweep" in proc.stdout
    top = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert top & {"numpy", "pydantic", "numba", "networkx", "yaml", "scipy", "torch"} == set()


def test_hwsim_simulate_stays_the_function():
    code = ("import hwsim\nfrom hwsim.simulate import simulate_graph\nimport hwsim.simulate\n"
            "assert callable(hwsim.simulate) and hwsim.simulate.__module__ == 'hwsim.simulate'\n"
            "from hwsim import simulate\nassert simulate is hwsim.simulate\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ----- LayerGraph without networkx -------------------------------------------------------------------
def _random_dag(seed: int) -> LayerGraph:
    """Layers added in a random topological order with random earlier inputs (several edges per node)."""
    rng = random.Random(seed)
    graph = LayerGraph(f"g{seed}")
    names: list[str] = []
    for i in range(rng.randint(1, 25)):
        name = f"n{rng.randint(0, 10**6)}_{i}"
        inputs = rng.sample(names, k=min(len(names), rng.randint(0, 3)))
        graph.add_layer(Layer(name, Op.ELTWISE, K=1 + i), inputs)
        names.append(name)
    return graph


@pytest.mark.parametrize("seed", range(20))
def test_plain_layer_graph_orders_and_saves_like_networkx(seed):
    import networkx as nx

    lazy = _random_dag(seed)
    saved = lazy.to_json()
    order = [layer.name for layer in lazy.layers()]
    assert lazy._nx is None                                  # nothing above built the DiGraph
    digraph = lazy.graph                                     # now build it: the same graph, the same answers
    index = {name: i for i, name in enumerate(digraph.nodes)}
    assert order == list(nx.lexicographical_topological_sort(digraph, key=index.__getitem__))
    assert lazy.to_json() == saved and [layer.name for layer in lazy.layers()] == order
    assert LayerGraph.from_json(saved) == lazy
    assert [n for n in digraph.nodes] == [entry["name"] for entry in saved["layers"]]


def test_edits_through_the_digraph_are_the_graph():
    graph = tiny_graph()
    mapped = graph.map_layers(lambda layer: layer.with_changes(act_bits=4))       # plain copy
    assert [layer.act_bits for layer in mapped] == [4] * 5 and mapped._nx is None
    graph.graph.remove_edge("conv", "add")                                        # networkx from here on
    assert graph.predecessors("add") == ["dw"]
    assert graph.to_json()["layers"][2]["inputs"] == ["dw"]
    graph.add_layer(Layer("head", Op.LINEAR, K=2, C=10), ["fc"])
    assert [layer.name for layer in graph.map_layers(lambda layer: layer)][-1] == "head"
    assert len(graph) == 6 and graph["head"].K == 2


def test_a_cycle_in_a_saved_graph_is_named():
    data = tiny_graph().to_json()
    data["layers"][0]["inputs"] = ["fc"]                     # conv <- fc: a cycle
    graph = LayerGraph.from_json(data)
    with pytest.raises(ValueError, match="cycle.*'conv'"):
        graph.layers()


# ----- YAML ------------------------------------------------------------------------------------------
def _shipped_yaml():
    root = resources.files("hwsim.configs")
    stack, out = [root], []
    while stack:
        for entry in stack.pop().iterdir():
            if entry.is_dir():
                stack.append(entry)
            elif entry.name.endswith(".yaml"):
                out.append(entry)
    return sorted(out, key=str)


def test_libyaml_reads_every_shipped_file_as_pyyaml_does():
    files = _shipped_yaml()
    assert len(files) > 30
    for entry in files:
        text = entry.read_text()
        assert _yaml.safe_load(text) == yaml.safe_load(text), entry.name


def test_malformed_yaml_keeps_the_pure_python_message(tmp_path):
    from hwsim.models.arch import load_arch

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmemory: [1, 2\nengine: systolic\n")
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.safe_load(bad.read_text())
    mark = pure.value.problem_mark
    with pytest.raises(ConfigError, match=rf"bad.yaml: malformed YAML at line {mark.line + 1}, column "
                                          rf"{mark.column + 1}: {pure.value.problem}"):
        load_arch(str(bad))


# ----- fidelity and builds ---------------------------------------------------------------------------
def test_reference_logits_are_computed_once_and_match(one_torch_thread):
    import torch

    from hwsim import fidelity

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(4, 1, 8, 8)
    fidelity._REFERENCE.clear()
    first = fidelity.reference_logits(model, x)
    again = fidelity.reference_logits(model, x.clone())                   # equal content: reused
    assert len(calls) == 1 and torch.equal(first, again) and torch.equal(first, fidelity._logits(model, x))
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # other weights: computed
    fidelity.reference_logits(other, x)
    with torch.no_grad():
        model[1].weight[0, 0] += 1.0                                      # edited in place: computed again
    edited = fidelity.reference_logits(model, x)
    assert len(calls) == 3 and not torch.equal(edited, first)
    calls.clear()
    same = fidelity.output_fidelity(model, model, x)                      # an uncompressed variant
    assert same == {"top1_agreement": 1.0, "kl": 0.0, "nrmse": 0.0} and calls == []


def test_graph_builds_run_torch_on_one_thread(monkeypatch):
    import torch

    from hwsim.compress import pipeline
    from hwsim.dse import evaluate

    seen = []

    def fake_measured_graph(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return tiny_graph(), {"top1_agreement": 1.0}

    monkeypatch.setattr(pipeline, "measured_graph", fake_measured_graph)
    task = evaluate.Task(key="k", graph_key="g", params={}, model="resnet18", recipe_name="dense", recipe=None,
                         arch={}, fidelity={"batch": 8, "seed": 0})
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate.build_graph(task)
        assert seen == [evaluate.BUILD_TORCH_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_started_pool_runs_a_sweep(tmp_path):
    from hwsim.dse.runner import ProcessBackend, run_sweep
    from hwsim.dse.store import ResultStore
    from tests.dse_fakes import fake_evaluate, fake_spec

    backend = ProcessBackend(2)
    try:
        backend.start()
        with ResultStore(tmp_path / "a.sqlite") as store:
            summary = run_sweep(fake_spec(tmp_path), store, backend=backend, evaluate=fake_evaluate)
    finally:
        backend.close()
    assert summary.evaluated == 27 and summary.failed == 0


# ----- sweep scheduling ------------------------------------------------------------------------------
class _TwoWorkers:
    """A backend that runs each submission at once (like ``SerialBackend``) but says it has 2 workers."""

    workers = 2

    def __init__(self):
        from hwsim.dse.runner import SerialBackend

        self._serial = SerialBackend()

    def submit(self, fn, *args):
        return self._serial.submit(fn, *args)

    def wait_any(self, futures):
        return set(futures)

    def close(self):
        pass


@pytest.mark.parametrize("backend, first", [(None, "dense"), ("two", "prune")])
def test_parallel_sweeps_build_the_uncompressed_model_last(tmp_path, monkeypatch, backend, first):
    from hwsim.dse import evaluate
    from hwsim.dse.runner import run_sweep
    from hwsim.dse.store import ResultStore
    from tests.dse_fakes import fake_spec

    order: list[str] = []

    def build(task):
        order.append(task.recipe_name)
        return tiny_graph(), {"top1_agreement": 0.5}

    monkeypatch.setattr(evaluate, "build_graph", build)
    evaluate._GRAPHS.clear()
    with ResultStore(tmp_path / "a.sqlite") as store:
        summary = run_sweep(fake_spec(tmp_path), store, backend=_TwoWorkers() if backend else None)
    evaluate._GRAPHS.clear()
    assert summary.evaluated == 27 and summary.graphs_built == 3
    # serial: in the order the points name them; parallel: the cheapest (uncompressed) build last
    assert order == (["dense", "prune", "prune"] if first == "dense" else ["prune", "prune", "dense"])


def _register_marker(path: str) -> int:
    """Worker job: an exit handler registered after start-up (as torch's are) that writes ``path``."""
    import atexit
    import os

    atexit.register(lambda: open(path, "w").write("ran"))
    return os.getpid()


def test_workers_run_exit_handlers_then_skip_the_teardown(tmp_path):
    from hwsim.dse.runner import ProcessBackend

    backend = ProcessBackend(1)
    marker = tmp_path / "marker.txt"
    pid = backend.submit(_register_marker, str(marker)).result()
    processes = list(backend.pool._processes.values())
    backend.close()
    assert [p.pid for p in processes] == [pid] and [p.exitcode for p in processes] == [0]
    assert marker.read_text() == "ran"              # later handlers still ran before the worker left


# ----- sweeps: torch imported once, in a fork server, only when graphs are built ---------------------------
def _digits_spec(**changes) -> dict:
    spec = {"name": "digits", "models": ["digits_cnn"],
            "recipes": {"dense": None, "prune": {"template": {"steps": [{"method": "magnitude_prune",
                                                                         "sparsity": "${sparsity}"}]},
                                                 "params": {"sparsity": [0.5]}}},
            "arch": {"base": "edge_tpu_like", "params": {"systolic.rows": [8, 16]}},
            "objectives": ["latency", "energy"]}
    spec.update(changes)
    return spec


def test_torch_builds_ahead_only_while_a_graph_is_missing(tmp_path, tiny_graph_path):
    from hwsim.dse import graphcache
    from hwsim.dse.runner import TaskBuilder, iter_tasks, torch_builds_ahead, warm_pool_pays
    from hwsim.dse.spec import load_spec

    cache = str(tmp_path / "graphs")
    spec = _digits_spec()
    assert torch_builds_ahead(spec, graph_dir=cache) == 2                # nothing cached: both graphs to build
    tasks = list(iter_tasks(spec, graph_dir=cache))
    first = tasks[0]
    graphcache.save_entry(graphcache.entry_path(cache, first.cache_key), (tiny_graph(), None))
    assert torch_builds_ahead(spec, graph_dir=cache) == 1                # the pruned graph is still missing
    for task in tasks:
        graphcache.save_entry(graphcache.entry_path(cache, task.cache_key), (tiny_graph(), None))
    assert torch_builds_ahead(spec, graph_dir=cache) == 0                # all cached: hardware-only sweep
    assert {t.cache_key for t in tasks} == {graphcache.entry_key(t.graph_key) for t in tasks}
    # a saved graph is compressed without torch; a continuous recipe range cannot be listed ahead
    assert torch_builds_ahead(_digits_spec(models=[str(tiny_graph_path)]), graph_dir=cache) == 0
    ranged = _digits_spec(recipes={"prune": {"template": {"steps": [{"method": "magnitude_prune",
                                                                     "sparsity": "${sparsity}"}]},
                                             "params": {"sparsity": {"low": 0.1, "high": 0.9}}}},
                          sampler={"kind": "random", "n": 4})
    assert TaskBuilder(load_spec(ranged), graph_dir=cache).torch_builds_ahead() >= 2
    # one build gains nothing from a torch fork server, and every worker forked from it would hold torch
    assert [warm_pool_pays(n) for n in (0, 1, 2, 5)] == [False, False, True, True]


def test_warm_pool_workers_fork_with_torch_preloaded_and_recycled_ones_spawn_clean():
    from hwsim.dse.runner import ProcessBackend
    from tests.dse_fakes import worker_state

    backend = ProcessBackend(2, preload_torch=True)
    try:
        backend.start()
        warm = [backend.submit(worker_state).result(timeout=300) for _ in range(2)]
        backend.recycle(idle=True)
        clean = backend.submit(worker_state).result(timeout=300)
    finally:
        backend.close()
    for state in warm:
        # torch and the tiny export came from the fork server (the parent of the worker, not this process)
        assert state["torch"] and state["warm_torch"] and state["ppid"] != os.getpid()
        assert state["torch_threads"] == 1
        assert state["gc_frozen"] > 100_000                  # the server's objects, out of the worker's collections
    assert not clean["torch"] and not clean["warm_torch"] and clean["gc_frozen"] == 0                # spawned after the builds: torch-free


def test_hardware_only_pool_never_starts_the_fork_server():
    from multiprocessing import forkserver

    from hwsim.dse.runner import ProcessBackend
    from tests.dse_fakes import worker_state

    server = forkserver._forkserver
    before = server._forkserver_pid
    backend = ProcessBackend(2)
    try:
        backend.start()
        state = backend.submit(worker_state).result(timeout=300)
    finally:
        backend.close()
    assert not state["torch"] and not state["warm_torch"] and state["ppid"] == os.getpid()     # spawned by us
    assert server._forkserver_pid == before


def test_parallel_sweep_with_builds_stores_what_a_serial_one_does(tmp_path):
    from hwsim.dse.runner import ProcessBackend, run_sweep, torch_builds_ahead, warm_pool_pays
    from hwsim.dse.store import ResultStore

    spec = _digits_spec()
    stores = {}
    for label, workers in (("serial", 1), ("j2", 2)):
        cache = str(tmp_path / f"graphs-{label}")
        assert warm_pool_pays(torch_builds_ahead(spec, graph_dir=cache))
        backend = 1 if workers == 1 else ProcessBackend(2, preload_torch=True)
        with ResultStore(tmp_path / f"{label}.sqlite") as store:
            summary = run_sweep(spec, store, backend=backend, graph_dir=cache)
            stores[label] = {r["key"]: (r["status"], r["objectives"], r["total"]) for r in store.records()}
        if workers > 1:
            backend.close()
        assert summary.evaluated == 4 and summary.graphs_built == 2
    assert stores["j2"] == stores["serial"]


def test_the_early_guess_reads_only_the_raw_models(tmp_path):
    from hwsim.dse.warm_server import may_build_in_parallel

    spec = tmp_path / "s.yaml"
    two = {"dense": None, "int8": "int8"}
    for models, recipes, guess in ((["resnet18"], None, False), (["resnet18"], two, True), (["a.json", "b.json"], two, False),
                                   ("net.onnx", two, True), (["a.onnx", "b.json"], None, False),
                                   (["a.onnx", "b.onnx"], None, True), ([], two, False)):
        spec.write_text(yaml.safe_dump({"name": "s", "models": models, **({"recipes": recipes} if recipes else {})}))
        assert may_build_in_parallel(spec) is guess, (models, recipes)   # one build: spawned workers, no server
    spec.write_text("models: [unclosed")
    assert may_build_in_parallel(spec) is False                      # load_spec reports the error, not the guess
    assert may_build_in_parallel(tmp_path / "missing.yaml") is False


def test_a_fork_server_started_on_a_guess_stops_before_any_worker():
    from multiprocessing import forkserver

    from hwsim.dse import warm_server

    warm_server.warm_context()
    assert forkserver._forkserver._forkserver_pid is not None
    warm_server.stop()                                               # the sweep had nothing to build
    assert forkserver._forkserver._forkserver_pid is None
    warm_server.stop()                                               # a second stop is a no-op


def test_a_lone_build_gets_no_idle_worker_beside_it():
    """``start(0)``: the build's own submission spawns the one worker it needs; a warm-up job would have
    kept that worker busy and made the build spawn a second one that idles beside the builder's torch."""
    from hwsim.dse.runner import ProcessBackend

    backend = ProcessBackend(2)
    try:
        backend.start(0)
        assert len(backend.pool._processes) == 0                  # nothing spawned ahead
        assert backend.submit(os.getpid).result(timeout=300) != os.getpid()
        assert len(backend.pool._processes) == 1                  # one job, one worker
        backend.start()                                           # the default warms every worker
        assert len(backend.pool._processes) == 2
    finally:
        backend.close()
