"""Per-ATen-op lowering rules for the ``torch.export`` walker (``hwsim.interop.torch_lower``).

A rule takes a ``Ctx`` and returns the names of the layers that produce the node's value (a fused
op returns its input's producers instead of adding a layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from torch import fx, nn

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Op

_VIEWS = {"view", "reshape", "_unsafe_view", "unflatten", "flatten", "squeeze", "unsqueeze", "expand",
          "contiguous", "clone", "alias", "detach", "select", "slice", "narrow", "as_strided", "view_as",
          "reshape_as", "expand_as", "repeat", "_to_copy", "to", "type_as", "lift_fresh_copy", "copy"}
_ACTIVATIONS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "gelu", "gelu_", "silu", "silu_",
                "sigmoid", "sigmoid_", "tanh", "tanh_", "hardswish", "hardswish_", "hardsigmoid",
                "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "mish", "softplus",
                "prelu", "_prelu_kernel", "clamp", "clamp_", "clamp_min", "clamp_max", "threshold", "glu",
                "dropout", "dropout_", "feature_dropout", "alpha_dropout", "native_dropout",
                "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine"}
_UNARY = {"neg", "abs", "sign", "round", "floor", "ceil", "trunc", "exp", "log", "sqrt", "rsqrt", "pow",
          "reciprocal", "sin", "cos", "erf", "square", "masked_fill", "masked_fill_", "constant_pad_nd", "pad",
          "zeros_like", "ones_like", "full_like", "empty_like", "_assert_tensor_metadata", "sym_size",
          "sym_numel", "sym_stride", "scalar_tensor", "fill", "fill_", "copy_"}
ALIAS_OPS = frozenset(_VIEWS | _ACTIVATIONS | _UNARY)


@dataclass
class Ctx:
    """What a rule sees: the walker, the node and its schema-normalised arguments."""

    walker: Any
    node: fx.Node
    args: dict[str, Any]

    def shape(self, value: Any) -> tuple[int, ...]:
        from hwsim.interop.torch_lower import shape_of

        return shape_of(value)

    def is_const(self, value: Any) -> bool:
        return isinstance(value, fx.Node) and value.name in self.walker.const

    def const(self, value: Any) -> Any:
        return self.walker.const.get(value.name) if isinstance(value, fx.Node) else None

    def producers(self, *values: Any) -> tuple[str, ...]:
        nodes: list[fx.Node] = []
        fx.node.map_arg(list(values), nodes.append)
        return self.walker.producers(nodes)

    def emit(self, op: Op, inputs, **kw: Any) -> str:
        return self.walker.emit(self.node, op, inputs, **kw)

    def unsupported(self, what: str) -> UnsupportedOpError:
        path = self.walker.module_path(self.node)
        return UnsupportedOpError(f"cannot lower {what} (node {self.node.name!r}) in module "
                                  f"{path or '<top level>'!r}")


def _pair(value: Any, rank: int, default: int) -> tuple[int, int]:
    if value is None or value == []:
        value = [default]
    items = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if rank == 1:
        return (items[0], 1)
    return (items[0], items[-1]) if len(items) > 1 else (items[0], items[0])


def _nchw(shape: tuple[int, ...], spatial: int) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a batched or unbatched 1-D/2-D feature map."""
    batched = len(shape) == spatial + 2
    n = shape[0] if batched else 1
    rest = shape[1:] if batched else shape
    return n, rest[0], rest[1], rest[2] if spatial == 2 else 1


def _dims(ctx: Ctx, value: Any = None) -> dict[str, int]:
    from hwsim.interop.torch_lower import out_dims

    dims = out_dims(ctx.shape(ctx.node if value is None else value))
    return {**dims, "C": dims["K"]}


# ----- MAC ops ------------------------------------------------------------------------------
def conv(ctx: Ctx) -> tuple[str, ...]:
    a = ctx.args
    if a.get("transposed"):
        raise ctx.unsupported("a transposed convolution")
    x, w = a["input"], a["weight"]
    ws = ctx.shape(w)
    if len(ws) not in (3, 4):
        raise ctx.unsupported(f"a {len(ws) - 2}-D convolution")
    spatial = len(ws) - 2
    n, c, in_h, in_w = _nchw(ctx.shape(x), spatial)
    _, k, p, q = _nchw(ctx.shape(ctx.node), spatial)
    kernel = (ws[2], ws[3] if spatial == 2 else 1)
    dilation = _pair(a.get("dilation"), spatial, 1)
    padding = a.get("padding")
    if isinstance(padding, str):
        padding = [0, 0] if padding == "valid" else [d * (r - 1) // 2 for d, r in zip(dilation, kernel)]
    groups = int(a.get("groups") or 1)
    op = Op.DEPTHWISE if groups == c and groups > 1 else Op.CONV
    return (ctx.emit(op, ctx.producers(x, w, a.get("bias")), short="conv", weight=ctx.const(w),
                     N=n, K=k, C=c, P=p, Q=q, R=kernel[0], S=kernel[1], G=groups,
                     stride=_pair(a.get("stride"), spatial, 1), padding=_pair(padding, spatial, 0),
                     dilation=dilation, input_size=(in_h, in_w)),)


def linear(ctx: Ctx) -> tuple[str, ...]:
    x, w = ctx.args["input"], ctx.args["weight"]
    k, c = ctx.shape(w)
    rows = math.prod(ctx.shape(ctx.node)) // max(k, 1)
    return (ctx.emit(Op.LINEAR, ctx.producers(x, w, ctx.args.get("bias")), short="linear", weight=ctx.const(w),
                     K=k, C=c, P=max(rows, 1)),)


def _matmul(ctx: Ctx, a: fx.Node, b: fx.Node, extra: Any = None) -> tuple[str, ...]:
    sa, sb, out = ctx.shape(a), ctx.shape(b), math.prod(ctx.shape(ctx.node))
    m, red = (sa[-2] if len(sa) >= 2 else 1), sa[-1]
    cols = sb[-1] if len(sb) >= 2 else 1
    inputs = ctx.producers(a, b, extra)
    if ctx.is_const(b) and not ctx.is_const(a) and len(sb) == 2:
        weight = ctx.const(b)
        return (ctx.emit(Op.LINEAR, inputs, short="linear", weight=None if weight is None else weight.T,
                         K=cols, C=red, P=max(out // cols, 1)),)
    if ctx.is_const(a) and not ctx.is_const(b) and len(sa) == 2:
        return (ctx.emit(Op.LINEAR, inputs, short="linear", weight=ctx.const(a), K=m, C=red,
                         P=max(out // m, 1)),)
    return (ctx.emit(Op.MATMUL, inputs, short="matmul", N=max(out // (m * cols), 1), P=m, C=red, K=cols),)


def matmul(ctx: Ctx) -> tuple[str, ...]:
    a = ctx.args
    if "mat1" in a:
        return _matmul(ctx, a["mat1"], a["mat2"], a.get("self") if "beta" in a else None)
    if "batch1" in a:
        return _matmul(ctx, a["batch1"], a["batch2"], a.get("self"))
    return _matmul(ctx, a["self"], a["other"] if "other" in a else a["mat2"])


def attention(ctx: Ctx) -> tuple[str, ...]:
    q, k, v = ctx.args["query"], ctx.args["key"], ctx.args["value"]
    sq, sk, sv = ctx.shape(q), ctx.shape(k), ctx.shape(v)
    n, length, e = math.prod(sq[:-2]), sq[-2], sq[-1]
    keys, ev = sk[-2], sv[-1]
    base = ctx.walker.layer_name(ctx.node, "sdpa")
    qk = ctx.emit(Op.MATMUL, ctx.producers(q, k), base=f"{base}.qk", N=n, P=length, C=e, K=keys)
    soft = ctx.emit(Op.SOFTMAX, [qk, *ctx.producers(ctx.args.get("attn_mask"))], base=f"{base}.softmax",
                    N=n, P=length, C=keys, K=keys)
    return (ctx.emit(Op.MATMUL, [soft, *ctx.producers(v)], base=f"{base}.av", N=n, P=length, C=keys, K=ev),)


# ----- recurrent layers ---------------------------------------------------------------------
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def recurrent(ctx: Ctx) -> tuple[str, ...]:
    path = ctx.walker.module_path(ctx.node)
    module = ctx.walker.modules.get(path)
    key = ctx.node.target.overloadpacket.__name__
    if not isinstance(module, nn.RNNBase) or ctx.node.target._overloadname != "input":
        raise ctx.unsupported(f"aten.{key} outside an nn.{key.upper()} module or on packed sequences")
    shape = ctx.shape(ctx.args["input"])
    steps, batch = (shape[1], shape[0]) if module.batch_first else (shape[0], shape[1] if len(shape) == 3 else 1)
    if len(shape) == 2:
        steps, batch = shape[0], 1
    gates, hidden = _GATES[key], module.hidden_size
    out_h = module.proj_size or hidden
    dirs = 2 if module.bidirectional else 1
    previous, width = list(ctx.producers(ctx.args["input"])), shape[-1]
    prefix = f"{path}." if path else ""
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(dirs):
            sfx = f"l{layer}{'_reverse' if direction else ''}"
            w_ih, w_hh = getattr(module, f"weight_ih_{sfx}"), getattr(module, f"weight_hh_{sfx}")
            ih = ctx.emit(Op.LINEAR, previous, base=f"{prefix}{sfx}.ih", module_path=path, weight=w_ih,
                          K=gates * hidden, C=width, P=steps * batch)
            last = ctx.emit(Op.LINEAR, [ih], base=f"{prefix}{sfx}.hh", module_path=path, weight=w_hh,
                            N=steps, K=gates * hidden, C=out_h, P=batch)
            if module.proj_size:
                last = ctx.emit(Op.LINEAR, [last], base=f"{prefix}{sfx}.hr", module_path=path,
                                weight=getattr(module, f"weight_hr_{sfx}"), N=steps, K=out_h, C=hidden, P=batch)
            outputs.append(last)
        previous, width = outputs, out_h * dirs
    return tuple(previous)


# ----- vector and data-movement ops ---------------------------------------------------------
def pool(ctx: Ctx) -> tuple[str, ...]:
    key = ctx.node.target.overloadpacket.__name__
    x = ctx.args.get("self", ctx.args.get("input"))
    spatial = 1 if "1d" in key else 2
    n, c, h, w = _nchw(ctx.shape(x), spatial)
    _, _, p, q = _nchw(ctx.shape(ctx.node), spatial)
    if key.startswith("adaptive"):
        stride = (h // p, w // q)
        kernel = (h - (p - 1) * stride[0], w - (q - 1) * stride[1])
        padding, dilation = (0, 0), (1, 1)
    else:
        kernel = _pair(ctx.args["kernel_size"], spatial, 1)
        stride = _pair(ctx.args.get("stride") or ctx.args["kernel_size"], spatial, 1)
        padding = _pair(ctx.args.get("padding"), spatial, 0)
        dilation = _pair(ctx.args.get("dilation"), spatial, 1)
    return (ctx.emit(Op.POOL, ctx.producers(x), short="pool", N=n, K=c, C=c, G=c, P=p, Q=q, R=kernel[0],
                     S=kernel[1], stride=stride, padding=padding, dilation=dilation),)


def reduce(ctx: Ctx) -> tuple[str, ...]:
    x = ctx.args["self"]
    shape_in, shape_out = ctx.shape(x), ctx.shape(ctx.node)
    dims = [d % len(shape_in) for d in (ctx.args.get("dim") or range(len(shape_in)))]
    window = math.prod(shape_in) // max(math.prod(shape_out), 1)
    r, s = (shape_in[2], shape_in[3]) if len(shape_in) == 4 and sorted(dims) == [2, 3] else (window, 1)
    out = _dims(ctx)
    out["G"] = out["C"]
    return (ctx.emit(Op.POOL, ctx.producers(x), short="pool", R=r, S=s, **out),)


def eltwise(ctx: Ctx) -> tuple[str, ...]:
    tensors = [v for v in ctx.node.args if isinstance(v, fx.Node) and not ctx.is_const(v)]
    if len(tensors) < 2:
        return ctx.producers(*ctx.node.args)
    return (ctx.emit(Op.ELTWISE, ctx.producers(*tensors), short=ctx.node.target.overloadpacket.__name__.strip("_"),
                     **_dims(ctx)),)


def concat(ctx: Ctx) -> tuple[str, ...]:
    return (ctx.emit(Op.CONCAT, ctx.producers(ctx.args["tensors"]), short="cat", **_dims(ctx)),)


def split(ctx: Ctx) -> tuple[str, ...]:
    x = ctx.args["self"]
    return (ctx.emit(Op.SPLIT, ctx.producers(x), short="split", **_dims(ctx, x)),)


def shuffle(ctx: Ctx) -> tuple[str, ...]:
    return (ctx.emit(Op.SHUFFLE, ctx.producers(ctx.args["self"]), short="shuffle", **_dims(ctx)),)


def permute(ctx: Ctx) -> tuple[str, ...]:
    x = ctx.node.args[0]
    restored = _shuffle_source(ctx)
    if restored is not None:
        return (ctx.emit(Op.SHUFFLE, ctx.producers(x), short="shuffle", **_dims(ctx, restored)),)
    return (ctx.emit(Op.RESHAPE, ctx.producers(x), short="permute", **_dims(ctx)),)


def _shuffle_source(ctx: Ctx) -> fx.Node | None:
    """The pre-split tensor when node is the transpose of a view(g, C/g) -> transpose -> view shuffle."""
    from hwsim.interop.torch_lower import _op_key

    split_view = ctx.node.args[0]
    if not isinstance(split_view, fx.Node) or _op_key(split_view.target) not in ("view", "reshape", "_unsafe_view"):
        return None
    before, mid = ctx.shape(split_view.args[0]), ctx.shape(split_view)
    if len(mid) != len(before) + 1:
        return None
    axis = next((i for i in range(len(before)) if before[i] != mid[i]), None)
    if axis is None or before[axis] != mid[axis] * mid[axis + 1] or before[axis + 1:] != mid[axis + 2:]:
        return None
    if sorted(_swapped_axes(ctx, len(mid))) != [axis, axis + 1]:
        return None
    user = ctx.node
    while len(user.users) == 1:
        user = next(iter(user.users))
        key = _op_key(user.target)
        if key in ("view", "reshape", "_unsafe_view", "flatten") and ctx.shape(user) == before:
            return split_view.args[0]
        if key not in ("contiguous", "clone"):
            return None
    return None


def _swapped_axes(ctx: Ctx, rank: int) -> list[int]:
    args = ctx.node.args
    if len(args) >= 3 and isinstance(args[1], int):
        return [args[1] % rank, args[2] % rank]
    if len(args) >= 2 and isinstance(args[1], (list, tuple)):
        return [i for i, d in enumerate(args[1]) if d % rank != i]
    return []


def resample(ctx: Ctx) -> tuple[str, ...]:
    """Upsampling: nearest is pure data movement (reshape); interpolating modes do arithmetic (eltwise)."""
    key = ctx.node.target.overloadpacket.__name__
    op = Op.RESHAPE if "nearest" in key else Op.ELTWISE
    return (ctx.emit(op, ctx.producers(ctx.node.args[0]), short="upsample", **_dims(ctx)),)


def embedding(ctx: Ctx) -> tuple[str, ...]:
    """A table lookup (gather): data movement, no MACs."""
    return (ctx.emit(Op.RESHAPE, ctx.producers(ctx.args["indices"]), short="embedding", **_dims(ctx)),)


def softmax(ctx: Ctx) -> tuple[str, ...]:
    return (ctx.emit(Op.SOFTMAX, ctx.producers(ctx.node.args[0]), short="softmax", **_dims(ctx)),)


def norm(ctx: Ctx) -> tuple[str, ...]:
    x = ctx.node.args[0]
    return (ctx.emit(Op.NORM, ctx.producers(x), short="norm", **_dims(ctx, x)),)


def batch_norm(ctx: Ctx) -> tuple[str, ...]:
    x = ctx.node.args[0]
    producers = ctx.producers(x)
    if len(producers) == 1 and _folds_batch_norm(ctx.walker.graph, producers[0]):
        return producers   # folded into the conv/linear that feeds it
    return norm(ctx)


def _folds_batch_norm(graph, name: str) -> bool:
    """A conv/linear, or the scatter of an SBNet-tiled conv (the norm is applied per tile, then scattered)."""
    layer = graph[name]
    if layer.has_weights:
        return True
    before = graph.predecessors(name)
    return layer.op is Op.SHUFFLE and name.endswith(".scatter") and len(before) == 1 and graph[before[0]].has_weights


RULES: dict[str, Callable[[Ctx], tuple[str, ...]]] = {
    **dict.fromkeys(("conv1d", "conv2d", "convolution", "_convolution"), conv),
    "linear": linear,
    **dict.fromkeys(("mm", "bmm", "matmul", "addmm", "baddbmm"), matmul),
    "scaled_dot_product_attention": attention,
    **dict.fromkeys(_GATES, recurrent),
    **dict.fromkeys(("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool2d_with_indices",
                     "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
                     "adaptive_max_pool2d", "_adaptive_avg_pool2d"), pool),
    **dict.fromkeys(("mean", "sum", "amax", "amin"), reduce),
    **dict.fromkeys(("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "maximum", "minimum",
                     "where"), eltwise),
    **dict.fromkeys(("cat", "concat", "concatenate", "stack"), concat),
    **dict.fromkeys(("split", "split_with_sizes", "chunk", "unbind", "tensor_split", "unsafe_split",
                     "unsafe_chunk"), split),
    **dict.fromkeys(("channel_shuffle", "native_channel_shuffle", "pixel_shuffle", "pixel_unshuffle"), shuffle),
    **dict.fromkeys(("permute", "transpose", "transpose_", "t", "swapaxes", "movedim"), permute),
    **dict.fromkeys(("upsample_nearest1d", "upsample_nearest2d", "_upsample_nearest_exact2d", "upsample_linear1d",
                     "upsample_bilinear2d", "upsample_bicubic2d", "_upsample_bilinear2d_aa"), resample),
    "embedding": embedding,
    **dict.fromkeys(("softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax"), softmax),
    **dict.fromkeys(("layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "instance_norm",
                     "rms_norm"), norm),
    **dict.fromkeys(("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
                     "_native_batch_norm_legit"), batch_norm),
}
