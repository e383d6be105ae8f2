"""Mask pruning: unstructured (layer/global), N:M and block sparsity; weights, annotations and lowering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hwsim import zoo
from hwsim.compress import apply_recipe
from hwsim.compress.prune import block_mask, nm_mask
from hwsim.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _digits():
    return zoo.create("digits_cnn", seed=1)


def _matrix(module: nn.Module) -> np.ndarray:
    return module.weight.detach().reshape(module.weight.shape[0], -1).numpy()


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_per_layer_density_is_exact(sparsity):
    ref = _digits()
    model, report = apply_recipe(_digits(), [{"method": "magnitude_prune", "sparsity": sparsity}])
    for change in report.steps[0].changes:
        module, original = model.get_submodule(change.module), ref.get_submodule(change.module)
        total = module.weight.numel()
        zeros = int((module.weight == 0).sum())
        assert zeros == round(sparsity * total)
        kept = module.weight != 0
        assert torch.equal(module.weight[kept], original.weight[kept])          # survivors unchanged
        if 0 < zeros < total:                                                   # smallest ones went
            assert original.weight[~kept].abs().max() <= original.weight[kept].abs().min()
        assert module.hwsim_meta["compression"] == [f"magnitude_prune({sparsity:g},layer)"]
        assert module.hwsim_facts["weight_density"] == pytest.approx(1 - zeros / total)


def test_magnitude_global_uses_one_threshold():
    ref = _digits()
    model, report = apply_recipe(_digits(), [{"method": "magnitude_prune", "sparsity": 0.7, "scope": "global"}])
    paths = [c.module for c in report.steps[0].changes]
    pruned = torch.cat([model.get_submodule(p).weight.flatten() for p in paths])
    original = torch.cat([ref.get_submodule(p).weight.flatten() for p in paths])
    assert int((pruned == 0).sum()) == round(0.7 * pruned.numel())
    assert original[pruned == 0].abs().max() <= original[pruned != 0].abs().min()
    densities = [dict(c.values)["density"] for c in report.steps[0].changes]
    assert max(densities) - min(densities) > 0.1          # global: layers end up with different densities


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8)])
def test_nm_every_group_keeps_n_largest(n, m):
    ref = _digits()
    model, report = apply_recipe(_digits(), [{"method": "nm_prune", "n": n, "m": m}])
    done = [c for c in report.steps[0].changes if c.change == "nm_prune"]
    skipped = {c.module for c in report.steps[0].changes if c.change == "skipped"}
    assert "features.0.0" in skipped                       # 1 * 3 * 3 = 9 is not a multiple of 4 or 8
    for change in done:
        w = _matrix(model.get_submodule(change.module))
        groups = (w != 0).reshape(w.shape[0], -1, m).sum(axis=2)
        assert np.all(groups == n)
        original = np.abs(_matrix(ref.get_submodule(change.module))).reshape(w.shape[0], -1, m)
        kept = (w != 0).reshape(original.shape)
        assert np.all(np.where(kept, original, np.inf).min(axis=2) >= np.where(kept, -np.inf, original).max(axis=2))
        module = model.get_submodule(change.module)
        assert module.hwsim_meta["compression"] == [f"nm_prune({n}:{m})"]
        assert module.hwsim_facts["sparsity"] == {"kind": "n:m", "n": n, "m": m}


def test_nm_mask_hand_example():
    matrix = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]])
    assert nm_mask(matrix, 2, 4).tolist() == [[False, True, True, False, True, True, False, False]]


def test_block_mask_zeroes_whole_blocks():
    matrix = torch.arange(1, 8 * 12 + 1, dtype=torch.float32).reshape(8, 12)   # larger blocks to the bottom right
    mask = block_mask(matrix, (4, 4), 0.5)
    tiles = mask.reshape(2, 4, 3, 4).permute(0, 2, 1, 3).reshape(6, 16)
    assert torch.all(tiles.all(dim=1) | ~tiles.any(dim=1))
    assert tiles.all(dim=1).tolist() == [False, False, False, True, True, True]


def test_block_prune_with_ragged_edges():
    model, report = apply_recipe(_digits(), [{"method": "block_prune", "sparsity": 0.5, "block": [4, 4],
                                              "layers": "classifier.*"}])
    fc2 = _matrix(model.classifier[3])                          # (10, 64): 3 block rows, last one 2 rows tall
    padded = np.pad(fc2 != 0, ((0, 2), (0, 0)))
    tiles = padded.reshape(3, 4, 16, 4).sum(axis=(1, 3))
    full = np.array([[16] * 16, [16] * 16, [8] * 16])
    assert np.all((tiles == 0) | (tiles == full))
    assert int((tiles == 0).sum()) == 24                        # round(0.5 * 48) blocks zeroed
    assert model.classifier[3].hwsim_facts["sparsity"] == {"kind": "block", "block": [4, 4]}


def test_torch_prune_masks_are_materialized():
    from torch.nn.utils import prune

    model = _digits()
    prune.l1_unstructured(model.classifier[1], "weight", amount=0.5)
    apply_recipe(model, [{"method": "nm_prune", "layers": "classifier.1"}])
    assert not hasattr(model.classifier[1], "weight_orig")
    assert float((model.classifier[1].weight == 0).float().mean()) >= 0.5


def test_lowered_graph_sees_the_sparsity():
    pytest.importorskip("hwsim.lower")
    from hwsim.lower import lower

    model, _ = apply_recipe(_digits(), [{"method": "nm_prune", "n": 2, "m": 4},
                                        {"method": "quantize", "weight_bits": 4}])
    graph = lower(model, (1, 1, 8, 8))
    layers = {layer.source: layer for layer in graph.compute_layers()}
    conv = layers["features.1.0"]
    assert 0.45 < conv.weight_density <= 0.5                   # 4-bit rounding adds a few zeros
    assert conv.sparsity.describe() == "2:4"
    assert conv.weight_bits == 4
    assert conv.compression == ("nm_prune(2:4)", "quantize(w4a-)")
    assert layers["features.0.0"].compression == ("quantize(w4a-)",)    # skipped by 2:4 (9 weights per row)


def test_han_prune_retrain_iterate_recovers_accuracy_and_keeps_the_zeros():
    """Han et al. (NIPS 2015, Sec. 3): retraining the surviving weights recovers what pruning lost; iterative
    rounds reach the same sparsity. The pruned weights stay exactly zero through retraining."""
    from hwsim.data import accuracy, load_digits_tensors, trained_digits_cnn

    data = load_digits_tensors(0)
    pruned_only, _ = trained_digits_cnn(0)
    apply_recipe(pruned_only, [{"method": "magnitude_prune", "sparsity": 0.9}])
    retrained, _ = trained_digits_cnn(0)
    _, report = apply_recipe(retrained, [{"method": "magnitude_prune", "sparsity": 0.9, "retrain_epochs": 2,
                                          "iterations": 2}], data=data)
    before, after = accuracy(pruned_only, data[2], data[3]), accuracy(retrained, data[2], data[3])
    assert after > before + 0.05 and after == pytest.approx(dict(report.steps[0].metrics)["accuracy"])
    for change in report.steps[0].changes:
        module = retrained.get_submodule(change.module)
        assert float((module.weight == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
        assert module.hwsim_meta["compression"] == ["magnitude_prune(0.9,layer,retrain 2x2)"]
    with pytest.raises(ConfigError, match="iterations must be an integer >= 1"):
        apply_recipe(retrained, [{"method": "magnitude_prune", "iterations": 0}])
