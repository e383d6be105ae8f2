"""ONNX import: a dynamo export of a zoo model against the torch path, and hand-built shape-only files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from hwsim.errors import UnsupportedOpError  # noqa: E402
from hwsim.ir import Op, SparsityKind  # noqa: E402
from hwsim.lower import load_graph, lower_onnx  # noqa: E402


def _export(model, shape, path, *, dynamo=True):
    import torch

    torch.onnx.export(model, (torch.randn(shape),), str(path), dynamo=dynamo, verbose=False)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A two-unit ShuffleNetV2 slice (conv-BN, split, shuffle, concat; last 1x1 conv pruned 2:4), 32x32,
    exported by torch.onnx (dynamo; about 2-5 s) and lowered by the torch path."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from hwsim.lower import lower
    from hwsim.zoo._blocks import conv_bn
    from hwsim.zoo.shufflenet import ShuffleV2Unit

    torch.manual_seed(0)
    model = torch.nn.Sequential(conv_bn(3, 24, 3, 2), ShuffleV2Unit(24, 48, 2), ShuffleV2Unit(48, 48, 1),
                                conv_bn(48, 64, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(64, 10)).eval()
    with torch.no_grad():
        weight = model[3][0].weight.reshape(64, -1, 4)
        weight.scatter_(-1, weight.abs().argsort(dim=-1)[..., :2], 0.0)
    path = _export(model, (1, 3, 32, 32), tmp_path_factory.mktemp("onnx") / "slice.onnx")
    return path, lower(model, (1, 3, 32, 32))


def _count(graph):
    counts: dict[str, int] = {}
    for layer in graph:
        counts[layer.op.value] = counts.get(layer.op.value, 0) + 1
    return counts


def test_exported_zoo_model_same_macs(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from hwsim import zoo
    from hwsim.lower import lower

    model = zoo.create("digits_cnn")     # TorchScript exporter: the first dynamo export costs 5-20 s
    path = _export(model, (1, 1, 8, 8), tmp_path / "digits.onnx", dynamo=False)
    graph, reference = lower_onnx(path), lower(model, (1, 1, 8, 8))
    assert graph.macs == reference.macs == 616_064       # FlopCounterMode count, tests/test_zoo.py
    assert [layer.name for layer in graph.compute_layers()] == [layer.name for layer in reference.compute_layers()]


def test_exported_onnx_matches_torch_path(exported):
    path, torch_graph = exported
    graph = lower_onnx(path)
    assert graph.macs == torch_graph.macs
    assert _count(graph) == _count(torch_graph)             # BN folded by the exporter, shuffles recognised
    assert _count(graph)["shuffle"] == 2 and _count(graph)["split"] == 1
    assert graph.graph.number_of_edges() == torch_graph.graph.number_of_edges()
    pruned = graph["3.0"]
    assert pruned.sparsity.kind is SparsityKind.NM and (pruned.sparsity.n, pruned.sparsity.m) == (2, 4)
    assert pruned.weight_density == 0.5 and pruned.weight_mask.shape == (64, 48)


def test_exported_onnx_batch_override(exported):
    path, torch_graph = exported
    graph = load_graph(path, batch=3)      # static-shape export: lowered at batch 1, then re-batched
    assert graph.input_shape == (3, 3, 32, 32) and graph.macs == 3 * torch_graph.macs
    assert graph["6"].P == 3 and graph["3.0"].N == 3


def _shape_only_model() -> onnx.ModelProto:
    """x(1,3,16,16) -> conv3x3(8) -> relu -> dw3x3/s2 -> [shuffle g=2] -> add(self) -> gap -> flatten -> gemm(10)."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="dw", group=8, pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Constant", [], ["s5"],
                         value=helper.make_tensor("s5", TensorProto.INT64, [5], [1, 2, 4, 8, 8])),
        helper.make_node("Constant", [], ["s4"], value=helper.make_tensor("s4", TensorProto.INT64, [4], [1, 8, 8, 8])),
        helper.make_node("Reshape", ["c2", "s5"], ["v1"], name="split_view"),
        helper.make_node("Transpose", ["v1"], ["t1"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t1", "s4"], ["v2"], name="merge_view"),
        helper.make_node("Add", ["v2", "c2"], ["a1"], name="residual"),
        helper.make_node("GlobalAveragePool", ["a1"], ["g1"], name="gap"),
        helper.make_node("Flatten", ["g1"], ["fl"], name="flatten"),
        helper.make_node("Gemm", ["fl", "w3"], ["y"], name="fc", transB=1),
    ]
    inputs = [helper.make_tensor_value_info("x", f, ["batch", 3, 16, 16]),
              helper.make_tensor_value_info("w1", f, [8, 3, 3, 3]),
              helper.make_tensor_value_info("w2", f, [8, 1, 3, 3]),
              helper.make_tensor_value_info("w3", f, [10, 8])]
    graph = helper.make_graph(nodes, "hand", inputs, [helper.make_tensor_value_info("y", f, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_only_onnx_by_hand(tmp_path):
    path = tmp_path / "hand.onnx"
    onnx.save(_shape_only_model(), str(path))
    code = (f"import sys; from hwsim.lower import load_graph; g = load_graph({str(path)!r}, batch=2); "
            "print(g.macs); assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    # conv1 16*16*8*27 + dw 8*8*8*9 + fc 8*10, per sample
    per_sample = 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 10
    assert int(out.stdout) == 2 * per_sample
    graph = lower_onnx(path)
    assert graph.macs == per_sample
    assert [layer.op for layer in graph] == [Op.CONV, Op.DEPTHWISE, Op.SHUFFLE, Op.ELTWISE, Op.POOL, Op.LINEAR]
    assert all(layer.weight_density == 1.0 and layer.weight_mask is None for layer in graph)
    assert sorted(graph.predecessors("residual")) == ["dw", "shuffle"]
    # the stride-2 dw conv reads all 16 input columns; its output alone implies (8 - 1) * 2 + 3 - 2 = 15
    assert graph["dw"].input_hw == (16, 16) and graph["dw"].input_elems == 8 * 16 * 16
    dw = graph["dw"]
    assert (dw.G, dw.C, dw.P, dw.stride, dw.padding) == (8, 8, 8, (2, 2), (1, 1))


def test_onnx_unsupported_op(tmp_path):
    model = _shape_only_model()
    model.graph.node[1].op_type = "Hardmax"               # replace the Relu by an op we do not lower
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedOpError, match="ONNX op 'Hardmax' \\(node 'relu1'"):
        lower_onnx(path)
    graph = lower_onnx(path, skip_unsupported=True)
    assert graph.meta["skipped"] == [{"op": "Hardmax", "module": "relu1"}]
    assert graph.predecessors("dw") == ["conv1"]


def test_onnx_weights_give_density(tmp_path):
    model = _shape_only_model()
    weight = np.ones((10, 8), dtype=np.float32)
    weight[:5] = 0.0                                       # five whole output rows zero -> channel sparsity
    model.graph.initializer.append(onnx.numpy_helper.from_array(weight, "w3"))
    del model.graph.input[3]
    path = tmp_path / "w.onnx"
    onnx.save(model, str(path))
    fc = lower_onnx(path)["fc"]
    assert fc.weight_density == 0.5 and fc.sparsity.kind is SparsityKind.CHANNEL


def test_onnx_lstm_and_auto_pad(tmp_path):
    f = TensorProto.FLOAT
    nodes = [helper.make_node("LSTM", ["x", "w", "r"], ["y", "h"], name="lstm", hidden_size=16),
             helper.make_node("Conv", ["img", "k"], ["c"], name="conv", auto_pad="SAME_UPPER", strides=[2, 2])]
    inputs = [helper.make_tensor_value_info("x", f, [7, 2, 8]),           # (steps, batch, features)
              helper.make_tensor_value_info("w", f, [1, 64, 8]), helper.make_tensor_value_info("r", f, [1, 64, 16]),
              helper.make_tensor_value_info("img", f, [1, 3, 9, 9]), helper.make_tensor_value_info("k", f, [4, 3, 3, 3])]
    outputs = [helper.make_tensor_value_info("y", f, None), helper.make_tensor_value_info("c", f, None)]
    model = helper.make_model(helper.make_graph(nodes, "rnn", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "rnn.onnx"
    onnx.save(model, str(path))
    graph = lower_onnx(path)
    ih, hh = graph["lstm.ih"], graph["lstm.hh"]
    assert (ih.P, ih.C, ih.K) == (14, 8, 64) and (hh.N, hh.P, hh.C, hh.K) == (7, 2, 16, 64)
    conv = graph["conv"]
    assert (conv.P, conv.padding) == (5, (1, 1))             # ceil(9/2) = 5; total pad 2 split evenly


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The tensor attribute")      # torch.onnx.export on nn.LSTM
@pytest.mark.parametrize("name,options,shape", [
    ("vit_tiny", {"depth": 1, "img_size": 32}, (1, 3, 32, 32)),          # SDPA -> MatMul/Softmax/MatMul
    ("vit_tiny", {"depth": 1, "img_size": 32, "attention": "matmul"}, (1, 3, 32, 32)),
    ("lstm_kws", {}, (1, 49, 40)),                                       # exported as ONNX LSTM nodes
])
def test_dynamo_export_of_attention_and_lstm(tmp_path, name, options, shape):
    pytest.importorskip("onnxscript")
    from hwsim import zoo
    from hwsim.lower import lower

    model = zoo.create(name, **options)
    graph = lower_onnx(_export(model, shape, tmp_path / f"{name}.onnx"))
    reference = lower(model, shape)
    assert graph.macs == reference.macs
    assert len([layer for layer in graph if layer.op is Op.MATMUL]) == \
        len([layer for layer in reference if layer.op is Op.MATMUL])


def test_onnx_external_weights_missing_reads_shapes_and_present_reads_values(tmp_path):
    """ZigZag's resnet18.onnx keeps its weights in an external file it does not ship: shapes only."""
    model = _shape_only_model()
    weight = np.ones((10, 8), dtype=np.float32)
    weight[:5] = 0.0
    model.graph.initializer.append(onnx.numpy_helper.from_array(weight, "w3"))
    del model.graph.input[3]
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    assert lower_onnx(path)["fc"].weight_density == 0.5             # data file present: values read
    (tmp_path / "ext.data").unlink()
    graph = lower_onnx(path)                                         # absent: the shape alone
    fc = graph["fc"]
    assert (fc.K, fc.C, fc.weight_density) == (10, 8, 1.0)
    assert graph.macs == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 10


def test_shipped_zigzag_onnx_input_extents_are_zigzags():
    """The lowering's input extents are the ones ZigZag's own ONNX parser clips windows to (IY, IX)."""
    pytest.importorskip("zigzag")
    import os
    from pathlib import Path

    import zigzag

    from hwsim.interop.zigzag_replay import _onnx_workload
    from hwsim.interop.zigzag_score import onnx_layers

    path = Path(os.path.dirname(zigzag.__file__)) / "inputs" / "workload" / "resnet18.onnx"
    limits, _ = _onnx_workload(path)
    convs = {name: layer for name, layer in onnx_layers(path).items() if layer.op is Op.CONV and name in limits}
    assert len(convs) == 20
    assert all(layer.input_hw == (limits[name]["IY"], limits[name]["IX"]) for name, layer in convs.items())
    assert convs["/conv1/Conv"].input_hw == (224, 224)            # 7x7/s2/pad 3: its output alone implies 223
