"""Weight-mask analysis (``hwsim.lower.weight_facts``) and re-batching: pure NumPy, no torch."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.ir import Layer, LayerGraph, Op, SparsityKind
from hwsim.errors import ConfigError
from hwsim.lower import rebatch, weight_facts

RNG = np.random.default_rng(0)


def _nm_mask(rows: int, cols: int, n: int, m: int) -> np.ndarray:
    mask = np.zeros((rows, cols // m, m), dtype=bool)
    for r in range(rows):
        for g in range(cols // m):
            mask[r, g, RNG.choice(m, n, replace=False)] = True
    return mask.reshape(rows, cols)


def test_dense_and_accidental_zeros():
    density, sparsity, mask = weight_facts(np.ones((8, 9), dtype=bool))
    assert density == 1.0 and sparsity.kind is SparsityKind.DENSE and mask is None
    big = np.ones((100, 1000), dtype=bool)
    big[3, 7] = big[50, 9] = False                      # 2 zeros in 100,000 (e.g. from random init): dense
    assert weight_facts(big)[:2] == (1.0, weight_facts(np.ones((2, 2), dtype=bool))[1])
    big[:, :20] = False                                  # 2 % zeros is real sparsity
    assert weight_facts(big)[0] == 0.98


@pytest.mark.parametrize("n,m", [(1, 4), (2, 4), (4, 8)])
def test_nm_patterns(n, m):
    density, sparsity, packed = weight_facts(_nm_mask(16, 32, n, m))
    assert (sparsity.kind, sparsity.n, sparsity.m) == (SparsityKind.NM, n, m)
    assert density == n / m and packed.shape == (16, 32) and packed.density == n / m


def test_nm_allows_fewer_nonzeros_per_group():
    mask = _nm_mask(8, 16, 2, 4)
    mask[0, :4] = False                                  # one all-zero group still satisfies 2:4
    assert weight_facts(mask)[1].describe() == "2:4"


@pytest.mark.parametrize("block", [4, 8, 16])
def test_block_patterns(block):
    tiles = RNG.random((64 // block, 64 // block)) < 0.5
    tiles[0, 0], tiles[0, 1], tiles[1, 0] = True, False, False    # neither whole rows nor whole columns
    tiles[1, 1] = True
    mask = np.kron(tiles, np.ones((block, block), dtype=bool)).astype(bool)
    sparsity = weight_facts(mask)[1]
    assert sparsity.kind is SparsityKind.BLOCK and sparsity.block == (block, block)


def test_channel_pattern_rows_and_columns():
    rows = np.ones((8, 12), dtype=bool)
    rows[[1, 5]] = False                                 # two filters removed
    cols = np.ones((8, 12), dtype=bool)
    cols[:, 3] = False                                   # one input column removed
    assert weight_facts(rows)[1].kind is SparsityKind.CHANNEL and weight_facts(rows)[0] == 0.75
    assert weight_facts(cols)[1].kind is SparsityKind.CHANNEL


def test_unstructured_and_keep_mask_off():
    mask = RNG.random((10, 30)) < 0.3
    density, sparsity, packed = weight_facts(mask, keep_mask=False)
    assert sparsity.kind is SparsityKind.UNSTRUCTURED and packed is None and density == pytest.approx(mask.mean())
    assert np.array_equal(weight_facts(mask)[2].to_array(), mask)


def test_rebatch_scales_n_or_p():
    graph = LayerGraph("g", input_shape=(2, 3, 8, 8))
    graph.add_layer(Layer("conv", Op.CONV, N=2, K=4, C=3, P=8, Q=8, R=3, S=3))
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=256, P=2), inputs=["conv"])
    out = rebatch(graph, 6)
    assert out.macs == 3 * graph.macs and out["conv"].N == 6 and out["fc"].P == 6
    assert out.input_shape == (6, 3, 8, 8) and out.predecessors("fc") == ["conv"]
    assert rebatch(graph, 2) is graph and rebatch(graph, 1)["fc"].P == 1 and rebatch(graph, 3)["conv"].N == 3
    graph.add_layer(Layer("odd", Op.MATMUL, N=3, K=2, C=2, P=2), inputs=["fc"])   # N not a multiple of batch
    with pytest.raises(ConfigError, match="from batch 2 to 1: layer 'odd' has N=3"):
        rebatch(graph, 1)
