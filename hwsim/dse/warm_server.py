"""The helper processes of a sweep that builds graphs: the fork server, the stager, and worker start-up.

Light imports only (no NumPy, pydantic or torch), so the CLI starts both helpers ~0.1 s into the process.

- **Fork server.** ``hwsim.dse.warm_torch`` is its preload: torch imported and ``torch.export`` warmed
  once, ~3 s, for every worker forked from it.
- **Stager.** One spawned process that imports only torch (~1.3 s) and meanwhile takes the eager half
  of builds (``evaluate.stage_graph``: compress, measure fidelity) on the core the server's warm-up
  leaves idle.

The CLI starts both before it validates the spec (``may_build_in_parallel``, a look at the raw YAML's
models and recipes), so their warm-ups overlap the parent reading the spec, the graph cache and the
store. When the validated sweep turns out to have fewer than two graphs to build
(``runner.torch_builds_ahead``, ``runner.warm_pool_pays``), both are stopped again before any worker
exists, and the workers are spawned torch-free.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

PRELOAD = ["hwsim.dse.warm_torch"]


def may_build_in_parallel(spec_path: str | Path) -> bool:
    """First guess from the raw spec file: two or more (model, recipe) pairs whose model is not a saved
    graph (``.json``), so two builds may need torch at once (``runner.warm_pool_pays``).

    Anything unreadable answers ``False`` (the spec's validation reports it); the real answer comes later.
    """
    from hwsim import _yaml

    try:
        raw = _yaml.safe_load(Path(spec_path).read_text())
        models, recipes = raw.get("models") or [], raw.get("recipes") or {"none": None}
    except Exception:  # noqa: BLE001 - a guess only; load_spec reports what is wrong
        return False
    models = [models] if isinstance(models, str) else models
    if not isinstance(models, list) or not isinstance(recipes, (dict, list)):
        return False
    return sum(not str(model).endswith(".json") for model in models) * len(recipes) >= 2


def warm_context() -> Any:
    """The ``forkserver`` context whose server preloads ``PRELOAD``; starts the server (returns at once).

    The fork server is one per process (multiprocessing's): a server already running keeps its preload,
    so a second warm sweep in the same process reuses it; spawned pools never touch it.
    """
    import multiprocessing
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    return context


def stop() -> None:
    """Stop the fork server (releasing its torch); only while no pool forked from it is running.

    The server reads its "stop" pipe only after its preload, so it is sent SIGTERM first: stopping a
    server started on a wrong guess returns at once instead of waiting for it to finish importing torch.
    """
    import os
    import signal
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop_server = getattr(server, "_stop", None)
    pid = getattr(server, "_forkserver_pid", None)
    if stop_server is None or pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    stop_server()                              # closes its pipe, reaps it, removes its socket file


_STAGER: Any = None      # the stager pool started early (``start_stager``), until a backend takes it


def start_stager() -> None:
    """Start the sweep's stager (one spawned process importing torch without ``torch.export``) now.

    ``ProcessBackend`` hands it the eager half of one build while the fork server warms up
    (``ProcessBackend._start_stager``); started beside the server, its imports overlap the server's.
    """
    global _STAGER
    if _STAGER is None:
        import concurrent.futures as cf
        import multiprocessing

        _STAGER = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=share_cores, initargs=(1,))
        _STAGER.submit(_warm_stager)


def take_stager() -> Any:
    """The stager started early, or a new one; the caller owns it (shuts it down)."""
    global _STAGER
    start_stager()
    stager, _STAGER = _STAGER, None
    return stager


def stop_stager() -> None:
    """Stop a stager no backend took (the sweep turned out to build fewer than two graphs)."""
    global _STAGER
    if _STAGER is not None:
        release_stager(_STAGER, kill=True)
        _STAGER = None


def release_stager(stager: Any, *, kill: bool = False) -> None:
    """Shut a stager pool down without waiting; ``kill``: stop its process now (it may be importing torch).

    Without ``kill`` the process exits once its job is done; a killed one would otherwise keep this
    process waiting at exit (``concurrent.futures`` joins its workers) until its warm-up finished.
    """
    processes = list((getattr(stager, "_processes", None) or {}).values()) if kill else []
    stager.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def _warm_stager() -> None:
    """The stager's first job: import torch and the compression pipeline (not ``torch.export``)."""
    import torch  # noqa: F401

    import hwsim.compress.pipeline  # noqa: F401
    import hwsim.dse.evaluate  # noqa: F401


def share_cores(threads: int) -> None:
    """Worker start-up: torch/BLAS use ``threads`` threads (the pool already runs one worker per core).

    Without it every worker's torch (building a graph) starts a thread per core, and on a small
    machine the spinning threads of two builders cost more CPU than the work they share. The worker
    also leaves without the interpreter's teardown (``_exit_without_teardown``).
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    atexit.register(_exit_without_teardown)    # registered first, so it runs after every other handler


def _exit_without_teardown() -> None:
    """A worker's last exit handler: flush and leave, skipping the interpreter's teardown.

    A worker that built a graph holds torch, whose teardown takes ~2.7 s (measured: two spawned
    workers with torch imported, ``shutdown(wait=True)`` 2.71 s vs 0.11 s), and the sweep waits for
    its workers before it reports. Nothing is lost: a worker writes only graph-cache entries, each
    complete (``os.replace``) before its job returns, and results travel back to the parent.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)
