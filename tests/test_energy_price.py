"""price(): vector granularity, bits, leakage, re-pricing without re-running the engine, helpers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import ConfigError
from hwsim.models.arch import load_arch, validate_arch
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.energy import (area_mm2, describe_presets, edp_j_s, energy_factor, load_table, mac_energy,
                                 parse_technology_nm, power_mw, price, retarget, sum_breakdowns, tops_per_w,
                                 vector_actions)


def _arch(**energy):
    return validate_arch({
        "name": "t", "engine": "systolic", "clock_hz": 1e9, "technology_nm": 45,
        "memory": [
            {"name": "DRAM", "kind": "dram", "dram_type": "LPDDR4", "word_bits": 8, "width_bits": 64},
            {"name": "SRAM", "kind": "sram", "word_bits": 8, "width_bits": 64,
             "partition_bytes": {"I": 8192, "W": 32768, "O": 8192}},
        ],
        "compute": {"units": 256},
        "systolic": {"rows": 16, "cols": 16},
        "energy": {"table": "horowitz_45nm", **energy},
    }, origin="t.yaml")


def _counts(**changes):
    base = dict(compute_cycles=100, mac_ops=1000, weight_bits=8, act_bits=8, accesses=(
        Access("SRAM", "W", "read", 17), Access("SRAM", "I", "read", 16), Access("DRAM", "W", "read", 64),
        Access("SRAM", "O", "write", 3, word_bits=32)))
    base.update(changes)
    return LayerCounts(**base)


def test_vector_actions_round_up_per_access():
    assert vector_actions(17, word_bits=8, width_bits=64) == 3      # 8 words per 64-bit vector
    assert vector_actions(16, word_bits=8, width_bits=64) == 2
    assert vector_actions(3, word_bits=32, width_bits=16) == 6       # a 32-bit word needs two 16-bit accesses
    assert vector_actions(0, word_bits=8, width_bits=64) == 0
    assert vector_actions(96.0000000001, word_bits=8, width_bits=8) == 96


def _vector_actions_ref(count, word_bits, width_bits):
    """Bits moved, rounded up to whole vectors (words never split across vectors when they fit)."""
    if word_bits > width_bits:
        return int(count) * -(-word_bits // width_bits)
    per_vector = width_bits // word_bits
    full, rest = divmod(int(count), per_vector)
    return full + (1 if rest else 0)


@settings(deadline=None, max_examples=200)
@given(count=st.integers(0, 10_000), word_bits=st.sampled_from([1, 2, 4, 8, 16, 24, 32, 64]),
       width_bits=st.sampled_from([8, 16, 32, 64, 128, 256, 2048]))
def test_vector_actions_matches_reference(count, word_bits, width_bits):
    assert vector_actions(count, word_bits=word_bits, width_bits=width_bits) == _vector_actions_ref(
        count, word_bits, width_bits)


def test_hand_computed_layer_energy():
    energy = price(_counts(), _arch())
    # W partition 32 KiB -> Horowitz 20 pJ / 64 b; I partition 8 KiB -> 10 pJ; DRAM 64 b x 8 pJ/bit.
    w_read = 3 * 20.0
    i_read = 2 * 10.0
    o_write = math.ceil(3 / 2) * 10.0           # 32-bit words, two per 64-bit vector
    dram = 8 * 64 * 8.0
    mac = 1000 * 0.25                            # 8b mult 0.2 + 16b add 0.05
    leak = 100 * (8192 + 32768 + 8192) * 30.4 / 1e9 * energy_factor(40, 45)
    assert energy.level_pj("SRAM") == pytest.approx(w_read + i_read + o_write + leak)
    assert energy.level_pj("DRAM") == pytest.approx(dram)
    assert energy.compute_pj == pytest.approx(mac)
    assert energy.leakage_pj == pytest.approx(leak)
    assert energy.total_pj == pytest.approx(w_read + i_read + o_write + dram + mac + leak)
    assert dict(energy.by_tensor_pj)["W"] == pytest.approx(w_read + dram)
    assert sum(i.total_pj for i in energy.items) == pytest.approx(energy.total_pj)
    assert all(i.source for i in energy.items)


def test_lower_bits_cost_less_everywhere():
    eight = price(_counts(), _arch())
    four = price(_counts(weight_bits=4, act_bits=4, accesses=(Access("SRAM", "W", "read", 17, word_bits=4),)), _arch())
    assert four.compute_pj < eight.compute_pj
    assert four.level_pj("SRAM") < eight.level_pj("SRAM")
    binary = price(_counts(mac_kind="xnor", weight_bits=1, act_bits=1), _arch())
    assert binary.compute_pj == pytest.approx(1000 * 0.0062)


def test_gated_and_vector_ops_are_priced():
    energy = price(_counts(gated_mac_ops=500, vector_ops=10, accesses=()), _arch())
    gated = [i for i in energy.items if i.action == "gated"][0]
    assert gated.total_pj == pytest.approx(500 * 0.25 * 0.1)
    assert energy.vector_pj == pytest.approx(10 * 0.03)


class _CountingEngine:
    """A fake engine that counts how often it is run."""

    def __init__(self):
        self.runs = 0

    def evaluate(self):
        self.runs += 1
        return _counts()


def test_repricing_does_not_rerun_the_engine():
    engine, arch = _CountingEngine(), _arch()
    counts = engine.evaluate()
    at45 = price(counts, arch)
    at7 = price(counts, arch, technology_nm=7)
    low_v = price(counts, arch, voltage_v=0.45)
    other_table = price(counts, arch, table=load_table("accelergy_45nm"))
    assert engine.runs == 1
    assert at7.compute_pj == pytest.approx(at45.compute_pj * energy_factor(45, 7))
    assert at7.level_pj("DRAM") == pytest.approx(at45.level_pj("DRAM"))  # off-chip: not scaled
    assert low_v.compute_pj == pytest.approx(at45.compute_pj * 0.25)
    assert other_table.compute_pj == pytest.approx(1000 * 0.315)


def test_pinned_energies_and_retarget():
    arch = _arch(levels={"SRAM": {"read_pj": 5.0, "source": "test"}}, mac_pj=1.0, mac_source="test")
    energy = price(_counts(), arch)
    assert energy.compute_pj == pytest.approx(1000.0)
    assert [i for i in energy.items if i.tensor == "W" and i.component == "SRAM"][0].pj_each == 5.0
    # a 4-bit layer on the pinned 8-bit MAC keeps the table's bit-width ratio
    four = price(_counts(weight_bits=4, act_bits=4), arch)
    table = load_table("horowitz_45nm")
    ratio = mac_energy(table, 4, 4, target_nm=45).pj / mac_energy(table, 8, 8, target_nm=45).pj
    assert four.compute_pj == pytest.approx(1000.0 * ratio)
    moved = retarget(arch, technology_nm=7, clock_hz=2e9)
    assert moved.technology_nm == 7 and moved.clock_hz == 2e9 and moved.energy.reference_nm == 45
    assert price(_counts(), moved).compute_pj == pytest.approx(1000.0 * energy_factor(45, 7))


def test_arch_energy_section_is_validated():
    with pytest.raises(ConfigError, match=r"t.yaml: energy: Value error, unknown energy table 'nope' \(allowed: "):
        _arch(table="nope")
    with pytest.raises(ConfigError, match=r"energy.levels names unknown memory level\(s\) \['GLB'\]"):
        _arch(levels={"GLB": {"read_pj": 1.0, "source": "x"}})
    with pytest.raises(ConfigError, match="mac_pj needs mac_source"):
        _arch(mac_pj=1.0)


def test_network_helpers():
    assert power_mw(1e9, 1e-3) == pytest.approx(1000.0)      # 1 mJ over 1 ms = 1 W
    assert power_mw(5.0, 0.0) == 0.0
    assert tops_per_w(2e12, 1e12) == pytest.approx(2.0)        # 2e12 ops for 1 J
    assert edp_j_s(1e12, 2.0) == pytest.approx(2.0)
    assert parse_technology_nm("28nm") == parse_technology_nm(" 28 NM") == parse_technology_nm(28) == 28.0
    with pytest.raises(ConfigError, match="not a number of nm"):
        parse_technology_nm("fast")
    total = sum_breakdowns([price(_counts(), _arch()), price(_counts(), _arch())])
    assert total.total_pj == pytest.approx(2 * price(_counts(), _arch()).total_pj)


def test_area_has_components_and_total():
    parts = area_mm2(_arch())
    assert parts["total"] == pytest.approx(parts["mac"] + parts["SRAM"])
    # 256 x (8b mult 282 um^2 + 16b add 67 um^2), Horowitz 45 nm
    assert parts["mac"] == pytest.approx(256 * (282 + 67) / 1e6)
    assert area_mm2(retarget(_arch(), technology_nm=7))["total"] < parts["total"]


def test_describe_presets_rows():
    rows = {row["name"]: row for row in describe_presets()}
    assert rows["tpu_v1_like"]["peak_tops"] == pytest.approx(91.75, rel=1e-3)
    assert rows["tpu_v1_like"]["technology_nm"] == 28
    assert set(rows["edge_tpu_like"]) >= {"engine", "macs", "clock_hz", "peak_tops", "on_chip_bytes", "source"}
    assert load_arch("edge_tpu_like").energy.table == "horowitz_45nm"
