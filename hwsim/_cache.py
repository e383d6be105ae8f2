"""Where hwsim keeps what it computes once per machine: Numba's compiled kernels (and other caches).

``HWSIM_CACHE_DIR`` overrides the base; otherwise ``$XDG_CACHE_HOME/hwsim`` or ``~/.cache/hwsim``
(the XDG convention platformdirs follows on Linux). Numba's cache goes to ``<base>/numba`` unless
``NUMBA_CACHE_DIR`` is already set, so compiled kernels are never written next to the installed
sources (which may be read-only or shared). This module must run before Numba is imported.
Sweeps keep their lowered graphs in ``<base>/graphs`` (``HWSIM_GRAPH_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

# called once, when ``hwsim._numba`` first loads Numba (a run that needs no kernel never calls them)
NUMBA_LOAD_HOOKS: list[Callable[[], None]] = []


def cache_dir() -> Path:
    """The per-user hwsim cache directory (not created here)."""
    if override := os.environ.get("HWSIM_CACHE_DIR"):
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hwsim"


def graph_cache_dir() -> Path:
    """Where sweeps keep lowered graphs for every later sweep on this machine (``HWSIM_GRAPH_CACHE_DIR`` overrides)."""
    if override := os.environ.get("HWSIM_GRAPH_CACHE_DIR"):
        return Path(override).expanduser()
    return cache_dir() / "graphs"


def numba_cache_dir() -> Path:
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir() / "numba")


def configure_numba_cache() -> None:
    """Point Numba's on-disk cache at ``numba_cache_dir()`` (a no-op once Numba read its config)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))


def kernels_cached() -> bool:
    """True when Numba's cache already holds hwsim kernels (a cold cache means a first-run compile)."""
    folder = numba_cache_dir()
    return folder.is_dir() and any(folder.rglob("*_kernels*.nbi"))
