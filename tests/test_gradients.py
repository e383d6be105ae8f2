"""QSGD and TernGrad: unbiasedness, value sets, bit counts (hand-computed), training with compressed gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwsim.compress import gradients as gq
from hwsim.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grad(d: int = 40) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize("levels", [1, 3, 16])
def test_qsgd_is_unbiased(levels):
    g, draws = _grad(), 20_000
    # one call = `draws` independent quantizations: every bucket holds one copy of g
    out = gq.qsgd(g.repeat(draws), levels=levels, bucket_size=g.numel(), generator=torch.Generator().manual_seed(0))
    samples = out.values.reshape(draws, -1)
    unit = g.norm() / levels
    assert torch.allclose(samples / unit, (samples / unit).round(), atol=1e-9)   # multiples of norm/s
    assert float((samples / unit).abs().max()) <= levels + 1e-9
    p = g.abs() / unit - (g.abs() / unit).floor()
    std = unit * torch.sqrt(p * (1 - p)).clamp_min(1e-12)       # per-element std of one draw (Lemma 3.1)
    assert torch.all((samples.mean(0) - g).abs() <= 5 * std / draws ** 0.5 + 1e-12)


def test_terngrad_is_unbiased_and_ternary():
    g, draws = _grad(), 20_000
    out = gq.terngrad(g.repeat(draws), generator=torch.Generator().manual_seed(0))
    samples = out.values.reshape(draws, -1)
    scale = g.abs().max()
    assert set(torch.unique(samples / scale).tolist()) <= {-1.0, 0.0, 1.0}
    p = g.abs() / scale
    std = scale * torch.sqrt(p * (1 - p)).clamp_min(1e-12)
    assert torch.all((samples.mean(0) - g).abs() <= 5 * std / draws ** 0.5 + 1e-12)


def test_elias_omega_lengths():
    # Elias omega codes: 1 -> "0", 2 -> "10 0", 4 -> "10 100 0", 16 -> "10 100 10000 0" (Elias 1975)
    for value, bits in [(1, 1), (2, 3), (3, 3), (4, 6), (7, 6), (8, 7), (16, 11)]:
        assert gq.elias_omega_bits([value]) == bits


def test_qsgd_bits_hand_counted():
    g = torch.tensor([3.0, 0.0, -4.0], dtype=torch.float64)      # norm 5; with s = 5 the levels are exact: 3, 0, 4
    out = gq.qsgd(g, levels=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.values, g)
    # Elias: 32 (norm) + gaps 1, 2 -> 1 + 3 bits + 2 sign bits + levels 3, 4 -> 3 + 6 bits = 47
    assert out.bits == 47
    assert out.bits_fixed == 32 + 3 * (1 + 3)                    # sign + ceil(log2(6)) = 3 level bits
    assert out.dense_bits == 96


def test_terngrad_bits_and_ratio():
    out = gq.terngrad(torch.randn(1000))
    assert out.bits == 32 + 2 * 1000                             # one fp32 scaler + 2 bits per element
    assert out.compression_ratio == pytest.approx(32_000 / 2_032)


def test_qsgd_low_precision_is_sparse_and_cheap():
    g = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    out = gq.qsgd(g, levels=1, generator=torch.Generator().manual_seed(1))
    # s = 1: E[nonzeros] = sum |g_i| / ||g||_2 ~ sqrt(2/pi) sqrt(d) ~ 80 of 10,000 (paper Lemma 3.1 (iii): <= sqrt(d))
    assert 0 < int((out.values != 0).sum()) <= 100 + 4 * 10
    assert out.bits < 0.01 * out.dense_bits


@pytest.mark.parametrize("spec, expected", [
    ("qsgd:4", {"kind": "qsgd", "levels": 7}), ("qsgd:2", {"kind": "qsgd", "levels": 1}),
    ("qsgd:s=16", {"kind": "qsgd", "levels": 16}), ("terngrad", {"kind": "terngrad", "clip_sigma": None}),
    ("terngrad:2.5", {"kind": "terngrad", "clip_sigma": 2.5}), ("none", {"kind": "none"}),
])
def test_parse_spec(spec, expected):
    assert gq.parse_spec(spec) == expected


@pytest.mark.parametrize("bad", ["qsgd:1", "qsgd:s=0", "signsgd"])
def test_bad_spec(bad):
    with pytest.raises(ConfigError, match="grad_compression"):
        gq.parse_spec(bad)


def test_compressor_counts_bits_per_step():
    model = nn.Linear(10, 4)
    model(torch.randn(8, 10)).sum().backward()
    compressor = gq.GradientCompressor("terngrad", seed=0)
    bits = compressor(model)
    assert bits == (32 + 2 * 40) + (32 + 2 * 4)                  # weight and bias tensors, each with a scaler
    assert compressor.dense_bits_per_step == 44 * 32


def _digits_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.mark.parametrize("spec, min_accuracy", [("none", 0.9), ("qsgd:4", 0.9), ("terngrad", 0.85)])
def test_training_with_compressed_gradients(spec, min_accuracy):
    from hwsim.compress.distill import fit
    from hwsim.data import load_digits_tensors

    result = fit(_digits_mlp(), load_digits_tensors(0), epochs=4, lr=1e-2, grad_compression=spec, seed=0)
    assert result.accuracy >= min_accuracy, result
    dense = (64 * 32 + 32 + 32 * 10 + 10) * 32
    assert result.dense_bits_per_step == dense
    if spec == "terngrad":
        assert result.bits_per_step == 4 * 32 + 2 * (64 * 32 + 32 + 32 * 10 + 10)
    elif spec != "none":
        assert result.bits_per_step < dense / 4


def test_qsgd_recipe_method_reports_bits():
    from hwsim.compress.registry import get_method
    from hwsim.data import load_digits_tensors

    model = _digits_mlp()
    report = get_method("qsgd").fn(model, [], bits=4, epochs=1, data=load_digits_tensors(0), seed=0)
    metrics = dict(report.metrics)
    assert metrics["bits_per_step"] < metrics["dense_bits_per_step"] and metrics["accuracy"] > 0.5


def test_meprop_option_in_trainer():
    from hwsim.compress.distill import fit
    from hwsim.data import load_digits_tensors

    result = fit(_digits_mlp(), load_digits_tensors(0), epochs=4, lr=1e-2, meprop_k=4, seed=0)
    assert result.accuracy >= 0.8, result     # measured 0.835 (top-4 of 32 / 10 output gradients kept)
