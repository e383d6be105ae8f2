"""Low-rank, distillation and gradient methods in the registry and in shipped recipes; provenance in the IR."""

from __future__ import annotations

import pytest
import torch

from hwsim.compress.recipe import apply_recipe, load_recipe
from hwsim.compress.registry import methods

MINE = {"svd": "lowrank", "cp": "lowrank", "tucker2": "lowrank", "btd": "lowrank", "tt": "lowrank",
        "tr": "lowrank", "bt_rnn": "lowrank", "distill": "distill", "fitnets": "distill",
        "attention_transfer": "distill", "fsp": "distill", "detection_kd": "distill", "qsgd": "train",
        "terngrad": "train"}
RECIPES = ["svd", "cp", "tucker", "btd", "tt", "tr", "bt_rnn", "distill", "fitnets", "attention_transfer", "fsp",
           "distill_mobilenet", "qsgd", "terngrad"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_method_is_registered_with_paper_and_family():
    registered = methods()
    for name, family in MINE.items():
        assert registered[name].family == family
        assert registered[name].paper and any(str(y) in registered[name].paper for y in range(2011, 2019))


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_load(name):
    recipe = load_recipe(name)
    assert recipe.model and recipe.steps and recipe.steps[0].method in MINE


@pytest.mark.parametrize("step, label", [
    ({"method": "svd", "rank": 4, "ops": ["linear"]}, "svd(r=4)"),
    ({"method": "tucker2", "ranks": [4, 4], "layers": ["features.1.*", "features.3.*"]}, "tucker2(r=4,4)"),
    ({"method": "cp", "rank": 6, "n_iter": 20, "layers": ["features.1.*"]}, "cp(r=6)"),
    ({"method": "btd", "n_blocks": 2, "ranks": 3, "layers": ["features.3.*"]}, "btd(n=2,r=3,3)"),
    ({"method": "tt", "max_rank": 4, "layers": ["classifier.1"]}, "tt(r=4)"),
    ({"method": "tr", "rank": 3, "layers": ["classifier.1"]}, "tr(r=3)"),
    ({"method": "bt_rnn", "n_blocks": 2, "block_rank": 2, "layers": ["classifier.1"]}, "bt(n=2,r=2)"),
])
def test_recipe_step_on_digits_cnn_lowers_with_provenance(step, label):
    from hwsim import zoo
    from hwsim.lower import lower

    model = zoo.create("digits_cnn", seed=0)
    dense_macs = lower(model, (1, 1, 8, 8)).macs
    compressed, report = apply_recipe(model, {"steps": [step]}, input_shape=(1, 8, 8))
    assert compressed(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    graph = lower(compressed, (1, 1, 8, 8))
    tagged = [layer for layer in graph.compute_layers() if label in layer.compression]
    assert tagged, [layer.compression for layer in graph.compute_layers()]
    assert report.params_after < report.params_before
    assert graph.macs != dense_macs
