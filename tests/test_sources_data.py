"""Bring your own model and data: ``hwsim.sources``, ``hwsim.datasets``, ``hwsim.trained``, ``finetune``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwsim.errors import ConfigError, UnknownNameError
from tests.conftest import run_cli

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from hwsim import zoo  # noqa: E402
from hwsim.datasets import check_shape, load_data  # noqa: E402
from hwsim.sources import resolve_model  # noqa: E402


def write_image_folder(root, *, per_class: int = 4, size: int = 8, classes: int = 10, rgb: bool = False):
    """``root/<digit>/<i>.png`` from real sklearn digits (so a digits model can classify them)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            pixels = (image / 16.0 * 255).astype(np.uint8)
            picture = Image.fromarray(pixels, mode="L").resize((size, size), Image.NEAREST)
            (picture.convert("RGB") if rgb else picture).save(folder / f"{i}.png")
    return root


# ----- hwsim.datasets --------------------------------------------------------------------------------
def test_builtin_digits_and_digits32_share_one_split():
    small, big = load_data("digits"), load_data("digits32")
    assert small.sample_shape == (1, 8, 8) and big.sample_shape == (1, 32, 32)
    assert len(small.y_test) == 449 and len(small.y_train) == 1348        # 1797 digits, 25 % held out
    assert torch.equal(small.y_test, big.y_test) and small.num_classes == 10
    # bilinear upsampling keeps the mean brightness of each image (to float precision)
    assert torch.allclose(big.x_test.mean(dim=(1, 2, 3)), small.x_test.mean(dim=(1, 2, 3)), atol=0.02)


def test_image_folder_labels_by_sorted_class_name_and_resizes(tmp_path):
    root = write_image_folder(tmp_path / "imgs", per_class=2, classes=3, rgb=True)
    data = load_data(str(root), sample_shape=(1, 16, 16))
    assert data.sample_shape == (1, 16, 16) and len(data.y_train) + len(data.y_test) == 6
    assert len(data.y_test) == 2                                             # round(6 * 0.25)
    assert sorted(torch.cat([data.y_train, data.y_test]).tolist()) == [0, 0, 1, 1, 2, 2]
    assert float(data.x_train.min()) >= -1.0 and float(data.x_train.max()) <= 1.0
    native = load_data(str(root))                                            # no shape: RGB at the file size
    assert native.sample_shape == (3, 8, 8)
    again = load_data(str(root), sample_shape=(1, 16, 16))
    assert torch.equal(again.x_test, data.x_test)                            # deterministic split by seed


def test_image_folder_pixels_match_the_png(tmp_path):
    root = tmp_path / "one"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(np.full((4, 4), 255, np.uint8), mode="L").save(root / "a" / "white.png")
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(root / "b" / "black.png")
    data = load_data(str(root))
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])
    assert x[y == 0].unique().tolist() == [1.0] and x[y == 1].unique().tolist() == [-1.0]


def _dataset():
    return torch.utils.data.TensorDataset(torch.zeros(8, 1, 8, 8), torch.arange(8) % 2)


def test_entry_point_dataset_and_shape_check(tmp_path, monkeypatch):
    (tmp_path / "my_data.py").write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.utils.data.TensorDataset(torch.ones(8, 1, 6, 6), torch.arange(8) % 3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_data("my_data:make")
    assert data.sample_shape == (1, 6, 6) and data.num_classes == 3 and len(data.y_test) == 2
    with pytest.raises(ConfigError, match=r"--data my_data:make: samples are 1x6x6 but model digits_cnn takes 1x8x8"):
        check_shape(data, (1, 8, 8), "digits_cnn")


@pytest.mark.parametrize("spec, message", [("no_such_set", "not a built-in dataset"),
                                           ("no_such_module_xyz:make", "cannot load entry point")])
def test_bad_data_names_say_what_is_accepted(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_data(spec)


def test_empty_image_folder_is_a_clear_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="no images in ImageFolder layout"):
        load_data(str(tmp_path))


# ----- hwsim.sources ---------------------------------------------------------------------------------
def test_zoo_name_with_weights_loads_them(tmp_path):
    trained = zoo.create("digits_cnn", seed=3)
    torch.save(trained.state_dict(), tmp_path / "sd.pt")
    source = resolve_model("digits_cnn", weights=tmp_path / "sd.pt")
    x = torch.randn(4, 1, 8, 8)
    assert source.trained and source.sample_shape == (1, 8, 8)
    assert torch.equal(source.module(x), trained.eval()(x))
    assert not torch.equal(resolve_model("digits_cnn").module(x), trained(x))   # seed-0 random weights differ


def test_checkpoint_for_another_architecture_is_one_clear_error(tmp_path):
    torch.save(zoo.create("digits_cnn", width=8).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(ConfigError, match=r"--weights .*narrow.pt: does not match zoo model 'digits_cnn': "
                                          r"\d+ shape mismatch\(es\): classifier.1.weight \(checkpoint 64x128, "
                                          r"model 64x256\)"):
        resolve_model("digits_cnn", weights=tmp_path / "narrow.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"missing key\(s\).*1 unexpected key\(s\): fc.weight"):
        resolve_model("digits_cnn", weights=tmp_path / "other.pt")


def test_full_model_file_and_state_dict_mixups(tmp_path):
    model = zoo.create("digits_cnn", seed=1)
    model.input_shape = (1, 8, 8)
    torch.save(model, tmp_path / "whole.pt")
    source = resolve_model(str(tmp_path / "whole.pt"))
    assert source.trained and source.sample_shape == (1, 8, 8) and source.name == "whole"
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ConfigError, match="holds a state_dict, not a whole model; pass the zoo architecture"):
        resolve_model(str(tmp_path / "sd.pt"))
    with pytest.raises(ConfigError, match="already holds a whole model"):
        resolve_model(str(tmp_path / "whole.pt"), weights=tmp_path / "sd.pt")
    with pytest.raises(UnknownNameError, match="not a zoo name or a .pt/.pth/.json/.onnx file"):
        resolve_model("nonexistent_net")


def test_simulate_accepts_a_full_model_file_with_data(tmp_path):
    from hwsim.simulate import resolve_graph

    model = zoo.create("digits_cnn")
    torch.save(model, tmp_path / "m.pt")        # no input_shape attribute: --data gives it
    graph = resolve_graph(str(tmp_path / "m.pt"), data="digits")
    reference = resolve_graph("digits_cnn")
    assert graph.input_shape == (1, 1, 8, 8)
    assert [layer.macs for layer in graph.layers()] == [layer.macs for layer in reference.layers()]
    with pytest.raises(ConfigError, match="unknown input shape; give --input-shape"):
        resolve_graph(str(tmp_path / "m.pt"))
    with pytest.raises(ConfigError, match="samples are 1x32x32 but model m takes 1x8x8"):
        resolve_graph(str(tmp_path / "m.pt"), data="digits32", input_shape=(1, 1, 8, 8))


# ----- trained zoo models and fine-tuning ------------------------------------------------------------
def test_trained_zoo_model_is_seeded_and_cached_on_disk(tmp_path, monkeypatch):
    import hwsim.data
    from hwsim import trained

    monkeypatch.setenv("HWSIM_CACHE_DIR", str(tmp_path))
    trained._trained_state.cache_clear()
    first, acc = trained.trained_zoo_model("digits_cnn", 0, epochs=1, width=4)
    files = list((tmp_path / "trained").glob("digits_cnn-seed0-*.pt"))
    assert len(files) == 1 and 0.5 < acc <= 1.0       # one epoch at width 4 is far above chance (0.1)
    trained._trained_state.cache_clear()
    files[0].rename(tmp_path / "moved.pt")
    again, acc_again = trained.trained_zoo_model("digits_cnn", 0, epochs=1, width=4)   # retrains
    assert acc_again == acc
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    trained._trained_state.cache_clear()
    monkeypatch.setattr(hwsim.data, "train_classifier", lambda *a, **k: pytest.fail("trained again"))
    loaded, acc_loaded = trained.trained_zoo_model("digits_cnn", 0, epochs=1, width=4)   # from disk
    assert acc_loaded == acc and torch.equal(loaded.features[0][0].weight, first.features[0][0].weight)
    trained._trained_state.cache_clear()


def test_one_cycle_schedule_trains_to_high_accuracy(one_torch_thread):
    from hwsim.data import train_classifier

    model = zoo.create("digits_cnn", width=4)
    acc = train_classifier(model, load_data("digits").as_tuple(), epochs=2, lr=1e-2, schedule="one_cycle")
    assert acc > 0.9
    with pytest.raises(ValueError, match="schedule: expected constant or one_cycle"):
        train_classifier(model, load_data("digits").as_tuple(), epochs=1, schedule="cosine")


def test_digits32_models_list_and_keep_zoo_layer_names():
    names = zoo.names()
    assert {"digits_resnet18", "digits_mobilenet_v2"} <= set(names)
    assert zoo.input_shape("digits_resnet18") == (1, 1, 32, 32)
    resnet = zoo.create("digits_resnet18")
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, torch.nn.Identity)
    full = dict(zoo.create("resnet18", device="meta").named_modules())
    assert {n for n, _ in resnet.named_modules()} == set(full)      # recipes' layer patterns still match
    assert resnet(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    mobile = zoo.create("digits_mobilenet_v2")
    assert mobile.features[0][0].stride == (1, 1) and mobile(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_finetune_keeps_pruned_weights_zero_and_quantized_layers_frozen(one_torch_thread):
    from hwsim.compress import apply_recipe
    from hwsim.data import accuracy, finetune, trained_digits_cnn

    model, _ = trained_digits_cnn(0)
    data = load_data("digits")
    pruned, _ = apply_recipe(model, [{"method": "magnitude_prune", "sparsity": 0.9}], data=data.as_tuple())
    zeros = {name: (p == 0) for name, p in pruned.named_parameters() if name.endswith("weight") and p.dim() > 1}
    before = accuracy(pruned, data.x_test, data.y_test)
    after = finetune(pruned, data.as_tuple(), epochs=1, seed=0)
    for name, p in pruned.named_parameters():
        if name in zeros:
            assert bool((p[zeros[name]] == 0).all()), name               # pruned stays pruned
    assert after > before                 # 90 % pruning without retraining loses accuracy; retraining recovers
    quantized, _ = apply_recipe(trained_digits_cnn(0)[0], [{"method": "quantize", "weight_bits": 4, "act_bits": 8}],
                                calib=data.calibration_batch())
    weights = {n: p.detach().clone() for n, p in quantized.named_parameters() if n.endswith("weight") and p.dim() > 1}
    finetune(quantized, data.as_tuple(), epochs=1, seed=0)
    assert all(torch.equal(weights[n], p) for n, p in quantized.named_parameters() if n in weights)


@pytest.mark.slow
@pytest.mark.parametrize("name, floor", [("digits_resnet18", 0.98), ("digits_mobilenet_v2", 0.95)])
def test_digits32_models_reach_their_stated_accuracy(name, floor):
    from hwsim.trained import trained_zoo_model

    _, acc = trained_zoo_model(name, 0)
    assert acc >= floor


# ----- end to end: a user's checkpoint and image folder through the CLI ------------------------------
def test_user_checkpoint_and_image_folder_rank_end_to_end(tmp_path, one_torch_thread):
    from hwsim.data import train_classifier

    folder = write_image_folder(tmp_path / "images", per_class=6)
    model = zoo.create("digits_cnn", seed=7)
    train_classifier(model, load_data("digits").as_tuple(), epochs=2, lr=3e-3, seed=7)
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    run = run_cli("rank", "digits_cnn", "--weights", str(tmp_path / "mine.pt"), "--data", str(folder),
                  "--arch", "bit_fusion", "--recipes", "unstructured_50", "int4_weights", "--json")
    assert run.returncode == 0, run.stderr
    rows = {row["recipe"]: row for row in json.loads(run.stdout)}
    assert set(rows) == {"dense", "unstructured_50", "int4_weights"}
    assert all(row["status"] == "ok" and row["fidelity_metric"] == "top1_accuracy" for row in rows.values())
    # 60 images, 15 held out: accuracies are multiples of 1/15
    assert all(abs(row["top1_accuracy"] * 15 - round(row["top1_accuracy"] * 15)) < 1e-9 for row in rows.values())
    assert rows["dense"]["top1_accuracy"] >= 0.8
    assert rows["dense"]["fidelity_basis"].startswith(f"top-1 accuracy on held-out {folder} (your weights")
    assert rows["int4_weights"]["energy_pj"] < rows["dense"]["energy_pj"]   # Bit Fusion runs 4-bit weights cheaper
    bad = run_cli("rank", "digits_cnn", "--data", "digits32", "--recipes", "int8")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --data digits32: samples are 1x32x32 but model digits_cnn takes 1x8x8"]


def test_whole_model_given_as_weights_points_to_the_model_argument(tmp_path):
    torch.save(zoo.create("digits_cnn"), tmp_path / "whole.pt")
    with pytest.raises(ConfigError, match=r"not a plain state_dict file \(a whole pickled model\? give it as the MODEL"):
        resolve_model("digits_cnn", weights=tmp_path / "whole.pt")


def test_sweep_models_check_accepts_pt_files_and_checks_weights(tmp_path):
    from hwsim.cli.dse import _check_models

    torch.save(zoo.create("digits_cnn"), tmp_path / "m.pt")
    _check_models([str(tmp_path / "m.pt"), "digits_cnn"], {"digits_cnn": str(tmp_path / "m.pt")})
    with pytest.raises(ConfigError, match=r"weights: '.*nope.pt': no such file"):
        _check_models(["digits_cnn"], {"digits_cnn": str(tmp_path / "nope.pt")})
    with pytest.raises(ConfigError, match="weights go with a zoo-name model"):
        _check_models([str(tmp_path / "m.pt")], {str(tmp_path / "m.pt"): str(tmp_path / "m.pt")})
    with pytest.raises(ConfigError, match="no such file"):
        _check_models([str(tmp_path / "gone.pt")])
