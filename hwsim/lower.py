"""Lower a model to a ``LayerGraph``: torch modules (via ``torch.export``), ONNX files, zoo names.

Torch path (``lower``): ``torch.export.export`` without decompositions; shapes come from each node's
``meta["val"]``, module paths from ``nn_module_stack``, weights from ``ep.state_dict`` (or by folding
ops whose inputs are all parameters, e.g. a pruning mask multiply). Lowering rules:

* conv1d/conv2d -> ``conv`` (``G`` groups) or ``depthwise`` (groups == in-channels > 1); linear,
  and matmul/mm/addmm with a constant operand -> ``linear`` (``N=1``, ``P`` = product of leading dims);
  matmul/bmm between activations -> ``matmul`` (``N`` = batch x heads); scaled-dot-product attention ->
  ``<name>.qk`` matmul, ``<name>.softmax``, ``<name>.av`` matmul.
* BatchNorm after a conv/linear is folded into it (no layer); activations, dropout, views, pads and
  unary math are fused into (aliased to) their producer. Add/mul/... of two activations -> ``eltwise``
  (with a scalar or a constant: fused). cat -> ``concat``; chunk/split/unbind -> ``split``;
  ``channel_shuffle`` and the view -> transpose -> view shuffle pattern -> ``shuffle``; other
  permutes/transposes -> ``reshape``; pooling and spatial/token means -> ``pool``; softmax -> ``softmax``;
  layer/group norm, LocalResponseNorm and un-foldable batch norm -> ``norm``; embedding lookups and
  nearest upsampling -> ``reshape``; interpolating upsampling -> ``eltwise``.
* Graph inputs are not layers: a layer fed only by the model input has no predecessors.
* ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (one ``aten.lstm`` node) -> per layer and direction two ``linear``
  layers, weights read from the module: ``<path>.l<i>.ih`` (input-to-hidden for all time steps at once:
  ``N=1, P=T*batch, C=in, K=gates*H``) and ``<path>.l<i>.hh`` (hidden-to-hidden, sequential:
  ``N=T`` repeats, ``P=batch, C=H, K=gates*H``); gates = 4 (LSTM), 3 (GRU), 1 (RNN).

Per weighted layer the *actual* weights give ``weight_density`` (non-zero fraction), the ``sparsity``
structure (``n:m`` for 1:4, 2:4, 4:8 along the flattened C/G*R*S reduction axis; ``block`` for 16x16,
8x8, 4x4 all-zero blocks of the (K, C/G*R*S) matrix; ``channel`` for whole zero rows or columns;
else ``unstructured`` or ``dense``) and, unless dense or ``keep_masks=False``, ``weight_mask``.
A handful of exact zeros (at most ``ACCIDENTAL_ZEROS`` = 0.01 % of the weights, e.g. from random init)
counts as dense.

**Module annotations** (written by ``hwsim.compress``): a dict attribute ``module.hwsim_meta`` with
optional keys ``weight_bits, act_bits, out_bits, acc_bits, number_format, act_density,
act_essential_bits, compression`` (list of str), ``tiles`` (SBNet: ``{"block": [bh, bw], "active": n}``,
the conv is lowered as gather -> dense conv over the active output tiles -> scatter, both moves
``shuffle`` layers on the vector unit). Annotations are inherited down the module tree
(the innermost module wins; ``compression`` labels accumulate outer to inner); ``weight_bits`` only
applies to layers with weights.

This module imports torch only inside ``lower`` and the zoo/module branch of ``load_graph``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import ConfigError, UnknownNameError
from hwsim.ir import LayerGraph, PackedMask, Sparsity, SparsityKind

__all__ = ["lower", "lower_onnx", "load_graph", "rebatch", "weight_facts", "META_KEYS"]

META_KEYS = ("weight_bits", "act_bits", "out_bits", "acc_bits", "number_format", "act_density",
             "act_essential_bits", "compression", "grad_density", "tiles")
ACCIDENTAL_ZEROS = 1e-4      # a zero fraction at or below this (random init, rounding) counts as dense
_NM_PATTERNS = ((1, 4), (2, 4), (4, 8))
_BLOCKS = (16, 8, 4)


def _is_blockwise_constant(mask: np.ndarray, block: int) -> bool:
    rows, cols = mask.shape
    if rows % block or cols % block or (rows == block and cols == block):
        return False
    if not (np.array_equal(mask[0], mask[1]) and np.array_equal(mask[:, 0], mask[:, 1])):
        return False                                    # cheap necessary condition (same block row/column)
    tiles = mask.reshape(rows // block, block, cols // block, block).sum(axis=(1, 3))
    return bool(np.all((tiles == 0) | (tiles == block * block)))


def _nm_pattern(mask: np.ndarray) -> tuple[int, int] | None:
    rows, cols = mask.shape
    density = np.count_nonzero(mask) / mask.size
    for n, m in _NM_PATTERNS:
        if cols % m == 0 and density <= n / m:
            if np.all(mask.reshape(rows, cols // m, m).sum(axis=2) <= n):
                return n, m
    return None


def _is_channel_pattern(mask: np.ndarray) -> bool:
    for per_line in (mask.all(axis=1) | ~mask.any(axis=1), mask.all(axis=0) | ~mask.any(axis=0)):
        if per_line.all():
            return True
    return False


def weight_facts(mask: np.ndarray, *, keep_mask: bool = True) -> tuple[float, Sparsity, PackedMask | None]:
    """Density, sparsity structure and packed mask of a (K, C/G*R*S) boolean non-zero mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"weight mask must be 2-D (K, C/G*R*S), got shape {mask.shape}")
    nonzero = int(np.count_nonzero(mask))
    if mask.size - nonzero <= ACCIDENTAL_ZEROS * mask.size:
        return 1.0, Sparsity(), None
    if _is_channel_pattern(mask):
        sparsity = Sparsity(SparsityKind.CHANNEL)
    elif block := next((b for b in _BLOCKS if _is_blockwise_constant(mask, b)), None):
        sparsity = Sparsity(SparsityKind.BLOCK, block=(block, block))
    elif nm := _nm_pattern(mask):
        sparsity = Sparsity(SparsityKind.NM, n=nm[0], m=nm[1])
    else:
        sparsity = Sparsity(SparsityKind.UNSTRUCTURED)
    return nonzero / mask.size, sparsity, PackedMask.from_array(mask) if keep_mask else None


def lower(model: Any, input_shape: tuple[int, ...] | None = None, *, example_input: Any = None,
          name: str | None = None, skip_unsupported: bool = False, keep_masks: bool = True,
          meta: bool = False, calibration: Any = None, profile: bool = True) -> LayerGraph:
    """Lower a ``torch.nn.Module`` to a ``LayerGraph`` through ``torch.export``.

    ``input_shape`` includes the batch dim (or pass ``example_input``, a tensor or tuple of tensors).
    ``meta=True`` lowers a shapes-only copy on the meta device (fast for big models; every layer is
    then dense with density 1). Unsupported ops raise ``UnsupportedOpError`` unless
    ``skip_unsupported``; skipped ops are listed in ``graph.meta["skipped"]``. Unless ``meta`` or
    ``profile=False``, each conv/linear layer gets the input-activation density and essential-bit
    profiles measured on ``calibration`` (a batch tensor; default the example input), described in
    ``graph.meta["calibration"]`` (``hwsim.interop.torch_profile``).
    """
    from hwsim.interop.torch_lower import lower_module

    if example_input is None and input_shape is None:
        raise ConfigError("lower: give input_shape (including the batch dim) or example_input")
    return lower_module(model, input_shape=input_shape, example_input=example_input, name=name,
                        skip_unsupported=skip_unsupported, keep_masks=keep_masks, meta=meta,
                        calibration=calibration, profile=profile)


def lower_onnx(path: str | Path, *, input_shape: tuple[int, ...] | None = None, batch: int | None = None,
               skip_unsupported: bool = False, keep_masks: bool = True) -> LayerGraph:
    """Lower an ONNX file (weights optional) to a ``LayerGraph`` without importing torch.

    ``input_shape`` replaces the first graph input's shape; ``batch`` only its first dim; symbolic
    dims left over become 1.
    """
    from hwsim.interop.onnx_import import lower_onnx as _lower_onnx

    return _lower_onnx(path, input_shape=input_shape, batch=batch, skip_unsupported=skip_unsupported,
                       keep_masks=keep_masks)


def rebatch(graph: LayerGraph, batch: int) -> LayerGraph:
    """The same graph at another batch size (``linear`` layers scale ``P``, every other layer ``N``)."""
    from hwsim.ir import Op

    old = graph.input_shape[0] if graph.input_shape else 1
    if batch == old:
        return graph
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")

    def scale(layer):
        dim = "P" if layer.op is Op.LINEAR else "N"
        value = getattr(layer, dim) * batch
        if value % old:
            raise ConfigError(f"cannot re-batch graph {graph.name!r} from batch {old} to {batch}: layer "
                              f"{layer.name!r} has {dim}={getattr(layer, dim)}")
        return layer.with_changes(**{dim: value // old})

    out = graph.map_layers(scale)
    out.input_shape = (batch, *graph.input_shape[1:]) if graph.input_shape else (batch,)
    out.meta = {**graph.meta, "rebatched_from": old}
    return out


def load_graph(spec: Any, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
               skip_unsupported: bool = False, profile: bool = True) -> LayerGraph:
    """Resolve ``spec``: a saved ``.json`` graph, an ``.onnx`` file, a ZigZag workload ``.yaml``, a zoo
    name, or a torch module
    (torch models get measured operand statistics unless ``profile=False``; see ``lower``).

    ``batch`` sets the batch dim (ignored when ``input_shape`` is given; ``None``: zoo models use 1,
    files keep their own). Saved ``.json`` graphs and ONNX files are lowered at their own batch and then
    re-batched (``rebatch``). Only the zoo/module branch imports torch.
    """
    from hwsim import zoo

    if batch is not None and batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        suffix = path.suffix.lower()
        if suffix in (".json", ".onnx"):
            if not path.is_file():
                raise ConfigError(f"model file {str(path)!r} does not exist")
            if suffix == ".json":
                try:
                    graph = LayerGraph.load(path)
                except (ValueError, KeyError, TypeError) as err:
                    raise ConfigError(f"{path.name}: not a valid hwsim layer graph ({err})") from None
            else:
                graph = lower_onnx(path, input_shape=input_shape, skip_unsupported=skip_unsupported)
            return graph if input_shape or batch is None else rebatch(graph, batch)
        if suffix in (".yaml", ".yml") and path.is_file():         # a ZigZag workload (einsum layer list)
            from hwsim.interop.zigzag import load_zigzag_graph

            graph = load_zigzag_graph(path)
            return graph if batch is None else rebatch(graph, batch)
        if str(spec) not in zoo.names():
            raise UnknownNameError(f"unknown model {str(spec)!r}: not a .json/.onnx/ZigZag .yaml file and not a zoo name; "
                                   f"zoo names: {', '.join(zoo.names())}")
        model = zoo.create(str(spec))
        shape = tuple(input_shape) if input_shape else zoo.input_shape(str(spec), batch=batch or 1)
        return lower(model, shape, name=str(spec), skip_unsupported=skip_unsupported, profile=profile)
    if input_shape is None:
        raise ConfigError("load_graph: a torch module needs input_shape (including the batch dim)")
    return lower(spec, input_shape, skip_unsupported=skip_unsupported, profile=profile)
