"""Channel pruning that shrinks layers: L1 filters, ThiNet, He et al. 2017 LASSO, on the zoo's CNNs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hwsim import zoo
from hwsim.compress import apply_recipe
from hwsim.compress.channel_prune import find_chains, keep_count
from hwsim.data import load_digits_tensors, trained_digits_cnn
from hwsim.errors import ConfigError
from hwsim.fidelity import output_fidelity, smooth_noise


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def layer_macs(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """MACs per conv/linear module from a forward pass (out elements x in-channels-per-group x R x S)."""
    macs, handles = {}, []
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def hook(m, _i, out, path=path):
                macs[path] = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(module, nn.Linear):
            def hook(m, _i, out, path=path):
                macs[path] = out.numel() * m.in_features
        else:
            continue
        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return macs


def expected_macs(model: nn.Module, x: torch.Tensor, producers: list[str], ratio: float, multiple: int = 1) -> int:
    """MACs after keeping keep_count(K) channels of each producer (producer out, depthwise, consumer in)."""
    macs = layer_macs(model, x)
    chains = find_chains(model)
    for path in producers:
        chain = chains[path]
        channels = model.get_submodule(path).weight.shape[0]
        fraction = keep_count(channels, ratio, multiple) / channels
        for name in (chain.producer, *chain.depthwise, chain.consumer):
            macs[name] *= fraction
    return round(sum(macs.values()))


@pytest.mark.parametrize(("name", "layers", "multiple", "count"), [
    ("resnet18", "layer*.conv1", 1, 8),
    ("mobilenet_v2", "features.*.conv.0.0", 8, 16),
    ("shufflenet_v2", "*.branch2.0", 1, 16),
])
def test_l1_filter_prune_shrinks_zoo_models(name, layers, multiple, count):
    x = smooth_noise((1, 3, 32, 32), seed=0)
    model = zoo.create(name)
    producers = [p for p in find_chains(model) if __import__("fnmatch").fnmatchcase(p, layers)]
    assert len(producers) == count
    want = expected_macs(model, x, producers, 0.5, multiple)
    before = sum(layer_macs(model, x).values())
    pruned, report = apply_recipe(model, [{"method": "l1_filter_prune", "ratio": 0.5, "multiple": multiple,
                                           "layers": layers, "ops": ["conv"]}])
    assert sum(layer_macs(pruned, x).values()) == want < before
    assert pruned(x).shape == (1, 1000)
    removed = {c.module: dict(c.values)["removed_channels"] for c in report.steps[0].changes}
    assert set(removed) == set(producers)
    assert report.params_after < report.params_before
    if name == "resnet18":                                      # the lowered graph sees the smaller layers
        from hwsim.lower import lower

        assert lower(pruned, (1, 3, 32, 32)).macs == want


def test_l1_keeps_the_largest_filters_and_params_drop_exactly():
    model = zoo.create("resnet18")
    original = model.layer1[0].conv1.weight.detach().clone()
    norms = original.abs().sum(dim=(1, 2, 3))
    before = sum(p.numel() for p in model.parameters())
    apply_recipe(model, [{"method": "l1_filter_prune", "ratio": 0.25, "layers": "layer1.0.conv1"}])
    keep = torch.sort(torch.topk(norms, 48).indices).values
    assert torch.equal(model.layer1[0].conv1.weight, original[keep])
    assert model.layer1[0].bn1.num_features == 48 and model.layer1[0].conv2.in_channels == 48
    # removed: 16 filters of 64x3x3, 16 BN (weight, bias), 16 input channels of conv2 (64 x 3 x 3)
    assert before - sum(p.numel() for p in model.parameters()) == 16 * 64 * 9 + 16 * 2 + 64 * 16 * 9
    assert model.layer1[0].conv1.hwsim_meta["compression"] == ["l1_filter_prune(48/64)"]


def test_residual_outputs_are_skipped_and_nothing_prunable_is_an_error():
    model = zoo.create("resnet18")
    _, report = apply_recipe(model, [{"method": "l1_filter_prune", "layers": ["layer1.0.conv*"]}])
    kinds = {c.module: c.change for c in report.steps[0].changes}
    assert kinds == {"layer1.0.conv1": "l1_filter_prune", "layer1.0.conv2": "skipped"}
    with pytest.raises(ConfigError, match=r"step 0 \(l1_filter_prune\): no selected layer can have"):
        apply_recipe(model, [{"method": "l1_filter_prune", "layers": ["layer1.0.conv2"]}])


def _consumer_error(model: nn.Module, ref: nn.Module, x: torch.Tensor) -> float:
    outputs = []
    for net in (ref, model):
        store = {}
        handle = net.features[3][0].register_forward_hook(lambda _m, _i, out: store.__setitem__("y", out))
        with torch.no_grad():
            net(x)
        handle.remove()
        outputs.append(store["y"])
    return float((outputs[1] - outputs[0]).norm() / outputs[0].norm())


def test_reconstruction_methods_beat_l1():
    x_train, _, x_test, _ = load_digits_tensors(0)
    ref, _ = trained_digits_cnn(0)
    errors, fidelity = {}, {}
    for method in ("l1_filter_prune", "thinet", "channel_prune_lasso"):
        model, _ = trained_digits_cnn(0)
        apply_recipe(model, [{"method": method, "ratio": 0.5, "layers": "features.1.0"}], calib=x_train[:256])
        errors[method] = _consumer_error(model, ref, x_test)
        fidelity[method] = output_fidelity(ref, model, x_test)["nrmse"]
    assert errors["thinet"] < errors["l1_filter_prune"]
    assert errors["channel_prune_lasso"] < errors["l1_filter_prune"]
    assert fidelity["channel_prune_lasso"] < fidelity["l1_filter_prune"]


def test_reconstruction_at_ratio_zero_is_exact():
    x_train, _, x_test, _ = load_digits_tensors(0)
    ref, _ = trained_digits_cnn(0)
    for method in ("thinet", "channel_prune_lasso"):
        model, _ = trained_digits_cnn(0)
        apply_recipe(model, [{"method": method, "ratio": 0.0, "layers": "features.1.0"}], calib=x_train[:256])
        assert output_fidelity(ref, model, x_test)["nrmse"] < 1e-3
