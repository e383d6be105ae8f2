"""Energy tables: every row reads back its cited value; fits reproduce their anchor points; scaling."""

from __future__ import annotations

import pytest

from hwsim.errors import ConfigError, UnknownNameError
from hwsim.models.energy import (area_factor, dram_energy_per_bit, energy_factor, load_table, mac_energy,
                                 op_energy, storage_energy, table_names, voltage_factor)

# (table, row id, field, value, source substring) -- value as published in the cited source.
CITED_ROWS = [
    # Horowitz ISSCC 2014 (45 nm, 0.9 V), pJ per op / per 64-bit SRAM access
    ("horowitz_45nm", "int8_add", "pj", 0.03, "Horowitz"),
    ("horowitz_45nm", "int16_add", "pj", 0.05, "Horowitz"),
    ("horowitz_45nm", "int32_add", "pj", 0.1, "Horowitz"),
    ("horowitz_45nm", "int8_mult", "pj", 0.2, "Horowitz"),
    ("horowitz_45nm", "int32_mult", "pj", 3.1, "Horowitz"),
    ("horowitz_45nm", "fp16_add", "pj", 0.4, "Horowitz"),
    ("horowitz_45nm", "fp32_add", "pj", 0.9, "Horowitz"),
    ("horowitz_45nm", "fp16_mult", "pj", 1.1, "Horowitz"),
    ("horowitz_45nm", "fp32_mult", "pj", 3.7, "Horowitz"),
    ("horowitz_45nm", "int8_mult", "area_um2", 282, "Horowitz"),
    ("horowitz_45nm", "int32_add", "area_um2", 137, "Horowitz"),
    ("horowitz_45nm", "sram_8192B_64b", "read_pj", 10.0, "Horowitz"),
    ("horowitz_45nm", "sram_32768B_64b", "read_pj", 20.0, "Horowitz"),
    ("horowitz_45nm", "sram_1048576B_64b", "read_pj", 100.0, "Horowitz"),
    ("horowitz_45nm", "regfile_48B_16b", "read_pj", 0.539, "smartbuffer_RF 45 nm"),
    ("horowitz_45nm", "regfile_448B_16b", "write_pj", 3.353, "smartbuffer_RF 45 nm"),
    # DRAM pJ/bit
    ("horowitz_45nm", "dram_LPDDR4", "pj_per_bit", 8.0, "cacti-plug-in"),
    ("horowitz_45nm", "dram_DDR3", "pj_per_bit", 70.0, "cacti-plug-in"),
    ("horowitz_45nm", "dram_HBM2", "pj_per_bit", 3.9, "Fine-Grained DRAM"),
    ("horowitz_45nm", "dram_DDR4", "pj_per_bit", 44.8, "derived"),
    ("horowitz_45nm", "dram_LPDDR5", "pj_per_bit", 5.6, "derived"),
    # binary rows (derived from Horowitz 32b add / Aladdin bitwise)
    ("horowitz_45nm", "int1_xnor", "pj", 0.0031, "derived"),
    ("accelergy_40nm", "int1_xnor", "pj", 0.018, "bitwise.csv"),
    # Accelergy 40 nm (Aladdin / CACTI), timeloop-accelergy-exercises ERTs
    ("accelergy_40nm", "int32_add", "pj", 0.21, "adder.csv"),
    ("accelergy_40nm", "int32_mult", "pj", 12.68, "multiplier.csv"),
    ("accelergy_40nm", "fp32_mult", "pj", 35.3, "fp_sp_multiplier"),
    ("accelergy_40nm", "sram_262144B_64b", "read_pj", 43.353054, "CactiSRAM 40 nm"),
    ("accelergy_40nm", "sram_262144B_64b", "write_pj", 30.878292, "CactiSRAM 40 nm"),
    ("accelergy_40nm", "regfile_64B_8b", "read_pj", 0.42564, "Aladdin regfile"),
    # Accelergy 45 nm
    ("accelergy_45nm", "int8_mac", "pj", 0.315, "Library 45 nm"),
    ("accelergy_45nm", "sram_131072B_64b", "read_pj", 32.378, "CactiSRAM 45 nm"),
    ("accelergy_45nm", "sram_8192B_128b", "write_pj", 12.620, "CactiSRAM 45 nm"),
    ("accelergy_45nm", "sram_384B_16b", "read_pj", 0.680, "CactiSRAM 45 nm"),
]


@pytest.mark.parametrize(("table", "row_id", "field", "value", "cite"), CITED_ROWS,
                         ids=[f"{t}:{r}:{f}" for t, r, f, _, _ in CITED_ROWS])
def test_row_reads_back_its_cited_value(table, row_id, field, value, cite):
    row = load_table(table).row(row_id)
    assert getattr(row, field) == pytest.approx(value)
    assert cite in row.source


def test_every_row_of_every_table_has_a_source():
    assert {"horowitz_45nm", "accelergy_40nm", "accelergy_45nm"} <= set(table_names())
    for name in table_names():
        table = load_table(name)
        for row_id in table.row_ids():
            assert len(table.row(row_id).source) > 10, (name, row_id)


def test_exact_rows_are_returned_unfitted_at_their_node():
    table = load_table("horowitz_45nm")
    assert mac_energy(table, 8, 8, target_nm=45).pj == pytest.approx(0.2 + 0.05)  # 8b mult + 16b add
    assert op_energy(table, "mult", (32, 32), target_nm=45).pj == pytest.approx(3.1)
    read, write = storage_energy(table, "sram", size_bytes=32768, width_bits=64, target_nm=45)
    assert read.pj == pytest.approx(20.0) and "sram_32768B_64b" in read.source
    assert dram_energy_per_bit(table, "HBM2").pj == pytest.approx(3.9)


def test_aladdin_convention_reproduces_the_timeloop_intmac_ert():
    # Accelergy ERT of the 40 nm 8-bit intmac is 0.845 pJ = Aladdin 8b add (0.21/4) + 8b mult (12.68/16).
    assert mac_energy(load_table("accelergy_40nm"), 8, 8, target_nm=40).pj == pytest.approx(0.845)
    # the Library 45 nm intmac row is pinned at 8 bits
    assert mac_energy(load_table("accelergy_45nm"), 8, 8, target_nm=45).pj == pytest.approx(0.315)


@pytest.mark.parametrize("table", ["horowitz_45nm", "accelergy_40nm", "accelergy_45nm"])
def test_mac_energy_increases_with_bits(table):
    energies = [mac_energy(load_table(table), b, b, target_nm=45).pj for b in (1, 2, 3, 4, 6, 8, 16)]
    assert all(a < b for a, b in zip(energies, energies[1:]))
    # asymmetric widths sit between the square ones
    mixed = mac_energy(load_table(table), 4, 8, target_nm=45).pj
    assert energies[3] < mixed < energies[5]


def test_fp_and_binary_and_bitserial_costs_are_ordered():
    table = load_table("horowitz_45nm")
    fp16 = mac_energy(table, 16, 16, number_format="fp", target_nm=45).pj
    assert fp16 == pytest.approx(1.1 + 0.9)  # fp16 mult + fp32 accumulate
    assert mac_energy(table, 32, 32, number_format="fp", target_nm=45).pj == pytest.approx(3.7 + 0.9)
    from hwsim.models.energy import binary_mac_energy, bitserial_step_energy
    xnor = binary_mac_energy(table, target_nm=45).pj
    assert xnor == pytest.approx(0.0062)
    step8 = bitserial_step_energy(table, 8, target_nm=45).pj
    assert xnor < step8 < mac_energy(table, 8, 8, target_nm=45).pj
    assert bitserial_step_energy(table, 16, target_nm=45).pj > step8


def test_storage_fit_reproduces_horowitz_points_and_grows_with_capacity():
    table = load_table("horowitz_45nm")
    # off-row sizes use the power-law fit; it passes within 3 % of the three anchor points
    for size, pj in ((8192, 10.0), (32768, 20.0), (1 << 20, 100.0)):
        fitted, _ = storage_energy(table, "sram", size_bytes=size, width_bits=64, banks=2, target_nm=45)
        half, _ = storage_energy(table, "sram", size_bytes=size // 2, width_bits=64, target_nm=45)
        assert fitted.pj == pytest.approx(half.pj)  # two banks of half size = one bank access
        assert "fit" in fitted.source
    sizes = [256, 4096, 65536, 1 << 20, 1 << 24]
    reads = [storage_energy(table, "sram", size_bytes=s, width_bits=64, target_nm=45)[0].pj for s in sizes]
    assert all(a < b for a, b in zip(reads, reads[1:]))
    wide, _ = storage_energy(table, "sram", size_bytes=65536, width_bits=128, target_nm=45)
    assert wide.pj == pytest.approx(2 * reads[2])  # same per-bit energy, twice the bits


def test_cacti_45nm_fit_residuals_are_bounded():
    table = load_table("accelergy_45nm")
    from hwsim.models.energy.components import _storage_fit
    law, _, _ = _storage_fit(table, "sram")
    for row in table.storage_rows("sram"):
        fitted = law(row.size_bytes, row.width_bits) * row.width_bits
        assert fitted == pytest.approx(row.read_pj, rel=0.15), row.row_id


# Stillmaker & Baas 2017: area factor 45 -> 7 nm = 0.059, 45 -> 32 nm = 0.46, 45 -> 65 nm = 1.5
@pytest.mark.parametrize(("to_nm", "factor"), [(7, 0.059), (32, 0.46), (65, 1.5), (14, 0.17), (45, 1.0)])
def test_area_factor_reproduces_table_points(to_nm, factor):
    assert area_factor(45, to_nm) == pytest.approx(factor)


def test_energy_scaling_is_monotone_and_invertible():
    nodes = [65, 45, 40, 32, 28, 22, 16, 14, 10, 7]
    factors = [energy_factor(45, n) for n in nodes]
    assert all(a > b for a, b in zip(factors, factors[1:]))
    # 45 nm polynomial at 0.8 V: 1.103*0.64 - 0.362*0.8 + 0.2767 = 0.69302; 7 nm: 0.065362
    assert energy_factor(45, 7) == pytest.approx(0.065362 / 0.69302, rel=1e-4)
    for node in nodes:
        assert energy_factor(45, node) * energy_factor(node, 45) == pytest.approx(1.0)
        assert area_factor(45, node) * area_factor(node, 45) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="outside the energy scaling range"):
        energy_factor(45, 3)


def test_voltage_knob_is_quadratic():
    assert voltage_factor(0.45, 0.9) == pytest.approx(0.25)
    assert voltage_factor(None, 0.9) == 1.0
    table = load_table("horowitz_45nm")
    assert mac_energy(table, 8, 8, target_nm=45, voltage_v=0.45).pj == pytest.approx(0.25 * 0.25)


def test_unknown_table_and_row_and_dram_type_name_the_allowed_values(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown energy table 'nope'; tables: .*horowitz_45nm"):
        load_table("nope")
    with pytest.raises(UnknownNameError, match="no row 'int7_add'; rows: int8_add"):
        load_table("horowitz_45nm").row("int7_add")
    with pytest.raises(ConfigError, match=r"no dram row for 'GDDR6' \(allowed: LPDDR4"):
        load_table("horowitz_45nm").dram_row("GDDR6")


@pytest.mark.parametrize(("text", "message"), [
    ("name: t\ntechnology_nm: 45\narithmetic:\n  - {op: add, bits: 8, pj: 0.1, source: xyz, sorce: x}\n",
     r"bad.yaml: arithmetic.0.sorce: unknown key"),
    ("name: t\ntechnology_nm: 45\narithmetic:\n  - {op: divide, bits: 8, pj: 0.1, source: xyz}\n",
     r"bad.yaml: arithmetic.0.op: Input should be 'add', 'mult', 'mac', 'xnor' or 'popcount'"),
    ("name: t\ntechnology_nm: 45\nstorage:\n  - {kind: sram, size_bytes: -5, width_bits: 8, read_pj: 1, source: xyz}\n",
     r"bad.yaml: storage.0.size_bytes: Input should be greater than 0"),
    ("name: t\ntechnology_nm: 45\ndram:\n  - {type: DDR9, pj_per_bit: 3, source: xyz}\n",
     r"bad.yaml: dram.0.type: Input should be 'LPDDR4'"),
    ("name: t\ntechnology_nm: 45\n  bad: [indent\n", r"bad.yaml: malformed YAML"),
    ("name: t\ntechnology_nm: 45\n", r"bad.yaml: dram: the table \(with its base\) has no DRAM rows"),
])
def test_malformed_tables_fail_with_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_table(str(path))


def test_documented_fit_exponents_and_residuals():
    # components.py docstring: Horowitz int add p = 0.87 (residuals -3.0 / +6.3 / -3.0 %), SRAM b = 0.47
    from hwsim.models.energy.components import _arith_fit, _storage_fit
    table = load_table("horowitz_45nm")
    law, _ = _arith_fit(table, "add", "int")
    assert law.exponents[0] == pytest.approx(0.868, abs=0.001)
    residuals = [law(r.bits) / r.pj - 1 for r in table.arithmetic_rows("add")]
    assert residuals == pytest.approx([-0.030, 0.063, -0.030], abs=0.001)
    sram, write_ratio, _ = _storage_fit(table, "sram")
    assert sram.exponents[0] == pytest.approx(0.473, abs=0.001) and write_ratio == 1.0
