"""The sweep loop: sample points, skip stored ones, evaluate the rest on a backend, commit each result.

There is one loop (``run_sweep``); backends are thin adapters with ``submit(fn, *args)`` and
``wait_any(futures)``: ``SerialBackend`` (in-process), ``ProcessBackend`` (local process pool) and
``DaskBackend`` (a ``distributed.Client`` or scheduler address). Only this process writes to the
store, one committed row per finished point, so a killed sweep resumes without loss or duplicates.

Graphs are built once per sweep and once per machine: the first point of each distinct graph that is
not in the shared cache (``hwsim.dse.graphcache``) sends one ``prepare_graph`` job to one worker, and
that graph's points are held here until it is saved; other workers meanwhile evaluate points whose
graphs are ready. With a fork server (``ProcessBackend(preload_torch=True)``, two or more graphs to
build) a stager process also compresses models and measures their fidelity while the server warms up,
and the workers lower what it staged (``_GraphBuilds``). After a burst of builds a ``ProcessBackend``
is recycled (fresh workers) unless only a short tail of points remains, so the torch the builders
imported does not stay resident for the rest of a long sweep.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hwsim._cache import graph_cache_dir
from hwsim.dse import graphcache, warm_server
from hwsim.dse.evaluate import (EvaluateFn, Task, can_stage, evaluate_point, needs_build, prepare_graph, run_batch,
                                stage_graph)
from hwsim.dse.samplers import BARRIER, Point, make_sampler
from hwsim.dse.spec import SweepSpec, arch_overrides, grid_product, load_spec
from hwsim.dse.templates import recipe_template, substitute
from hwsim.dse.store import ResultStore, point_key
from hwsim.errors import ConfigError


# ----- backends ------------------------------------------------------------------------------------
class SerialBackend:
    """Runs each submission immediately in this process (debugging, tests, tiny sweeps)."""

    workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        return set(futures)

    def close(self) -> None:
        """Nothing to release."""


class ProcessBackend(SerialBackend):
    """A local process pool (``workers`` defaults to all cores; spawned, so workers stay torch-free).

    ``max_tasks_per_child`` replaces each worker after that many submissions (a bound on any growth of
    its resident set); ``recycle()`` replaces all workers at once (the runner calls it after graph builds).
    ``preload_torch``: the sweep has graphs to build, so the first workers fork from a ``forkserver``
    that imported torch and ran one tiny ``torch.export`` (``hwsim.dse.warm_torch``) once for all of them,
    instead of each spawned worker paying ~3 s for it. Workers after a ``recycle()`` are spawned again
    (torch-free), and a sweep without builds never starts the fork server.
    """

    def __init__(self, workers: int | None = None, *, max_tasks_per_child: int | None = None,
                 preload_torch: bool = False):
        self.workers = workers or os.cpu_count() or 1
        self.max_tasks_per_child = max_tasks_per_child
        self.preload_torch = preload_torch
        self._pool: cf.ProcessPoolExecutor | None = None      # made on first use (``start`` or ``submit``)
        self.retired: list[cf.ProcessPoolExecutor] = []
        self._stager: cf.ProcessPoolExecutor | None = None    # ``start`` makes it when ``preload_torch``

    @property
    def pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool(warm=self.preload_torch)
        return self._pool

    def _new_pool(self, *, warm: bool = False) -> cf.ProcessPoolExecutor:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = warm_server.warm_context() if warm else multiprocessing.get_context("spawn")
        return cf.ProcessPoolExecutor(self.workers, mp_context=context,
                                      max_tasks_per_child=self.max_tasks_per_child,
                                      initializer=warm_server.share_cores, initargs=(threads,))

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self.pool.submit(fn, *args)

    def start(self, workers: int | None = None) -> None:
        """Start the workers' imports now, so they overlap the parent's instead of delaying the first job.

        Spawned workers are started at once (each imports the simulator, ~0.5 s); ``workers`` starts only
        that many. A sweep whose first job is its one graph build passes 0: a worker still busy with this
        warm-up makes the build's submission spawn another, which would idle beside the builder's torch
        (the pool spawns the rest on demand once points are ready). With ``preload_torch``
        only the fork server starts here (it warms torch, ~3 s, on its own); the workers fork from it on
        the first submissions, which is immediate once the server is ready.
        """
        if self.preload_torch:
            warm_server.warm_context()
            self._start_stager()
            return
        for _ in range(self.workers if workers is None else min(workers, self.workers)):
            self.pool.submit(_warm_worker)

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        return cf.wait(list(futures), return_when=cf.FIRST_COMPLETED).done

    def _start_stager(self) -> None:
        """One spawned process that imports torch, but not ``torch.export``, for the builds' eager halves.

        The fork server's ~3 s warm-up (torch, then the larger export stack) keeps one core busy and
        leaves the other idle. The stager imports torch in ~1.3 s on that core and then compresses
        models and measures their fidelity (``stage``, one build at a time, by ``_GraphBuilds``), work
        that needs nothing more; the warm workers then lower what it staged. It is let go
        (``release_stager``) when no build is left for it.
        """
        self._stager = warm_server.take_stager()

    def stage(self, fn: Callable[..., Any], *args: Any) -> cf.Future | None:
        """Run ``fn(*args)`` on the stager (``None``: there is none, or it was released)."""
        return None if self._stager is None else self._stager.submit(fn, *args)

    def release_stager(self) -> None:
        """Let the stager go (its torch with it) once its work is done; later ``stage`` calls return ``None``."""
        if self._stager is not None:
            warm_server.release_stager(self._stager)
            self._stager = None

    def recycle(self, *, idle: bool = False) -> None:
        """Send new work to fresh (spawned, torch-free) workers; the old ones finish what they were given, then exit.

        ``idle``: nothing is in flight, so the old workers are let go before new ones start (their
        memory never overlaps).
        """
        old, self._pool = self.pool, self._new_pool()
        old.shutdown(wait=idle)
        if not idle:
            self.retired.append(old)
        elif self.preload_torch and not self.retired:
            warm_server.stop()                # its torch is not needed any more (no worker forked from it)

    def close(self) -> None:
        if self._stager is not None:                # still at work only when the sweep was interrupted
            warm_server.release_stager(self._stager, kill=True)
        for pool in [*self.retired, *([self._pool] if self._pool is not None else [])]:
            pool.shutdown(wait=True, cancel_futures=True)
        self.retired, self._stager = [], None
        if self.preload_torch:
            warm_server.stop()


class DaskBackend(SerialBackend):
    """A Dask cluster: pass a ``distributed.Client`` or a scheduler address (``tcp://host:8786``)."""

    def __init__(self, client: Any):
        from distributed import Client

        self.owns_client = not isinstance(client, Client)
        self.client = Client(client) if self.owns_client else client
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        from distributed import wait

        return set(wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


def _warm_worker() -> None:
    """A worker's first job from ``ProcessBackend.start``: import what evaluating a point needs (not torch)."""
    import hwsim.simulate  # noqa: F401


def as_backend(backend: Any) -> Any:
    """``None`` -> serial, an int -> that many local processes, an address or ``distributed.Client`` -> Dask."""
    if backend is None:
        return SerialBackend()
    if isinstance(backend, int) and not isinstance(backend, bool):
        return SerialBackend() if backend == 1 else ProcessBackend(backend)
    if isinstance(backend, str) or type(backend).__name__ == "Client":
        return DaskBackend(backend)
    return backend


# ----- tasks -------------------------------------------------------------------------------------------
class TaskBuilder:
    """Turns points into ``Task``s with their content keys (arch dict, resolved recipe, version)."""

    def __init__(self, spec: SweepSpec, *, graph_dir: str | None = None):
        """``graph_dir``: the shared graph cache the tasks name (``None``: each worker builds in memory)."""
        import hwsim

        self.spec = spec
        self.base = spec.base_arch()
        self.templates = {name: recipe_template(spec, name) for name in spec.recipes}
        self.graph_dir = graph_dir
        self.version = hwsim.__version__
        # data / fine-tuning enter the point keys only when set, so existing stores keep their keys
        self.fidelity = {k: v for k, v in spec.fidelity.model_dump().items()
                         if v or k not in ("data", "finetune_epochs")} if spec.needs_fidelity else None
        self.file_hashes: dict[str, str | None] = {}

    def _file_hash(self, model: str) -> str | None:
        """Content hash of a model given as a file (saved graph, ONNX), so an edited file is a new point."""
        if model not in self.file_hashes:
            path = Path(model)
            self.file_hashes[model] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return self.file_hashes[model]

    def _recipe(self, recipe_name: str, recipe_params: dict[str, Any]) -> Any:
        template = self.templates[recipe_name]
        return None if template is None else substitute(template, recipe_params)

    def _graph_key(self, model: str, recipe: Any) -> str:
        """Hash of every input of a graph; a weights file goes in with its hash, like a model file."""
        shape = tuple(self.spec.input_shape) if self.spec.input_shape else None
        weights = self.spec.weights.get(model)
        return point_key({"model": model, "model_file": self._file_hash(model), "recipe": recipe,
                          "batch": self.spec.batch, "input_shape": shape, "fidelity": self.fidelity,
                          "version": self.version, **({"weights_file": self._file_hash(weights)} if weights else {})})

    def torch_builds_ahead(self) -> int:
        """How many graphs this sweep will build with torch: those missing from the shared cache.

        Saved graphs (``.json``) are compressed without torch; a recipe parameter on a continuous range
        (adaptive samplers) gives graphs that cannot be listed ahead, so those sweeps count as building
        many (``PARALLEL_BUILDS``). Cheap (one hash and one file check per distinct graph), so a sweep
        decides before its workers start whether they should fork from a fork server that already
        imported torch (``ProcessBackend``; ``warm_pool_pays``).
        """
        missing = 0
        for model in (m for m in self.spec.models if not m.endswith(".json")):
            for name in self.spec.recipes:
                try:
                    variants = list(grid_product(self.spec.recipe_dimensions(name)))
                except ValueError:
                    return max(missing, PARALLEL_BUILDS)
                for values in variants:
                    recipe = self._recipe(name, {k.split(".", 1)[1]: v for k, v in values.items()})
                    key = self._graph_key(model, recipe)
                    if self.graph_dir is None or not graphcache.has_entry(self.graph_dir, graphcache.entry_key(key)):
                        missing += 1
        return missing

    def build(self, point: Point) -> Task:
        """The task for ``point``; raises ``ConfigError`` if its overrides make an invalid arch."""
        recipe = self._recipe(point.recipe, dict(point.recipe_params))
        shape = tuple(self.spec.input_shape) if self.spec.input_shape else None
        weights = self.spec.weights.get(point.model)
        graph_key = self._graph_key(point.model, recipe)
        arch = self.base.with_overrides(arch_overrides(self.spec, dict(point.hw)), origin=self.spec.origin)
        arch_dict = arch.model_dump(mode="json")
        key = point_key({"graph": graph_key, "arch": arch_dict, "mapper": self.spec.mapper, "version": self.version})
        return Task(key=key, graph_key=graph_key, params=point.params(), model=point.model,
                    recipe_name=point.recipe, recipe=recipe, arch=arch_dict, batch=self.spec.batch,
                    input_shape=shape, mapper=dict(self.spec.mapper), fidelity=self.fidelity,
                    graph_dir=self.graph_dir, weights=weights,
                    cache_key=graphcache.entry_key(graph_key) if self.graph_dir else None)


@dataclass(frozen=True)
class SweepSummary:
    """What a ``run_sweep`` call did."""

    proposed: int
    evaluated: int
    skipped: int
    failed: int
    seconds: float
    graphs_built: int = 0          # graphs compressed/lowered by this sweep (0 when all were in the cache)

    @property
    def points_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0


ProgressFn = Callable[[int, int | None], None]   # (points handled, points expected)


def default_graph_dir() -> str:
    """Where lowered graphs are cached: the per-machine ``graph_cache_dir()`` (shared by every sweep)."""
    return str(graph_cache_dir())


def _violations(spec: SweepSpec, values: dict[str, float] | None) -> list[float]:
    return [c.violation((values or {}).get(c.metric)) for c in spec.constraints]


class _Loop:
    """State of one sweep loop (kept small: only in-flight and held points live in memory)."""

    def __init__(self, spec: SweepSpec, store: ResultStore, backend: Any, evaluate: EvaluateFn,
                 retry_errors: bool, progress: ProgressFn | None, expected: int | None, *, chunk_size: int,
                 limit: int, share_graphs: bool):
        self.spec, self.store, self.backend, self.evaluate = spec, store, backend, evaluate
        self.retry_errors, self.progress, self.expected = retry_errors, progress, expected
        self.chunk_size, self.share_graphs = chunk_size, share_graphs
        self.sampler = make_sampler(spec)
        self.pending: dict[Any, list[Task]] = {}
        self.waiting: dict[str, list[Point]] = {}    # key -> points proposed while it is in flight
        self.batch: list[Task] = []
        # read ahead far enough to start the builds of the next graphs, not so far that held tasks
        # (a few kB each) grow the parent: a 10,000-point sweep would otherwise hold most of its points
        self.graphs = _GraphBuilds(self, read_ahead=max(256, 4 * limit * chunk_size))
        self.counts = {"proposed": 0, "evaluated": 0, "skipped": 0, "failed": 0}

    def _tick(self, kind: str) -> None:
        self.counts[kind] += 1
        if self.progress is not None:
            self.progress(self.counts["evaluated"] + self.counts["skipped"] + self.counts["failed"], self.expected)

    def skip_if_stored(self, point: Point, key: str) -> bool:
        status = self.store.status(key)
        if status is None or (status == "error" and self.retry_errors):
            return False
        self.store.add_to_sweep(self.spec.name, key)
        values = self.store.objectives(key)
        self.sampler.tell(point, values, _violations(self.spec, values))
        self._tick("skipped")
        return True

    def remaining(self) -> float:
        """Points still to handle (infinite when the sampler does not say how many it will propose)."""
        if self.expected is None:
            return float("inf")
        return self.expected - self.counts["evaluated"] - self.counts["skipped"] - self.counts["failed"]

    def dispatch(self, task: Task) -> None:
        """Evaluate ``task`` once its graph is in the shared cache (now, or after its one build)."""
        if not self.share_graphs or not needs_build(task) or self.graphs.ready(task):
            self.enqueue(task)

    def enqueue(self, task: Task) -> None:
        self.batch.append(task)
        if len(self.batch) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.pending[self.backend.submit(run_batch, self.evaluate, self.batch)] = self.batch
            self.batch = []

    def collect(self, *, block_until: int, drain: bool = False) -> None:
        """Commit finished batches until at most ``block_until`` remain in flight (``drain``: and no build).

        Builds do not count against ``block_until``, so the loop reads ahead (holding at most
        ``max_held`` points) and every graph's build starts as soon as its first point is seen (with
        several workers: as soon as the loop has to wait, in ``submit_queued``'s order).
        """
        self.graphs.finished({f for f in self.graphs.futures if f.done()})     # release without waiting
        while (len(self.pending) > block_until or self.graphs.over_limit
               or (drain and self.graphs.in_flight)):
            self.graphs.submit_queued()                  # about to wait: the builds seen so far go out
            done = self.backend.wait_any([*self.pending, *self.graphs.futures])
            self.graphs.finished(done)
            for future in [f for f in self.pending if f in done]:     # commit in submission order
                self.pending.pop(future)
                for record in future.result():
                    self.commit(record)

    def commit(self, record: dict[str, Any]) -> None:
        replace = self.retry_errors and self.store.status(record["key"]) == "error"
        self.store.put(record, sweep=self.spec.name, replace=replace)
        ok = record["status"] == "ok"
        values = record["objectives"] if ok else None
        for i, point in enumerate(self.waiting.pop(record["key"], [])):
            self.sampler.tell(point, values, _violations(self.spec, values))
            if i:
                self._tick("skipped")       # the same point was proposed again while in flight
        self._tick("evaluated" if ok else "failed")


class _GraphBuilds:
    """One ``prepare_graph`` job per distinct graph missing from the cache; its points wait here meanwhile.

    With several workers, builds are queued while the loop reads ahead and go out as workers free up
    (``_pump``), ordered when the loop first has to wait (``submit_queued``). A backend with a stager
    (``ProcessBackend.stage``) also takes builds from that queue, one at a time: the stager compresses
    the model and measures its fidelity (``stage_graph``, torch's eager mode only), and the graph's
    lowering then goes to the next free worker ahead of the builds still queued.
    """

    def __init__(self, loop: _Loop, read_ahead: int):
        self.loop = loop
        self.known: set[str] = set()                 # graph keys whose entry is in the cache
        self.failed: dict[str, str] = {}             # graph key -> why its build failed
        self.building: dict[Any, Task] = {}          # build future (whole build or lowering) -> its task
        self.staging: dict[Any, Task] = {}           # the stager's future (one at a time) -> its task
        self.queued: list[Task] = []                 # whole builds not yet submitted
        self.lowerable: list[tuple[Task, str | None]] = []   # staged builds (their files) for the workers
        self.defer = getattr(loop.backend, "workers", 1) > 1
        self.held: dict[str, list[Task]] = {}        # graph key -> tasks waiting for its build
        self.held_count = 0
        self.max_held = read_ahead                   # bounds the parent's memory while a build runs
        self.built = 0
        self.stager_released = False

    @property
    def futures(self) -> list[Any]:
        return [*self.building, *self.staging]

    @property
    def in_flight(self) -> int:
        return len(self.building) + len(self.staging) + len(self.queued) + len(self.lowerable)

    @property
    def over_limit(self) -> bool:
        return self.held_count > self.max_held and bool(self.in_flight)

    def submit_queued(self) -> None:
        """Order the queued builds, uncompressed models last, and hand out what the workers can take.

        An uncompressed model's build skips compression and its second forward pass, the cheapest build
        there is, so it goes last (longest first balances the workers: in the example sweep the dense
        build, seen first, otherwise leaves one worker with the heaviest build at the end while the other
        idles). Order changes only when builds run, not what they produce.
        """
        self.queued.sort(key=lambda task: task.recipe is None)
        self._pump()

    def _pump(self) -> None:
        """Keep the stager on one build while any is queued, and the workers on one build each (all at once if serial).

        The stager taking every build it can measured best on the example sweep: 7.3-7.6 s at ``-j 2``,
        against 7.9-9.5 s when it left the last two builds to the workers (``bench_example_sweep.py``).
        """
        backend = self.loop.backend
        stage = getattr(backend, "stage", None)
        if stage is not None and not self.staging and not self.stager_released:
            index = next((i for i, task in enumerate(self.queued) if can_stage(task)), None)
            future = None if index is None else stage(stage_graph, self.queued[index])
            if future is not None:
                self.staging[future] = self.queued.pop(index)
            else:
                self._release_stager()             # nothing left for it: its torch goes now
        # the stager uses a core of its own: while it works the workers take one build fewer
        slots = max(1, getattr(backend, "workers", 1) - len(self.staging))
        while (self.lowerable or self.queued) and (not self.defer or len(self.building) < slots):
            task, staged = self.lowerable.pop(0) if self.lowerable else (self.queued.pop(0), None)
            self.building[backend.submit(prepare_graph, task, staged)] = task

    def _release_stager(self) -> None:
        self.stager_released = True
        self.loop.backend.release_stager()

    def ready(self, task: Task) -> bool:
        """True when ``task`` can run now; otherwise it is held (and its graph's build started, if needed)."""
        key = task.graph_key
        if key in self.known:
            return True
        if key in self.failed:
            self.loop.commit(_error_record(task, self.failed[key]))
            return False
        if key not in self.held:
            if graphcache.has_entry(task.graph_dir, task.cache_key or key):
                self.known.add(key)
                return True
            self.queued.append(task)
            if not self.defer:
                self._pump()
            self.held[key] = []
        self.held[key].append(task)
        self.held_count += 1
        return False

    def finished(self, done: set[Any]) -> None:
        """Mark finished builds; recycle the workers after the last one; release (or fail) their points."""
        if not done:
            return
        for future in [f for f in self.staging if f in done]:
            task = self.staging.pop(future)
            try:
                staged = future.result().get("staged")
            except Exception as err:  # noqa: BLE001 - the whole build runs on a worker and reports the error
                staged = None
                if isinstance(err, (cf.process.BrokenProcessPool, cf.CancelledError)):
                    self._release_stager()                     # the stager is gone: builds go whole
            self.lowerable.append((task, staged))
        released: list[tuple[list[Task], str | None]] = []
        for future in [f for f in self.building if f in done]:
            task = self.building.pop(future)
            tasks = self.held.pop(task.graph_key, [])
            self.held_count -= len(tasks)
            try:
                self.built += int(bool(future.result().get("built")))
                self.known.add(task.graph_key)
                error = None
            except Exception as err:  # noqa: BLE001 - the graph's points are recorded as failed
                error = f"building the graph of {task.model} ({task.recipe_name}): {type(err).__name__}: {err}"
                self.failed[task.graph_key] = error
            released.append((tasks, error))
        self._pump()
        recycle = getattr(self.loop.backend, "recycle", None)
        workers = max(1, getattr(self.loop.backend, "workers", 1))
        if released and not self.in_flight and recycle is not None and self.loop.remaining() > _RECYCLE_MIN * workers:
            recycle(idle=not self.loop.pending)       # builders imported torch; evaluate on fresh workers
        for tasks, error in released:
            for task in tasks:
                if error is None:
                    self.loop.enqueue(task)
                else:
                    self.loop.commit(_error_record(task, error))
        self.loop.flush()


# Recycling costs each fresh worker ~2 s of start-up (imports, Numba cache, graph JSON), the time of ~100
# hardware-only ResNet-18 points; for a shorter tail the builders finish the sweep (their memory peak is
# already behind: it was the build itself).
_RECYCLE_MIN = 100


def _error_record(task: Task, error: str) -> dict[str, Any]:
    return {"key": task.key, "status": "error", "model": task.model, "recipe": task.recipe_name,
            "params": task.params, "objectives": {}, "error": error}


def run_sweep(spec: SweepSpec | str | Path | dict, store: ResultStore, *, backend: Any = None,
              evaluate: EvaluateFn = evaluate_point, chunk_size: int = 1, max_in_flight: int | None = None,
              retry_errors: bool = False, graph_dir: str | None = None, share_graphs: bool | None = None,
              progress: ProgressFn | None = None) -> SweepSummary:
    """Run (or resume) a sweep: every finished point is committed to ``store`` as it completes.

    Parameters
    ----------
    spec : a ``SweepSpec``, a YAML path or a dict (validated before anything runs).
    store : the ``ResultStore`` (points already in it are skipped, failed ones too unless ``retry_errors``).
    backend : ``SerialBackend()`` (default), ``ProcessBackend(workers)``, ``DaskBackend(client)``, or anything
        ``as_backend`` accepts (a worker count, a scheduler address, a ``distributed.Client``).
    evaluate : ``evaluate(task) -> {"objectives": ..., "total": ..., "layers": ..., "meta": ...}``.
    chunk_size : points per submitted task (larger amortises scheduling overhead for fast points).
    graph_dir : the shared, content-addressed graph cache (default: ``graph_cache_dir()``, per machine).
    share_graphs : build each missing graph once (one ``prepare_graph`` job) before its points run;
        default: when ``evaluate`` is the real ``evaluate_point``.
    progress : called as ``progress(points_handled, points_expected)`` after every point.
    """
    from hwsim.dse.spec import space_size

    spec = load_spec(spec)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    builder = TaskBuilder(spec, graph_dir=graph_dir if graph_dir is not None else default_graph_dir())
    if isinstance(backend, int) and not isinstance(backend, bool) and backend > 1:
        backend = ProcessBackend(backend, preload_torch=evaluate is evaluate_point
                                 and warm_pool_pays(builder.torch_builds_ahead()))
    backend = as_backend(backend)
    limit = max_in_flight or 2 * max(1, getattr(backend, "workers", 1))
    store.register_sweep(spec.name, spec.model_dump(mode="json"))
    share = evaluate is evaluate_point if share_graphs is None else share_graphs
    if share and getattr(backend, "stage", None) is not None:
        graphcache.clear_stale_staged(builder.graph_dir)     # models staged by a sweep that was killed
    loop = _Loop(spec, store, backend, evaluate, retry_errors, progress, space_size(spec), chunk_size=chunk_size,
                 limit=limit, share_graphs=share)
    start = time.perf_counter()
    for point in loop.sampler.points():
        if point is BARRIER:
            loop.flush()
            loop.collect(block_until=0, drain=True)
            continue
        loop.counts["proposed"] += 1
        task = _task_or_error(builder, point, loop)
        if task is None or loop.skip_if_stored(point, task.key):
            continue
        if task.key in loop.waiting:
            loop.waiting[task.key].append(point)
            continue
        loop.waiting[task.key] = [point]
        loop.dispatch(task)
        loop.collect(block_until=limit - 1)
    loop.flush()
    loop.collect(block_until=0, drain=True)
    c = loop.counts
    return SweepSummary(proposed=c["proposed"], evaluated=c["evaluated"], skipped=c["skipped"], failed=c["failed"],
                        seconds=time.perf_counter() - start, graphs_built=loop.graphs.built)


PARALLEL_BUILDS = 2


def warm_pool_pays(builds: int) -> bool:
    """Fork the workers from a server that imported torch once only when two or more graphs will build.

    The server saves each *further* builder its own torch warm-up (~3 s), so one build gains nothing,
    and every worker forked from it holds torch for the whole sweep: a one-graph hardware sweep's process
    tree measured 780 MB that way against 470 MB with spawned workers (``bench_sweep_memory.py``), where
    the one builder is recycled after its build.
    """
    return builds >= PARALLEL_BUILDS


def torch_builds_ahead(spec: SweepSpec | str | Path | dict, *, graph_dir: str | None = None) -> int:
    """How many graphs running ``spec`` will build with torch (``TaskBuilder.torch_builds_ahead``).

    ``graph_dir``: the shared graph cache the sweep will use (default: ``default_graph_dir()``).
    """
    spec = load_spec(spec)
    return TaskBuilder(spec, graph_dir=graph_dir if graph_dir is not None else default_graph_dir()).torch_builds_ahead()


def _task_or_error(builder: TaskBuilder, point: Point, loop: _Loop) -> Task | None:
    """Build the task; a point whose overrides give an invalid arch is stored as a failed point."""
    try:
        return builder.build(point)
    except ConfigError as err:
        key = point_key({"invalid": point.params(), "version": builder.version})
        if loop.skip_if_stored(point, key):
            return None
        loop.waiting[key] = [point]
        loop.commit({"key": key, "status": "error", "model": point.model, "recipe": point.recipe,
                     "params": point.params(), "objectives": {}, "error": str(err)})
        return None


def iter_tasks(spec: SweepSpec | str | Path | dict, *, graph_dir: str | None = None) -> Iterator[Task]:
    """The tasks of a (non-adaptive) sweep, lazily; invalid points are left out."""
    spec = load_spec(spec)
    builder = TaskBuilder(spec, graph_dir=graph_dir)
    for point in make_sampler(spec).points():
        try:
            yield builder.build(point)
        except ConfigError:
            continue
