"""Sparse, bit-serial and binary presets: headline numbers of their papers, every number cited."""

from __future__ import annotations

import pytest

from hwsim.models.arch import load_arch

# preset: (MAC units, clock Hz, engine-specific {dotted param: value}) -- papers' headline figures
PUBLISHED = {
    "eie": (64, 800e6, {"sparse.pes": 64, "sparse.queue_depth": 8}),                   # Han et al. ISCA 2016
    "scnn": (1024, 1e9, {"sparse.pes": 64, "sparse.act_lanes": 4}),                    # Parashar et al. ISCA 2017
    "cambricon_x": (256, 1e9, {"sparse.pes": 16, "sparse.multipliers_per_pe": 16}),     # Zhang et al. MICRO 2016
    "sparse_tc_2_4": (4096, 480e6, {"sparse.structured_n": 2, "sparse.structured_m": 4,
                                    "sparse.metadata_bits": 2}),                          # A100 whitepaper
    "eyeriss_v2": (384, 200e6, {"sparse.pes": 192, "sparse.multipliers_per_pe": 2}),   # Chen et al. JETCAS 2019
    "stripes": (4096, 980e6, {"bitserial.lanes": 65536}),                               # Judd et al. MICRO 2016
    "pragmatic": (4096, 980e6, {"bitserial.sync_group": 16}),                          # Albericio et al. MICRO 2017
    "loom": (128, 1e9, {"bitserial.lanes": 32768}),                                     # Sharify et al. DAC 2018
    "bit_fusion": (512, 500e6, {"bitserial.fusion_units": 512, "bitserial.brick_bits": 2}),  # Sharma et al. ISCA 2018
    "xnor_bnn": (4096, 500e6, {"binary.xnor_width": 64, "binary.fallback_bits": 8}),
}


def _get(arch, dotted):
    node = arch
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_numbers_and_citations(name):
    arch = load_arch(name)
    units, clock, params = PUBLISHED[name]
    assert arch.compute.units == units and arch.clock_hz == clock
    for dotted, value in params.items():
        assert _get(arch, dotted) == value
        assert any(dotted.startswith(key) or key.startswith(dotted.rsplit(".", 1)[0]) for key in arch.sources)
    assert "clock_hz" in arch.sources and "technology_nm" in arch.sources
    assert arch.memory[0].kind == "dram"
