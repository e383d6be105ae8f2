"""Binary (XNOR-popcount) engine with the integer fallback path."""

from __future__ import annotations

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
from hwsim.models.arch import load_arch
from hwsim.models.binary import BinaryMapping, default_mapping, evaluate, is_binarized


def conv(**kw):
    return Layer("c", Op.CONV, K=64, C=64, P=16, Q=16, R=3, S=3, padding=1, **kw)


def test_binarized_layer_runs_on_xnor_path():
    arch = load_arch("xnor_bnn")
    layer = conv(weight_bits=1, act_bits=1, number_format="binary")
    counts = evaluate(layer, arch, default_mapping(layer, arch))
    # 64*16*16 outputs x ceil(576/64) = 9 popcount steps over 64 units
    assert counts.compute_cycles == 64 * 256 * 9 // 64
    assert counts.mac_kind == "xnor" and counts.weight_bits == counts.act_bits == 1
    assert counts.mac_ops / (counts.compute_cycles * 64 * 64) == pytest.approx(1.0)   # every lane busy
    assert counts.utilization <= 1.0


def test_first_layer_falls_back_to_int8():
    arch = load_arch("xnor_bnn")
    layer = conv()
    counts = evaluate(layer, arch, default_mapping(layer, arch))
    assert counts.mac_kind == "int" and counts.weight_bits == 8
    assert counts.compute_cycles == layer.macs // 256


def test_detection_and_errors():
    assert is_binarized(conv(weight_bits=1, act_bits=1)) and not is_binarized(conv(weight_bits=1))
    with pytest.raises(ConfigError, match="path"):
        evaluate(conv(), load_arch("xnor_bnn"), BinaryMapping("analog"))
    with pytest.raises(ConfigError, match="binary"):
        default_mapping(conv(), load_arch("stripes"))


def test_binary_energy_cheaper_than_fallback():
    from hwsim.models.energy import price
    arch = load_arch("xnor_bnn")
    b, f = conv(weight_bits=1, act_bits=1, number_format="binary"), conv()
    cb, cf = (evaluate(x, arch, default_mapping(x, arch)) for x in (b, f))
    assert price(cb, arch, cycles=cb.cycles).compute_pj < price(cf, arch, cycles=cf.cycles).compute_pj / 10
