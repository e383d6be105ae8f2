"""Output fidelity metrics, smooth noise, digits data and accuracy."""

from __future__ import annotations

import copy

import pytest
import torch

from hwsim.compress import apply_recipe
from hwsim.data import load_digits_tensors, trained_digits_cnn
from hwsim.fidelity import digits_accuracy, output_fidelity, smooth_noise


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_smooth_noise_is_normalized_smooth_and_seeded():
    a, b, c = smooth_noise((4, 3, 32, 32), 0), smooth_noise((4, 3, 32, 32), 0), smooth_noise((4, 3, 32, 32), 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.mean()) == pytest.approx(0, abs=1e-6) and float(a.std()) == pytest.approx(1, abs=1e-5)
    neighbour = torch.corrcoef(torch.stack([a[..., :-1].flatten(), a[..., 1:].flatten()]))[0, 1]
    assert neighbour > 0.6                                                # white noise would give ~0


def test_identical_models_have_perfect_fidelity():
    model, _ = trained_digits_cnn(0)
    scores = output_fidelity(model, copy.deepcopy(model), input_shape=(1, 8, 8))
    assert scores == {"top1_agreement": 1.0, "kl": 0.0, "nrmse": 0.0}


def test_fidelity_hand_example():
    ref = torch.nn.Linear(2, 2, bias=False)
    out = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        ref.weight.copy_(torch.eye(2))
        out.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))          # swaps the two logits
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    scores = output_fidelity(ref, out, x)
    assert scores["top1_agreement"] == 0.0
    assert scores["nrmse"] == pytest.approx((10 / 4) ** 0.5 / (5 / 4) ** 0.5)   # sqrt(mean err^2)/sqrt(mean ref^2)
    p1, p2 = torch.softmax(torch.tensor([2.0, 0.0]), 0), torch.softmax(torch.tensor([0.0, 1.0]), 0)
    kl = (p1 * (p1 / p1.flip(0)).log()).sum() + (p2 * (p2 / p2.flip(0)).log()).sum()
    assert scores["kl"] == pytest.approx(float(kl) / 2)


def test_digits_split_and_accuracy():
    x_train, y_train, x_test, y_test = load_digits_tensors(0)
    assert x_train.shape == (1348, 1, 8, 8) and x_test.shape == (449, 1, 8, 8)   # 1797 images, 25 % test
    assert float(x_train.min()) == -1.0 and float(x_train.max()) == 1.0
    assert set(y_test.tolist()) == set(range(10))
    model, acc = trained_digits_cnn(0)
    assert acc == digits_accuracy(model) and acc > 0.95


def test_fidelity_and_accuracy_worsen_monotonically_with_sparsity():
    ref, acc = trained_digits_cnn(0)
    x_test = load_digits_tensors(0)[2]
    nrmse, kl, accs = [], [], []
    for sparsity in (0.3, 0.6, 0.8, 0.95):
        model, _ = trained_digits_cnn(0)
        apply_recipe(model, [{"method": "magnitude_prune", "sparsity": sparsity, "index": "1:"}])
        scores = output_fidelity(ref, model, input_shape=(1, 8, 8))
        nrmse.append(scores["nrmse"])
        kl.append(output_fidelity(ref, model, x_test)["kl"])
        accs.append(digits_accuracy(model))
    assert nrmse == sorted(nrmse) and kl == sorted(kl)
    assert accs[0] > acc - 0.01 and accs[-1] < accs[0]
