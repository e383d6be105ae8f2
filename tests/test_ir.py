"""IR: derived sizes, validation messages, and exact JSON round-trip (masks included)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.ir import Layer, LayerGraph, Op, PackedMask, Sparsity, SparsityKind


def test_conv_macs_and_sizes():
    # ResNet-18 conv1: 64 filters 7x7x3, 112x112 output, stride 2, pad 3 -> 118,013,952 MACs (torchvision).
    layer = Layer("conv1", Op.CONV, K=64, C=3, P=112, Q=112, R=7, S=7, stride=2, padding=3, input_size=224)
    assert layer.macs == 118_013_952
    assert layer.with_changes(input_size=None).input_hw == (223, 223)  # smallest input giving 112 outputs
    assert layer.weight_elems == 64 * 3 * 7 * 7
    assert layer.input_hw == (224, 224)
    assert layer.input_elems == 3 * 224 * 224
    assert layer.output_elems == 64 * 112 * 112
    assert layer.gemm_shape == (1, 112 * 112, 3 * 49, 64)


def test_depthwise_is_mapped_per_group():
    layer = Layer("dw", Op.DEPTHWISE, K=32, C=32, G=32, P=112, Q=112, R=3, S=3, padding=1)
    assert layer.macs == 32 * 112 * 112 * 9
    assert layer.gemm_shape == (32, 112 * 112, 9, 1)
    assert layer.weight_elems == 32 * 9


def test_linear_and_matmul_shapes():
    fc = Layer("fc", Op.LINEAR, K=1000, C=512, P=4)
    assert fc.macs == 4 * 512 * 1000 and fc.weight_elems == 512_000 and fc.input_elems == 4 * 512
    qk = Layer("qk", Op.MATMUL, N=3, P=197, C=64, K=197)
    assert qk.macs == 3 * 197 * 64 * 197
    assert qk.weight_elems == 0 and qk.second_operand_elems == 3 * 197 * 64
    assert qk.gemm_shape == (3, 197, 64, 197)


def test_effectual_macs_scale_with_densities():
    layer = Layer("c", Op.CONV, K=8, C=8, P=4, Q=4, R=3, S=3, weight_density=0.5, act_density=0.5)
    assert layer.effectual_macs == pytest.approx(layer.macs * 0.25)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"K": 0}, r"layer 'bad': K must be a positive integer, got 0"),
        ({"C": -3}, r"C must be a positive integer"),
        ({"C": 6, "G": 4, "K": 8}, r"C=6 is not divisible by groups G=4"),
        ({"weight_density": 1.5}, r"weight_density must be in \[0, 1\], got 1.5"),
        ({"act_bits": 0}, r"act_bits must be an integer in \[1, 64\], got 0"),
        ({"stride": (0, 1)}, r"stride must be >= 1"),
    ],
)
def test_impossible_layers_name_layer_and_field(changes, message):
    fields = {"K": 8, "C": 8, "P": 4, "Q": 4}
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        Layer("bad", Op.CONV, **fields)


def test_nm_sparsity_validation():
    assert Sparsity(SparsityKind.NM, n=2, m=4).describe() == "2:4"
    with pytest.raises(ValueError, match="0 <= n <= m"):
        Sparsity(SparsityKind.NM, n=5, m=4)


@settings(deadline=None, max_examples=50)
@given(rows=st.integers(1, 40), cols=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_packed_mask_round_trips(rows, cols, seed):
    mask = np.random.default_rng(seed).random((rows, cols)) < 0.3
    packed = PackedMask.from_array(mask)
    assert np.array_equal(packed.to_array(), mask)
    assert np.array_equal(PackedMask.from_json(json.loads(json.dumps(packed.to_json()))).to_array(), mask)
    assert packed.density == pytest.approx(mask.mean())


def _small_graph() -> LayerGraph:
    graph = LayerGraph("tiny", input_shape=(1, 3, 8, 8))
    mask = np.zeros((4, 27), dtype=bool)
    mask[:, ::2] = True
    graph.add_layer(Layer("a", Op.CONV, K=4, C=3, P=8, Q=8, R=3, S=3, padding=1, weight_density=float(mask.mean()),
                          sparsity=Sparsity(SparsityKind.UNSTRUCTURED), weight_mask=PackedMask.from_array(mask),
                          compression=("magnitude_prune(0.5)",), source="features.0"))
    graph.add_layer(Layer("b", Op.DEPTHWISE, input_size=(8, 8), K=4, C=4, G=4, P=8, Q=8, R=3, S=3, padding=1, weight_bits=4), ["a"])
    graph.add_layer(Layer("add", Op.ELTWISE, K=4, P=8, Q=8), ["a", "b"])
    graph.add_layer(Layer("fc", Op.LINEAR, K=10, C=256, sparsity=Sparsity(SparsityKind.NM, n=2, m=4),
                          weight_density=0.5), ["add"])
    return graph


def test_graph_json_round_trip_is_exact(tmp_path):
    graph = _small_graph()
    path = graph.save(tmp_path / "g.json")
    loaded = LayerGraph.load(path)
    assert loaded == graph
    assert [layer.name for layer in loaded.layers()] == ["a", "b", "add", "fc"]
    assert loaded["a"].weight_mask.to_array().sum() == 4 * 14
    assert loaded["fc"].sparsity == Sparsity(SparsityKind.NM, n=2, m=4)
    assert loaded.predecessors("add") == ["a", "b"]
    assert loaded.macs == graph.macs == 4 * 27 * 64 + 4 * 9 * 64 + 2560


def test_graph_rejects_unknown_inputs_and_bad_files(tmp_path):
    graph = LayerGraph("g")
    with pytest.raises(ValueError, match="input 'nope' is not in the graph"):
        graph.add_layer(Layer("x", Op.LINEAR, K=2, C=2), ["nope"])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        LayerGraph.load(bad)
    bad.write_text(json.dumps({"layers": []}))
    with pytest.raises(ValueError, match="not an hwsim layer graph"):
        LayerGraph.load(bad)
