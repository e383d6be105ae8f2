"""The fork server a sweep's graph-building workers fork from: started, guessed early, stopped (light imports only).

``hwsim.dse.warm_torch`` is its preload: torch imported and ``torch.export`` warmed once, ~3 s, for every
worker. The CLI starts the server before it validates the spec (``may_build_in_parallel``, a look at the
raw YAML's models and recipes), so that warm-up runs on one core while the parent reads the spec, the
graph cache and the store on the other; when the validated sweep turns out to have fewer than two graphs
to build (``runner.torch_builds_ahead``, ``runner.warm_pool_pays``) the server is stopped again before
any worker exists, and the workers are spawned torch-free. This module imports no NumPy, pydantic or torch, so the server starts ~0.1 s
into the process.
"""

from __future__ import annotations

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
