"""One training step as a layer graph: forward, backward-data, backward-weight and the optimizer update.

``training_graph`` turns an inference ``LayerGraph`` into the layers a training step runs, each marked
with its ``phase``, so every engine simulates training unchanged (torch-free). For a layer
``Y = conv(X, W)`` (per group ``G``; ``N K C P Q R S`` as in the IR):

* backward-data ``dX = conv_transpose(dY, W)``: the forward loop nest with input and output channels
  swapped (``K <-> C``) over the same ``P x Q`` output-gradient positions, so its MACs equal the
  forward MACs, as ``torch.utils.flop_counter`` counts them. Skipped for the first layer, whose input
  needs no gradient (the flop counter skips it too);
* backward-weight ``dW = dY^T . im2col(X)`` per group: a matmul of ``K/G`` rows, reduction ``N P Q``
  and ``C/G R S`` columns (``G`` repeats);
* linear layers: ``dX = dY . W`` (a linear layer with ``K <-> C``), ``dW = dY^T . X`` (a matmul);
* activation x activation matmuls (attention): both operand gradients, as matmuls;
* the update: plain SGD with momentum, two element-wise operations per weight (``v = m v + g``,
  ``w -= lr v``) on the vector unit, one ``update`` layer per weighted layer.

meProp (Sun et al., ICML 2017) keeps the top-k output gradients: a layer's ``grad_density`` becomes
the density of the ``dY`` operand of both backward layers (``act_density``), so skipping engines
gain and dense arrays do not. Strided backward-data layers keep the forward output-gradient grid:
MACs and weight traffic are exact, the written input-gradient tensor is counted at the ``P x Q``
grid (a 1/stride^2 undercount of its writes).
"""

from __future__ import annotations

from typing import Any

from hwsim.ir import Layer, LayerGraph, Op, Sparsity

MOMENTUM_OPS_PER_WEIGHT = 2      # v = momentum * v + g; w -= lr * v


def _backward_data(layer: Layer) -> Layer:
    # its input is dY: the forward input's measured essential bits do not describe it
    common = dict(phase="backward_data", act_density=layer.grad_density, weight_mask=None, act_essential_hist=())
    if layer.op in (Op.CONV, Op.DEPTHWISE):
        return layer.with_changes(name=f"{layer.name}.dX", K=layer.C, C=layer.K, input_size=(layer.P, layer.Q),
                                  stride=(1, 1), dilation=layer.dilation, padding=_same(layer), **common)
    return layer.with_changes(name=f"{layer.name}.dX", K=layer.C, C=layer.K, **common)


def _same(layer: Layer) -> tuple[int, int]:
    return ((layer.dilation[0] * (layer.R - 1)) // 2, (layer.dilation[1] * (layer.S - 1)) // 2)


def _gemm(name: str, layer: Layer, *, rows: int, reduction: int, cols: int, repeats: int, phase: str) -> Layer:
    return Layer(name=name, op=Op.MATMUL, N=repeats, P=rows, C=reduction, K=cols, phase=phase,
                 weight_bits=layer.act_bits, act_bits=layer.act_bits, out_bits=layer.weight_bits,
                 acc_bits=layer.acc_bits, act_density=layer.grad_density, native_bits=layer.native_bits,
                 number_format=layer.number_format, source=layer.source, compression=layer.compression)


def _backward_weight(layer: Layer) -> Layer:
    if layer.op in (Op.CONV, Op.DEPTHWISE):
        return _gemm(f"{layer.name}.dW", layer, rows=layer.k_per_group, reduction=layer.N * layer.P * layer.Q,
                     cols=layer.c_per_group * layer.R * layer.S, repeats=layer.G, phase="backward_weight")
    return _gemm(f"{layer.name}.dW", layer, rows=layer.K, reduction=layer.N * layer.P, cols=layer.C, repeats=1,
                 phase="backward_weight")


def _matmul_grads(layer: Layer) -> list[Layer]:
    """``Y = A . B`` (A: P x C, B: C x K, N repeats): ``dA = dY . B^T`` and ``dB = A^T . dY``."""
    return [_gemm(f"{layer.name}.dA", layer, rows=layer.P, reduction=layer.K, cols=layer.C, repeats=layer.N,
                  phase="backward_data"),
            _gemm(f"{layer.name}.dB", layer, rows=layer.C, reduction=layer.P, cols=layer.K, repeats=layer.N,
                  phase="backward_weight")]


def _update(layer: Layer) -> Layer:
    return Layer(name=f"{layer.name}.update", op=Op.ELTWISE, N=MOMENTUM_OPS_PER_WEIGHT, K=layer.weight_elems,
                 phase="update", act_bits=layer.weight_bits, weight_bits=layer.weight_bits,
                 out_bits=layer.weight_bits, native_bits=layer.native_bits, source=layer.source,
                 sparsity=Sparsity())


def training_graph(graph: LayerGraph) -> LayerGraph:
    """The layers of one training step (module docstring), forward first, then backward in reverse order."""
    forward = graph.layers()
    if any(layer.phase != "forward" for layer in forward):
        raise ValueError(f"graph {graph.name!r} is already a training graph")
    out = LayerGraph(f"{graph.name}[train]", input_shape=graph.input_shape, meta={**graph.meta, "training": True})
    for layer in forward:
        out.add_layer(layer, inputs=graph.predecessors(layer.name))
    first_compute = next((layer.name for layer in forward if layer.op.has_macs), None)
    previous = forward[-1].name
    for layer in reversed(forward):
        if not layer.op.has_macs:
            continue
        new: list[Layer] = []
        if layer.op is Op.MATMUL:
            new = _matmul_grads(layer)
        else:
            if layer.name != first_compute:
                new.append(_backward_data(layer))
            new.append(_backward_weight(layer))
            new.append(_update(layer))
        for grad in new:
            out.add_layer(grad, inputs=[previous])
            previous = grad.name
    return out


def phase_totals(result: Any) -> dict[str, dict[str, float]]:
    """Cycles, latency, energy and DRAM bytes of each phase of a simulated training graph."""
    totals: dict[str, dict[str, float]] = {}
    for layer in result.layers:
        phase = layer.phase
        row = totals.setdefault(phase, {"cycles": 0, "latency_s": 0.0, "energy_pj": 0.0, "macs": 0})
        row["cycles"] += layer.cycles
        row["latency_s"] += layer.latency_s
        row["energy_pj"] += layer.energy_pj
        row["macs"] += layer.macs
    return totals
