"""Uniform fake quantization (weights, activations), mixed precision and Flexpoint."""

from __future__ import annotations

import warnings

import pytest
import torch

from hwsim import zoo
from hwsim.compress import apply_recipe
from hwsim.compress.quantize import (ActQuant, essential_bits, fake_quant, flex_exponent, int_range, quant_grid,
                                     remove_act_quant)
from hwsim.data import trained_digits_cnn
from hwsim.fidelity import digits_accuracy, output_fidelity


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _digits():
    return zoo.create("digits_cnn", seed=2)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_per_channel_symmetric_grid(bits):
    model, report = apply_recipe(_digits(), [{"method": "quantize", "weight_bits": bits}])
    ref = _digits()
    for change in report.steps[0].changes:
        w = model.get_submodule(change.module).weight.detach()
        w0 = ref.get_submodule(change.module).weight.detach()
        for k in range(w.shape[0]):
            scale = w0[k].abs().max() / (2 ** (bits - 1) - 1)
            codes = w[k] / scale
            assert torch.allclose(codes, codes.round(), atol=1e-3)              # multiples of the scale
            assert codes.abs().max() <= 2 ** (bits - 1) - 1 + 1e-3
            assert (w[k] - w0[k]).abs().max() <= scale / 2 + 1e-6               # round to nearest
        assert model.get_submodule(change.module).hwsim_meta["weight_bits"] == bits


def test_asymmetric_per_tensor_uses_all_levels():
    x = torch.linspace(-1.0, 3.0, 1001)
    scale, zero, qmin, qmax = quant_grid(x, 4, symmetric=False, axis=None)
    q, codes = fake_quant(x, scale, zero, qmin, qmax)
    assert (qmin, qmax) == (0, 15) and torch.unique(q).numel() == 16
    assert float(scale) == pytest.approx(4.0 / 15) and float(zero) == 4.0          # round(1 / (4/15)) = 4
    assert int_range(8, signed=True) == (-127, 127) and int_range(8, signed=True, symmetric=False) == (-128, 127)


def test_32_bits_is_a_no_op():
    ref = _digits()
    model, _ = apply_recipe(_digits(), [{"method": "quantize", "weight_bits": 32}])
    for (_, a), (_, b) in zip(ref.named_parameters(), model.named_parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


def test_activation_quantization_hook_levels_and_stats():
    model, report = apply_recipe(_digits(), [{"method": "quantize", "weight_bits": 8, "act_bits": 3,
                                              "layers": "features.1.0"}], input_shape=(1, 8, 8))
    conv = model.features[1][0]
    seen = {}
    conv.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0]))   # runs after ActQuant
    with torch.no_grad():
        model(torch.randn(4, 1, 8, 8))
    assert torch.unique(seen["x"]).numel() <= 2 ** 3                     # post-ReLU input: unsigned 3-bit grid
    meta = conv.hwsim_meta
    assert meta["act_bits"] == 3 and 0 < meta["act_density"] < 1
    assert 0 < meta["act_essential_bits"] <= 3
    assert remove_act_quant(model) == 1


def test_essential_bits_hand_example():
    assert essential_bits(torch.tensor([0, 1, 3, 7, -5]), 4) == pytest.approx((0 + 1 + 2 + 3 + 2) / 5)


def test_quantized_model_exports_and_round_trips(tmp_path):
    model, _ = apply_recipe(_digits(), [{"method": "quantize", "weight_bits": 4, "act_bits": 8}],
                            input_shape=(1, 8, 8))
    x = torch.randn(2, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
    torch.save(model, tmp_path / "q.pt")
    loaded = torch.load(tmp_path / "q.pt", weights_only=False)
    assert torch.equal(loaded(x), model(x))
    assert any(isinstance(h, ActQuant) for h in loaded.features[0][0]._forward_pre_hooks.values())


def test_mixed_precision_table():
    table = {"features.0.*": 8, "features.*": 3, "classifier.3": 2}
    model, report = apply_recipe(_digits(), [{"method": "mixed_precision", "weight_bits": table}])
    bits = {c.module: dict(c.values)["weight_bits"] for c in report.steps[0].changes}
    assert bits == {"features.0.0": 8, "features.1.0": 3, "features.3.0": 3, "classifier.3": 2}
    assert not hasattr(model.classifier[1], "hwsim_meta")               # unmatched: untouched
    assert torch.unique(model.classifier[3].weight[0]).numel() <= 3     # 2-bit symmetric: -1, 0, 1


def test_flexpoint_shared_exponent():
    ref = _digits()
    model, report = apply_recipe(_digits(), [{"method": "flexpoint"}], input_shape=(1, 8, 8))
    for change in report.steps[0].changes:
        w0 = ref.get_submodule(change.module).weight.detach()
        w = model.get_submodule(change.module).weight.detach()
        exp = dict(change.values)["weight_exponent"]
        assert exp == flex_exponent(float(w0.abs().max()), 16, 5)
        mantissa = w / 2.0 ** exp
        assert torch.equal(mantissa, mantissa.round()) and mantissa.abs().max() <= 2 ** 15 - 1
        assert mantissa.abs().max() > 2 ** 14 or exp == -16              # smallest exponent that fits (or e_min)
        assert model.get_submodule(change.module).hwsim_meta["number_format"] == "flex"
    assert flex_exponent(1.0, 16, 5) == -14                              # 1.0 <= 32767 * 2^-15? no; 2^-14 yes
    assert flex_exponent(1e9, 16, 5) == 15                               # clipped to the 5-bit exponent range


def test_fidelity_worsens_monotonically_with_fewer_bits_and_int8_keeps_accuracy():
    ref, acc = trained_digits_cnn(0)
    nrmse = []
    for bits in (8, 6, 4, 3, 2):
        model, _ = trained_digits_cnn(0)
        apply_recipe(model, [{"method": "quantize", "weight_bits": bits}])
        nrmse.append(output_fidelity(ref, model, input_shape=(1, 8, 8))["nrmse"])
        if bits == 8:
            assert acc - digits_accuracy(model) < 0.005                 # int8 drop < 0.5 % (frontend.md §6.3)
    assert nrmse == sorted(nrmse) and nrmse[0] < 0.02


def test_lowered_graph_carries_bits_formats_and_activation_density():
    from hwsim.lower import lower

    for steps, fmt, bits in (([{"method": "quantize", "weight_bits": 4, "act_bits": 8}], "int", (4, 8)),
                             ([{"method": "flexpoint"}], "flex", (16, 16))):
        model, _ = apply_recipe(_digits(), steps, input_shape=(1, 8, 8))
        layers = {layer.source: layer for layer in lower(model, (1, 1, 8, 8)).compute_layers()}
        conv = layers["features.1.0"]
        assert (conv.weight_bits, conv.act_bits, conv.number_format) == (*bits, fmt)
        assert conv.act_density == pytest.approx(model.features[1][0].hwsim_meta["act_density"])
        assert 0.0 < conv.act_density < 1.0                    # post-ReLU inputs: about half are zero
