"""Numba, imported the way hwsim's kernels need it: the cache configured, and SciPy's linear algebra left out.

The kernel modules import ``njit`` from here instead of from ``numba``. Two things happen first:

* ``configure_numba_cache()`` (``hwsim._cache``): compiled kernels go to the per-user cache, which only
  works if it runs before Numba reads its configuration.
* Numba's CPU target, on the first call of any kernel (also one loaded from the cache), imports
  ``numba.np.arraymath``, whose module-level BLAS probe imports ``scipy.linalg``: 0.1-0.4 s of a warm
  ``hwsim simulate`` (most of it SciPy's array-API shim importing ``numpy.f2py``). The probe only chooses
  how ``np.correlate``/``np.convolve`` form an inner product inside jitted code (BLAS dot or a plain
  loop), which no hwsim kernel calls; ``np.dot``, ``@`` and ``np.linalg`` check for BLAS again when they
  are compiled. So ``arraymath`` is imported here with the probe answering "no BLAS", and the real
  check is put back at once. With a Numba whose internals differ this does nothing (a plain import).
"""

from __future__ import annotations

import sys

from hwsim._cache import configure_numba_cache

configure_numba_cache()


def _import_arraymath_without_scipy() -> None:
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return                                  # too late, or SciPy's linalg is loaded anyway: nothing to save
    try:
        import numba.np.linalg as linalg
    except ImportError:
        return
    real = getattr(linalg, "ensure_blas", None)
    if real is None:
        return

    def _no_blas_probe() -> None:
        raise ImportError("hwsim: BLAS probe skipped at import (see hwsim._numba)")

    linalg.ensure_blas = _no_blas_probe
    try:
        import numba.np.arraymath as arraymath
    finally:
        linalg.ensure_blas = real
    if getattr(arraymath, "ensure_blas", real) is _no_blas_probe:
        arraymath.ensure_blas = real


_import_arraymath_without_scipy()

from numba import njit, uint64  # noqa: E402  (after the set-up above)

from hwsim._cache import NUMBA_LOAD_HOOKS  # noqa: E402

for _hook in NUMBA_LOAD_HOOKS:               # e.g. the CLI's "compiling simulation kernels" notice
    _hook()

__all__ = ["njit", "uint64"]
