"""Accelerator models (the hardware side, installed as ``hwsim.models``; never imports torch).

Each engine is a module ``hwsim.models.<engine>`` exposing two pure functions:

* ``default_mapping(layer, arch) -> mapping``: the engine's fixed-dataflow mapping of a MAC layer;
* ``evaluate(layer, arch, mapping) -> LayerCounts``: cycles and action counts, no energy.

Non-MAC layers (pool, eltwise, ...) run on the vector unit model in ``hwsim.models.vector``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hwsim.errors import UnknownNameError

ENGINE_MODULES = {
    "systolic": "hwsim.models.systolic",
    "spatial": "hwsim.models.spatial",
    "sparse": "hwsim.models.sparse",
    "bitserial": "hwsim.models.bitserial",
    "binary": "hwsim.models.binary",
}


def get_engine(name: str) -> ModuleType:
    """The engine module for ``name`` (imported on first use)."""
    if name not in ENGINE_MODULES:
        raise UnknownNameError(f"unknown engine {name!r}; engines: {', '.join(ENGINE_MODULES)}")
    return importlib.import_module(ENGINE_MODULES[name])
