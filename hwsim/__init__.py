"""hwsim: a hardware-software co-design simulator for compressed neural networks on edge accelerators."""

from __future__ import annotations

__version__ = "0.1.0"

from hwsim._cache import configure_numba_cache  # noqa: E402  (before anything imports numba)

configure_numba_cache()

from hwsim.simulate import simulate  # noqa: E402  (torch-free; engines import lazily)

__all__ = ["__version__", "simulate"]
