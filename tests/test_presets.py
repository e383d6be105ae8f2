"""Architecture presets: published peak rates and buffer sizes, every number cited, bad configs rejected."""

from __future__ import annotations

import pytest
import yaml

from hwsim.errors import ConfigError
from hwsim.models.arch import load_arch
from hwsim.models.counts import Access, LayerCounts
from hwsim.models.energy import area_mm2, price

KIB, MIB = 1024, 1024 * 1024

# preset: (peak MACs per second, {level: capacity bytes per instance}, {partition: bytes}) -- published values
PUBLISHED = {
    # Jouppi et al. ISCA 2017: 256x256 MACs at 700 MHz (92 TOPS); 24 MiB UB, 4 MiB accumulators, 4 x 64 KiB weight FIFO
    "tpu_v1_like": (65536 * 700e6, {}, {"SRAM": {"I": 24 * MIB, "O": 4 * MIB, "W": 4 * 64 * KIB}}),
    # Coral datasheet: 4 TOPS class (64x64 at 480 MHz = 3.93 TOPS); ~8 MB SRAM (Coral compiler docs)
    "edge_tpu_like": (4096 * 480e6, {"SRAM": 8 * MIB}, {}),
    # Chen et al. JSSC 2017: 168 PEs at 200 MHz; 108 KB GLB; spads 12x16b, 224x16b, 24x16b
    "eyeriss": (168 * 200e6, {"GLB": 108 * KIB}, {"PESpad": {"I": 24, "W": 448, "O": 48}}),
    # nv_small.spec / nv_full.spec: 64 and 2048 int8 MACs; CBUF 128 KiB and 512 KiB
    "nvdla_small": (64 * 1e9, {"CBUF": 128 * KIB}, {}),
    "nvdla_full": (2048 * 1e9, {"CBUF": 512 * KIB}, {}),
    # Shao et al. MICRO 2019: 16 PEs x 64 MACs; 64 KB global buffer; 32 KB W / 8 KB I / 3 KB acc per PE
    "simba_like": (1024 * 1.736e9, {"GlobalBuffer": 64 * KIB},
                   {"PEBuffer": {"W": 32 * KIB, "I": 8 * KIB, "O": 3 * KIB}}),
    # Du et al. ISCA 2015: 64 PEs at 1 GHz; NBin 64 KB, NBout 64 KB, SB 128 KB
    "shidiannao_like": (64 * 1e9, {}, {"Buffers": {"I": 64 * KIB, "O": 64 * KIB, "W": 128 * KIB}}),
    # RK3588 NPU core: 1024 int8 MACs at 1 GHz (2 TOPS); CBUF 12 x 32 KiB
    "mobile_npu": (1024 * 1e9, {}, {"SRAM": {"I": 192 * KIB, "W": 192 * KIB}}),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_matches_published_numbers(name):
    arch = load_arch(name)
    macs_per_s, capacities, partitions = PUBLISHED[name]
    assert arch.peak_macs_per_cycle * arch.clock_hz == pytest.approx(macs_per_s, rel=1e-6)
    for level, size in capacities.items():
        assert arch.level(level).capacity_bytes == size
    for level, parts in partitions.items():
        for tensor, size in parts.items():
            assert arch.level(level).partition_bytes[tensor] == size
    assert arch.memory[0].kind == "dram"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_cites_its_numbers_and_prices(name):
    arch = load_arch(name)
    assert "clock_hz" in arch.sources and "technology_nm" in arch.sources
    assert any(key.startswith("compute") or key.startswith("systolic") for key in arch.sources)
    accesses = tuple(Access(level.name, tensor, "read", 100, instances=level.instances, word_bits=level.word_bits)
                     for level in arch.memory for tensor in level.tensors)
    counts = LayerCounts(compute_cycles=100, mac_ops=100 * arch.peak_macs_per_cycle,
                         weight_bits=arch.compute.weight_bits, act_bits=arch.compute.act_bits, accesses=accesses)
    energy = price(counts, arch)
    assert energy.total_pj > energy.compute_pj > 0
    assert all(pj > 0 for _, pj in energy.by_level_pj)
    assert area_mm2(arch)["total"] > 0


def test_systolic_presets_expose_partitioned_sram_above_the_array():
    for name in ("tpu_v1_like", "edge_tpu_like", "mobile_npu"):
        arch = load_arch(name)
        assert arch.engine == "systolic" and arch.systolic is not None
        assert set(arch.memory[-1].partition_bytes) == {"I", "W", "O"}


def test_spatial_presets_have_a_level_tree_and_spatial_section():
    for name in ("eyeriss", "nvdla_small", "nvdla_full", "simba_like", "shidiannao_like"):
        arch = load_arch(name)
        assert arch.engine == "spatial" and arch.spatial is not None and arch.spatial.dataflow
        inner = arch.memory[-1]
        assert inner.instances > 1 and inner.mesh_x * inner.mesh_y == inner.instances
    assert load_arch("eyeriss").memory[-1].instances == 168


def _broken(tmp_path, name, edit):
    data = yaml.safe_load(load_arch(name).model_dump_json())
    edit(data)
    path = tmp_path / f"{name}_bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(("preset", "edit", "message"), [
    ("eyeriss", lambda d: d["memory"][1].update(size_bytes=-4),
     r"eyeriss_bad.yaml: memory.1.size_bytes: Input should be greater than 0 \(got -4\)"),
    ("eyeriss", lambda d: d["memory"][1].update(size_bytes=1),
     r"eyeriss_bad.yaml: memory.1: Value error, size_bytes=1 is smaller than one 16-bit word"),
    ("tpu_v1_like", lambda d: d["systolic"].update(dataflow="rs"),
     r"tpu_v1_like_bad.yaml: systolic.dataflow: Input should be 'ws', 'os' or 'is' \(got 'rs'\)"),
    ("nvdla_small", lambda d: d["memory"][1].update(tensors=["I", "X"]),
     r"nvdla_small_bad.yaml: memory.1.tensors.1: Input should be 'W', 'I' or 'O' \(got 'X'\)"),
    ("edge_tpu_like", lambda d: d["memory"][1]["partition_bytes"].update(Z=64),
     r"edge_tpu_like_bad.yaml: memory.1.partition_bytes.Z.\[key\]: Input should be 'W', 'I' or 'O'"),
    ("mobile_npu", lambda d: d["energy"].update(table="nope_45nm"),
     r"mobile_npu_bad.yaml: energy: Value error, unknown energy table 'nope_45nm' \(allowed: accelergy_40nm"),
    ("simba_like", lambda d: d["energy"].update(levels={"GLB": {"read_pj": 1.0, "source": "x"}}),
     r"simba_like_bad.yaml: .*energy.levels names unknown memory level\(s\) \['GLB'\]"),
])
def test_invalid_configs_name_file_key_and_allowed_values(tmp_path, preset, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_arch(_broken(tmp_path, preset, edit))
