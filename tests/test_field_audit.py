"""No silent fields, checked exhaustively: every field a shipped preset sets changes the result when
perturbed, is rejected by validation, or is listed below with the reason it cannot change this graph.

The audit graph has one layer for each situation a field can matter in: a natively-wide layer, a
pool and an eltwise layer (vector unit), real unstructured and 2:4 masks (load imbalance, N:M
metadata), a measured essential-bit histogram (Pragmatic's lock-step groups), a 2-bit x 1-bit and a 12-bit
layer (precision clamps, multiple passes) and an expansion layer that writes far more than it reads.
Integers are also tried at 1 and floats at 1/64 of their value: a FIFO depth or a port may matter only there.
"""

from __future__ import annotations

import typing
from importlib import resources

import numpy as np
import pytest
import yaml

from hwsim.errors import HwsimError
from hwsim.ir import Layer, LayerGraph, Op, PackedMask, Sparsity
from hwsim.models.arch import load_arch, preset_names
from hwsim.simulate import simulate_graph

# fields whose value cannot change any count hwsim produces, with the reason
UNREAD_BY_DESIGN = {
    "word_bits": "the storage word: operands move at their own widths, so word_bits is only the access width "
                 "when width_bits is absent (validation requires width_bits to be a multiple of it)",
}
# (preset, field): why this graph cannot show the field, although the engine reads it
CONTEXTUAL = {
    ("simba_like", "memory.DRAM.width_bits"): "DRAM is priced per bit; its width only rounds partial vector "
                                              "accesses, and simba_like's DRAM tiles fill whole vectors",
}
LABELS = {"name", "description", "source", "mac_source", "sources", "kind", "dram_type", "table", "tensors",
          "partition_bytes", "design", "engine"}   # names, citations, and choices audited elsewhere


def _mask(shape: tuple[int, int], density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.random(shape[0])[:, None] * 0.8 + 0.2          # uneven rows: load imbalance across PEs
    cols = rng.random(shape[1])[None, :] * 1.6 + 0.2          # uneven columns: bursts the FIFOs absorb
    return rng.random(shape) < density * rows * cols / (rows.mean() * cols.mean())


def _two_four(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    groups = mask.reshape(shape[0], shape[1] // 4, 4)
    keep = np.argsort(rng.random(groups.shape), axis=2)[..., :2]
    np.put_along_axis(groups, keep, True, axis=2)
    return mask


def _audit_graph() -> LayerGraph:
    native = ("weight_bits", "act_bits", "out_bits")
    hist = tuple(tuple(np.linspace(2.0, 1.0, b + 1) / np.linspace(2.0, 1.0, b + 1).sum()) for b in range(1, 17))
    unstructured = _mask((512, 64 * 9), 0.4, 1)
    nm = _two_four((128, 64 * 9), 2)
    layers = [
        Layer("stem", Op.CONV, K=64, C=3, P=56, Q=56, R=7, S=7, stride=2, padding=3, native_bits=native,
              act_essential_hist=hist),
        Layer("pool", Op.POOL, K=64, C=64, P=28, Q=28, R=2, S=2, stride=2),
        Layer("add", Op.ELTWISE, K=64, C=64, P=28, Q=28),
        Layer("pruned", Op.CONV, K=512, C=64, P=28, Q=28, R=3, S=3, padding=1, act_density=0.6,
              weight_density=float(unstructured.mean()), sparsity=Sparsity("unstructured"),
              weight_mask=PackedMask.from_array(unstructured), native_bits=native, act_essential_hist=hist),
        Layer("two_four", Op.CONV, K=128, C=64, P=14, Q=14, R=3, S=3, padding=1, weight_density=0.5,
              sparsity=Sparsity("n:m", n=2, m=4), weight_mask=PackedMask.from_array(nm), native_bits=native),
        Layer("narrow", Op.CONV, K=128, C=128, P=14, Q=14, R=3, S=3, padding=1, weight_bits=2, act_bits=1),
        Layer("wide", Op.CONV, K=128, C=128, P=7, Q=7, R=3, S=3, padding=1, weight_bits=12, act_bits=12),
        Layer("expand", Op.CONV, K=512, C=4, P=56, Q=56, native_bits=native),
        Layer("fc", Op.LINEAR, K=1000, C=512, native_bits=native),
    ]
    graph = LayerGraph("audit", input_shape=(1, 3, 112, 112))
    previous: list[str] = []
    for layer in layers:
        graph.add_layer(layer, inputs=previous)
        previous = [layer.name]
    return graph


GRAPH = _audit_graph()


def _binarized(graph: LayerGraph) -> LayerGraph:
    out = graph.map_layers(lambda lay: lay)
    for layer in [lay for lay in graph.compute_layers()][1:-1]:
        out.replace_layer(layer.with_changes(weight_bits=1, act_bits=1, number_format="binary", native_bits=()))
    return out


def _signature(arch, graph) -> tuple:
    result = simulate_graph(graph, arch)
    dram = arch.memory[0].name
    traffic = sum(a.total * a.word_bits for lay in result.layers for a in lay.counts.accesses if a.level == dram)
    return (result.total["cycles"], result.total["latency_s"], round(result.total["energy_pj"], 3), round(traffic, 3),
            round(result.total.get("area_mm2", 0.0), 9))


def _set_fields(preset: str) -> list[str]:
    """Dotted paths of the leaf fields the preset's YAML sets."""
    data = yaml.safe_load((resources.files("hwsim.configs") / "arch" / f"{preset}.yaml").read_text())
    out: list[str] = []

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            if key in LABELS:
                continue
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                out.append(f"{prefix}{key}")

    for level in data.get("memory", []):
        walk(f"memory.{level['name']}.", {k: v for k, v in level.items() if k != "name"})
    walk("", {k: v for k, v in data.items() if k not in ("memory", "energy")})
    return out


def _alternatives(arch, dotted: str) -> list:
    node, owner = arch, None
    for part in dotted.split("."):
        owner = node
        node = next(lvl for lvl in node if lvl.name == part) if isinstance(node, tuple) else getattr(node, part)
    info = type(owner).model_fields[dotted.split(".")[-1]]
    literals = [a for a in typing.get_args(info.annotation) if isinstance(a, str)]
    if typing.get_origin(info.annotation) is typing.Literal and literals:
        return [v for v in literals if v != node]
    if isinstance(node, bool):
        return [not node]
    if isinstance(node, int):       # also the extreme: a field may matter only far from its value
        return sorted({node * 2, max(1, node // 2), 1} - {node})
    if isinstance(node, float):
        return [node * 2, node / 2, node / 64]
    if isinstance(node, tuple) and node and all(isinstance(v, int) for v in node):
        return [tuple(v * 2 for v in node)]
    return []


@pytest.mark.parametrize("preset", preset_names())
def test_every_field_a_preset_sets_is_read_or_rejected(preset):
    arch = load_arch(preset)
    graph = _binarized(GRAPH) if arch.engine == "binary" else GRAPH
    base = _signature(arch, graph)
    silent = []
    for dotted in _set_fields(preset):
        if dotted.split(".")[-1] in UNREAD_BY_DESIGN or (preset, dotted) in CONTEXTUAL:
            continue
        outcomes = []
        for value in _alternatives(arch, dotted):
            try:
                variant = arch.with_overrides({dotted: value})
                outcomes.append("changed" if _signature(variant, graph) != base else "silent")
            except HwsimError:      # refused with a clear error, by validation or by the engine
                outcomes.append("rejected")
        if outcomes and all(o == "silent" for o in outcomes):
            silent.append(dotted)
    assert not silent, f"{preset}: perturbing {silent} changes nothing and is not rejected"
