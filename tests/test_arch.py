"""ArchSpec validation: every bad config gives one line naming the origin, the key and the value."""

import pytest

from hwsim.errors import ConfigError, UnknownNameError
from hwsim.models.arch import load_arch, validate_arch


def _arch(**changes):
    data = {
        "name": "t", "engine": "systolic", "clock_hz": 1e9, "technology_nm": 45,
        "memory": [
            {"name": "DRAM", "kind": "dram", "read_bw_bytes_per_cycle": 32},
            {"name": "SRAM", "kind": "sram", "partition_bytes": {"I": 65536, "W": 65536, "O": 65536}},
        ],
        "compute": {"units": 256},
        "systolic": {"rows": 16, "cols": 16, "dataflow": "ws"},
    }
    data.update(changes)
    return data


def test_valid_arch_and_derived_views():
    arch = validate_arch(_arch())
    assert arch.peak_macs_per_cycle == 256
    assert arch.peak_ops_per_s == 2 * 256 * 1e9
    assert arch.on_chip_bytes == 3 * 65536
    assert arch.level("SRAM").capacity_bytes == 3 * 65536


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"systolic": {"rows": 16, "cols": 16, "dataflow": "xs"}},
         r"t.yaml: systolic.dataflow: Input should be 'ws', 'os' or 'is' \(got 'xs'\)"),
        ({"systolic": {"rows": 0, "cols": 16}}, r"systolic.rows: Input should be greater than 0 \(got 0\)"),
        ({"clock_hz": -1}, r"clock_hz: Input should be greater than 0"),
        ({"compute": {"units": 4, "sise": 3}}, r"compute.sise: unknown key"),
        ({"memory": [{"name": "DRAM", "kind": "dram"},
                     {"name": "SRAM", "kind": "sram", "size_bytes": 1, "word_bits": 16}]},
         r"memory.1: Value error, size_bytes=1 is smaller than one 16-bit word"),
        ({"memory": [{"name": "DRAM", "kind": "dram"},
                     {"name": "SRAM", "kind": "sram", "size_bytes": 64, "tensors": ["W", "X"]}]},
         r"memory.1.tensors.1: Input should be 'W', 'I' or 'O' \(got 'X'\)"),
        ({"systolic": None}, r"engine is 'systolic' but the 'systolic' section is missing"),
    ],
)
def test_invalid_configs_name_file_key_and_value(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate_arch(_arch(**changes), origin="t.yaml")


def test_overrides_validate_and_reject_unknown_paths():
    arch = validate_arch(_arch())
    bigger = arch.with_overrides({"systolic.rows": 32, "memory.SRAM.partition_bytes.W": 1024})
    assert bigger.systolic.rows == 32 and bigger.level("SRAM").partition_bytes["W"] == 1024
    assert arch.systolic.rows == 16  # the original is untouched
    with pytest.raises(ConfigError, match=r"systolic.rowz: unknown key 'rowz'"):
        arch.with_overrides({"systolic.rowz": 3})
    with pytest.raises(ConfigError, match=r"no memory level 'GLB'"):
        arch.with_overrides({"memory.GLB.size_bytes": 3})
    with pytest.raises(ConfigError, match=r"systolic.rows: Input should be greater than 0"):
        arch.with_overrides({"systolic.rows": 0})


def test_load_arch_errors(tmp_path):
    with pytest.raises(UnknownNameError, match=r"unknown architecture 'nope'; presets: "):
        load_arch("nope")
    with pytest.raises(ConfigError, match=r"missing.yaml: architecture file not found"):
        load_arch(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line 2"):
        load_arch(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: expected a mapping at the top level, got list"):
        load_arch(bad)
