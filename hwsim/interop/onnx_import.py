"""ONNX -> LayerGraph (the ``[onnx]`` extra). Never imports torch.

Shapes come from ``onnx.shape_inference.infer_shapes(data_prop=True)``; weights are optional: a file
whose weights are graph inputs without initializers ("shape-only") lowers with density 1 (a graph input
used only in weight positions, e.g. Conv input 1, is taken as a weight; the others are data inputs).
Conv (group) -> conv/depthwise, Gemm/MatMul with a constant operand -> linear, else matmul;
Max/Average/Global pooling and spatial ReduceMean -> pool; LSTM/GRU/RNN -> two linear layers per
direction (input-to-hidden over all steps, hidden-to-hidden with N = steps, as in ``hwsim.lower``);
Add/Sub/Mul/Div/Sum of two activations -> eltwise; Concat, Split, Softmax, LayerNormalization/LRN ->
concat/split/softmax/norm; BatchNormalization after a conv/gemm is folded; activations, Flatten, Reshape, Squeeze, Pad, Cast, ...
are fused into their producer; a Reshape -> Transpose -> Reshape channel shuffle -> shuffle; other
Transposes -> reshape. Layer names come from the weight initializer (``conv1.0.weight`` -> ``conv1.0``)
or the node name; ``source`` is the exporter's module scope when present.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.lower import ACCIDENTAL_ZEROS, weight_facts

_ALIAS = {"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "Erf", "Elu",
          "Selu", "PRelu", "Softplus", "Mish", "Dropout", "Identity", "Cast", "Flatten", "Reshape", "Squeeze",
          "Unsqueeze", "Pad", "Expand", "Slice", "Gather", "Neg", "Abs", "Sqrt", "Exp", "Log", "Pow", "Round",
          "Sign", "Reciprocal", "QuantizeLinear", "DequantizeLinear", "Tile", "Where"}
_ELTWISE = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean"}
_POOLS = {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax",
          "ReduceSum"}


def lower_onnx(path: str | Path, *, input_shape: tuple[int, ...] | None = None, batch: int | None = None,
               skip_unsupported: bool = False, keep_masks: bool = True) -> LayerGraph:
    """Lower the ONNX model at ``path``; ``input_shape``/``batch`` override the first input's shape."""
    try:
        import onnx
    except ModuleNotFoundError:
        raise ConfigError("reading ONNX needs the 'onnx' package: pip install 'hwsim[onnx]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf/IO errors vary
        raise ConfigError(f"{path.name}: cannot read ONNX model ({err})") from None
    _load_external_weights(model, path)
    _set_input_shape(model, input_shape, batch)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    walker = _OnnxWalker(model, name=path.stem, skip_unsupported=skip_unsupported, keep_masks=keep_masks)
    return walker.run()


def _load_external_weights(model: Any, path: Path) -> None:
    """Pull in weights stored in external data files; when those files are absent (ZigZag's shape-only
    ``resnet18.onnx`` ships without its ``.external``), the initializers stay shape-only (density 1)."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor, uses_external_data

    for tensor in model.graph.initializer:
        if not uses_external_data(tensor) or not (path.parent / ExternalDataInfo(tensor).location).is_file():
            continue                   # no data file: the tensor keeps its shape only
        load_external_data_for_tensor(tensor, str(path.parent))
        tensor.data_location = 0       # DEFAULT: the data is now inline
        del tensor.external_data[:]


def _set_input_shape(model: Any, input_shape: tuple[int, ...] | None, batch: int | None) -> None:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise ConfigError("ONNX model has no (non-weight) graph input")
    dims = inputs[0].type.tensor_type.shape.dim
    if input_shape is not None or batch is not None:
        del model.graph.value_info[:]          # re-infer every intermediate shape from the new input
    if input_shape is not None:
        if len(input_shape) != len(dims):
            raise ConfigError(f"input_shape {tuple(input_shape)} has rank {len(input_shape)} but ONNX input "
                              f"{inputs[0].name!r} has rank {len(dims)}")
        for dim, value in zip(dims, input_shape):
            dim.dim_value = int(value)
    for index, dim in enumerate(dims):
        if index == 0 and batch is not None:
            dim.dim_value = int(batch)
        elif not dim.HasField("dim_value"):
            dim.dim_value = 1          # unresolved symbolic dims (usually the batch) default to 1


class _OnnxWalker:
    def __init__(self, model: Any, *, name: str, skip_unsupported: bool, keep_masks: bool) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.nodes = list(g.node)
        self.skip_unsupported, self.keep_masks = skip_unsupported, keep_masks
        from onnx.external_data_helper import uses_external_data

        self.const: dict[str, np.ndarray | None] = {
            t.name: None if uses_external_data(t) else numpy_helper.to_array(t) for t in g.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {t.name: tuple(int(d) for d in t.dims) for t in g.initializer}
        for info in [*g.input, *g.value_info, *g.output]:
            shape = info.type.tensor_type.shape
            if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in shape.dim):
                self.shapes[info.name] = tuple(int(d.dim_value) for d in shape.dim)
        graph_inputs = [i.name for i in g.input if i.name not in self.const]
        weights = _weight_inputs(self.nodes, graph_inputs)         # shape-only files: weights as graph inputs
        data = [name for name in graph_inputs if name not in weights] or graph_inputs[:1]
        self.prod: dict[str, tuple[str, ...]] = {name: () for name in data}
        for name in graph_inputs:
            if name not in self.prod:
                self.const[name] = None
        self.consumers: dict[str, list[Any]] = {}
        self.producer_node = {out: node for node in self.nodes for out in node.output}
        for node in self.nodes:
            for tensor in node.input:
                self.consumers.setdefault(tensor, []).append(node)
        self.graph = LayerGraph(name, input_shape=self.shapes.get(data[0]),
                                meta={"frontend": "onnx", "skipped": []})
        self.used: set[str] = set()

    def run(self) -> LayerGraph:
        for node in self.nodes:
            self._node(node)
        outs = {p for o in self.nodes[-1:] for t in o.output for p in self.prod.get(t, ())}
        self.graph.meta["outputs"] = sorted(outs)
        return self.graph

    # ----- helpers ---------------------------------------------------------------------------
    def shape(self, tensor: str) -> tuple[int, ...]:
        if tensor not in self.shapes:
            raise UnsupportedOpError(f"ONNX tensor {tensor!r} has no inferred static shape; "
                                     "give input_shape or export with static shapes")
        return self.shapes[tensor]

    def acts(self, node: Any) -> list[str]:
        return [t for t in node.input if t and t not in self.const]

    def producers(self, tensors: list[str]) -> list[str]:
        out: list[str] = []
        for tensor in tensors:
            out.extend(p for p in self.prod.get(tensor, ()) if p not in out)
        return out

    def emit(self, node: Any, op: Op, inputs: list[str], *, weight: np.ndarray | None = None,
             weight_name: str | None = None, base: str | None = None, **dims: Any) -> str:
        scope = _scope(node)
        if base is not None:
            source = scope or node.name
        elif weight_name and "." in weight_name and not weight_name.startswith("onnx::"):
            base = source = weight_name.rsplit(".", 1)[0]
        elif weight_name and scope:
            base = source = scope
        else:
            base, source = (f"{scope}.{op.value}" if scope else (node.name or node.op_type)), scope or node.name
        name, index = base, 0
        while name in self.used:
            index += 1
            name = f"{base}_{index}"
        self.used.add(name)
        fields = dict(dims)
        zeros = 0 if weight is None else weight.size - np.count_nonzero(weight)
        if weight is not None and zeros > ACCIDENTAL_ZEROS * weight.size:
            mask = (weight != 0).reshape(weight.shape[0], -1)
            density, sparsity, packed = weight_facts(mask, keep_mask=self.keep_masks)
            fields.update(weight_density=density, sparsity=sparsity, weight_mask=packed)
        fields.setdefault("native_bits", tuple(f for f in ("weight_bits", "act_bits", "out_bits") if f not in fields))
        self.graph.add_layer(Layer(name=name, op=op, source=source, **fields), inputs=inputs)
        return name

    # ----- dispatch --------------------------------------------------------------------------
    def _node(self, node: Any) -> None:
        acts = self.acts(node)
        if node.op_type in ("Constant", "Shape", "Size", "ConstantOfShape", "Range") or not acts:
            for out in node.output:
                self.const[out] = _constant_value(node) if node.op_type == "Constant" else None
            return
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None and node.op_type in _ALIAS:
            handler = self._alias
        elif handler is None and node.op_type in _ELTWISE:
            handler = self._eltwise
        elif handler is None and node.op_type in _POOLS:
            handler = self._pool
        if handler is None:
            if not self.skip_unsupported:
                raise UnsupportedOpError(f"cannot lower ONNX op {node.op_type!r} (node {node.name!r}, scope "
                                         f"{_scope(node) or '<none>'!r}); pass skip_unsupported=True to skip it")
            self.graph.meta["skipped"].append({"op": node.op_type, "module": _scope(node) or node.name})
            handler = self._alias
        produced = tuple(handler(node))
        for out in node.output:
            self.prod[out] = produced

    def _alias(self, node: Any) -> list[str]:
        return self.producers(self.acts(node))

    def _dims(self, tensor: str) -> dict[str, int]:
        s = [max(v, 1) for v in self.shape(tensor)] or [1]
        if len(s) == 1:
            n, k, p, q = 1, s[0], 1, 1
        elif len(s) == 2:
            n, k, p, q = s[0], s[1], 1, 1
        elif len(s) == 3:
            n, k, p, q = s[0], s[2], s[1], 1
        else:
            n, k, p, q = s[0], s[1], s[2], math.prod(s[3:])
        return {"N": n, "K": k, "C": k, "P": p, "Q": q}

    def _op_Conv(self, node: Any) -> list[str]:
        attrs = _attrs(node)
        x, w = node.input[0], node.input[1]
        xs, ws, ys = self.shape(x), self.shape(w), self.shape(node.output[0])
        spatial = len(ws) - 2
        if spatial not in (1, 2):
            raise UnsupportedOpError(f"cannot lower a {spatial}-D ONNX Conv (node {node.name!r})")
        groups = int(attrs.get("group", 1))
        pick = (lambda v: (v[0], v[1])) if spatial == 2 else (lambda v: (v[0], 1))
        stride, dilation = pick(attrs.get("strides", [1, 1])), pick(attrs.get("dilations", [1, 1]))
        kernel = (ws[2], ws[3] if spatial == 2 else 1)
        outs = (ys[2], ys[3] if spatial == 2 else 1)
        padding = _padding(attrs, spatial, xs[2:], outs, kernel, stride, dilation)
        op = Op.DEPTHWISE if groups == xs[1] and groups > 1 else Op.CONV
        return [self.emit(node, op, self.producers(self.acts(node)), weight=self.const.get(w), weight_name=w,
                          N=xs[0], K=ws[0], C=xs[1], P=outs[0], Q=outs[1], R=kernel[0], S=kernel[1], G=groups,
                          stride=stride, padding=padding, dilation=dilation, input_size=pick(tuple(xs[2:]) + (1,)))]

    def _op_LSTM(self, node: Any) -> list[str]:
        """ONNX LSTM/GRU/RNN: per direction an input-to-hidden and a hidden-to-hidden linear (see hwsim.lower)."""
        attrs = _attrs(node)
        xs, ws = self.shape(node.input[0]), self.shape(node.input[1])      # W: (dirs, gates*H, in)
        steps, batch = (xs[1], xs[0]) if attrs.get("layout", 0) else (xs[0], xs[1])
        hidden = int(attrs.get("hidden_size", ws[1] // _GATES[node.op_type]))
        w_all, r_all = self.const.get(node.input[1]), self.const.get(node.input[2])
        scope, outs = _scope(node), []
        for direction in range(ws[0]):
            w = None if w_all is None else w_all[direction]
            r = None if r_all is None else r_all[direction]
            suffix = "_reverse" if direction else ""
            base = f"{scope or node.name or node.op_type}{suffix}"
            ih = self.emit(node, Op.LINEAR, self.producers([node.input[0]]), weight=w, base=f"{base}.ih",
                           K=ws[1], C=ws[2], P=steps * batch)
            outs.append(self.emit(node, Op.LINEAR, [ih], weight=r, base=f"{base}.hh", N=steps, K=ws[1], C=hidden,
                                  P=batch))
        return outs

    _op_GRU = _op_LSTM
    _op_RNN = _op_LSTM

    def _op_Gemm(self, node: Any) -> list[str]:
        attrs = _attrs(node)
        return self._matmul(node, node.input[0], node.input[1], trans_a=bool(attrs.get("transA", 0)),
                            trans_b=bool(attrs.get("transB", 0)))

    def _op_MatMul(self, node: Any) -> list[str]:
        return self._matmul(node, node.input[0], node.input[1])

    def _matmul(self, node: Any, a: str, b: str, *, trans_a: bool = False, trans_b: bool = False) -> list[str]:
        sa, sb = list(self.shape(a)), list(self.shape(b))
        if trans_a:
            sa[-2:] = sa[-2:][::-1]
        if trans_b:
            sb[-2:] = sb[-2:][::-1]
        out = math.prod(self.shape(node.output[0]))
        m, red = (sa[-2] if len(sa) >= 2 else 1), sa[-1]
        cols = sb[-1] if len(sb) >= 2 else 1
        inputs = self.producers(self.acts(node))
        if b in self.const and a not in self.const and len(sb) == 2:
            value = self.const[b]
            weight = None if value is None else (value if trans_b else value.T)
            return [self.emit(node, Op.LINEAR, inputs, weight=weight, weight_name=b, K=cols, C=red,
                              P=max(out // cols, 1))]
        if a in self.const and b not in self.const and len(sa) == 2:
            value = self.const[a]
            weight = None if value is None else (value.T if trans_a else value)
            return [self.emit(node, Op.LINEAR, inputs, weight=weight, weight_name=a, K=m, C=red, P=max(out // m, 1))]
        return [self.emit(node, Op.MATMUL, inputs, N=max(out // (m * cols), 1), P=m, C=red, K=cols)]

    def _pool(self, node: Any) -> list[str]:
        attrs = _attrs(node)
        x = node.input[0]
        xs, ys = self.shape(x), self.shape(node.output[0])
        if len(xs) != 4:
            if node.op_type.startswith("Reduce"):
                dims = self._dims(node.output[0])
                window = math.prod(xs) // max(math.prod(ys), 1)
                return [self.emit(node, Op.POOL, self.producers([x]), R=window, G=dims["K"], **dims)]
            raise UnsupportedOpError(f"cannot lower ONNX {node.op_type} on a rank-{len(xs)} tensor ({node.name!r})")
        p, q = (ys[2], ys[3]) if len(ys) == 4 else (1, 1)
        dilation = tuple(attrs.get("dilations", [1, 1]))
        if node.op_type.startswith(("Global", "Reduce")):
            kernel, stride, pads = (xs[2], xs[3]), (1, 1), (0, 0)
        else:
            kernel = tuple(attrs["kernel_shape"])
            stride = tuple(attrs.get("strides", [1, 1]))
            pads = _padding(attrs, 2, xs[2:], (p, q), kernel, stride, dilation)
        return [self.emit(node, Op.POOL, self.producers([x]), N=xs[0], K=xs[1], C=xs[1], G=xs[1], P=p, Q=q,
                          R=kernel[0], S=kernel[1], stride=stride, padding=pads, dilation=dilation)]

    def _eltwise(self, node: Any) -> list[str]:
        acts = self.acts(node)
        if len(acts) < 2:
            return self.producers(acts)
        return [self.emit(node, Op.ELTWISE, self.producers(acts), **self._dims(node.output[0]))]

    def _op_Concat(self, node: Any) -> list[str]:
        return [self.emit(node, Op.CONCAT, self.producers(self.acts(node)), **self._dims(node.output[0]))]

    def _op_Split(self, node: Any) -> list[str]:
        return [self.emit(node, Op.SPLIT, self.producers(self.acts(node)), **self._dims(node.input[0]))]

    def _op_Softmax(self, node: Any) -> list[str]:
        return [self.emit(node, Op.SOFTMAX, self.producers(self.acts(node)), **self._dims(node.output[0]))]

    _op_LogSoftmax = _op_Softmax

    def _op_LayerNormalization(self, node: Any) -> list[str]:
        return [self.emit(node, Op.NORM, self.producers([node.input[0]]), **self._dims(node.output[0]))]

    _op_LRN = _op_LayerNormalization
    _op_InstanceNormalization = _op_LayerNormalization
    _op_GroupNormalization = _op_LayerNormalization

    def _op_BatchNormalization(self, node: Any) -> list[str]:
        producers = self.producers([node.input[0]])
        if len(producers) == 1 and self.graph[producers[0]].has_weights:
            return producers
        return self._op_LayerNormalization(node)

    def _op_Transpose(self, node: Any) -> list[str]:
        restored = self._shuffle_source(node)
        if restored is not None:
            return [self.emit(node, Op.SHUFFLE, self.producers(self.acts(node)), **self._dims(restored))]
        return [self.emit(node, Op.RESHAPE, self.producers(self.acts(node)), **self._dims(node.output[0]))]

    def _shuffle_source(self, node: Any) -> str | None:
        """The pre-split tensor when node is the Transpose of a Reshape -> Transpose -> Reshape shuffle."""
        src = self.producer_node.get(node.input[0])
        users = self.consumers.get(node.output[0], [])
        if src is None or src.op_type != "Reshape" or len(users) != 1 or users[0].op_type != "Reshape":
            return None
        before, mid = self.shapes.get(src.input[0]), self.shapes.get(src.output[0])
        after = self.shapes.get(users[0].output[0])
        perm = list(_attrs(node).get("perm", []))
        if not before or not mid or len(mid) != len(before) + 1 or after != before:
            return None
        axis = next((i for i in range(len(before)) if before[i] != mid[i]), None)
        if axis is None or [i for i, d in enumerate(perm) if d != i] != [axis, axis + 1]:
            return None
        return src.input[0]


_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# input positions that hold weights/parameters; a graph input used only there is a weight
_WEIGHT_POSITIONS = {"Conv": {1, 2}, "Gemm": {1, 2}, "MatMul": {1}, "LSTM": {1, 2, 3, 5, 6, 7},
                     "GRU": {1, 2, 3, 5}, "RNN": {1, 2, 3, 5}, "BatchNormalization": {1, 2, 3, 4},
                     "LayerNormalization": {1, 2}, "InstanceNormalization": {1, 2}, "PRelu": {1}}


def _weight_inputs(nodes: list[Any], graph_inputs: list[str]) -> set[str]:
    """Graph inputs that are only ever used in weight positions (shape-only files keep weights as inputs)."""
    uses: dict[str, list[bool]] = {name: [] for name in graph_inputs}
    for node in nodes:
        for position, tensor in enumerate(node.input):
            if tensor in uses:
                uses[tensor].append(position in _WEIGHT_POSITIONS.get(node.op_type, ()))
    return {name for name, flags in uses.items() if flags and all(flags)}


def _padding(attrs: dict[str, Any], spatial: int, in_hw, out_hw, kernel, stride, dilation) -> tuple[int, int]:
    """Leading padding per spatial dim from ``pads``, or implied by ``auto_pad`` and the shapes."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((o - 1) * s + (k - 1) * d + 1 - i, 0)
                  for i, o, k, s, d in zip(in_hw, out_hw, kernel, stride, dilation)]
        lead = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in totals]
        return (lead[0], lead[1] if spatial == 2 else 0)
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    return (pads[0], pads[1] if spatial == 2 else 0)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant_value(node: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
    return None


def _scope(node: Any) -> str:
    """The torch module path of a node: dynamo-exporter metadata, or a TorchScript-style node name."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            parts = [p.strip(" '\"") for p in prop.value.strip("[]").split(",")]
            return parts[-2] if len(parts) >= 2 else ""
    if node.name.startswith("/"):                    # e.g. "/features/features.0/features.0.0/Conv"
        parts = node.name.strip("/").split("/")
        return parts[-2] if len(parts) >= 2 else ""
    return ""
