"""Self-adaptive compression: the graph editor against real compression + lowering, the search, its outputs."""

from __future__ import annotations

import json

import pytest

from hwsim.dse.autocompress import autocompress, parse_budgets
from hwsim.dse.autospace import load_space, parse_prune
from hwsim.dse.policy import LayerPolicy, Policy, apply_policy, policy_recipe
from hwsim.errors import ConfigError
from hwsim.models.arch import load_arch

# one of every choice: bits only, unstructured + bits, N:M + bits, channel removal (and its consumer's bits)
MIXED = Policy({"features.0.0": LayerPolicy(weight_bits=4),
                "features.1.0": LayerPolicy(prune="unstructured", sparsity=0.5, weight_bits=8),
                "features.3.0": LayerPolicy(prune="nm", n=2, m=4, weight_bits=4),
                "classifier.1": LayerPolicy(prune="channel", sparsity=0.5),
                "classifier.3": LayerPolicy(weight_bits=6)})
BLOCK = Policy({"features.1.0": LayerPolicy(prune="block", block=(4, 4), sparsity=0.5, weight_bits=8),
                "features.3.0": LayerPolicy(prune="block", block=(8, 8), sparsity=0.75)})
# low-rank factors, also of a layer whose input channels were removed
LOWRANK = Policy({"features.0.0": LayerPolicy(prune="channel", sparsity=0.25),
                  "features.1.0": LayerPolicy(prune="lowrank", budget=0.5, weight_bits=4),
                  "classifier.1": LayerPolicy(prune="lowrank", budget=0.3)})


def _edited_and_real(policy, *, profile=False):
    """The editor's graph and the compressed + lowered one; without ``profile`` neither carries the
    activation statistics measured at lowering (the editor keeps the uncompressed model's)."""
    from hwsim import zoo
    from hwsim.compress.pipeline import compressed_graph
    from hwsim.compress.policy_stats import measure_layer_stats
    from hwsim.lower import load_graph

    model = zoo.create("digits_cnn", seed=0)
    stats = measure_layer_stats(model, {path: [lp] for path, lp in policy.layers.items()})
    return (apply_policy(load_graph("digits_cnn", profile=profile), policy, stats),
            compressed_graph("digits_cnn", policy_recipe(policy), profile=profile))


@pytest.fixture(scope="module")
def edited_and_real():
    return _edited_and_real(MIXED)


def test_block_edit_is_the_block_pruned_and_lowered_graph():
    edited, real = _edited_and_real(BLOCK)
    assert [layer.to_json() for layer in edited.layers()] == [layer.to_json() for layer in real.layers()]
    assert parse_prune("block:8x8:0.75") == {"prune": "block", "block": (8, 8), "sparsity": 0.75}


def test_lowrank_edit_is_the_factorized_and_lowered_graph():
    edited, real = _edited_and_real(LOWRANK)
    assert [layer.to_json() for layer in edited.layers()] == [layer.to_json() for layer in real.layers()]
    assert sorted(edited.graph.edges) == sorted(real.graph.edges)
    assert edited["features.1.0.0"].C == 12 and edited["features.1.0.1"].R == 1   # 16 -> 12 channels, then 1x1


def test_edited_graph_is_the_compressed_and_lowered_graph(edited_and_real):
    edited, real = edited_and_real
    assert [layer.to_json() for layer in edited.layers()] == [layer.to_json() for layer in real.layers()]
    assert edited["classifier.1"].K == 32 and edited["classifier.3"].C == 32       # 64 -> 32 channels
    assert edited["features.3.0"].sparsity.describe() == "2:4"


@pytest.mark.parametrize("arch", ["edge_tpu_like", "bit_fusion", "scnn", "sparse_tc_2_4", "eyeriss"])
def test_edited_graph_gives_the_same_hardware_numbers(edited_and_real, arch):
    from hwsim.simulate import simulate_graph

    edited, real = edited_and_real
    spec = load_arch(arch)
    a, b = simulate_graph(edited, spec).total, simulate_graph(real, spec).total
    assert a["cycles"] == b["cycles"] and a["energy_pj"] == pytest.approx(b["energy_pj"], rel=1e-12)


def test_edited_graph_keeps_the_uncompressed_activation_statistics():
    """With measured activation statistics, the editor keeps the uncompressed model's (documented in
    apply_policy); on an activation-skipping engine that costs at most a few per cent of cycles."""
    from hwsim.simulate import simulate_graph

    edited, real = _edited_and_real(MIXED, profile=True)
    from hwsim.lower import load_graph

    base = load_graph("digits_cnn")
    unquantized = [lay.name for lay in edited.compute_layers() if "act_bits" in lay.native_bits]
    assert unquantized and all(edited[n].act_density == base[n].act_density for n in unquantized)
    assert any(edited[n].act_density != real[n].act_density for n in unquantized)   # pruning moved them
    a, b = (simulate_graph(g, load_arch("scnn")).total["cycles"] for g in (edited, real))
    assert a == pytest.approx(b, rel=0.05)


def test_nominal_edit_without_stats():
    from hwsim.lower import load_graph

    graph = load_graph("digits_cnn")
    out = apply_policy(graph, Policy({"features.1.0": LayerPolicy(prune="unstructured", sparsity=0.7)}))
    assert out["features.1.0"].weight_density == pytest.approx(0.3)
    assert out["features.1.0"].weight_mask is None
    assert graph["features.1.0"].weight_density == 1.0          # the input graph is not mutated
    with pytest.raises(ConfigError, match="not in graph"):
        apply_policy(graph, Policy({"nope": LayerPolicy(weight_bits=4)}))


def test_recipe_round_trips_through_the_recipe_loader():
    from hwsim.compress.recipe import load_recipe

    recipe = load_recipe(policy_recipe(MIXED, model="digits_cnn"))
    assert [s.method for s in recipe.steps] == ["l1_filter_prune", "magnitude_prune", "nm_prune", "mixed_precision"]
    assert Policy.from_dict(json.loads(json.dumps(MIXED.to_dict()))) == MIXED


def test_layer_cache_changes_nothing():
    from hwsim.lower import load_graph
    from hwsim.simulate import simulate_graph

    graph, spec, cache = load_graph("digits_cnn"), load_arch("edge_tpu_like"), {}
    first = simulate_graph(graph, spec, layer_cache=cache).total
    again = simulate_graph(graph, spec, layer_cache=cache).total
    assert first == again == simulate_graph(graph, spec).total and len(cache) == len(graph)


@pytest.mark.parametrize("bad, message", [
    ({"prune": ["unstructured:1.5"]}, "sparsity"), ({"weight_bits": [1]}, "bit widths"),
    ({"prune": ["sometimes"]}, "expected none"), ({"group_by": 0}, "group_by"), ({"colour": 1}, "colour")])
def test_bad_space_is_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        load_space(bad, load_arch("edge_tpu_like"))


def test_engine_defaults_and_refusals():
    assert load_space(None, load_arch("sparse_tc_2_4")).prune == ["none", "nm:2:4"]
    assert "unstructured:0.9" in load_space(None, load_arch("scnn")).prune
    assert load_space(None, load_arch("bit_fusion")).weight_bits == [2, 4, 6, 8]
    assert load_space(None, load_arch("edge_tpu_like")).prune == ["none", "channel:0.25", "channel:0.5", "lowrank:0.5"]
    with pytest.raises(ConfigError, match="binary engines"):
        load_space(None, load_arch("xnor_bnn"))
    assert parse_prune("nm:1:4") == {"prune": "nm", "n": 1, "m": 4}
    assert parse_budgets(["latency_ms=2", "accuracy_drop=0.01"]) == {"latency_ms": 2.0, "accuracy_drop": 0.01}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_budgets(["latency_ms"])
    with pytest.raises(ConfigError, match="expected one of"):
        parse_budgets(["speed=3"])


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    store = tmp_path_factory.mktemp("ac") / "s.sqlite"
    first = autocompress("digits_cnn", "bit_fusion", trials=6, finetune_epochs=0, store=store, max_final=3)
    resumed = autocompress("digits_cnn", "bit_fusion", trials=10, finetune_epochs=0, store=store, max_final=3)
    return first, resumed


def test_search_outputs_and_labels(small_search, tmp_path):
    _, result = small_search
    data = result.to_json()
    assert set(data["baselines"]) >= {"dense", "uniform int8", "uniform int4"}
    assert data["pareto"] and all({"accuracy", "latency_s", "energy_pj", "recipe"} <= p.keys() for p in data["pareto"])
    assert "test split" in data["accuracy_kind"]
    # on a bit-serial unit fewer bits are faster: uniform int4 beats uniform int8 on latency
    assert data["baselines"]["uniform int4"]["latency_s"] < data["baselines"]["uniform int8"]["latency_s"]
    out = result.write(tmp_path / "out")
    assert (out / "report.html").read_text().count("latency (ms)") >= 1
    assert len(list((out / "recipes").glob("pareto_*.yaml"))) == len(data["pareto"])


def test_search_resumes_from_the_store(small_search):
    first, resumed = small_search
    assert len(first.trials) == 6 and len(resumed.trials) == 10
    assert [t["policy"] for t in resumed.trials[:6]] == [t["policy"] for t in first.trials]
    assert resumed.hardware_evaluations < first.hardware_evaluations + 10   # stored trials are not re-priced


def test_pareto_recipe_replays_to_the_same_hardware_numbers(small_search, one_torch_thread):
    from hwsim.compress.pipeline import compressed_graph
    from hwsim.simulate import simulate_graph

    point = small_search[1].pareto[0]
    graph = compressed_graph("digits_cnn", point["recipe"])
    total = simulate_graph(graph, load_arch("bit_fusion")).total
    assert total["latency_s"] == pytest.approx(point["latency_s"], rel=1e-12)


def test_cli_autocompress_writes_json_and_outputs(tmp_path):
    from typer.testing import CliRunner

    from hwsim.cli import app

    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["autocompress", "digits_cnn", "--arch", "sparse_tc_2_4", "--trials", "3",
                                      "--finetune-epochs", "0", "--no-rank-baseline", "--json", str(out),
                                      "-o", str(tmp_path / "o"), "--budget", "latency_ms=1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert "uniform 2:4" in data["baselines"] and data["trials"] == 3
    assert "accuracy" in result.output and (tmp_path / "o" / "report.html").is_file()
    bad = CliRunner().invoke(app, ["autocompress", "digits_cnn", "--budget", "speed=1", "--trials", "1"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_rank_baseline_is_the_best_ranked_recipe():
    result = autocompress("digits_cnn", "scnn", trials=2, finetune_epochs=0, rank_baseline=True)
    best = [name for name in result.baselines if name.startswith("best fixed recipe")]
    assert len(best) == 1 and 0.0 <= result.baselines[best[0]]["accuracy"] <= 1.0


def test_autocompress_takes_a_users_checkpoint_and_data(tmp_path):
    """--weights + --data: the search runs on the user's model and reports accuracy on their held-out split;
    data of the wrong shape is one error (exit 2) before any search."""
    import torch

    from hwsim import zoo
    from hwsim.compress.policy_eval import PolicyEvaluator
    from hwsim.data import accuracy, load_digits_tensors

    checkpoint = tmp_path / "w.pt"
    torch.save(zoo.create("digits_cnn", seed=3).state_dict(), checkpoint)
    evaluator = PolicyEvaluator.create("digits_cnn", weights=str(checkpoint), data="digits")
    fresh = zoo.create("digits_cnn", seed=3).eval()
    x_test, y_test = evaluator.data[2], evaluator.data[3]
    assert len(y_test) == len(load_digits_tensors(0)[3])                   # the 25 % held-out digits split
    assert evaluator.trained_accuracy == pytest.approx(accuracy(fresh, x_test, y_test))   # the user's weights
    from conftest import run_cli

    bad = run_cli("autocompress", "digits_cnn", "--data", "digits32", "--trials", "1")
    assert bad.returncode == 2 and "--data digits32: samples are 1x32x32" in bad.stderr
