"""Mapper constraints (hwsim.mappers.constraints): every kind is obeyed by SearchMapper and changes its result
where the unconstrained optimum breaks it; dict / YAML / Timeloop spellings agree; bad sets are one-line errors."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
from hwsim.mappers import SearchMapper
from hwsim.mappers._evaluator import Evaluator
from hwsim.mappers.constraints import (ConstraintSet, Resolved, from_timeloop, load_constraints,
                                       parse_constraints)
from hwsim.models import spatial
from hwsim.models.arch import load_arch
from hwsim.models.energy import price
from hwsim.models.spatial.nest import problem_from_layer

# simba_like: DRAM -> GlobalBuffer (keeps I O) -> 4 x 4 PEs -> PEBuffer (W I O) -> 8 x 8 vector MACs
CONV = Layer("conv", Op.CONV, K=32, C=16, P=14, Q=14, R=3, S=3, padding=1)
MAPPER = SearchMapper(objective="energy", max_candidates=150)


@pytest.fixture(scope="module")
def simba():
    return load_arch("simba_like")


@pytest.fixture(scope="module")
def free(simba):
    """The unconstrained search result every constrained one is compared with."""
    return MAPPER.search(CONV, simba)


def _temporal(mapping, level, dim):
    return mapping.level(level).factor(dim, spatial=False)


def _unrolled(mapping, axis, level=None):
    """{dim: product} of the spatial loops on ``axis`` ('x'/'y'), of one level or the whole array."""
    out: dict[str, int] = {}
    for lvl in mapping.levels:
        if level in (None, lvl.level):
            for d, f in getattr(lvl, f"spatial_{axis}"):
                out[d] = out.get(d, 1) * f
    return {d: f for d, f in out.items() if f > 1}


def _inner_loops(mapping, level):
    """The level's temporal loops (bound > 1), innermost first."""
    return [d for d, b in reversed(mapping.level(level).temporal) if b > 1]


# (constraint, what the returned mapping must show -- checked here independently of the library's checker)
KINDS = {
    "keep": ({"levels": {"GlobalBuffer": {"keep": ["O"]}}},
             lambda m: "O" in m.level("GlobalBuffer").keep),
    "bypass": ({"levels": {"PEBuffer": {"bypass": ["I"]}}},
               lambda m: "I" not in m.level("PEBuffer").keep),
    "temporal factor": ({"levels": {"PEBuffer": {"factors": {"K": 4}}}},
                        lambda m: _temporal(m, "PEBuffer", "K") == 4),
    "residual factor (=0)": ({"levels": {"DRAM": {"factors": {"C": 2}}, "GlobalBuffer": {"factors": {"C": 0}}}},
                             lambda m: _temporal(m, "DRAM", "C") == 2 and _temporal(m, "PEBuffer", "C") == 1
                             and m.dim_product("C") >= 16),
    "partial permutation": ({"levels": {"PEBuffer": {"permutation": "PQ"}}},
                            lambda m: _inner_loops(m, "PEBuffer")[:2] == ["P", "Q"]),
    "full order": ({"levels": {"PEBuffer": {"order": "I"}}},         # input stationary: N G C P Q R S K
                   lambda m: _inner_loops(m, "PEBuffer")[::-1] == [d for d in "NGCPQRSK"
                                                                  if d in _inner_loops(m, "PEBuffer")]),
    "spatial dims": ({"spatial": {"x": ["P"], "y": ["C"]}},
                     lambda m: set(_unrolled(m, "x")) <= {"P"} and set(_unrolled(m, "y")) <= {"C"}),
    "spatial exact (array)": ({"spatial": {"x": {"K": 4}}},
                              lambda m: _unrolled(m, "x") == {"K": 4}),
    "spatial exact (level)": ({"levels": {"GlobalBuffer": {"spatial": {"x": {"K": 2}, "y": {"C": 4}}}}},
                              lambda m: _unrolled(m, "x", "GlobalBuffer") == {"K": 2}
                              and _unrolled(m, "y", "GlobalBuffer") == {"C": 4}),
    "spatial factors (axis-free)": ({"levels": {"PEBuffer": {"spatial": {"factors": {"K": 4, "C": 8}}}}},
                                    lambda m: math.prod(f for d, f in m.level("PEBuffer").spatial if d == "K") == 4
                                    and math.prod(f for d, f in m.level("PEBuffer").spatial if d == "C") == 8),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_constraint_kind_changes_the_result_and_is_obeyed(kind, simba, free):
    raw, obeys = KINDS[kind]
    resolved = Resolved(parse_constraints(raw), simba, problem_from_layer(CONV, simba))
    assert resolved.violations(free.mapping), "the unconstrained optimum must break the constraint"
    assert not obeys(free.mapping)
    result = MAPPER.with_params(constraints=raw).search(CONV, simba)
    assert obeys(result.mapping), result.mapping
    assert resolved.violations(result.mapping) == []
    assert (result.energy_pj, result.cycles) != (free.energy_pj, free.cycles)
    assert result.mapping.bounds()["K"] >= CONV.K and result.macs == CONV.macs
    counts = spatial.evaluate(CONV, simba, result.mapping)           # the figures are the engine's own
    assert result.energy_pj == pytest.approx(price(counts, simba).total_pj, rel=1e-9)
    assert result.cycles == counts.cycles


COMBINED = {"levels": {"PEBuffer": {"keep": ["W", "O"], "bypass": ["I"], "factors": {"K": 2, "P": 0},
                                    "permutation": "PQ"},
                       "GlobalBuffer": {"spatial": {"x": ["K"], "y": ["C"], "factors": {"K": 2, "C": 4}}}}}


def _obeys_combined(m) -> bool:
    pe, glb = m.level("PEBuffer"), m.level("GlobalBuffer")
    inner = _inner_loops(m, "PEBuffer")
    fixed = [d for d in ("P", "Q") if d in inner]            # permutation PQ: P innermost, then Q
    return (set(pe.keep) == {"W", "O"} and _temporal(m, "PEBuffer", "K") == 2 and inner[:len(fixed)] == fixed
            and dict(glb.spatial_x) == {"K": 2} and dict(glb.spatial_y) == {"C": 4})


def test_no_candidate_that_breaks_a_constraint_is_ever_evaluated(simba, monkeypatch):
    seen = []
    original = Evaluator.score
    def recording(self, plan, arrays=None):
        seen.append(plan)
        return original(self, plan, arrays)
    monkeypatch.setattr(Evaluator, "score", recording)
    result = SearchMapper(objective="edp", max_candidates=120, seed=5, constraints=COMBINED).search(CONV, simba)
    assert len(seen) == result.evaluated > 20
    resolved = Resolved(parse_constraints(COMBINED), simba, problem_from_layer(CONV, simba))
    for plan in seen:
        mapping = plan.to_mapping(simba)
        assert _obeys_combined(mapping), mapping
        assert resolved.violations(mapping) == []
    assert _obeys_combined(result.mapping)


def test_the_issue_case_keep_at_an_eyeriss_register_file_is_obeyed():
    """Issue 17: SearchMapper(constraints={"levels": {"rf_16B": {"keep": ["O"]}}}) on ZigZag's eyeriss_like
    returned the unconstrained mapping (the hill climb toggled the keep off again)."""
    if importlib.util.find_spec("zigzag") is None:
        pytest.skip("zigzag-dse (the [peers] extra) provides eyeriss_like.yaml")
    from hwsim.interop.zigzag import load_zigzag_accelerator
    inputs = Path(importlib.util.find_spec("zigzag").origin).parent / "inputs"
    arch = load_zigzag_accelerator(inputs / "hardware/eyeriss_like.yaml", mapping=inputs / "mapping/default.yaml")
    layer = Layer("c", Op.CONV, K=64, C=64, P=14, Q=14, R=3, S=3, padding=1)
    free = SearchMapper(objective="energy", max_candidates=150).search(layer, arch)
    kept = SearchMapper(objective="energy", max_candidates=150,
                        constraints={"levels": {"rf_16B": {"keep": ["O"]}}}).search(layer, arch)
    assert "O" not in free.mapping.level("rf_16B").keep
    assert "O" in kept.mapping.level("rf_16B").keep
    assert kept.energy_pj != free.energy_pj


# ----- spellings ----------------------------------------------------------------------------------
HWSIM_YAML = """
levels:
  PEBuffer:
    keep: [W, O]
    bypass: [I]
    factors: {K: 2, P: 0}
    permutation: PQ
  GlobalBuffer:
    spatial: {x: [K], y: [C], factors: {K: 2, C: 4}}
"""
TIMELOOP_V03 = """
mapspace:
  constraints:
  - {target: PEBuffer, type: bypass, keep: [Weights, Outputs], bypass: [Inputs]}
  - {target: PEBuffer, type: temporal, factors: K=2 P=0, permutation: PQ}
  - {target: GlobalBuffer, type: spatial, factors: K=2 C=4, permutation: KC, split: 1}
"""
TIMELOOP_V04 = """
mapspace_constraints:
  targets:
  - {target: PEBuffer, type: dataspace, keep: [Weights, Outputs], bypass: [Inputs]}
  - {target: PEBuffer, type: temporal, factors: [K=2, P=0], permutation: [P, Q]}
  - {target: GlobalBuffer, type: spatial, factors: [K=2, C=4], permutation: [K, C], split: 1}
"""


def test_dict_yaml_and_timeloop_spellings_are_one_constraint_set(tmp_path, simba):
    import yaml
    files = {}
    for name, text in (("hwsim.yaml", HWSIM_YAML), ("v03.yaml", TIMELOOP_V03), ("v04.yaml", TIMELOOP_V04)):
        files[name] = tmp_path / name
        files[name].write_text(text)
    expected = parse_constraints(COMBINED)
    assert load_constraints(files["hwsim.yaml"]) == expected
    assert load_constraints(files["v03.yaml"]) == expected
    assert load_constraints(files["v04.yaml"]) == expected
    assert from_timeloop(yaml.safe_load(TIMELOOP_V04)) == expected
    assert parse_constraints(expected.to_dict()) == expected              # canonical dict round-trips
    mappers = [SearchMapper(constraints=COMBINED), SearchMapper(constraints=str(files["v03.yaml"])),
               SearchMapper(constraints=files["v04.yaml"]), SearchMapper(constraints=expected)]
    assert len({m.constraints for m in mappers}) == 1 and len(set(mappers)) == 1   # one cache key
    result = MAPPER.with_params(constraints=files["v03.yaml"]).search(CONV, simba)
    assert _obeys_combined(result.mapping)


def test_stationarity_order_and_partial_order_lists_mean_innermost_loops():
    assert parse_constraints({"levels": {"L": {"order": ["C", "R", "S"]}}}) == \
        parse_constraints({"levels": {"L": {"permutation": "SRC"}}})
    assert parse_constraints({"levels": {"L": {"order": "W"}}}).level("L").permutation[:3] == ("Q", "P", "N")
    assert parse_constraints({"levels": {"L": {"factors": {"M": 4}}}}).level("L").factors == (("K", 4),)
    assert parse_constraints({}) == ConstraintSet() and SearchMapper(constraints={}).constraints is None


# ----- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, match", [
    ({"levels": {"L9": {"keep": ["W"]}}}, r"unknown level\(s\) \['L9'\] on simba_like"),
    ({"levels": {"PEBuffer": {"factors": {"Z": 2}}}}, r"levels.PEBuffer.factors: unknown dim 'Z'"),
    ({"levels": {"PEBuffer": {"factors": {"K": 5}}}}, r"'PEBuffer' temporal factor K=5 does not divide the layer's K = 32"),
    ({"levels": {"DRAM": {"factors": {"K": 64}}}}, r"'DRAM' temporal factor K=64 exceeds the layer's K = 32"),
    ({"levels": {"DRAM": {"factors": {"K": 16}}, "PEBuffer": {"factors": {"K": 4}}}}, r"multiply to 64, which exceeds"),
    ({"levels": {"GlobalBuffer": {"keep": ["W"]}}}, r"level 'GlobalBuffer' cannot keep \['W'\]"),
    ({"levels": {"PEBuffer": {"keep": ["W"], "bypass": ["Weights"]}}}, r"PEBuffer: tensor\(s\) \['W'\] are both kept and bypassed"),
    ({"levels": {"DRAM": {"bypass": ["I"]}}}, r"'DRAM' is the outermost level"),
    ({"levels": {"PEBuffer": {"keep": ["X"]}}}, r"PEBuffer.keep: unknown tensor 'X'"),
    ({"levels": {"PEBuffer": {"order": "W", "permutation": "PQ"}}}, r"give order .* or permutation .*, not both"),
    ({"levels": {"PEBuffer": {"permutation": "PQP"}}}, r"a dim appears twice"),
    ({"levels": {"PEBuffer": {"factors": {"C": 0}}, "DRAM": {"factors": {"C": 0}}}}, r"residual \(=0\) factor at two levels"),
    ({"levels": {"GlobalBuffer": {"spatial": {"x": {"K": 8}}}}}, r"'GlobalBuffer' spatial.x unrolls 8 but its fan-out has 4"),
    ({"levels": {"PEBuffer": {"tile": 3}}}, r"unknown key\(s\) \['tile'\]"),
    ({"spatial": {"z": ["K"]}}, r"spatial: unknown key\(s\) \['z'\]"),
    ({"levels": {"PEBuffer": {"factors": "K=2 garbage"}}}, r"cannot parse factors"),
])
def test_malformed_or_impossible_constraints_are_one_sentence_config_errors(raw, match, simba):
    with pytest.raises(ConfigError, match=match) as err:
        MAPPER.with_params(constraints=raw).search(CONV, simba)
    assert "\n" not in str(err.value)


def test_a_set_no_mapping_satisfies_says_so():
    arch = load_arch("nvdla_small")                  # MACReg holds one weight: three R taps cannot fit
    with pytest.raises(ConfigError, match=r"no mapping of layer 'conv' on nvdla_small satisfies them"):
        SearchMapper(constraints={"levels": {"MACReg": {"keep": ["W"], "factors": {"R": 3}}}}).search(CONV, arch)


@pytest.mark.parametrize("text, match", [
    ("mapspace:\n  constraints:\n  - {target: GLB, type: utilization, min: 0.5}", r"'utilization' is not supported"),
    ("mapspace:\n  constraints:\n  - {type: temporal, factors: K=2}", r"needs a 'target' level and a 'type'"),
    ("mapspace:\n  constraints:\n  - {target: GLB, type: temporal, factors: K=2, max_factors: 3}", r"\['max_factors'\] are not supported"),
])
def test_unsupported_timeloop_constraints_are_refused_not_ignored(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_constraints(path)


def test_cli_constraints_option_steers_hwsim_map(tiny_graph_path, tmp_path):
    from conftest import run_cli
    from hwsim.mappers import Mapping
    (tmp_path / "c.yaml").write_text("levels:\n  PEBuffer:\n    bypass: [I]\n    factors: {P: 4}\n")
    runs = {}
    for name, extra in (("free", ()), ("constrained", ("--constraints", str(tmp_path / "c.yaml")))):
        proc = run_cli("map", str(tiny_graph_path), "--arch", "simba_like", "--layer", "conv", "--mapper", "search",
                       "--save", str(tmp_path / f"{name}.yaml"), *extra)
        assert proc.returncode == 0, proc.stderr
        runs[name] = Mapping.load(tmp_path / f"{name}.yaml")
    pe = runs["constrained"].level("PEBuffer")
    assert "I" not in pe.keep and pe.factor("P", spatial=False) == 4
    assert runs["free"].level("PEBuffer").factor("P", spatial=False) != 4
    proc = run_cli("simulate", str(tiny_graph_path), "--arch", "simba_like", "--constraints", str(tmp_path / "c.yaml"))
    assert proc.returncode == 2 and "add --mapper search" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_axis_free_spatial_factors_may_use_dims_the_preset_does_not_list(simba):
    """Timeloop's spatial factors without a permutation say nothing about axes: P=4 below the global buffer
    is honoured although simba_like's preset unrolls only K (x) and C (y)."""
    raw = {"levels": {"GlobalBuffer": {"spatial": {"factors": {"P": 2}}}}}
    result = MAPPER.with_params(constraints=raw).search(CONV, simba)
    assert math.prod(f for d, f in result.mapping.level("GlobalBuffer").spatial if d == "P") == 2


def test_constraints_on_a_fixed_dataflow_engine_are_an_error_not_ignored():
    with pytest.raises(ConfigError, match="uses the systolic engine's fixed dataflow"):
        SearchMapper(constraints={"spatial": {"x": ["K"]}}).map(CONV, load_arch("edge_tpu_like"))
