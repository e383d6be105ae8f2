"""The datapath is the hardware's: native widths, fixed-width MAC energy, gating, passes, refusal."""

from __future__ import annotations

import pytest

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.models.datapath import passes, resolve_layer
from hwsim.simulate import simulate_graph


def conv(**kw) -> Layer:
    return Layer("c", Op.CONV, K=64, C=64, P=14, Q=14, R=3, S=3, padding=1, **kw)


def run(layer: Layer, arch):
    graph = LayerGraph("g")
    graph.add_layer(layer)
    return simulate_graph(graph, arch).layers[0]


def test_unquantized_layers_run_at_the_native_width():
    layer = conv(native_bits=("weight_bits", "act_bits", "out_bits"))
    on_eyeriss = resolve_layer(layer, load_arch("eyeriss"))
    assert (on_eyeriss.weight_bits, on_eyeriss.act_bits, on_eyeriss.out_bits) == (16, 16, 16)
    assert resolve_layer(layer, load_arch("edge_tpu_like")).weight_bits == 8
    # the binary engine's integer path, not its 1-bit XNOR path, is native for an unquantized layer
    assert resolve_layer(layer, load_arch("xnor_bnn")).weight_bits == load_arch("xnor_bnn").binary.fallback_bits
    # a weight-only quantized layer keeps its weight bits and takes native activations
    mixed = resolve_layer(conv(weight_bits=4, native_bits=("act_bits", "out_bits")), load_arch("eyeriss"))
    assert (mixed.weight_bits, mixed.act_bits) == (4, 16)


def test_unquantized_bytes_double_on_a_16_bit_preset():
    # uncompressed link: run-length coding costs a different overhead at 8 and 16 bits (tests/test_spatial_zeros.py)
    arch = load_arch("eyeriss").with_overrides({"spatial.act_dram_format": "none"})
    native = run(conv(native_bits=("weight_bits", "act_bits", "out_bits")), arch)
    eight = run(conv(), arch)
    dram = arch.memory[0].name
    bytes_of = lambda r: sum(a.total * a.word_bits / 8 for a in r.counts.accesses if a.level == dram)  # noqa: E731
    assert bytes_of(native) > 1.9 * bytes_of(eight)


def test_a_4_bit_layer_on_an_8_bit_array_pays_the_8_bit_mac():
    arch = load_arch("edge_tpu_like")
    four, eight = run(conv(weight_bits=4, act_bits=4), arch), run(conv(), arch)
    assert four.compute_energy_pj == pytest.approx(eight.compute_energy_pj, rel=1e-12)
    assert four.compute_cycles == eight.compute_cycles


def test_a_4_bit_layer_on_16_bit_eyeriss_is_priced_as_a_16_bit_mac():
    arch = load_arch("eyeriss")
    four, sixteen = run(conv(weight_bits=4, act_bits=4), arch), run(conv(weight_bits=16, act_bits=16,
                                                                         acc_bits=32), arch)
    assert four.compute_energy_pj / four.macs == pytest.approx(sixteen.compute_energy_pj / sixteen.macs, rel=1e-12)


def test_operand_gating_saves_only_the_declared_fraction():
    fixed = load_arch("edge_tpu_like")
    half = fixed.with_overrides({"compute.precision": "gated", "compute.gated_saving": 0.5})
    full = fixed.with_overrides({"compute.precision": "gated", "compute.gated_saving": 1.0})
    layer = conv(weight_bits=4, act_bits=4)
    e_fixed, e_half, e_full = (run(layer, a).compute_energy_pj for a in (fixed, half, full))
    assert e_full < e_half < e_fixed
    assert e_half == pytest.approx((e_fixed + e_full) / 2, rel=1e-9)
    with pytest.raises(ConfigError, match="gated_saving is only used"):
        fixed.with_overrides({"compute.gated_saving": 0.5})


def test_a_wider_layer_takes_passes_or_is_refused():
    arch = load_arch("edge_tpu_like")
    wide = conv(weight_bits=16, act_bits=16)
    assert passes(wide, arch) == 4
    assert run(wide, arch).compute_cycles == 4 * run(conv(), arch).compute_cycles
    refusing = arch.with_overrides({"compute.wider": "refuse"})
    with pytest.raises(UnsupportedOpError, match="exceed edge_tpu_like's 8x8-bit datapath"):
        run(wide, refusing)


def test_the_hardware_number_format_prices_the_mac():
    arch = load_arch("edge_tpu_like")
    fp = arch.with_overrides({"compute.number_format": "fp"})
    assert run(conv(), fp).compute_energy_pj != run(conv(), arch).compute_energy_pj
