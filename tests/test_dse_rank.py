"""Ranking compression recipes on one architecture (compresses a real zoo model: imports torch)."""

from __future__ import annotations

import pytest

from hwsim.dse.rank import rank_recipes
from tests.conftest import run_cli

pytest.importorskip("torch")


def test_rank_recipes_on_digits_cnn(tmp_path):
    recipes = ["nm_2_4", "int4_weights", str(tmp_path / "missing.yaml")]
    rows = rank_recipes("digits_cnn", "sparse_tc_2_4", recipes, fidelity_batch=8)
    by_name = {row["recipe"]: row for row in rows}
    assert set(by_name) == {"dense", "nm_2_4", "int4_weights", "missing"}
    assert by_name["missing"]["status"] == "error" and "no such file" in by_name["missing"]["error"]
    dense = by_name["dense"]
    assert dense["top1_agreement"] == 1.0 and dense["kl"] == 0.0       # the baseline against itself
    # random zoo weights: every row says its fidelity is agreement, not accuracy
    assert {row["fidelity_basis"] for row in rows if row["status"] == "ok"} == {
        "agreement with the uncompressed model (untrained weights)"}
    ok = [row for row in rows if row["status"] == "ok"]
    assert rows[: len(ok)] == ok                                       # failures last
    for metric in ("latency_s", "energy_pj", "power_mw", "top1_agreement"):
        assert sorted(row[f"rank_{metric}"] for row in ok) == list(range(1, len(ok) + 1))
    assert any(row["pareto"] for row in ok)
    # 2:4 sparsity halves the effectual MACs a 2:4 sparse tensor core executes
    if by_name["nm_2_4"]["status"] == "ok":
        assert by_name["nm_2_4"]["latency_s"] <= dense["latency_s"]


@pytest.mark.slow
def test_rank_cli_accepts_space_separated_recipes(tmp_path):
    run = run_cli("rank", "digits_cnn", "--arch", "edge_tpu_like", "--recipes", "int8", "nope_recipe", "--json")
    assert run.returncode == 0, run.stderr
    assert '"recipe": "int8"' in run.stdout and '"recipe": "nope_recipe"' in run.stdout
    assert '"fidelity_basis": "agreement with the uncompressed model (untrained weights)"' in run.stdout
