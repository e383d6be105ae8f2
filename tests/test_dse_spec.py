"""Sweep specs: validation before anything runs, point counts, samplers."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hwsim.dse.samplers import BARRIER, UnitCubeSampler, make_sampler, take
from hwsim.dse.spec import Range, load_spec, space_size
from hwsim.dse.templates import substitute
from hwsim.errors import ConfigError
from tests.dse_fakes import write_tiny_arch

PRUNE = {"template": {"steps": [{"method": "magnitude_prune", "sparsity": "${sparsity}", "name": "p${sparsity}"}]},
         "params": {"sparsity": [0.5, 0.75]}}


def make(tmp_path, **changes):
    spec = {"name": "t", "models": ["m1", "m2"], "recipes": {"dense": None, "prune": PRUNE},
            "arch": {"base": str(write_tiny_arch(tmp_path)),
                     "params": {"systolic.rows": [8, 16, 32], "memory.GLB.size_bytes": {"low": 1024, "high": 4096,
                                                                                         "num": 3, "log": True,
                                                                                         "int": True}},
                     "link": {"systolic.cols": "systolic.rows"}},
            "objectives": ["latency", "energy"], "constraints": ["power_mw <= 500"]}
    spec.update(changes)
    return spec


def test_grid_count_and_order(tmp_path):
    spec = load_spec(make(tmp_path))
    # 2 models x (1 dense + 2 prune variants) x 3 rows x 3 buffer sizes
    assert space_size(spec) == 2 * 3 * 9
    points = list(make_sampler(spec).points())
    assert len(points) == 54 and len({p for p in points}) == 54
    first = points[0].params()
    assert first == {"model": "m1", "recipe": "dense", "hw.systolic.rows": 8, "hw.memory.GLB.size_bytes": 1024}
    assert [p.params()["hw.memory.GLB.size_bytes"] for p in points[:3]] == [1024, 2048, 4096]  # log grid
    assert points[9].params()["recipe.sparsity"] == 0.5


def test_yaml_file_and_aliases(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make(tmp_path, objectives=["latency", "fidelity", {"metric": "area"}])))
    spec = load_spec(path)
    assert [(o.metric, o.sense) for o in spec.objectives] == [("latency_s", "min"), ("top1_agreement", "max"),
                                                             ("area_mm2", "min")]
    assert spec.constraints[0].metric == "power_mw" and spec.constraints[0].value == 500.0
    assert spec.needs_fidelity


@pytest.mark.parametrize("changes, match", [
    ({"arch": {"base": "X", "params": {}}}, r"unknown architecture 'X'"),
    ({"arch": {"base": "@", "params": {"systolic.rowz": [8]}}}, r"arch\.params\.systolic\.rowz: .*unknown key 'rowz'"),
    ({"arch": {"base": "@", "params": {"memory.L2.size_bytes": [8]}}}, r"no memory level 'L2'"),
    ({"arch": {"base": "@", "params": {"systolic.rows": [16, 0]}}}, r"arch\.params\.systolic\.rows: .*rows"),
    ({"arch": {"base": "@", "params": {"systolic.rows": {"low": 4, "high": 64}}}}, r"grid needs 'step' or 'num'"),
    ({"arch": {"base": "@", "fixed": {"clock_hz": -1}}}, r"arch\.fixed\.clock_hz"),
    ({"objectives": ["speed"]}, r"objectives: .*unknown metric 'speed'"),
    ({"objectives": ["latency", "energy", "area", "power"]}, r"objectives: give 1 to 3"),
    ({"mapper": {"kind": "magic"}}, r"mapper\.kind"),
    ({"constraints": ["power_mw =< 5"]}, r"constraint looks like"),
    ({"recipes": {"p": {"template": {"steps": [{"method": "x", "s": "${s}"}]}}}}, r"recipes\.p: placeholder"),
    ({"recipes": {"p": {"template": [{"method": "x"}], "params": {"s": [1]}}}}, r"not used by the template"),
    ({"recipes": {"p": "no_such_recipe_file"}}, r"recipes\.p: recipe 'no_such_recipe_file'"),
    ({"sampler": {"kind": "lhs"}}, r"sampler\.n: .*needs n"),
    ({"sampler": {"kind": "annealing"}}, r"sampler\.kind"),
    ({"modles": ["m"]}, r"modles: unknown key"),
])
def test_invalid_specs_fail_before_running(tmp_path, changes, match):
    spec = make(tmp_path)
    if "arch" in changes and changes["arch"]["base"] == "@":
        changes["arch"]["base"] = spec["arch"]["base"]
    spec.update(changes)
    with pytest.raises(ConfigError, match=match):
        load_spec(spec)


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="sweep spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_substitute_keeps_types():
    template = {"steps": [{"sparsity": "${s}", "name": "p${s}", "bits": ["${b}", 8]}]}
    assert substitute(template, {"s": 0.5, "b": 4}) == {"steps": [{"sparsity": 0.5, "name": "p0.5", "bits": [4, 8]}]}


def test_range_grid_and_unit_mapping():
    assert Range(low=16, high=64, step=16, int=True).grid() == [16, 32, 48, 64]
    assert Range(low=1, high=100, num=3, log=True).grid() == pytest.approx([1, 10, 100])
    assert Range(low=1, high=100, log=True).from_unit(0.5) == pytest.approx(10.0)
    assert Range(low=8, high=64, int=True).from_unit(0.999999) == 64


@pytest.mark.parametrize("kind", ["random", "lhs"])
def test_unit_cube_samplers_are_seeded_and_in_bounds(tmp_path, kind):
    raw = make(tmp_path, sampler={"kind": kind, "n": 40, "seed": 3})
    raw["arch"]["params"]["memory.GLB.size_bytes"] = {"low": 1024, "high": 65536, "int": True}
    spec = load_spec(raw)
    a, b = list(make_sampler(spec).points()), list(make_sampler(spec).points())
    assert a == b and len(a) == 40
    sizes = [p.params()["hw.memory.GLB.size_bytes"] for p in a]
    assert min(sizes) >= 1024 and max(sizes) <= 65536
    assert {p.params()["hw.systolic.rows"] for p in a} == {8, 16, 32}


def test_lhs_stratifies_every_dimension(tmp_path):
    raw = make(tmp_path, sampler={"kind": "lhs", "n": 20, "seed": 1})
    raw["arch"] = {"base": raw["arch"]["base"], "params": {"clock_hz": {"low": 1e8, "high": 2e8}}}
    spec = load_spec(raw)
    sampler = make_sampler(spec)
    assert isinstance(sampler, UnitCubeSampler)
    clocks = np.array([p.params()["hw.clock_hz"] for p in sampler.points()])
    strata = np.floor((clocks - 1e8) / 1e8 * 20).astype(int)
    assert sorted(strata.tolist()) == list(range(20))       # one sample per stratum


def test_nsga2_asks_n_points(tmp_path):
    spec = load_spec(make(tmp_path, sampler={"kind": "nsga2", "n": 5, "population": 4}))
    items = take(make_sampler(spec).points(), 10)
    assert [item is BARRIER for item in items] == [False] * 4 + [True] + [False] + [True]   # generations 4 + 1
    assert [p.tag for p in items if p is not BARRIER] == [0, 1, 2, 3, 4]


def test_python_spec_objects_are_checked_too(tmp_path):
    from hwsim.dse.spec import ArchSweep, SweepSpec

    spec = SweepSpec(models=("m",), arch=ArchSweep(base=str(write_tiny_arch(tmp_path)), params={"systolic.rowz": [4]}))
    with pytest.raises(ConfigError, match="systolic.rowz"):
        load_spec(spec)
