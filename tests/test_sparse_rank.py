"""End to end: one network compressed three ways ranks differently on different hardware.

Fast version on hand-built ResNet-like layers (no torch); the full ResNet-18 run
(benchmarks/rank_resnet18_engines.py) is marked slow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hwsim.ir import Layer, LayerGraph, Op

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rank_resnet18_engines.py"


def _script():
    spec = importlib.util.spec_from_file_location("rank_resnet18_engines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mini_resnet() -> LayerGraph:
    graph = LayerGraph("mini_resnet", input_shape=(1, 3, 64, 64))
    graph.add_layer(Layer("conv1", Op.CONV, K=32, C=3, P=32, Q=32, R=7, S=7, stride=2, padding=3))
    graph.add_layer(Layer("b1", Op.CONV, K=64, C=32, P=16, Q=16, R=3, S=3, stride=2, padding=1), ["conv1"])
    graph.add_layer(Layer("b2", Op.CONV, K=64, C=64, P=16, Q=16, R=3, S=3, padding=1), ["b1"])
    graph.add_layer(Layer("b3", Op.CONV, K=128, C=64, P=8, Q=8, R=3, S=3, stride=2, padding=1), ["b2"])
    graph.add_layer(Layer("fc", Op.LINEAR, K=100, C=128), ["b3"])
    return graph


def _winners(rows):
    return {r["arch"]: r["variant"] for r in rows if r["rank_latency"] == 1}


def test_best_variant_depends_on_the_hardware():
    mod = _script()
    rows = mod.rank_table(mod.variants_from_masks(mini_resnet()))
    winners = _winners(rows)
    assert winners["sparse_tc_2_4"] == "nm_2_4"
    assert winners["scnn"] == "unstructured_80"
    assert winners["bit_fusion"] == "int4"


def test_variant_builders():
    mod = _script()
    v = mod.variants_from_masks(mini_resnet())
    b2 = {name: g["b2"] for name, g in v.items()}
    assert b2["unstructured_80"].weight_mask.density == pytest.approx(0.2, abs=1e-3)
    assert b2["nm_2_4"].sparsity.describe() == "2:4" and b2["nm_2_4"].weight_mask.density == 0.5
    assert v["nm_2_4"]["conv1"].sparsity.describe() == "dense"          # 3*7*7 = 147 is not a multiple of 4
    assert (b2["int4"].weight_bits, v["int4"]["conv1"].weight_bits, v["int4"]["fc"].act_bits) == (4, 8, 8)


@pytest.mark.slow
def test_resnet18_ranking_changes_with_hardware():
    mod = _script()
    graphs, _ = mod.build_variants("auto")
    winners = _winners(mod.rank_table(graphs))
    assert len({winners["sparse_tc_2_4"], winners["scnn"], winners["bit_fusion"]}) == 3
