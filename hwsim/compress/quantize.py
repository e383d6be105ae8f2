"""Uniform fake quantization (weights and activations), mixed precision, and Flexpoint.

Weights are replaced by their quantized float values, so the model still runs in float. Activations
are quantized by an ``ActQuant`` forward pre-hook on the consuming layer (module paths stay the same
and ``torch.export`` traces it as plain ``div/round/clamp/mul``); its range is calibrated on a batch.
``remove_act_quant(model)`` strips the hooks (the ``hwsim_meta`` bit widths stay).
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch

from hwsim.compress.capture import forward_with_hooks
from hwsim.compress.prune import materialize
from hwsim.compress.recipe import change, require_calib
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.errors import ConfigError


# ----- quantizer arithmetic ------------------------------------------------------------------------
def int_range(bits: int, *, signed: bool, symmetric: bool = True) -> tuple[int, int]:
    """(qmin, qmax) of a ``bits``-bit integer grid; symmetric signed grids drop -2^(b-1)."""
    if not signed:
        return 0, 2 ** bits - 1
    return (-(2 ** (bits - 1)) + int(symmetric), 2 ** (bits - 1) - 1)


def quant_grid(x: torch.Tensor, bits: int, *, symmetric: bool = True, axis: int | None = 0,
               signed: bool = True) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scale, zero point and integer range covering ``x`` (per slice along ``axis``, or per tensor if None)."""
    if axis is None:
        lo, hi = x.min().reshape(1), x.max().reshape(1)
    else:
        flat = x.detach().transpose(0, axis).reshape(x.shape[axis], -1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    if symmetric or not signed:
        qmin, qmax = int_range(bits, signed=signed, symmetric=True)
        peak = torch.maximum(lo.abs(), hi.abs()) if signed else hi.clamp_min(0)
        scale = (peak / qmax).clamp_min(1e-12)
        zero = torch.zeros_like(scale)
    else:
        qmin, qmax = int_range(bits, signed=False)
        lo, hi = lo.clamp_max(0), hi.clamp_min(0)
        scale = ((hi - lo) / qmax).clamp_min(1e-12)
        zero = torch.round(-lo / scale)
    return scale, zero, qmin, qmax


def _broadcast(v: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return v.reshape(shape)


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, qmin: int, qmax: int,
               axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantized float, integer codes minus zero point) of ``x`` on the given grid."""
    s, z = _broadcast(scale, x, axis), _broadcast(zero, x, axis)
    codes = torch.clamp(torch.round(x / s) + z, qmin, qmax)
    return (codes - z) * s, codes - z


def flex_exponent(peak: float, mantissa_bits: int, exponent_bits: int) -> int:
    """Shared Flexpoint exponent: smallest e with peak <= (2^(m-1)-1) * 2^e, clipped to the e-bit range."""
    top = 2 ** (mantissa_bits - 1) - 1
    exp = int(torch.ceil(torch.log2(torch.tensor(max(peak, 1e-30) / top))).item())
    return max(-(2 ** (exponent_bits - 1)), min(2 ** (exponent_bits - 1) - 1, exp))


def essential_bits(codes: torch.Tensor, bits: int) -> float:
    """Mean number of 1 bits in |code| (Bit-Pragmatic's essential bits per value)."""
    mags = codes.detach().abs().to(torch.int64)
    return float(sum(((mags >> b) & 1).sum() for b in range(bits)) / max(mags.numel(), 1))


# ----- activation quantization (forward pre-hook) ---------------------------------------------------
class ActQuant:
    """Forward pre-hook that fake-quantizes a layer's input on a fixed calibrated grid (STE in training)."""

    hwsim_act_hook = True   # marks hwsim activation quantizers (also set by other hook classes)

    def __init__(self, *, scale: float, zero: float, qmin: int, qmax: int, bits: int, number_format: str = "int"):
        self.scale, self.zero, self.qmin, self.qmax = float(scale), float(zero), int(qmin), int(qmax)
        self.bits, self.number_format = int(bits), number_format

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if self.zero == 0:   # symmetric / unsigned grid: no zero-point arithmetic in the exported graph
            return torch.clamp(torch.round(x / self.scale), self.qmin, self.qmax) * self.scale
        codes = torch.clamp(torch.round(x / self.scale) + self.zero, self.qmin, self.qmax)
        return (codes - self.zero) * self.scale

    def __call__(self, module: Any, args: tuple) -> tuple:
        x = args[0]
        q = self.quantize(x)
        if module.training:
            q = x + (q - x).detach()
        return (q, *args[1:])


def remove_act_quant(model: Any) -> int:
    """Remove every ``ActQuant``-like pre-hook from ``model``; returns how many were removed."""
    removed = 0
    for module in model.modules():
        for key in [k for k, hook in module._forward_pre_hooks.items() if getattr(hook, "hwsim_act_hook", False)]:
            del module._forward_pre_hooks[key]
            removed += 1
    return removed


def set_act_hook(module: Any, hook: Any) -> None:
    """Install ``hook`` as the module's only hwsim activation quantizer."""
    for key in [k for k, h in module._forward_pre_hooks.items() if getattr(h, "hwsim_act_hook", False)]:
        del module._forward_pre_hooks[key]
    module.register_forward_pre_hook(hook)


def layer_inputs(model: Any, paths: list[str], calib: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs of modules ``paths`` when ``model`` runs (eval, no grad) on ``calib``."""
    require_calib(calib, "activation calibration")
    store: dict[str, torch.Tensor] = {}
    forward_with_hooks(model, calib, [model.get_submodule(p).register_forward_pre_hook(
        lambda _m, args, p=p: store.__setitem__(p, args[0].detach())) for p in paths])
    return store


def calibrate_act(x: torch.Tensor, bits: int, *, symmetric: bool = False) -> ActQuant:
    """An ``ActQuant`` whose per-tensor grid covers ``x`` (unsigned when ``x`` >= 0)."""
    signed = bool(x.min() < 0)
    scale, zero, qmin, qmax = quant_grid(x, bits, symmetric=symmetric, axis=None, signed=signed)
    return ActQuant(scale=float(scale), zero=float(zero), qmin=qmin, qmax=qmax, bits=bits)


def act_facts(hook: ActQuant, x: torch.Tensor) -> dict[str, float]:
    """Density and essential bits of the quantized activation codes."""
    codes = torch.clamp(torch.round(x / hook.scale) + hook.zero, hook.qmin, hook.qmax) - hook.zero
    return {"act_density": float((codes != 0).float().mean()),
            "act_essential_bits": essential_bits(codes, hook.bits)}


# ----- weight quantization --------------------------------------------------------------------------
def quantize_weight(module: Any, bits: int, *, per_channel: bool = True, symmetric: bool = True) -> float:
    """Fake-quantize ``module.weight`` in place; returns the relative weight error."""
    materialize(module)
    weight = module.weight.data
    axis = 0 if per_channel else None
    scale, zero, qmin, qmax = quant_grid(weight, bits, symmetric=symmetric, axis=axis)
    quantized, _ = fake_quant(weight, scale, zero, qmin, qmax, axis)
    quantized = torch.where(weight == 0, torch.zeros_like(quantized), quantized)   # keep pruned zeros exact
    error = float((quantized - weight).norm() / weight.norm().clamp_min(1e-12))
    module.weight.data.copy_(quantized)
    return error


def _check_bits(value: Any, name: str, *, low: int = 2, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 32:
        raise ConfigError(f"{name} must be an int in [{low}, 32], got {value!r}")


def _check_quantize(params: dict[str, Any]) -> None:
    _check_bits(params.get("weight_bits", 8), "weight_bits", allow_none=True)
    _check_bits(params.get("act_bits"), "act_bits", allow_none=True)


def quantize_layers(model: Any, modules: list, *, weight_bits: int | None, act_bits: int | None,
                    per_channel: bool, symmetric: bool, calib: Any, label: str) -> list:
    """Shared body of ``quantize`` and ``mixed_precision``: weights, then calibrated activations."""
    inputs = layer_inputs(model, [p for p, _ in modules], calib) if act_bits else {}
    changes = []
    for path, module in modules:
        values: dict[str, Any] = {"number_format": "int"}
        if weight_bits:
            values["weight_error"] = quantize_weight(module, weight_bits, per_channel=per_channel, symmetric=symmetric)
            values["weight_bits"] = weight_bits
        if act_bits:
            hook = calibrate_act(inputs[path], act_bits)
            set_act_hook(module, hook)
            values.update(act_bits=act_bits, **act_facts(hook, inputs[path]))
        annotate(module, compression=f"{label}(w{weight_bits or '-'}a{act_bits or '-'})",
                 **{k: v for k, v in values.items() if k != "weight_error"})
        changes.append(change(path, label, **values))
    return changes


_QUANT_PARAMS = {"weight_bits": "weight bits, >= 2 (default 8; null keeps weights)",
                 "act_bits": "activation bits (default null: activations not quantized)",
                 "per_channel": "per output channel weight scales (default true)",
                 "symmetric": "symmetric weight grid (default true)"}


@register_method("quantize", paper="Jacob et al., Quantization and Training of Neural Networks for Efficient "
                 "Integer-Arithmetic-Only Inference, CVPR 2018", params=_QUANT_PARAMS, family="quantize",
                 applies_to=("conv", "depthwise", "linear"), check=_check_quantize)
def quantize(model: Any, modules: list, *, weight_bits: int | None = 8, act_bits: int | None = None,
             per_channel: bool = True, symmetric: bool = True, calib: Any = None) -> StepReport:
    """Uniform k-bit fake quantization of weights (and calibrated activations)."""
    changes = quantize_layers(model, modules, weight_bits=weight_bits, act_bits=act_bits, per_channel=per_channel,
                              symmetric=symmetric, calib=calib, label="quantize")
    return StepReport(method="quantize", changes=tuple(changes))


def _lookup(table: Any, path: str) -> int | None:
    if table is None or isinstance(table, int):
        return table
    return next((bits for glob, bits in table.items() if fnmatch.fnmatchcase(path, glob)), None)


def _check_mixed(params: dict[str, Any]) -> None:
    for name in ("weight_bits", "act_bits"):
        table = params.get(name)
        if table is not None and not isinstance(table, (dict, int)):
            raise ConfigError(f"{name} must map layer globs to bits, got {table!r}")
        for bits in (table.values() if isinstance(table, dict) else [table]):
            _check_bits(bits, f"{name} entry", allow_none=True)
    if params.get("weight_bits") is None and params.get("act_bits") is None:
        raise ConfigError("mixed_precision needs weight_bits and/or act_bits tables")


@register_method("mixed_precision", paper="Wang et al., HAQ: Hardware-Aware Automated Quantization with Mixed "
                 "Precision, CVPR 2019 (per-layer bit widths)",
                 params={"weight_bits": "{layer glob: bits} (first match wins; unmatched layers unchanged)",
                         "act_bits": "{layer glob: bits} for activations (optional)",
                         "per_channel": "per output channel weight scales (default true)",
                         "symmetric": "symmetric weight grid (default true)"},
                 family="quantize", applies_to=("conv", "depthwise", "linear"), check=_check_mixed)
def mixed_precision(model: Any, modules: list, *, weight_bits: Any = None, act_bits: Any = None,
                    per_channel: bool = True, symmetric: bool = True, calib: Any = None) -> StepReport:
    """Per-layer bit widths from glob tables."""
    changes = []
    for path, module in modules:
        wbits, abits = _lookup(weight_bits, path), _lookup(act_bits, path)
        if wbits is None and abits is None:
            continue
        changes += quantize_layers(model, [(path, module)], weight_bits=wbits, act_bits=abits,
                                   per_channel=per_channel, symmetric=symmetric, calib=calib,
                                   label="mixed_precision")
    return StepReport(method="mixed_precision", changes=tuple(changes))


# ----- Flexpoint (Koster et al. 2017) ---------------------------------------------------------------
def _check_flex(params: dict[str, Any]) -> None:
    _check_bits(params.get("mantissa_bits", 16), "mantissa_bits")
    _check_bits(params.get("exponent_bits", 5), "exponent_bits", low=1)


@register_method("flexpoint", paper="Koster et al., Flexpoint: An Adaptive Numerical Format for Efficient "
                 "Training of Deep Neural Networks, NIPS 2017",
                 params={"mantissa_bits": "mantissa bits (default 16)", "exponent_bits": "shared exponent bits "
                         "(default 5)", "activations": "also put layer inputs on a calibrated flex grid (default true)"},
                 family="quantize", applies_to=("conv", "depthwise", "linear"), check=_check_flex)
def flexpoint(model: Any, modules: list, *, mantissa_bits: int = 16, exponent_bits: int = 5,
              activations: bool = True, calib: Any = None) -> StepReport:
    """flex16+5: per-tensor shared exponent, integer mantissas (number_format flex), each tensor's
    exponent kept by Autoflex (``hwsim.compress.autoflex``): the weights' after every optimizer step
    (``requantize_flex_weights``), the layer inputs' on every training forward."""
    from hwsim.compress.autoflex import Autoflex, AutoflexActQuant

    inputs = layer_inputs(model, [p for p, _ in modules], calib) if activations else {}
    top = 2 ** (mantissa_bits - 1) - 1
    changes = []
    for path, module in modules:
        materialize(module)
        weights = Autoflex(mantissa_bits=mantissa_bits, exponent_bits=exponent_bits)
        module.weight.data = weights.quantize(module.weight.data)
        module.hwsim_autoflex = weights
        values: dict[str, Any] = {"weight_exponent": weights.exponent}
        if activations:
            acts = Autoflex(mantissa_bits=mantissa_bits, exponent_bits=exponent_bits)
            acts.quantize(inputs[path])                 # the calibration batch starts the history
            set_act_hook(module, AutoflexActQuant(acts))
            grid = ActQuant(scale=2.0 ** acts.exponent, zero=0, qmin=-top, qmax=top, bits=mantissa_bits,
                            number_format="flex")
            values.update(act_exponent=acts.exponent, act_bits=mantissa_bits, **act_facts(grid, inputs[path]))
        label = f"flex{mantissa_bits}+{exponent_bits}"
        annotate(module, compression=f"flexpoint({label})", number_format="flex", weight_bits=mantissa_bits,
                 act_bits=values.get("act_bits"), act_density=values.get("act_density"),
                 act_essential_bits=values.get("act_essential_bits"))
        changes.append(change(path, "flexpoint", number_format="flex", weight_bits=mantissa_bits, **values))
    return StepReport(method="flexpoint", changes=tuple(changes))
