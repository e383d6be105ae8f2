"""Autoflex: Flexpoint's exponent management (Köster et al., "Flexpoint: An Adaptive Numerical Format
for Efficient Training of Deep Neural Networks", NIPS 2017, Sec. 3).

A flex tensor has integer mantissas and one shared exponent. The exponent must be fixed *before* the
tensor is computed, so Autoflex predicts it from a history of the tensor's recent maxima: the next
maximum is estimated as mean + ``sigmas`` x standard deviation of the history, times a ``margin``, and the
exponent is the smallest one whose mantissa range covers that estimate. When the actual maximum still
overflows, the exponent is raised to fit and the tensor is recomputed (counted in ``overflows``).

The history length, the number of standard deviations and the margin are hwsim's defaults (16, 3, 2x);
the mechanism (a history of maxima, a statistical prediction, overflow handling) is the paper's.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch

from hwsim.compress.quantize import flex_exponent

HISTORY = 16      # maxima kept per tensor (assumption; the paper keeps "a fixed-length dequeue")
SIGMAS = 3.0      # standard deviations of headroom above the mean maximum (assumption)
MARGIN = 2.0      # multiplicative safety factor on the prediction (assumption)


class Autoflex:
    """Shared-exponent manager of one tensor; ``quantize`` puts a new value of it on the flex grid."""

    def __init__(self, *, mantissa_bits: int = 16, exponent_bits: int = 5, history: int = HISTORY,
                 sigmas: float = SIGMAS, margin: float = MARGIN) -> None:
        if history < 1 or sigmas < 0 or margin < 1:
            raise ValueError(f"Autoflex needs history >= 1, sigmas >= 0, margin >= 1 "
                             f"(got {history}, {sigmas}, {margin})")
        self.mantissa_bits, self.exponent_bits = int(mantissa_bits), int(exponent_bits)
        self.sigmas, self.margin = float(sigmas), float(margin)
        self.maxima: deque[float] = deque(maxlen=int(history))
        self.exponent: int | None = None
        self.steps = 0
        self.overflows = 0

    @property
    def top(self) -> int:
        """Largest mantissa magnitude."""
        return 2 ** (self.mantissa_bits - 1) - 1

    def predicted_exponent(self) -> int | None:
        """The exponent for the next value from the history (None before the first value)."""
        if not self.maxima:
            return None
        mean = sum(self.maxima) / len(self.maxima)
        std = math.sqrt(sum((m - mean) ** 2 for m in self.maxima) / len(self.maxima))
        return flex_exponent((mean + self.sigmas * std) * self.margin, self.mantissa_bits, self.exponent_bits)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the predicted grid; an overflow raises the exponent to fit (one recomputation)."""
        peak = float(x.detach().abs().max()) if x.numel() else 0.0
        exp = self.predicted_exponent()
        if exp is None:                                   # first value: its own maximum sets the exponent
            exp = flex_exponent(peak, self.mantissa_bits, self.exponent_bits)
        elif peak > self.top * 2.0 ** exp:
            self.overflows += 1
            exp = max(exp, flex_exponent(peak, self.mantissa_bits, self.exponent_bits))
        self.maxima.append(peak)
        self.exponent = exp
        self.steps += 1
        return self.apply(x)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the current grid (no history update: eval and export use the frozen exponent)."""
        if self.exponent is None:
            raise ValueError("Autoflex has no exponent yet: quantize a value first")
        scale = 2.0 ** self.exponent
        return torch.clamp(torch.round(x / scale), -self.top, self.top) * scale


class AutoflexActQuant:
    """Forward pre-hook: the layer input on an Autoflex grid, adapted every training step (STE)."""

    hwsim_act_hook = True   # an hwsim activation quantizer (see hwsim.compress.quantize.remove_act_quant)

    def __init__(self, manager: Autoflex) -> None:
        self.manager = manager
        self.bits, self.number_format = manager.mantissa_bits, "flex"

    def __call__(self, module: Any, args: tuple) -> tuple:
        x = args[0]
        if module.training:
            q = self.manager.quantize(x)
            q = x + (q - x).detach()
        else:
            q = self.manager.apply(x)
        return (q, *args[1:])


def requantize_flex_weights(model: Any) -> int:
    """Put every flex weight back on its Autoflex grid (run after each optimizer step); returns how many."""
    count = 0
    for module in model.modules():
        manager = getattr(module, "hwsim_autoflex", None)
        if manager is not None:
            with torch.no_grad():
                module.weight.data.copy_(manager.quantize(module.weight.data))
            count += 1
    return count
