"""Autoflex (Köster et al., NIPS 2017, Sec. 3) and the flex16+5 datapath on the hardware side."""

from __future__ import annotations

import pytest
import torch

from hwsim.compress.autoflex import MARGIN, Autoflex, requantize_flex_weights
from hwsim.compress.quantize import flex_exponent
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph


def test_the_first_value_sets_the_exponent_and_the_history_predicts_the_next():
    flex = Autoflex()
    out = flex.quantize(torch.tensor([0.5, -1.0, 0.25]))
    assert flex.exponent == flex_exponent(1.0, 16, 5) and flex.overflows == 0
    assert torch.equal(out / 2.0 ** flex.exponent, (out / 2.0 ** flex.exponent).round())
    for _ in range(5):                                    # a steady maximum of 1.0: no spread in the history
        flex.quantize(torch.tensor([1.0]))
    assert flex.predicted_exponent() == flex_exponent(1.0 * MARGIN, 16, 5)   # one bit of headroom


def test_an_overflow_raises_the_exponent_to_fit_and_is_counted():
    flex = Autoflex()
    for _ in range(4):
        flex.quantize(torch.tensor([1.0]))
    spike = torch.tensor([100.0, 3.0])
    out = flex.quantize(spike)
    assert flex.overflows == 1
    assert flex.exponent == flex_exponent(100.0, 16, 5)
    step = 2.0 ** flex.exponent
    assert torch.allclose(out, spike, atol=step / 2)      # recomputed on the wider grid: not clipped


def test_a_spread_history_keeps_headroom_above_its_mean():
    flex = Autoflex(sigmas=3.0, margin=1.0)
    for peak in (1.0, 3.0, 1.0, 3.0):
        flex.quantize(torch.tensor([peak]))
    mean, std = 2.0, 1.0                                  # of (1, 3, 1, 3)
    assert flex.predicted_exponent() == flex_exponent(mean + 3.0 * std, 16, 5)


def test_flexpoint_training_keeps_every_tensor_on_its_adapting_grid():
    from hwsim import zoo
    from hwsim.compress.recipe import apply_recipe
    from hwsim.data import load_digits_tensors, train_classifier
    from hwsim.lower import lower

    model, _ = apply_recipe(zoo.create("digits_cnn", seed=0), [{"method": "flexpoint"}], input_shape=(1, 8, 8))
    accuracy = train_classifier(model, load_digits_tensors(0), epochs=2, seed=0, after_step=requantize_flex_weights)
    assert accuracy > 0.8
    conv = model.features[1][0]
    weights = conv.hwsim_autoflex
    mantissa = conv.weight.detach() / 2.0 ** weights.exponent
    assert torch.equal(mantissa, mantissa.round()) and weights.steps > 10
    hook = next(h for h in conv._forward_pre_hooks.values() if getattr(h, "hwsim_act_hook", False))
    assert hook.manager.steps > 10                        # the input exponent adapted every training forward
    graph = lower(model, (1, 1, 8, 8))                  # eval and export use the frozen exponents
    assert {layer.number_format for layer in graph.compute_layers()} == {"flex"}


def _one_layer(bits: int) -> LayerGraph:
    graph = LayerGraph("g", input_shape=(1, 64, 28, 28))
    graph.add_layer(Layer("c", Op.CONV, K=64, C=64, P=28, Q=28, R=3, S=3, padding=1, weight_bits=bits,
                          act_bits=bits))
    return graph


def _mac_pj(number_format: str, bits: int) -> tuple[float, list]:
    arch = load_arch("edge_tpu_like").with_overrides({
        "compute.number_format": number_format, "compute.weight_bits": bits, "compute.act_bits": bits})
    layer = simulate_graph(_one_layer(bits), arch).layers[0]
    macs = [i for i in layer.energy_items if i.component == "mac" and i.action == "compute"]
    return macs[0].pj_each, [i for i in layer.energy_items if i.action == "exponent"]


def test_flex16_prices_integer_mantissa_macs_below_fp16_and_fp32():
    """flex16+5 multiplies 16-bit integer mantissas; Horowitz (ISSCC 2014) fp16 and fp32 MACs cost more."""
    flex, exponent = _mac_pj("flex", 16)
    integer, none = _mac_pj("int", 16)
    fp16, _ = _mac_pj("fp", 16)
    fp32, _ = _mac_pj("fp", 32)
    assert flex == integer and flex < fp16 < fp32
    assert len(exponent) == 1 and exponent[0].count == 1 and not none   # one shared-exponent add per layer
