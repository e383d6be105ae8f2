"""Compile every simulation kernel ahead of use (``hwsim warmup``; CI and containers call it once).

Runs a tiny graph through every shipped preset (all engines and their Numba kernels), the SCALE-Sim
compatible systolic mode in both memory interfaces, the SCALE-Sim memory-system port (``hwsim
scalesim``, ``buffer_model="simulate"``; the slowest kernels to compile) in both interfaces, and the
spatial mapping search. Compiled kernels land in Numba's cache (``hwsim._cache``), so later
processes only load them.
"""

from __future__ import annotations

import time
from typing import Callable

from hwsim.ir import Layer, LayerGraph, Op, PackedMask, Sparsity


def _tiny_graph() -> LayerGraph:
    import numpy as np

    mask = np.random.default_rng(0).random((16, 8 * 9)) < 0.5
    graph = LayerGraph("warmup", input_shape=(1, 8, 8, 8))
    graph.add_layer(Layer("conv", Op.CONV, K=16, C=8, P=8, Q=8, R=3, S=3, padding=1, weight_density=float(mask.mean()),
                          sparsity=Sparsity("unstructured"), weight_mask=PackedMask.from_array(mask),
                          act_essential_bits=3.0))
    graph.add_layer(Layer("pool", Op.POOL, K=16, C=16, G=16, P=4, Q=4, R=2, S=2, stride=2), inputs=["conv"])
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=256, weight_bits=1, act_bits=1, number_format="binary"),
                    inputs=["pool"])
    return graph


def warmup(progress: Callable[[str], None] | None = None) -> float:
    """Compile (or load) every kernel; returns the seconds it took."""
    from hwsim.mappers.search import SearchMapper
    from hwsim.models.arch import load_arch, preset_names
    from hwsim.simulate import simulate_graph

    start = time.perf_counter()
    graph = _tiny_graph()
    for name in preset_names():
        if progress:
            progress(name)
        arch = load_arch(name)
        simulate_graph(graph, arch)
        if arch.engine == "systolic":
            for interface in ("CALC", "USER"):
                simulate_graph(graph, arch.with_overrides({"systolic.mode": "scalesim",
                                                           "systolic.interface_bandwidth": interface}))
        if arch.engine == "spatial":
            simulate_graph(graph, arch, mapper=SearchMapper())
    _warm_buffer_port(progress)
    return time.perf_counter() - start


def _warm_buffer_port(progress: Callable[[str], None] | None) -> None:
    """One tiny layer through the SCALE-Sim memory-system port in each interface (one kernel each)."""
    from hwsim.models.systolic.buffers import simulate_buffers
    from hwsim.models.systolic.compat import ScaleSimLayer

    layer = ScaleSimLayer("warmup", 6, 6, 3, 3, 2, 4, 1, 1)
    for interface in ("CALC", "USER"):
        if progress:
            progress(f"SCALE-Sim buffer port ({interface})")
        simulate_buffers(layer, rows=4, cols=4, dataflow="ws", sram_words=(300, 300, 100), interface=interface)
