"""SBNet's sparse-block convolution as layers (Ren et al., CVPR 2018): gather -> dense conv -> scatter.

Only ``active`` output tiles of ``block`` pixels are computed. The gather copies each active tile's input
window (the tile plus the filter's halo) into a dense batch; the conv runs that batch with no padding;
the scatter writes the output tiles back into the full plane. Both copies are one read and one write per
element on the vector unit (``Op.SHUFFLE``). Edge tiles count as whole tiles (SBNet pads them).
"""

from __future__ import annotations

from hwsim.ir import Layer, Op


def tiled_layers(layer: Layer, block: tuple[int, int], active: int) -> tuple[Layer, Layer, Layer]:
    """(gather, conv over the active tiles, scatter) replacing ``layer``."""
    if layer.op not in (Op.CONV, Op.DEPTHWISE):
        raise ValueError(f"layer {layer.name!r}: SBNet tiles apply to convolutions, not {layer.op.value}")
    if active < 1:
        raise ValueError(f"layer {layer.name!r}: SBNet needs at least one active tile, got {active}")
    rows, cols = min(int(block[0]), layer.P), min(int(block[1]), layer.Q)
    in_h = (rows - 1) * layer.stride[0] + (layer.R - 1) * layer.dilation[0] + 1
    in_w = (cols - 1) * layer.stride[1] + (layer.S - 1) * layer.dilation[1] + 1
    batch = layer.N * int(active)
    common = dict(source=layer.source, compression=layer.compression, phase=layer.phase)
    act_native = tuple(f for f in ("act_bits", "out_bits") if f in layer.native_bits)
    gather = Layer(name=f"{layer.name}.gather", op=Op.SHUFFLE, N=batch, K=layer.C, C=layer.C, P=in_h, Q=in_w,
                   act_bits=layer.act_bits, out_bits=layer.act_bits, act_density=layer.act_density,
                   native_bits=act_native, **common)
    conv = layer.with_changes(N=batch, P=rows, Q=cols, padding=(0, 0), input_size=(in_h, in_w))
    out_native = tuple(f for f in ("act_bits", "out_bits") if "out_bits" in layer.native_bits)
    scatter = Layer(name=f"{layer.name}.scatter", op=Op.SHUFFLE, N=batch, K=layer.K, C=layer.K, P=rows, Q=cols,
                    act_bits=layer.out_bits, out_bits=layer.out_bits, native_bits=out_native, **common)
    return gather, conv, scatter
