"""Lowering torch models to a LayerGraph: MACs, op kinds, folding, edges, RNNs, attention, metadata."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hwsim import zoo
from hwsim.errors import ConfigError, UnknownNameError, UnsupportedOpError
from hwsim.ir import LayerGraph, Op, SparsityKind

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hwsim.lower import load_graph, lower  # noqa: E402

CNNS = ["resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1", "shufflenet_v2",
        "squeezenet1_1", "alexnet", "alexnet_orig", "vgg16", "ssdlite_mobilenet_v2", "digits_cnn"]
_CACHE: dict[str, LayerGraph] = {}


def lowered(name: str) -> LayerGraph:
    """Lower each zoo model once per test session, on the meta device (shapes only; fast)."""
    if name not in _CACHE:
        _CACHE[name] = lower(zoo.create(name, device="meta"), zoo.input_shape(name), name=name, meta=True)
    return _CACHE[name]


def flop_counter_macs(name: str) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        zoo.create(name, device="meta")(torch.zeros(zoo.input_shape(name), device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", CNNS)
def test_cnn_macs_match_flop_counter(name):
    graph = lowered(name)
    assert graph.macs == flop_counter_macs(name)
    assert graph.macs == sum(layer.N * layer.K * (layer.C // layer.G) * layer.P * layer.Q * layer.R * layer.S
                             for layer in graph.compute_layers())


def test_mobilenet_v2_depthwise_detection():
    graph = lowered("mobilenet_v2")
    depthwise = [layer for layer in graph if layer.op is Op.DEPTHWISE]
    assert len(depthwise) == 17                        # one per inverted-residual block
    first = depthwise[0]                               # features.1: 32-ch 3x3 dw at 112x112
    assert (first.C, first.K, first.G, first.R, first.P) == (32, 32, 32, 3, 112)
    assert first.gemm_shape == (32, 12544, 9, 1)       # frontend.md §5.2 prototype
    assert all(layer.G == 1 for layer in graph if layer.op is Op.CONV)


def test_resnet18_batchnorm_folded_and_residuals():
    graph = lowered("resnet18")
    assert not [layer for layer in graph if layer.op is Op.NORM]
    convs = [layer for layer in graph if layer.op is Op.CONV]
    assert len(convs) == 20 and len(graph.compute_layers()) == 21
    adds = [layer for layer in graph if layer.op is Op.ELTWISE]
    assert len(adds) == 8 and all(len(graph.predecessors(a.name)) == 2 for a in adds)
    assert sorted(graph.predecessors("layer1.0.add")) == ["layer1.0.conv2", "maxpool"]
    assert sorted(graph.predecessors("layer2.0.add")) == ["layer2.0.conv2", "layer2.0.downsample.0"]
    assert graph["layer1.0.conv1"].source == "layer1.0.conv1"
    assert graph.meta["outputs"] == ["fc"] and graph.input_shape == (1, 3, 224, 224)
    first = graph.layers()[0]
    assert first.name == "conv1" and graph.predecessors("conv1") == []
    assert (first.stride, first.padding, first.P) == ((2, 2), (3, 3), 112)


def test_shufflenet_shuffles_splits_and_concats():
    for name in ("shufflenet_v1", "shufflenet_v2"):     # view/transpose/view pattern, aten.channel_shuffle
        graph = lowered(name)
        shuffles = [layer for layer in graph if layer.op is Op.SHUFFLE]
        assert len(shuffles) == 16 and all(layer.macs == 0 for layer in shuffles)
        assert not [layer for layer in graph if layer.op is Op.RESHAPE]
    v2 = lowered("shufflenet_v2")
    assert len([layer for layer in v2 if layer.op is Op.SPLIT]) == 13
    cat = v2["stage2.1.cat"]
    assert cat.op is Op.CONCAT and sorted(v2.predecessors(cat.name)) == ["stage2.1.branch2.5", "stage2.1.split"]


def test_squeezenet_pooling_window():
    graph = lowered("squeezenet1_1")
    pool = graph["features.2"]
    assert pool.op is Op.POOL and (pool.P, pool.R, pool.stride) == (55, 3, (2, 2))  # (111-3)/2+1


def test_alexnet_orig_groups_and_lrn():
    graph = lowered("alexnet_orig")
    assert graph["features.4"].G == 2 and graph["features.8"].G == 1 and graph["features.10"].G == 2
    norms = [layer for layer in graph if layer.op is Op.NORM]
    assert [n.name for n in norms] == ["features.2", "features.6"]      # LocalResponseNorm, one layer each


def test_lstm_layers_closed_form():
    graph = lower(zoo.create("lstm_kws"), (3, 49, 40))
    t, b, f, h = 49, 3, 40, 256
    ih0, hh0, ih1, hh1 = (graph[f"lstm.l{i}.{w}"] for i in (0, 1) for w in ("ih", "hh"))
    assert (ih0.N, ih0.P, ih0.C, ih0.K) == (1, t * b, f, 4 * h)
    assert (hh0.N, hh0.P, hh0.C, hh0.K) == (t, b, h, 4 * h)
    assert (ih1.C, hh1.C) == (h, h)
    assert graph.predecessors("lstm.l1.ih") == ["lstm.l0.hh"] and graph.predecessors("fc") == ["lstm.l1.hh"]
    lstm_macs = t * b * 4 * h * (f + h) + t * b * 4 * h * (h + h)   # 4H(in+H) per step and sample
    assert graph.macs == lstm_macs + b * h * 12
    assert ih0.weight_elems == 4 * h * f and hh0.source == "lstm"


def test_bidirectional_gru():
    model = nn.GRU(8, 16, num_layers=2, bidirectional=True).eval()
    graph = lower(model, (5, 2, 8))                     # (seq, batch, features)
    assert graph["l1.ih"].C == 32 and graph["l1_reverse.hh"].K == 48
    assert graph.macs == 2 * (5 * 2 * 48 * (8 + 16) + 5 * 2 * 48 * (32 + 16))


@pytest.mark.parametrize("attention", ["sdpa", "matmul"])
def test_vit_attention_lowers_to_two_matmuls(attention):
    dim, heads, depth, img, patch, mlp = 192, 3, 2, 32, 16, 4
    graph = lower(zoo.create("vit_tiny", img_size=img, depth=depth, attention=attention), (2, 3, img, img))
    tokens, batch = (img // patch) ** 2 + 1, 2
    matmuls = [layer for layer in graph if layer.op is Op.MATMUL]
    assert len(matmuls) == 2 * depth
    qk, av = matmuls[:2]
    assert (qk.N, qk.P, qk.C, qk.K) == (batch * heads, tokens, dim // heads, tokens)
    assert (av.N, av.P, av.C, av.K) == (batch * heads, tokens, tokens, dim // heads)
    assert len([layer for layer in graph if layer.op is Op.SOFTMAX]) == depth
    linears = batch * tokens * dim * (3 * dim + dim + 2 * mlp * dim)          # qkv, proj, fc1, fc2
    per_block = linears + 2 * batch * heads * tokens ** 2 * (dim // heads)    # + q k^T and p v
    patch_embed = batch * (img // patch) ** 2 * dim * 3 * patch * patch
    assert graph.macs == patch_embed + depth * per_block + batch * dim * 1000


def test_vit_tiny_published_macs():
    # DeiT-Ti (Touvron et al. 2021): 1.3 GFLOPs; exact closed form 1,253,683,200 MACs at 224x224
    graph = lower(zoo.create("vit_tiny", device="meta"), (1, 3, 224, 224), meta=True)
    assert graph.macs == 1_253_683_200


def _nm_conv(n: int, m: int) -> nn.Module:
    conv = nn.Conv2d(8, 16, 3, padding=1)
    with torch.no_grad():
        w = conv.weight.reshape(16, -1, m)            # groups of m along the flattened C*R*S axis
        order = w.abs().argsort(dim=-1)
        w.scatter_(-1, order[..., : m - n], 0.0)
    return nn.Sequential(conv, nn.ReLU())


@pytest.mark.parametrize("kernel, padding", [(3, 1), (7, 3), (1, 0)])
def test_strided_conv_keeps_its_real_input_extent(kernel, padding):
    """A stride-2 conv's input is the tensor it reads (8 wide), not the smallest one its output implies
    ((4 - 1) * 2 + k - 2 * pad: 7 for 3x3/pad 1 and 7x7/pad 3), so input traffic counts every word."""
    conv = nn.Conv2d(3, 4, kernel, stride=2, padding=padding)
    layer = next(iter(lower(conv, (2, 3, 8, 8)).compute_layers()))
    assert (layer.P, layer.Q) == (4, 4)
    assert layer.input_hw == (8, 8) and layer.input_elems == 2 * 3 * 8 * 8
    assert LayerGraph.from_json(lower(conv, (2, 3, 8, 8)).to_json())[layer.name].input_hw == (8, 8)


def test_two_four_pruned_conv_detected_and_mask_round_trips(tmp_path):
    graph = lower(_nm_conv(2, 4), (1, 8, 6, 6))
    layer = graph["0"]
    assert layer.sparsity.kind is SparsityKind.NM and (layer.sparsity.n, layer.sparsity.m) == (2, 4)
    assert layer.weight_density == 0.5 and layer.weight_mask.shape == (16, 72)
    reloaded = LayerGraph.load(graph.save(tmp_path / "g.json"))
    assert reloaded == graph
    assert np.array_equal(reloaded["0"].weight_mask.to_array(), layer.weight_mask.to_array())
    assert not lower(_nm_conv(2, 4), (1, 8, 6, 6), keep_masks=False)["0"].weight_mask


def test_torch_prune_mask_is_folded():
    model = nn.Sequential(nn.Linear(16, 8))
    mask = torch.zeros(8, 16)
    for row in range(8):
        mask[row, row % 4::4] = 1                      # 1:4 along the input features, staggered per row
    torch_prune.custom_from_mask(model[0], "weight", mask)   # weight = weight_orig * weight_mask (exported)
    layer = lower(model, (2, 16))["0"]
    assert layer.sparsity.describe() == "1:4" and layer.weight_density == 0.25


def test_hwsim_meta_is_picked_up():
    model = zoo.create("digits_cnn")
    model.hwsim_meta = {"act_bits": 6, "compression": ["distill(student)"]}
    model.features[0][0].hwsim_meta = {"weight_bits": 4, "act_density": 0.5, "compression": ["quant(w4)"]}
    graph = lower(model, (1, 1, 8, 8))
    first = graph["features.0.0"]
    assert (first.weight_bits, first.act_bits, first.act_density) == (4, 6, 0.5)
    assert first.compression == ("distill(student)", "quant(w4)")       # labels accumulate outer -> inner
    assert graph["features.1.0"].weight_bits == 8 and graph["features.1.0"].act_bits == 6
    assert graph["features.2"].compression == ("distill(student)",) and graph["features.2"].weight_bits == 8
    model.hwsim_meta = {"wbits": 4}
    with pytest.raises(ConfigError, match="unknown key.*wbits"):
        lower(model, (1, 1, 8, 8))


class _Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.odd = nn.Sequential(nn.Identity())

    def forward(self, x):
        return self.fc(torch.cumsum(self.fc(x), dim=1))


def test_unsupported_op_error_and_skip():
    with pytest.raises(UnsupportedOpError, match=r"'cumsum'.*module '<top level>'.*skip_unsupported"):
        lower(_Cumsum(), (2, 4))
    graph = lower(_Cumsum(), (2, 4), skip_unsupported=True)
    assert graph.meta["skipped"] == [{"op": "cumsum", "module": ""}]
    assert graph.predecessors("fc_1") == ["fc"]        # dependency kept through the skipped op


def test_lower_needs_a_shape():
    with pytest.raises(ConfigError, match="input_shape"):
        lower(nn.Linear(2, 2))


def test_layer_names_unique_and_deterministic():
    a, b = lower(zoo.create("digits_cnn"), (1, 1, 8, 8)), lower(zoo.create("digits_cnn"), (1, 1, 8, 8))
    assert [layer.name for layer in a] == [layer.name for layer in b]
    assert [layer.name for layer in a] == ["features.0.0", "features.1.0", "features.2", "features.3.0",
                                           "features.4", "classifier.1", "classifier.3"]


def test_load_graph_resolves_zoo_json_and_errors(tmp_path):
    graph = load_graph("digits_cnn", batch=4)
    assert graph.input_shape == (4, 1, 8, 8) and graph.macs == 4 * lowered("digits_cnn").macs
    path = graph.save(tmp_path / "digits.json")
    code = (f"import sys; from hwsim.lower import load_graph; g = load_graph({str(path)!r}); "
            f"assert g.macs == {graph.macs}; assert load_graph({str(path)!r}, batch=1).macs == {graph.macs // 4}; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(UnknownNameError, match="zoo names: resnet18"):
        load_graph("resnet-18")
    with pytest.raises(ConfigError, match="does not exist"):
        load_graph(tmp_path / "missing.onnx")


class _Mixed(nn.Module):
    """conv1d, a matmul with a parameter, constant/scalar arithmetic (fused) and a residual mul."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, stride=2, padding=1)
        self.proj = nn.Parameter(torch.randn(6, 5))
        self.offset = nn.Parameter(torch.zeros(5))

    def forward(self, x):
        y = self.conv(x).transpose(1, 2)                 # (B, L, 6)
        z = (y @ self.proj) * 0.5 + self.offset          # linear with a parameter; fused scalar/const ops
        return z * torch.sigmoid(z)                      # two activation operands -> eltwise


def test_conv1d_parameter_matmul_and_fused_constants():
    graph = lower(_Mixed(), (2, 4, 16))
    conv = graph["conv"]
    assert (conv.op, conv.N, conv.K, conv.C, conv.P, conv.Q, conv.R, conv.S, conv.stride) == \
        (Op.CONV, 2, 6, 4, 8, 1, 3, 1, (2, 1))
    linear = graph["linear"]
    assert (linear.op, linear.P, linear.C, linear.K) == (Op.LINEAR, 16, 6, 5) and linear.weight_density == 1.0
    assert [layer.op for layer in graph] == [Op.CONV, Op.RESHAPE, Op.LINEAR, Op.ELTWISE]
    assert graph.macs == 2 * 8 * 6 * 4 * 3 + 16 * 6 * 5


def test_meta_lowering_is_dense_and_same_shapes():
    model = _nm_conv(2, 4)
    real, meta = lower(model, (1, 8, 6, 6)), lower(model, (1, 8, 6, 6), meta=True)
    assert real.macs == meta.macs and meta["0"].weight_density == 1.0 and meta["0"].weight_mask is None
    assert next(model.parameters()).device.type == "cpu"      # the caller's model is left on its device


def test_ssdlite_heads_and_json_round_trip(tmp_path):
    graph = lowered("ssdlite_mobilenet_v2")
    concats = [layer for layer in graph if layer.op is Op.CONCAT]
    assert len(concats) == 2 and all(len(graph.predecessors(c.name)) == 6 for c in concats)
    assert len([layer for layer in graph if layer.op is Op.RESHAPE]) == 12   # one permute per head
    assert sorted(graph.meta["outputs"]) == sorted(c.name for c in concats)
    assert LayerGraph.load(graph.save(tmp_path / "ssd.json")) == graph


def test_transformer_encoder_layer_and_embedding():
    encoder = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval()   # nn.MultiheadAttention inside
    graph = lower(encoder, (2, 10, 64))
    matmuls = [layer for layer in graph if layer.op is Op.MATMUL]
    assert [(m.N, m.P, m.C, m.K) for m in matmuls] == [(8, 10, 16, 10), (8, 10, 10, 16)]
    # in_proj, out_proj, linear1, linear2 over 20 tokens + two attention matmuls
    assert graph.macs == 2 * 10 * 64 * (3 * 64 + 64 + 2 * 128) + 2 * 2 * 4 * 10 * 10 * 16

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.fc = nn.Embedding(100, 32), nn.Linear(32, 4)

        def forward(self, tokens):
            return nn.functional.interpolate(self.fc(self.emb(tokens)).transpose(1, 2), scale_factor=2.0)

    tagged = lower(Tagger(), example_input=torch.randint(0, 100, (2, 7)))
    assert [layer.op for layer in tagged] == [Op.RESHAPE, Op.LINEAR, Op.RESHAPE, Op.RESHAPE]
    assert tagged.input_shape == (2, 7) and tagged["fc"].P == 14
