"""Content-addressed store of lowered graphs, shared by a sweep's workers and by later sweeps on this machine.

Building a point's LayerGraph (compress, ``torch.export``, fidelity on a calibration batch) costs seconds
and needs torch; simulating it costs milliseconds. So each distinct graph is built once and saved as
JSON under a key that hashes everything it depends on: the task's ``graph_key`` (model name, hash of a
model/weights file, resolved recipe, batch, input shape, fidelity settings) and ``code_version()``, a
hash of hwsim's own source files, so editing the compressor or the lowering never serves a stale graph.
Entries are written atomically (temporary file + ``os.replace``): a reader sees a whole file or none.
An entry that does not load (truncated, edited, from an incompatible version) is treated as missing
and rebuilt; the cache never turns into an error.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hwsim.ir import LayerGraph

Entry = tuple[LayerGraph, "dict[str, float] | None"]      # the graph and its fidelity figures (None: not asked)
_SOURCE_PACKAGES = ("hwsim", "hwsim.models", "hwsim.mappers", "hwsim.configs")
_SOURCE_SUFFIXES = (".py", ".yaml")


@functools.cache
def code_version() -> str:
    """Hash of hwsim's source files (``.py`` and shipped ``.yaml``), computed once per process."""
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            base = Path(root)
            files = sorted(p for p in base.rglob("*") if p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts)
            for path in files:
                digest.update(f"{package}:{path.relative_to(base).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def entry_key(graph_key: str) -> str:
    """The cache key of a graph: its inputs' key combined with the code version."""
    return hashlib.sha256(f"{graph_key}\0{code_version()}".encode()).hexdigest()[:32]


def entry_path(folder: str | Path, key: str) -> Path:
    """Where the entry ``key`` lives in ``folder``."""
    return Path(folder) / f"graph-{key}.json"


def load_entry(path: Path) -> Entry | None:
    """The saved (graph, fidelity), or ``None`` when the entry is missing or does not load (then rebuild it)."""
    try:
        data = json.loads(path.read_text())
        fidelity = data.get("fidelity")
        if fidelity is not None and not isinstance(fidelity, dict):
            return None
        return LayerGraph.from_json(data["graph"]), fidelity
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - any unreadable entry (truncated, edited, old format) is rebuilt
        return None


def save_entry(path: Path, entry: Entry) -> bool:
    """Write ``entry`` atomically; ``False`` when the folder is not writable (the cache is only an optimisation)."""
    graph, fidelity = entry
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".graph-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump({"graph": graph.to_json(), "fidelity": fidelity}, handle, separators=(",", ":"))
        os.replace(tmp, path)          # atomic: a racing reader sees the old or the new file, never half
        return True
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False


def has_entry(folder: str | Path | None, key: str) -> bool:
    """True when ``folder`` holds a loadable-looking entry ``key`` (a non-empty file; loading checks the rest)."""
    if folder is None:
        return False
    path = entry_path(folder, key)
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def staged_path(folder: str | Path, key: str) -> Path:
    """Where the stager leaves entry ``key``'s compressed model for the worker that lowers it (``stage_graph``)."""
    return Path(folder) / "staged" / f"{key}.{os.getpid()}.pt"


def clear_stale_staged(folder: str | Path | None, max_age_s: float = 3600.0) -> int:
    """Remove staged models older than ``max_age_s`` (left by a killed sweep; a live one is lowered in seconds).

    Returns how many were removed.
    """
    import time

    removed = 0
    staged = Path(folder) / "staged" if folder is not None else None
    if staged is None or not staged.is_dir():
        return 0
    for path in staged.iterdir():
        try:
            if path.stat().st_mtime < time.time() - max_age_s:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def describe(folder: str | Path) -> dict[str, Any]:
    """Number of entries and their total size in ``folder`` (for reports and benchmarks)."""
    files = list(Path(folder).glob("graph-*.json")) if Path(folder).is_dir() else []
    return {"entries": len(files), "bytes": sum(f.stat().st_size for f in files)}
