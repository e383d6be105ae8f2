"""hwsim: a hardware-software co-design simulator for compressed neural networks on edge accelerators.

``hwsim.simulate`` (the function) is imported on first use, so ``import hwsim`` -- and every ``hwsim``
command, ``hwsim --help`` included -- does not pay for NumPy, pydantic and the engines until it needs
them (~0.2 s).
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

from hwsim._cache import configure_numba_cache  # noqa: E402  (before anything imports numba)

configure_numba_cache()

__all__ = ["__version__", "simulate"]


class _Package(types.ModuleType):
    """``hwsim`` itself: its ``simulate`` attribute is the function, never the submodule of that name.

    Importing ``hwsim.simulate`` (the module, e.g. ``from hwsim.simulate import simulate_graph``) makes
    the import system set ``hwsim.simulate`` to the module; this keeps the function there instead, as
    an eager ``from hwsim.simulate import simulate`` in this file did.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "simulate" and isinstance(value, types.ModuleType):
            value = value.simulate
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        if name == "simulate":
            from hwsim.simulate import simulate

            return simulate
        raise AttributeError(f"module 'hwsim' has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
