"""Bit-serial engines (Stripes, Loom, Pragmatic, Bit Fusion) and the essential-bit profile."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer, Op
from hwsim.models.arch import load_arch
from hwsim.models.bitserial import (BitSerialMapping, default_mapping, essential_bits, evaluate,
                                    fusion_macs_per_cycle, pragmatic_mapping, profile_mapping)
from tests.reference.bitserial_ref import essential_bits_ref

PRESETS = ["stripes", "loom", "pragmatic", "bit_fusion"]


def conv(wb=8, ab=8, **kw):
    return Layer("c", Op.CONV, K=64, C=64, P=16, Q=16, R=3, S=3, padding=1, weight_bits=wb, act_bits=ab, **kw)


def run(layer, name, **mapping):
    arch = load_arch(name)
    return evaluate(layer, arch, replace(default_mapping(layer, arch), **mapping))


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_cite(name):
    arch = load_arch(name)
    assert arch.engine == "bitserial" and arch.sources
    assert run(conv(), name).compute_cycles > 0


def test_stripes_cycles_proportional_to_activation_precision():
    # Judd et al. MICRO 2016: time ~ p_a; 64*64*9*256 MACs over 65536 lanes = 144 waves
    assert run(conv(ab=16), "stripes").compute_cycles == 144 * 16
    assert run(conv(ab=5), "stripes").compute_cycles == 144 * 5
    assert run(conv(ab=8), "stripes", act_bits=6).compute_cycles == 144 * 6   # profile-table override


def test_loom_cycles_scale_with_both_precisions():
    # 9437184 MACs / 32768 lanes = 288 waves, x p_w x p_a
    assert run(conv(wb=4, ab=8), "loom").compute_cycles == 288 * 32
    assert run(conv(wb=8, ab=8), "loom").compute_cycles == 2 * run(conv(wb=4, ab=8), "loom").compute_cycles


@pytest.mark.parametrize(("wb", "ab", "per_unit"), [(8, 8, 1), (4, 4, 4), (2, 2, 16), (4, 8, 2), (16, 16, 0.25),
                                                    (6, 6, 1)])
def test_bit_fusion_fused_throughput(wb, ab, per_unit):
    # Sharma et al. ISCA 2018: 16 BitBricks per unit fuse into 1 8x8, 4 4x4, 16 2x2 MACs; 16b temporal
    assert fusion_macs_per_cycle(wb, ab, brick_bits=2, bricks_per_unit=16) == per_unit
    cycles = run(conv(wb, ab), "bit_fusion").compute_cycles
    assert cycles == int(np.ceil(conv().macs / (512 * per_unit)))


def test_pragmatic_uses_essential_bits():
    base = run(conv(), "pragmatic")
    assert base.detail("essential_bits_known") == 0.0 and base.compute_cycles == 144 * 8
    known = run(conv(act_essential_bits=2.5), "pragmatic")
    assert known.compute_cycles == 360 and known.mac_ops == pytest.approx(conv().macs * 2.5)
    assert run(conv(), "pragmatic", essential_bits=3.0).compute_cycles == 432


def test_bitserial_counts_price_as_bitserial_steps():
    counts = run(conv(), "stripes")
    assert counts.mac_kind == "bitserial" and counts.detail("bitserial_parallel_bits") == 16
    assert run(conv(4, 4), "bit_fusion").mac_kind == "int"


@settings(deadline=None, max_examples=80)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), bits=st.integers(1, 16), group=st.integers(1, 20),
       min_terms=st.integers(0, 1))
def test_essential_bits_kernel_matches_reference(seed, n, bits, group, min_terms):
    values = np.random.default_rng(seed).integers(0, 2 ** bits, size=n)
    assert essential_bits(values, bits, group=group, min_terms=min_terms) == pytest.approx(
        essential_bits_ref(values, group, min_terms))


def test_essential_bits_hand_computed():
    assert essential_bits(np.array([0, 1, 3, 7]), 8) == pytest.approx(1.5)          # (0+1+2+3)/4
    assert essential_bits(np.array([0, 1, 3, 7]), 8, group=2) == pytest.approx(2.0)  # max(0,1)=1, max(2,3)=3
    assert essential_bits(np.array([-3, 3]), 8) == 2.0                               # magnitudes
    assert essential_bits(np.array([0.0, 1.0]), 4) == 4.0 / 2                        # 1.0 -> 15 = 4 bits


def test_errors():
    with pytest.raises(UnsupportedOpError):
        run(Layer("p", Op.POOL, K=4, C=4, G=4, R=2, S=2), "stripes")
    with pytest.raises(ConfigError, match="design"):
        evaluate(conv(), load_arch("stripes"), BitSerialMapping("loom"))
    with pytest.raises(ValueError, match="bits"):
        essential_bits(np.array([1]), 0)


def test_profile_table_and_activation_profile():
    arch = load_arch("stripes")
    mapping = profile_mapping(conv(), arch, {"c": {"act_bits": 7}})
    assert evaluate(conv(), arch, mapping).compute_cycles == 144 * 7
    with pytest.raises(ConfigError, match="unknown key"):
        profile_mapping(conv(), arch, {"c": {"bits": 7}})
    prag = load_arch("pragmatic")
    acts = np.array([1, 0, 0, 0] * 8 + [3] * 16)    # three lock-step groups of 16: max terms 1, 1, 2
    mapping = pragmatic_mapping(conv(), prag, acts)
    assert mapping.essential_bits == pytest.approx(4 / 3)
    assert evaluate(conv(), prag, mapping).compute_cycles == 192
