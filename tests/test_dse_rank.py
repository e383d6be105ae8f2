"""Ranking compression recipes on one architecture (compresses a real zoo model: imports torch)."""

from __future__ import annotations

import json

import pytest

from hwsim.dse.rank import rank_recipes
from tests.conftest import run_cli

pytest.importorskip("torch")


def test_rank_recipes_on_digits_cnn(tmp_path):
    recipes = ["nm_2_4", "int4_weights", str(tmp_path / "missing.yaml")]
    calls = []
    rows = rank_recipes("digits_cnn", "sparse_tc_2_4", recipes, fidelity_batch=8,
                        progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (3, 3) and [done for done, _ in calls] == sorted(done for done, _ in calls)  # dense + 2
    by_name = {row["recipe"]: row for row in rows}
    assert set(by_name) == {"dense", "nm_2_4", "int4_weights", "missing"}
    assert by_name["missing"]["status"] == "error" and "no such file" in by_name["missing"]["error"]
    dense = by_name["dense"]
    assert dense["top1_agreement"] == 1.0 and dense["kl"] == 0.0       # the baseline against itself
    # digits_cnn is trained on shipped data: rows rank by real held-out accuracy and say so
    from hwsim.data import trained_digits_cnn

    assert {row["fidelity_basis"] for row in rows if row["status"] == "ok"} == {
        "top-1 accuracy on held-out digits (hwsim-trained weights, no fine-tuning after compression)"}
    assert dense["top1_accuracy"] == pytest.approx(trained_digits_cnn(0)[1]) and dense["top1_accuracy"] > 0.95
    assert all(0.0 <= row["top1_accuracy"] <= 1.0 for row in rows if row["status"] == "ok")
    ok = [row for row in rows if row["status"] == "ok"]
    assert rows[: len(ok)] == ok                                       # failures last
    for metric, sign in (("latency_s", 1), ("energy_pj", 1), ("power_mw", 1), ("top1_accuracy", -1)):
        for row in ok:     # competition ranking: 1 + the rows strictly better (ties share a rank)
            assert row[f"rank_{metric}"] == 1 + sum(sign * other[metric] < sign * row[metric] for other in ok)
    assert any(row["pareto"] for row in ok)
    # 2:4 sparsity halves the effectual MACs a 2:4 sparse tensor core executes
    if by_name["nm_2_4"]["status"] == "ok":
        assert by_name["nm_2_4"]["latency_s"] <= dense["latency_s"]


def test_ties_share_a_rank_and_no_effect_recipes_are_named():
    from hwsim.dse.rank import _table, no_effect_recipes

    def record(name, lat, energy, agree):
        return {"recipe": name, "status": "ok", "objectives": {"latency_s": lat, "energy_pj": energy,
                                                                "power_mw": energy / lat * 1e-9,
                                                                "top1_agreement": agree}}
    rows = _table([record("dense", 2.0, 10.0, 1.0), record("int8", 2.0, 10.0, 0.9), record("prune", 1.0, 8.0, 0.8),
                   {"recipe": "bad", "status": "error", "error": "boom", "objectives": {}}])
    by_name = {row["recipe"]: row for row in rows}
    assert [by_name[n]["rank_latency_s"] for n in ("prune", "dense", "int8")] == [1, 2, 2]
    assert [by_name[n]["rank_top1_agreement"] for n in ("dense", "int8", "prune")] == [1, 2, 3]
    assert no_effect_recipes(rows) == ["int8"]
    assert rows[-1]["recipe"] == "bad" and rows[0]["recipe"] == "dense"     # mean rank (2+2+1+1)/4 = 1.5 first


@pytest.mark.slow
def test_rank_cli_accepts_space_separated_recipes(tmp_path):
    run = run_cli("rank", "digits_cnn", "--arch", "edge_tpu_like", "--recipes", "int8", "nope_recipe", "--json")
    assert run.returncode == 0, run.stderr
    assert '"recipe": "int8"' in run.stdout and '"recipe": "nope_recipe"' in run.stdout
    assert '"fidelity_basis": "top-1 accuracy on held-out digits' in run.stdout
    rows = {row["recipe"]: row for row in json.loads(run.stdout)}
    # edge_tpu_like is natively int8: int8 ties dense on every hardware metric and is flagged as no effect
    assert rows["int8"]["hardware_effect"] is False and rows["dense"]["hardware_effect"] is True
    assert rows["int8"]["rank_latency_s"] == rows["dense"]["rank_latency_s"] == 1
    assert rows["int8"]["fidelity_metric"] == "top1_accuracy" and rows["int8"]["top1_accuracy"] > 0.9


def test_untrainable_models_rank_by_agreement_and_say_so():
    from hwsim.dse.rank import FIDELITY_BASIS, TRAINED_AGREEMENT_BASIS, _table, fidelity_basis

    rows = _table([{"recipe": "dense", "status": "ok", "objectives": {"latency_s": 1.0, "energy_pj": 1.0,
                                                                      "power_mw": 1.0, "top1_agreement": 1.0}}])
    assert rows[0]["fidelity_metric"] == "top1_agreement"
    assert fidelity_basis("resnet18", metric="top1_agreement") == FIDELITY_BASIS
    # trained weights without labelled data: still agreement, but not "untrained"
    assert fidelity_basis("resnet18", metric="top1_agreement", weights="w.pt") == TRAINED_AGREEMENT_BASIS
    assert fidelity_basis("mine.pt", metric="top1_accuracy", data="imgs", finetune_epochs=2) == (
        "top-1 accuracy on held-out imgs (your weights, after 2 fine-tuning epochs per compressed model "
        "(Han et al. retraining))")


def test_rank_table_fits_80_columns_in_simulate_units():
    """Headers stay whole at 80 columns; metrics print in ms / µJ / mW / % like ``hwsim simulate``."""
    from rich.console import Console

    from hwsim.cli.dse import _rank_table

    rows = [{"status": "ok", "recipe": "magnitude_prune_unstructured_0.5", "latency_s": 4.998e-6,
             "energy_pj": 3.427e6, "power_mw": 685.6, "top1_agreement": 0.875, "rank_latency_s": 1,
             "rank_energy_pj": 2, "rank_power_mw": 1, "rank_top1_agreement": 3, "pareto": True},
            {"status": "error", "recipe": "nope", "error": "unknown recipe"}]
    console = Console(width=80, record=True, color_system=None)
    console.print(_rank_table(rows, "digits_cnn on edge_tpu_like"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for header in ("latency ms", "energy µJ", "power mW", "agree %", "ranks", "ranks: latency / energy / power / agreement"):
        assert header in text
    assert "0.004998" in text and "3.427" in text and "685.6" in text and "87.5" in text and "1/2/1/3" in text
    assert "nope" not in text


def test_finetune_epochs_retrain_each_compressed_model_and_say_so():
    rows = rank_recipes("digits_cnn", "scnn", ["unstructured_global_80"], fidelity_batch=8, finetune_epochs=1)
    by_name = {row["recipe"]: row for row in rows}
    pruned = by_name["unstructured_global_80"]
    assert pruned["status"] == "ok" and pruned["top1_accuracy_before_finetune"] is not None
    assert by_name["dense"]["top1_accuracy_before_finetune"] is None      # nothing to retrain
    # one epoch of masked retraining recovers accuracy lost to 80 % global pruning (Han et al.)
    assert pruned["top1_accuracy"] > pruned["top1_accuracy_before_finetune"]
    assert "after 1 fine-tuning epoch per compressed model" in pruned["fidelity_basis"]


def test_sweep_keys_without_data_are_unchanged_and_weights_enter_them(tmp_path):
    from hwsim.dse.runner import TaskBuilder
    from hwsim.dse.spec import load_spec

    base = {"models": ["digits_cnn"], "arch": {"base": "eyeriss"}, "objectives": ["latency", "fidelity"]}
    plain = TaskBuilder(load_spec(base))
    assert plain.fidelity == {"enabled": True, "batch": 32, "seed": 0}    # the keys stored sweeps were made with
    (tmp_path / "w.pt").write_bytes(b"weights")
    spec = load_spec({**base, "weights": {"digits_cnn": str(tmp_path / "w.pt")},
                      "fidelity": {"data": "digits", "finetune_epochs": 2}})
    assert TaskBuilder(spec).fidelity == {"enabled": True, "batch": 32, "seed": 0, "data": "digits", "finetune_epochs": 2}
    from hwsim.dse.runner import iter_tasks

    task, = iter_tasks(spec)
    plain_task, = iter_tasks(load_spec(base))
    assert task.weights == str(tmp_path / "w.pt") and plain_task.weights is None
    assert task.fidelity["finetune_epochs"] == 2 and task.graph_key != plain_task.graph_key


def test_a_kept_store_reuses_compressed_graphs_on_other_hardware(tmp_path, monkeypatch):
    import hwsim.compress.pipeline
    from hwsim.dse import evaluate
    from hwsim.dse.store import ResultStore

    evaluate._GRAPHS.clear()      # a graph another test left in memory would never reach the store's folder
    with ResultStore(tmp_path / "rank.sqlite") as store:
        first = rank_recipes("digits_cnn", "bit_fusion", ["nm_2_4"], fidelity_batch=8, store=store)
        evaluate._GRAPHS.clear()
        monkeypatch.setattr(hwsim.compress.pipeline, "measured_graph",
                            lambda *a, **k: pytest.fail("compressed again"))
        second = rank_recipes("digits_cnn", "scnn", ["nm_2_4"], fidelity_batch=8, store=store)
        again = rank_recipes("digits_cnn", "scnn", ["nm_2_4"], fidelity_batch=8, store=store)
        assert len(store.sweeps()) == 2                                      # one sweep per distinct ranking
    acc = {row["recipe"]: row["top1_accuracy"] for row in first}
    assert {row["recipe"]: row["top1_accuracy"] for row in second} == acc    # same compressed models
    assert [row["recipe"] for row in again] == [row["recipe"] for row in second] and len(again) == 2
