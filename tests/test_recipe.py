"""Recipe loading, validation, layer selection, reports, shipped recipes and the ``hwsim compress`` command."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from hwsim import zoo
from hwsim.compress import apply_recipe, load_recipe, shipped_recipes
from hwsim.compress.recipe import select_modules
from hwsim.errors import ConfigError
from hwsim.fidelity import smooth_noise


pytestmark = pytest.mark.usefixtures("one_torch_thread")



class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.dw(torch.relu(self.conv1(x))))))
        return self.fc(x.flatten(1))


def _paths(recipe_steps: list, model: nn.Module | None = None) -> list[str]:
    recipe = load_recipe(recipe_steps)
    from hwsim.compress.registry import get_method

    step = recipe.steps[0]
    return [p for p, _ in select_modules(model or Tiny(), step, get_method(step.method).applies_to)]


def test_load_forms_agree(tmp_path):
    steps = [{"method": "nm_prune", "n": 2, "m": 4, "layers": "conv*"}]
    path = tmp_path / "r.yaml"
    path.write_text("name: mine\nsteps:\n  - {method: nm_prune, n: 2, m: 4, layers: 'conv*'}\n")
    from_list, from_dict, from_file = load_recipe(steps), load_recipe({"steps": steps}), load_recipe(path)
    assert from_list.steps == from_dict.steps == from_file.steps
    assert from_file.name == "mine" and from_file.steps[0].params == {"n": 2, "m": 4}


@pytest.mark.parametrize(("step", "match"), [
    ({"method": "no_such_method"}, r"step 0: unknown compression method 'no_such_method'"),
    ({"method": "nm_prune", "q": 3}, r"step 0 \(nm_prune\): unknown parameter\(s\) \['q'\]"),
    ({"method": "nm_prune", "n": 5, "m": 4}, r"step 0 \(nm_prune\): N:M needs integers 1 <= n <= m"),
    ({"method": "quantize", "weight_bits": 0}, r"step 0 \(quantize\): weight_bits must be an int"),
    ({"method": "magnitude_prune", "sparsity": 1.0}, r"step 0 \(magnitude_prune\): sparsity must be a fraction"),
    ({"method": "block_prune", "block": [0, 4]}, r"block must be two positive ints"),
    ({"method": "quantize", "overrides": {"fc": {"weight_bits": 40}}}, r"override 'fc': weight_bits"),
    ({"method": "quantize", "ops": ["attention"]}, r"unknown op kind\(s\) \['attention'\]"),
])
def test_bad_steps_name_the_step(step, match):
    with pytest.raises(ConfigError, match=match):
        load_recipe([step])


def test_error_names_step_index():
    with pytest.raises(ConfigError, match=r"step 1 \(nm_prune\)"):
        load_recipe([{"method": "magnitude_prune"}, {"method": "nm_prune", "n": 3, "m": 2}])


def test_selector_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match=r"step 0 \(nm_prune\): selector matched no layer"):
        apply_recipe(Tiny(), [{"method": "nm_prune", "layers": "layer9.*"}])


def test_selectors_glob_ops_index_exclude():
    assert _paths([{"method": "quantize"}]) == ["conv1", "dw", "conv2", "fc"]
    assert _paths([{"method": "quantize", "ops": ["conv"]}]) == ["conv1", "conv2"]
    assert _paths([{"method": "quantize", "index": "1:-1"}]) == ["dw", "conv2"]
    assert _paths([{"method": "quantize", "index": -1}]) == ["fc"]
    assert _paths([{"method": "quantize", "layers": "conv*", "exclude": "conv1"}]) == ["conv2"]
    assert _paths([{"method": "nm_prune"}]) == ["conv1", "conv2", "fc"]   # default ops: conv + linear


def test_overrides_apply_per_layer_params():
    model, report = apply_recipe(Tiny(), [{"method": "quantize", "weight_bits": 8, "ops": ["conv", "linear"],
                                           "overrides": {"fc": {"weight_bits": 3}}}], input_shape=(1, 8, 8))
    bits = {c.module: dict(c.values)["weight_bits"] for c in report.steps[0].changes}
    assert bits == {"conv1": 8, "conv2": 8, "fc": 3}
    assert model.fc.hwsim_meta["weight_bits"] == 3 and model.conv1.hwsim_meta["weight_bits"] == 8
    assert torch.unique(model.fc.weight[0]).numel() <= 2 ** 3 - 1


def test_report_is_json_and_counts_params():
    model, report = apply_recipe(Tiny(), [{"method": "magnitude_prune", "sparsity": 0.5},
                                          {"method": "quantize", "weight_bits": 8}], input_shape=(1, 8, 8))
    data = json.loads(report.to_json())
    assert [s["method"] for s in data["steps"]] == ["magnitude_prune", "quantize"]
    assert data["steps"][0]["changes"][0] == {"module": "conv1", "change": "magnitude_prune",
                                              "density": pytest.approx(36 / 72), "structure": "0.5,layer"}
    weights = sum(m.weight.numel() for m in (model.conv1, model.dw, model.conv2, model.fc))
    biases = sum(m.bias.numel() for m in (model.conv1, model.dw, model.conv2, model.fc))
    assert data["params_before"] == data["params_after"] == weights + biases
    assert data["nonzero_params_after"] == pytest.approx(weights / 2 + biases, abs=4)


def test_annotations_merge_across_steps():
    model, _ = apply_recipe(Tiny(), [{"method": "nm_prune", "layers": "conv2"},
                                     {"method": "quantize", "weight_bits": 4, "layers": "conv2"}], input_shape=(1, 8, 8))
    assert model.conv2.hwsim_meta["compression"] == ["nm_prune(2:4)", "quantize(w4a-)"]
    assert model.conv2.hwsim_meta["weight_bits"] == 4
    assert model.conv2.hwsim_facts["sparsity"] == {"kind": "n:m", "n": 2, "m": 4}
    groups = model.conv2.weight.detach().reshape(16, -1, 4)
    assert int((groups != 0).sum(dim=2).max()) <= 2          # quantization kept the 2:4 zeros


def _shipped():
    """Every shipped recipe; those that train (seconds each on digits) are marked slow."""
    from hwsim.compress.registry import get_method

    params = []
    for name in shipped_recipes():
        trains = any(get_method(step.method).trainable for step in load_recipe(name).steps)
        params.append(pytest.param(name, marks=pytest.mark.slow) if trains else name)
    return params


def small_variant(name: str) -> dict:
    """Zoo options that shrink ``name`` (narrower, 10 classes) so every recipe runs in about a second."""
    shrink = {"width_mult": 0.25, "hidden": 32, "num_classes": 10}
    small = {}
    for option, default in zoo.options(name).items():
        if option == "width":
            small[option] = 16 if isinstance(default, int) else 0.5
        elif option in shrink:
            small[option] = shrink[option]
    return small


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_recipe_applies_to_a_small_model(name):
    recipe = load_recipe(name)
    assert recipe.model in zoo.names()
    model = zoo.create(recipe.model, **small_variant(recipe.model))
    shape = zoo.input_shape(recipe.model)[1:]
    small = (shape[0], 32, 32) if len(shape) == 3 and shape[-1] > 32 else shape   # zoo CNNs take any size >= 32
    calib = smooth_noise((2, *small), seed=0)
    model, report = apply_recipe(model, recipe, calib=calib, input_shape=small)
    assert any(c.change != "skipped" for step in report.steps for c in step.changes)
    json.dumps(report.to_dict())
    with torch.no_grad():
        assert model(calib).shape[0] == 2


def test_cli_compress_writes_model_and_report(tmp_path):
    import typer
    from typer.testing import CliRunner

    from hwsim.cli.compress import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)   # keep typer in multi-command mode
    out = tmp_path / "out.pt"
    result = CliRunner().invoke(app, ["compress", "digits_cnn", "--recipe", "nm_2_4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model = torch.load(out, weights_only=False)
    assert model.features[1][0].hwsim_meta["compression"] == ["nm_prune(2:4)"]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["recipe"] == "nm_2_4" and report["steps"][0]["method"] == "nm_prune"
    assert model.input_shape == (1, 8, 8)


def test_ops_selector_reaches_recurrent_layers():
    model = nn.Sequential(nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 4))
    step = load_recipe([{"method": "bt_rnn", "ops": ["lstm"]}]).steps[0]
    assert [path for path, _ in select_modules(model, step, ("linear",))] == ["0"]
