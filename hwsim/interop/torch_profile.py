"""Operand statistics of a torch model on a calibration batch, recorded per layer at lowering.

Dense engines that gate or skip zero activations (Eyeriss, SCNN, EIE, Cambricon-X) need the real
input-activation density of each layer, and Bit-Pragmatic (Albericio et al., MICRO 2017) needs the
essential (non-zero) bits per activation. Neither can be read off the weights, so lowering runs the
model once on a calibration batch with forward pre-hooks on its conv/linear modules and records:

* ``act_density``: fraction of the layer's input values that are non-zero (ReLU zeros, pruned channels);
* ``act_essential_hist``: at every width ``b`` in 1..``PROFILE_BITS`` (entry ``b - 1``), the fraction
  of input values with 0..b essential bits, so the engine reads the width the hardware runs at and
  the lock-step groups of Pragmatic wait for the slowest lane (``Layer.essential_bits_at``);
* ``weight_essential_hist``: the same for the weights.

Values are quantized per tensor as sign-magnitude fixed point: a signed tensor keeps ``b - 1``
magnitude bits, a non-negative one (after ReLU) all ``b``; max |x| maps to the largest code, as the
Pragmatic paper's fixed-point profiles do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROFILE_BITS = 16      # widths 1..16 cover every preset's native width (the widest is 16-bit)
_MAX_VALUES = 1 << 16  # essential bits from at most this many values per tensor (an even stride beyond);
                       # a mean's standard error is then below 0.02 bits


def essential_histograms(values: np.ndarray, *, max_bits: int = PROFILE_BITS) -> tuple[tuple[float, ...], ...]:
    """Per width 1..``max_bits``: fractions of values with 0..b essential bits (sign-magnitude codes)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    top = float(np.abs(flat).max()) if flat.size else 0.0     # the scale comes from the whole tensor
    signed = bool(flat.size and flat.min() < 0)
    if flat.size > _MAX_VALUES:
        flat = flat[:: -(-flat.size // _MAX_VALUES)]
    mags = np.abs(flat)
    out = []
    for bits in range(1, max_bits + 1):
        magnitude_bits = bits - 1 if signed else bits
        if top == 0.0 or magnitude_bits < 1 or not mags.size:
            out.append((1.0,) + (0.0,) * bits)
            continue
        codes = np.rint(mags / top * ((1 << magnitude_bits) - 1)).astype(np.uint64)
        counts = np.bincount(np.bitwise_count(codes), minlength=bits + 1)[: bits + 1]
        out.append(tuple(round(float(c), 6) for c in counts / mags.size))
    return tuple(out)


def operand_profile(model: Any, sample: Any, paths: set[str]) -> dict[str, dict[str, Any]]:
    """``{module path: {act_density, act_essential_hist, weight_essential_hist}}`` for the
    conv/linear modules in ``paths`` when ``model`` runs (eval, no grad) on ``sample``.

    A module called more than once pools all its calls' inputs.
    """
    import torch
    from torch import nn

    from hwsim.compress.capture import forward_with_hooks

    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear)
    modules = {p: m for p, m in model.named_modules() if p in paths and isinstance(m, kinds)}
    seen: dict[str, list[np.ndarray]] = {p: [] for p in modules}

    def hook(path: str):
        def record(_module: Any, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen[path].append(args[0].detach().float().cpu().numpy().ravel())
        return record

    forward_with_hooks(model, sample, [m.register_forward_pre_hook(hook(p)) for p, m in modules.items()])
    out: dict[str, dict[str, Any]] = {}
    for path, module in modules.items():
        if not seen[path]:
            continue
        acts = np.concatenate(seen[path])
        entry: dict[str, Any] = {"act_density": float(np.count_nonzero(acts)) / acts.size,
                                 "act_essential_hist": essential_histograms(acts)}
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and not weight.is_meta and weight.numel():
            entry["weight_essential_hist"] = essential_histograms(weight.detach().float().cpu().numpy())
        out[path] = entry
    return out
