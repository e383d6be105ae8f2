"""Two-step quantization (Wang et al. 2018) and binarized networks (BNN, Hubara et al. 2016; XNOR-Net,
Rastegari et al. 2016)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from hwsim.compress.channel_recon import _ridge_solve, consumer_input, contribution_samples
from hwsim.compress.prune import materialize
from hwsim.compress.quantize import (act_facts, calibrate_act, int_range, layer_inputs, quantize_weight,
                                     set_act_hook)
from hwsim.compress.recipe import change, compute_modules, op_kind
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.data import accuracy, train_classifier
from hwsim.errors import ConfigError


# ----- two-step quantization ------------------------------------------------------------------------------
def _check_tsq(params: dict[str, Any]) -> None:
    for name, default in (("act_bits", 2), ("weight_bits", 2)):
        value = params.get(name, default)
        if not isinstance(value, int) or not 2 <= value <= 16:
            raise ConfigError(f"{name} must be an int in [2, 16], got {value!r}")


def fit_quantized_weights(x_q: torch.Tensor, y: torch.Tensor, bits: int, iters: int = 8) -> torch.Tensor:
    """Per output channel ``alpha_k * q_k`` (q on a symmetric ``bits`` grid) minimizing |y_k - x_q alpha_k q_k|."""
    qmin, qmax = int_range(bits, signed=True)
    target = _ridge_solve(x_q, y).T                                   # (K, d) unconstrained least squares
    alpha = (target.abs().max(dim=1).values / qmax).clamp_min(1e-12)
    for _ in range(iters):
        codes = torch.clamp(torch.round(target / alpha[:, None]), qmin, qmax)
        response = x_q @ codes.T                                      # (S, K)
        alpha = ((response * y).sum(0) / response.pow(2).sum(0).clamp_min(1e-30)).clamp_min(1e-12)
    return alpha[:, None] * codes


@register_method("two_step_quant", paper="Wang et al., Two-Step Quantization for Low-bit Neural Networks, "
                 "CVPR 2018",
                 params={"act_bits": "activation bits, step 1 (default 2)", "weight_bits": "weight bits, step 2; "
                         "2 = ternary (default 2)", "samples": "sampled positions per layer (default 4000)"},
                 family="quantize", applies_to=("conv", "linear"), check=_check_tsq)
def two_step_quant(model: nn.Module, modules: list, *, act_bits: int = 2, weight_bits: int = 2,
                   samples: int = 4000, calib: Any = None, seed: int = 0) -> StepReport:
    """Step 1: quantize the selected layers' inputs; step 2: per layer, fit low-bit weights so the layer's
    output on quantized inputs matches the float model's output (least squares + alternating scale fit)."""
    reference = copy.deepcopy(model)
    inputs = layer_inputs(model, [p for p, _ in modules], calib)
    hooks = {}
    for path, module in modules:
        hooks[path] = calibrate_act(inputs[path], act_bits)
        set_act_hook(module, hooks[path])
    number_format = "ternary" if weight_bits == 2 else "int"
    changes = []
    for path, module in modules:
        materialize(module)
        x_q, _ = contribution_samples(module, consumer_input(model, path, calib), 1, samples,
                                      torch.Generator().manual_seed(seed))
        x_f, _ = contribution_samples(module, consumer_input(reference, path, calib), 1, samples,
                                      torch.Generator().manual_seed(seed))
        x_q, x_f = x_q.reshape(len(x_q), -1), x_f.reshape(len(x_f), -1)
        weight = module.weight.detach().double().reshape(module.weight.shape[0], -1)
        fitted = fit_quantized_weights(x_q, x_f @ weight.T, weight_bits)
        with torch.no_grad():
            module.weight.copy_(fitted.reshape(module.weight.shape).to(module.weight.dtype))
        facts = act_facts(hooks[path], inputs[path])
        annotate(module, compression=f"two_step_quant(w{weight_bits}a{act_bits})", number_format=number_format,
                 weight_bits=weight_bits, act_bits=act_bits, **facts)
        changes.append(change(path, "two_step_quant", weight_bits=weight_bits, act_bits=act_bits,
                              number_format=number_format, **facts))
    return StepReport(method="two_step_quant", changes=tuple(changes))


# ----- binarized networks ---------------------------------------------------------------------------------
class SignWeight(nn.Module):
    """Weight parametrization: sign(w) (times mean |w| per output channel for XNOR) with a clipped STE."""

    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.scaled = scaled

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binary_weight(weight, self.scaled, ste=True)


def binary_weight(weight: torch.Tensor, scaled: bool, *, ste: bool = False) -> torch.Tensor:
    """``alpha * sign(w)`` (alpha = mean |w| per output channel, or 1); optional straight-through estimator."""
    alpha = weight.detach().abs().reshape(weight.shape[0], -1).mean(dim=1) if scaled else torch.ones(weight.shape[0])
    binary = torch.where(weight >= 0, 1.0, -1.0) * alpha.reshape(-1, *([1] * (weight.dim() - 1)))
    if not ste:
        return binary
    clipped = weight.clamp(-1.0, 1.0)
    return clipped + (binary - clipped).detach()


class BinaryAct:
    """Forward pre-hook: +-s for signed inputs, {0, s} (threshold s/2) for non-negative ones; clipped STE."""

    hwsim_act_hook = True

    def __init__(self, *, scale: float, signed: bool) -> None:
        self.scale, self.signed = float(scale), bool(signed)

    def binarize(self, x: torch.Tensor) -> torch.Tensor:
        # sign/round/clamp/mul only: the lowering treats them as aliases of the layer input
        if self.signed:
            return torch.sign(x) * self.scale
        return torch.clamp(torch.round(x / self.scale), 0, 1) * self.scale

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x, q = args[0], self.binarize(args[0])
        if module.training:
            clipped = x.clamp(-self.scale if self.signed else 0.0, self.scale)
            q = clipped + (q - clipped).detach()
        return (q, *args[1:])


def calibrate_binary_act(x: torch.Tensor, *, scaled: bool) -> BinaryAct:
    """Signed: s = mean |x| (XNOR) or 1 (BNN). Non-negative: the optimal {0, s} level by Lloyd iterations."""
    if bool(x.min() < 0):
        return BinaryAct(scale=float(x.abs().mean()) if scaled else 1.0, signed=True)
    scale = float(2 * x.mean()) or 1.0
    for _ in range(20):
        upper = x[x >= scale / 2]
        scale = float(upper.mean()) if upper.numel() else scale
    return BinaryAct(scale=scale, signed=False)


def _check_binarize(params: dict[str, Any]) -> None:
    if params.get("scheme", "xnor") not in ("xnor", "bnn"):
        raise ConfigError(f"scheme must be 'xnor' or 'bnn', got {params.get('scheme')!r}")


@register_method("binarize", paper="Rastegari et al., XNOR-Net, ECCV 2016; Hubara et al., Binarized Neural "
                 "Networks, NIPS 2016",
                 params={"scheme": "'xnor' (scaled) or 'bnn' (unscaled) (default xnor)",
                         "keep_first_last": "keep the model's first and last layer at 8 bits (default true)",
                         "epochs": "STE training epochs; 0 = binarize post hoc (default 8)",
                         "lr": "Adam learning rate (default 3e-3)"},
                 family="quantize", applies_to=("conv", "linear"), trainable=True, check=_check_binarize)
def binarize(model: nn.Module, modules: list, *, scheme: str = "xnor", keep_first_last: bool = True,
             epochs: int = 8, lr: float = 3e-3, calib: Any = None, data: Any = None, seed: int = 0) -> StepReport:
    """Binary weights and activations (number_format binary, 1 bit); first/last layer kept at 8 bits."""
    scaled = scheme == "xnor"
    every = compute_modules(model)
    ends = {every[0][0], every[-1][0]} if keep_first_last else set()
    targets = [(p, m) for p, m in modules if p not in ends and op_kind(m) != "depthwise"]
    if not targets:
        raise ConfigError("no layer left to binarize (first/last are kept; select more layers)")
    inputs = layer_inputs(model, [p for p, _ in targets], calib if calib is not None else data[0][:256])
    acts = {}
    for path, module in targets:
        materialize(module)
        acts[path] = calibrate_binary_act(inputs[path], scaled=scaled)
        set_act_hook(module, acts[path])
        parametrize.register_parametrization(module, "weight", SignWeight(scaled))
    trained = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed) if epochs else None
    changes = []
    for path, module in targets:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        with torch.no_grad():
            module.weight.copy_(binary_weight(module.weight, scaled))
        density = float((acts[path].binarize(inputs[path]) != 0).float().mean())
        annotate(module, compression=f"binarize({scheme})", number_format="binary", weight_bits=1, act_bits=1,
                 act_density=density)
        changes.append(change(path, "binarize", number_format="binary", weight_bits=1, act_bits=1,
                              act_scale=acts[path].scale, act_density=density))
    for path, module in modules:
        if path in ends:
            quantize_weight(module, 8)
            annotate(module, compression="binarize(kept 8-bit)", weight_bits=8)
            changes.append(change(path, "kept_8bit", weight_bits=8))
    metrics = (("accuracy", accuracy(model, data[2], data[3])),) if data is not None else ()
    if trained is not None:
        metrics += (("accuracy_training_end", trained),)
    return StepReport(method="binarize", changes=tuple(changes), metrics=metrics)
