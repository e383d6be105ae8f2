"""SearchMapper: determinism, memoization, objectives, constraints, and agreement with engine + price()."""

from __future__ import annotations

import pytest

from hwsim.errors import ConfigError
from hwsim.ir import Layer, Op
from hwsim.mappers import SearchMapper
from hwsim.mappers._evaluator import Evaluator
from hwsim.mappers.search import clear_cache
from hwsim.models import spatial
from hwsim.models.arch import load_arch
from hwsim.models.energy import price
from hwsim.models.spatial.default import greedy_plan, spatial_candidates
from hwsim.models.spatial.nest import problem_from_layer

CONV = Layer("conv", Op.CONV, K=32, C=16, P=14, Q=14, R=3, S=3, padding=1)
DW = Layer("dw", Op.DEPTHWISE, K=64, C=64, G=64, P=14, Q=14, R=3, S=3, padding=1)
SMALL = dict(max_candidates=120)


@pytest.mark.parametrize("preset", ["eyeriss", "simba_like", "nvdla_small"])
def test_search_energy_matches_engine_and_price(preset):
    arch = load_arch(preset)
    result = SearchMapper(objective="energy", **SMALL).search(CONV, arch)
    counts = spatial.evaluate(CONV, arch, result.mapping)
    assert result.energy_pj == pytest.approx(price(counts, arch).total_pj, rel=1e-9)
    assert result.cycles == counts.cycles


def _greedy_plans(arch):
    """The evaluator of CONV on ``arch`` and greedy plans over 3 spatial choices x 3 loop orders."""
    problem = problem_from_layer(CONV, arch)
    plans = [greedy_plan(problem, arch, spatial_choice, order=order)
             for _, spatial_choice in spatial_candidates(problem, arch, limit=3) for order in ("W", "O", "I")]
    return Evaluator(problem, arch), plans


@pytest.mark.parametrize("preset", ["eyeriss", "simba_like", "shidiannao_like", "nvdla_full"])
def test_fast_evaluator_equals_price_of_engine_counts(preset):
    arch = load_arch(preset)
    evaluator, plans = _greedy_plans(arch)
    for plan in plans:
        energy, cycles = evaluator.score(plan)
        counts = spatial.evaluate(CONV, arch, plan.to_mapping(arch))
        assert cycles == counts.cycles
        assert energy == pytest.approx(price(counts, arch).total_pj, rel=1e-9)


def test_search_is_never_worse_than_the_default_mapping():
    arch = load_arch("simba_like")
    default = spatial.evaluate(CONV, arch, spatial.default_mapping(CONV, arch))
    best = SearchMapper(objective="energy", **SMALL).search(CONV, arch)
    assert best.energy_pj <= price(default, arch).total_pj * (1 + 1e-9)
    fast = SearchMapper(objective="latency", **SMALL).search(CONV, arch)
    assert fast.cycles <= best.cycles


def test_deterministic_for_a_seed_and_memoized():
    arch = load_arch("eyeriss")
    clear_cache()
    first = SearchMapper(seed=3, **SMALL).search(CONV, arch)
    clear_cache()
    second = SearchMapper(seed=3, **SMALL).search(CONV, arch)
    assert first.mapping == second.mapping and first.energy_pj == second.energy_pj
    renamed = CONV.with_changes(name="other_layer_same_shape")
    assert SearchMapper(seed=3, **SMALL).search(renamed, arch) is second   # cache hit by shape


def test_with_params_and_bad_params():
    mapper = SearchMapper().with_params(objective="latency", seed=7)
    assert mapper.objective == "latency" and mapper.seed == 7
    with pytest.raises(ValueError, match="unknown SearchMapper parameter"):
        mapper.with_params(budget=3)
    with pytest.raises(ConfigError, match="objective must be"):
        SearchMapper(objective="speed")


def test_weighted_objective_runs():
    arch = load_arch("nvdla_small")
    result = SearchMapper(objective="weighted", weights=(1.0, 0.5), **SMALL).search(CONV, arch)
    assert result.energy_pj > 0 and result.cycles >= CONV.macs / arch.compute.units


def test_depthwise_is_unrolled_over_groups():
    arch = load_arch("simba_like")
    result = SearchMapper(objective="latency", **SMALL).search(DW, arch)
    unrolled = {dim for lvl in result.mapping.levels for dim, bound in lvl.spatial if bound > 1}
    assert "G" in unrolled
    # X axes (4 PEs x 8 vector MACs) take the 64 groups; the Y axes reduce C, which depthwise lacks
    assert result.cycles <= DW.macs // 32


def test_user_constraints_are_respected():
    arch = load_arch("eyeriss")
    constraints = {"levels": {"GLB": {"order": "O", "factors": {"K": 2}}}, "spatial": {"x": ["P"], "y": ["R"]}}
    mapping = SearchMapper(constraints=constraints, **SMALL).map(CONV, arch)
    glb = mapping.level("GLB")
    assert glb.factor("K", spatial=False) == 2
    assert {d for d, b in mapping.level("GLB").spatial if b > 1} <= {"P", "R"}


def test_unknown_constraint_level_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown level"):
        SearchMapper(constraints={"levels": {"L9": {"order": "W"}}}, **SMALL).map(CONV, load_arch("eyeriss"))


def test_padding_helps_prime_dims():
    arch = load_arch("nvdla_small")             # 8 x 8 MACs over K x C
    layer = Layer("prime", Op.CONV, K=7, C=13, P=7, Q=7, R=1, S=1)
    padded = SearchMapper(objective="latency", **SMALL).search(layer, arch)
    exact = SearchMapper(objective="latency", allow_padding=False, **SMALL).search(layer, arch)
    assert padded.cycles < exact.cycles
    assert padded.padded_macs > layer.macs == padded.macs


@pytest.mark.parametrize("preset", ["eyeriss", "simba_like"])
def test_plan_loop_arrays_equal_the_engine_flattening(preset):
    from hwsim.models.spatial.nest import flatten
    arch = load_arch(preset)
    evaluator, plans = _greedy_plans(arch)
    for plan in plans:
        dims, bounds, levels, is_spatial, keep = evaluator.arrays(plan)
        nest = flatten(plan.to_mapping(arch))
        assert dims.tolist() == nest.loop_dim.tolist() and bounds.tolist() == nest.loop_bound.tolist()
        assert levels.tolist() == nest.loop_level.tolist()
        assert is_spatial.tolist() == nest.loop_spatial.tolist() and (keep == nest.keep).all()


def test_search_mapper_keeps_the_fixed_dataflow_on_other_engines():
    arch = load_arch("tpu_v1_like")
    layer = Layer("c", Op.CONV, K=16, C=8, P=8, Q=8, R=3, S=3)
    from hwsim.models import get_engine
    assert SearchMapper().map(layer, arch) == get_engine(arch.engine).default_mapping(layer, arch)
