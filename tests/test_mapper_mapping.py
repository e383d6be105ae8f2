"""Mapping data: loop-nest printing, YAML round trip, diff, bad input."""

from __future__ import annotations

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
from hwsim.mappers import DefaultMapper, LevelMapping, Mapper, Mapping
from hwsim.models.arch import load_arch


def _mapping():
    return Mapping(levels=(LevelMapping("DRAM", temporal=(("K", 2),)),
                           LevelMapping("GLB", temporal=("P16",), spatial_x=(("K", 4),), keep=("I", "O")),
                           LevelMapping("PE", temporal=[{"R": 3}], keep=("W", "I", "O"))))


def test_loop_nest_printout():
    text = _mapping().to_loop_nest()
    assert text.splitlines() == [
        "DRAM [keeps W I O]", "| for K in [0:2)", "  GLB [keeps I O]", "  | for P in [0:16)",
        "    | spatial-for K in [0:4) (X)", "      PE [keeps W I O]", "      | for R in [0:3)", "        << MAC >>"]


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "m.yaml"
    _mapping().save(path)
    loaded = Mapping.load(path)
    assert loaded.levels == _mapping().levels
    assert loaded.bounds()["K"] == 8 and loaded.bounds()["R"] == 3


def test_diff_names_changed_fields():
    other = _mapping().with_level("GLB", keep=("W", "I", "O"), temporal=(("P", 8), ("Q", 2)))
    assert _mapping().diff(other) == ["GLB.temporal: P16 -> P8 Q2", "GLB.keep: I O -> W I O"]
    assert _mapping().diff(_mapping()) == []


@pytest.mark.parametrize("text, match", [
    ("mapping: [{level: GLB, temporal: [X4]}]", "unknown loop dim 'X'"),
    ("mapping: [{level: GLB, temporal: [K0]}]", "must be >= 1"),
    ("mapping: [{level: GLB, keep: [Z]}]", "unknown tensor"),
    ("mapping: [{level: GLB, tempral: [K4]}]", "unknown key"),
    ("levels: []", "top-level 'mapping:'"),
    ("mapping: [: :", "malformed YAML"),
])
def test_bad_mapping_yaml_is_a_config_error(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Mapping.load(path)


def test_default_mapper_dispatches_to_the_engine():
    arch = load_arch("eyeriss")
    layer = Layer("c", Op.CONV, K=16, C=8, P=8, Q=8, R=3, S=3, padding=1)
    mapper = DefaultMapper()
    assert isinstance(mapper, Mapper)
    mapping = mapper.map(layer, arch)
    assert [lvl.level for lvl in mapping.levels] == ["DRAM", "GLB", "PESpad"]
