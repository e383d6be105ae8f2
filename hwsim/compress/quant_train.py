"""Low-bit weights that need optimization: ADMM ternary/power-of-two (Leng et al. 2018), binary weights via
hashing (Hu et al. 2018), two-step quantization (Wang et al. 2018) and binarized networks (BNN / XNOR-Net)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hwsim.compress.channel_recon import consumer_input, contribution_samples
from hwsim.compress.prune import materialize
from hwsim.compress.recipe import change
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.data import train_classifier
from hwsim.errors import ConfigError


# ----- projections onto scaled low-bit sets ----------------------------------------------------------
def level_set(kind: str, bits: int = 3) -> torch.Tensor:
    """Non-negative magnitudes of a ternary ({0, 1}) or power-of-two ({0, 2^0 .. 2^-(n-1)}) code book."""
    if kind == "ternary":
        return torch.tensor([0.0, 1.0])
    count = 2 ** (bits - 1) - 1                    # magnitudes besides zero; sign takes the remaining bit
    return torch.cat([torch.zeros(1), 2.0 ** -torch.arange(count, dtype=torch.float32)])


def project(weight: torch.Tensor, levels: torch.Tensor, iters: int = 10) -> torch.Tensor:
    """Per-output-channel ``alpha * q`` with q from ``+-levels`` closest to ``weight`` (alternating alpha / q)."""
    rows = weight.reshape(weight.shape[0], -1)
    alpha = rows.abs().max(dim=1, keepdim=True).values.clamp_min(1e-12)
    for _ in range(iters):
        scaled = (rows.abs() / alpha).unsqueeze(-1)
        q = levels[(scaled - levels).abs().argmin(dim=-1)] * rows.sign()
        alpha = ((rows * q).sum(dim=1, keepdim=True) / q.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12)).clamp_min(1e-12)
    return (alpha * q).reshape(weight.shape)


def _check_admm(params: dict[str, Any]) -> None:
    if params.get("levels", "ternary") not in ("ternary", "pow2"):
        raise ConfigError(f"levels must be 'ternary' or 'pow2', got {params.get('levels')!r}")
    bits = params.get("bits", 3)
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ConfigError(f"bits must be an int in [2, 8], got {bits!r}")


@register_method("admm_quant", paper="Leng et al., Extremely Low Bit Neural Network: Squeeze the Last Bit Out "
                 "with ADMM, AAAI 2018",
                 params={"levels": "'ternary' or 'pow2' (default ternary)", "bits": "pow2 code bits incl. sign "
                         "(default 3: 0, +-1, +-1/2, +-1/4)", "rho": "ADMM penalty (default 0.1)",
                         "epochs": "training epochs (default 6)", "lr": "Adam learning rate (default 3e-3)"},
                 family="quantize", applies_to=("conv", "depthwise", "linear"), trainable=True, check=_check_admm)
def admm_quant(model: nn.Module, modules: list, *, levels: str = "ternary", bits: int = 3, rho: float = 0.1,
               epochs: int = 6, lr: float = 3e-3, data: Any = None, seed: int = 0) -> StepReport:
    """ADMM: loss + rho/2 |W - G + U|^2, G = proj(W + U), U += W - G each step; finally W = proj(W)."""
    book = level_set(levels, bits)
    layers = [m for _, m in modules]
    for module in layers:
        materialize(module)
    split = [project(m.weight.detach(), book) for m in layers]
    duals = [torch.zeros_like(m.weight) for m in layers]

    def penalty(_model: nn.Module) -> torch.Tensor:
        return rho / 2 * sum((m.weight - g + u).pow(2).sum() for m, g, u in zip(layers, split, duals))

    def admm_update(_model: nn.Module) -> None:
        for i, module in enumerate(layers):
            split[i] = project(module.weight + duals[i], book)
            duals[i] += module.weight - split[i]

    trained = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed, extra_loss=penalty,
                               after_step=admm_update)
    wbits = 2 if levels == "ternary" else bits
    changes = []
    for path, module in modules:
        with torch.no_grad():
            module.weight.copy_(project(module.weight, book))
        annotate(module, compression=f"admm_quant({levels})", number_format=levels, weight_bits=wbits)
        changes.append(change(path, "admm_quant", number_format=levels, weight_bits=wbits,
                              density=float((module.weight != 0).float().mean())))
    from hwsim.data import accuracy

    return StepReport(method="admm_quant", changes=tuple(changes),
                      metrics=(("accuracy_before_projection", trained), ("accuracy", accuracy(model, *data[2:]))))


# ----- binary weights via hashing (Hu et al. 2018) ----------------------------------------------------
def hash_binarize(weight: torch.Tensor, gram: torch.Tensor, sweeps: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """min_{alpha_k, b_k in +-1} (w_k - alpha_k b_k)' S (w_k - alpha_k b_k) per row, S = X'X (inner-product
    preserving hashing), by discrete cyclic coordinate descent on b and closed-form alpha."""
    rows = weight.reshape(weight.shape[0], -1).double()
    signs = torch.where(rows >= 0, 1.0, -1.0).double()
    sw = rows @ gram                                           # (K, d): (S w_k)'
    alpha = ((signs * sw).sum(1) / (signs @ gram * signs).sum(1).clamp_min(1e-30)).clamp_min(1e-12)
    for _ in range(sweeps):
        sb = signs @ gram
        for i in range(rows.shape[1]):
            others = sb[:, i] - gram[i, i] * signs[:, i]
            new = torch.where(sw[:, i] - alpha * others >= 0, 1.0, -1.0).double()
            sb += (new - signs[:, i])[:, None] * gram[i][None, :]
            signs[:, i] = new
        alpha = ((signs * sw).sum(1) / (sb * signs).sum(1).clamp_min(1e-30)).clamp_min(1e-12)
    return (alpha[:, None] * signs).reshape(weight.shape).to(weight.dtype), alpha.to(weight.dtype)


@register_method("binary_hashing", paper="Hu et al., From Hashing to CNNs: Training Binary Weight Networks via "
                 "Hashing, AAAI 2018",
                 params={"sweeps": "coordinate-descent sweeps (default 3)",
                         "samples": "sampled input positions for S = X'X (default 2000)"},
                 family="quantize", applies_to=("conv", "linear"))
def binary_hashing(model: nn.Module, modules: list, *, sweeps: int = 3, samples: int = 2000, calib: Any = None,
                   seed: int = 0) -> StepReport:
    """Binary weights alpha_k * sign pattern chosen to preserve inner products with real inputs."""
    changes = []
    generator = torch.Generator().manual_seed(seed)
    for path, module in modules:
        materialize(module)
        x, _ = contribution_samples(module, consumer_input(model, path, calib), 1, samples, generator)
        x = x.reshape(len(x), -1)
        weight = module.weight.detach().reshape(module.weight.shape[0], -1)
        if x.shape[1] != weight.shape[1]:
            changes.append(change(path, "skipped", reason="grouped layer (binary_hashing needs groups == 1)"))
            continue
        binary, _ = hash_binarize(weight, x.T @ x / len(x), sweeps)
        with torch.no_grad():
            module.weight.copy_(binary.reshape(module.weight.shape))
        annotate(module, compression="binary_hashing", number_format="binary", weight_bits=1)
        changes.append(change(path, "binary_hashing", number_format="binary", weight_bits=1))
    return StepReport(method="binary_hashing", changes=tuple(changes))


def _register_rest() -> None:
    import hwsim.compress.quant_steps  # noqa: F401  (two-step quantization, BNN / XNOR)


_register_rest()
