"""Spatial loop-nest engine: hand-computed counts, multicast/reduction, capacity errors, default mappings."""

from __future__ import annotations

import pytest

from hwsim.errors import InvalidMappingError
from hwsim.ir import Layer, Op
from hwsim.mappers.mapping import LevelMapping, Mapping
from hwsim.models import get_engine
from hwsim.models.arch import load_arch, validate_arch
from hwsim.models.energy import price
from hwsim.models.spatial import evaluate

SPATIAL_PRESETS = ["eyeriss", "simba_like", "shidiannao_like", "nvdla_small", "nvdla_full"]


def _arch(glb_bytes=1024, pe_bytes=64, pes=4):
    return validate_arch({
        "name": "toy", "engine": "spatial", "clock_hz": 1e9, "technology_nm": 45,
        "memory": [{"name": "DRAM", "kind": "dram"},
                   {"name": "GLB", "kind": "sram", "size_bytes": glb_bytes},
                   {"name": "PE", "kind": "regfile", "size_bytes": pe_bytes, "instances": pes, "mesh_x": pes}],
        "compute": {"units": pes}}, origin="toy")


def _layer():
    return Layer("conv1d", Op.CONV, K=8, C=1, P=16, Q=1, R=3, S=1)


def _mapping(pe_keep=("W", "I", "O")):
    return Mapping(levels=(
        LevelMapping("DRAM", temporal=(("K", 2),)),
        LevelMapping("GLB", temporal=(("P", 16),), spatial_x=(("K", 4),)),
        LevelMapping("PE", temporal=(("R", 3),), keep=pe_keep)))


def test_hand_computed_counts_with_multicast_and_sliding_window():
    counts = evaluate(_layer(), _arch(), _mapping())
    get = lambda level, tensor, action: counts.accesses_of(level=level, tensor=tensor, action=action)  # noqa: E731
    # compute: 2 (K) x 16 (P) x 3 (R) temporal steps; 4 PEs each do one K
    assert counts.compute_cycles == 96 and counts.mac_ops == 8 * 16 * 3
    # each PE holds 3 weights of its K, refilled when the DRAM K loop moves: 2 x 3 per PE, 4 PEs
    assert get("PE", "W", "write") == 2 * 3 * 4
    # input window of 3 slides by 1 along P: (3 + 15) per K pass, per PE (4 PEs)
    assert get("PE", "I", "write") == 2 * 18 * 4
    # the GLB multicasts inputs: one read per new element for all 4 PEs -> 2 x 18
    assert get("GLB", "I", "read") == 2 * 18
    # weights: 4 PEs need 4 different weight rows -> 2 x 12
    assert get("GLB", "W", "read") == 2 * 12
    # outputs: 3 updates per output at the PE, first needs no read: 128 outputs
    assert get("PE", "O", "update") == 96 * 4 and get("PE", "O", "read") == 96 * 4 - 128
    assert get("GLB", "O", "update") == 128 and get("GLB", "O", "read") == 0
    assert get("DRAM", "O", "update") == 128
    assert counts.utilization == pytest.approx(384 / (96 * 4))


def test_bypassed_inputs_are_read_from_the_glb_every_cycle_and_multicast():
    counts = evaluate(_layer(), _arch(), _mapping(pe_keep=("W", "O")))
    assert counts.accesses_of(level="PE", tensor="I") == 0
    # every compute step reads one input word for all four PEs (same P, R; K differs): 96 reads
    assert counts.accesses_of(level="GLB", tensor="I", action="read") == 96


def test_spatial_reduction_over_c():
    layer = Layer("red", Op.CONV, K=1, C=4, P=4, Q=1, R=1, S=1)
    mapping = Mapping(levels=(LevelMapping("DRAM"), LevelMapping("GLB", temporal=(("P", 4),), spatial_x=(("C", 4),)),
                              LevelMapping("PE", keep=("W", "I"))))
    counts = evaluate(layer, _arch(), mapping)
    # the 4 PEs' products are reduced before the GLB update: one update per output per step
    assert counts.accesses_of(level="GLB", tensor="O", action="update") == 4
    assert counts.accesses_of(level="GLB", tensor="O", action="read") == 0


def test_invalid_mapping_lists_every_reason():
    bad = Mapping(levels=(
        LevelMapping("DRAM", temporal=(("K", 1),)),
        LevelMapping("GLB", temporal=(("P", 16),), spatial_x=(("K", 8),)),
        LevelMapping("PE", temporal=(("R", 3),))))
    with pytest.raises(InvalidMappingError) as err:
        evaluate(_layer(), _arch(), bad)
    text = str(err.value)
    assert "exceeds its fan-out 4x1" in text


def test_capacity_violation_is_reported():
    with pytest.raises(InvalidMappingError, match=r"level PE: tiles need .* capacity 4 B"):
        evaluate(_layer(), _arch(pe_bytes=4), _mapping())


def test_underfactorized_dim_is_reported():
    short = Mapping(levels=(LevelMapping("DRAM"), LevelMapping("GLB", temporal=(("P", 16),)),
                            LevelMapping("PE", temporal=(("R", 3),))))
    with pytest.raises(InvalidMappingError, match="dim K: loop bounds multiply to 1, less than the layer's 8"):
        evaluate(_layer(), _arch(), short)


def test_padded_factorization_reports_padded_macs():
    layer = Layer("odd", Op.CONV, K=7, C=1, P=4, Q=1, R=1, S=1)
    mapping = Mapping(levels=(LevelMapping("DRAM", temporal=(("K", 2),)),
                              LevelMapping("GLB", temporal=(("P", 4),), spatial_x=(("K", 4),)), LevelMapping("PE")))
    counts = evaluate(layer, _arch(), mapping)
    assert counts.mac_ops == 8 * 4 and counts.detail("macs") == 28 and counts.detail("padded_macs") == 32


@pytest.mark.parametrize("preset", SPATIAL_PRESETS)
@pytest.mark.parametrize("layer", [
    Layer("conv", Op.CONV, K=64, C=32, P=28, Q=28, R=3, S=3, padding=1),
    Layer("dw", Op.DEPTHWISE, K=32, C=32, G=32, P=28, Q=28, R=3, S=3, padding=1),
    Layer("fc", Op.LINEAR, K=100, C=256, P=1),
    Layer("qk", Op.MATMUL, N=2, K=16, C=32, P=16),
], ids=lambda x: getattr(x, "name", x))
def test_default_mapping_is_valid_and_priceable_on_every_spatial_preset(preset, layer):
    arch = load_arch(preset)
    engine = get_engine("spatial")
    counts = engine.evaluate(layer, arch, engine.default_mapping(layer, arch))
    assert counts.mac_ops >= layer.macs
    assert counts.cycles >= layer.macs / arch.compute.units
    assert 0 < counts.utilization <= 1
    # compulsory DRAM traffic: every weight read at least once, every output written at least once
    assert counts.accesses_of(level="DRAM", tensor="O", action="update") >= layer.output_elems
    assert price(counts, arch).total_pj > 0


def test_depthwise_uses_the_array_through_g():
    arch = load_arch("nvdla_full")
    layer = Layer("dw", Op.DEPTHWISE, K=256, C=256, G=256, P=14, Q=14, R=3, S=3, padding=1)
    engine = get_engine("spatial")
    mapping = engine.default_mapping(layer, arch)
    assert any(dim == "G" for lvl in mapping.levels for dim, bound in lvl.spatial if bound > 1)


def test_mac_operand_reuse_keeps_the_partial_sum_in_the_mac():
    # ZigZag's convention (spatial.mac_operand_reuse): the MAC accumulates over the inner R loop and writes
    # each output once per visit: 2 (K) x 16 (P) updates per PE instead of 96, and no RMW reads
    arch = _arch().with_overrides({"spatial": {"mac_operand_reuse": True}})
    counts = evaluate(_layer(), arch, _mapping())
    assert counts.accesses_of(level="PE", tensor="O", action="update") == 32 * 4
    assert counts.accesses_of(level="PE", tensor="O", action="read") == 0
    assert counts.accesses_of(level="PE", tensor="W", action="read") == 96 * 4   # W changes with R every step


def test_non_mac_layers_are_rejected_with_a_pointer_to_the_vector_unit():
    from hwsim.errors import UnsupportedOpError
    pool = Layer("pool", Op.POOL, K=8, C=8, G=8, P=4, Q=4, R=2, S=2)
    with pytest.raises(UnsupportedOpError, match="vector unit"):
        evaluate(pool, _arch(), _mapping())
