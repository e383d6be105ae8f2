"""Gradient compression for distributed training: QSGD (Alistarh et al., NIPS 2017) and TernGrad
(Wen et al., NIPS 2017), with the exact number of bits each encoded gradient costs.

A ``GradientCompressor`` plugs into a training loop (``hwsim.compress.distill.fit(grad_compression=...)``):
after ``backward()`` it replaces every gradient by its decoded stochastic quantization (what a parameter
server would receive from one worker) and counts the bits sent, so the hardware side can price the
communication of a distributed training step (``bits_per_step``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hwsim.errors import ConfigError
from hwsim.models.comm import FLOAT_BITS, elias_omega_bits

@dataclass(frozen=True)
class CompressedGradient:
    """A decoded gradient and the bits its encoding costs."""

    values: torch.Tensor      # decoded gradient (same shape as the input), unbiased estimate of it
    bits: int                 # encoded size: Elias-coded for QSGD (paper sec. 3.2), 2 bits/elem for TernGrad
    bits_fixed: int           # fixed-width encoding (sign + level bits per element, + scalars)
    dense_bits: int           # the fp32 gradient

    @property
    def compression_ratio(self) -> float:
        return self.dense_bits / max(self.bits, 1)


def _uniform(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def qsgd(grad: torch.Tensor, *, levels: int, bucket_size: int | None = None,
         generator: torch.Generator | None = None) -> CompressedGradient:
    """QSGD with ``levels`` = s quantization levels per bucket (Alistarh et al. 2017, eq. (1)).

    Each bucket of ``bucket_size`` consecutive elements (default: the whole tensor) is sent as its 2-norm
    and, per element, a sign and a level in {0..s}; decoding gives ``norm * sign * level / s``.
    """
    if levels < 1:
        raise ConfigError(f"qsgd: levels must be >= 1, got {levels}")
    flat = grad.detach().reshape(-1)
    n = flat.numel()
    size = int(bucket_size or n) or 1
    pad = (-n) % size
    buckets = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, size)
    norms = buckets.norm(dim=1, keepdim=True)
    scaled = buckets.abs() / norms.clamp_min(torch.finfo(flat.dtype).tiny) * levels
    lower = scaled.floor()
    level = lower + (_uniform(scaled.shape, generator, flat) < (scaled - lower)).to(flat.dtype)
    decoded = (norms * torch.sign(buckets) * level / levels).reshape(-1)[:n].reshape(grad.shape)
    n_buckets = buckets.shape[0]
    bits_fixed = n_buckets * FLOAT_BITS + n * (1 + math.ceil(math.log2(levels + 1)))
    levels_np = level.reshape(-1)[:n].to(torch.int64).cpu().numpy()
    nonzero = np.flatnonzero(levels_np)
    gaps = np.diff(np.concatenate([[-1], nonzero]))
    bits = (n_buckets * FLOAT_BITS + elias_omega_bits(gaps) + nonzero.size
            + elias_omega_bits(levels_np[nonzero]))
    return CompressedGradient(values=decoded, bits=int(bits), bits_fixed=int(bits_fixed), dense_bits=n * FLOAT_BITS)


def terngrad(grad: torch.Tensor, *, clip_sigma: float | None = None,
             generator: torch.Generator | None = None) -> CompressedGradient:
    """TernGrad: ``s * sign(g) * Bernoulli(|g| / s)`` with ``s = max|g|`` per tensor (Wen et al. 2017, eq. (3)).

    ``clip_sigma`` (the paper uses 2.5) clips to ``c * std(g)`` first; that trades bias for variance.
    """
    g = grad.detach()
    if clip_sigma is not None:
        bound = float(clip_sigma) * float(g.std()) if g.numel() > 1 else float(g.abs().max())
        g = g.clamp(-bound, bound)
    scale = g.abs().max()
    prob = g.abs() / scale.clamp_min(torch.finfo(g.dtype).tiny)
    keep = (_uniform(g.shape, generator, g) < prob).to(g.dtype)
    n = g.numel()
    bits = FLOAT_BITS + 2 * n                 # one fp32 scaler + 2 bits per ternary element
    return CompressedGradient(values=scale * torch.sign(g) * keep, bits=bits, bits_fixed=bits,
                              dense_bits=n * FLOAT_BITS)


def parse_spec(spec: str) -> dict:
    """``"qsgd:B"`` (B bits per element: s = 2^(B-1) - 1 levels), ``"qsgd:s=16"``, ``"terngrad"``, ``"none"``."""
    name, _, arg = str(spec).partition(":")
    name = name.strip().lower()
    if name in ("none", ""):
        return {"kind": "none"}
    if name == "terngrad":
        return {"kind": "terngrad", "clip_sigma": float(arg) if arg else None}
    if name == "qsgd":
        try:
            if arg.startswith("s="):
                levels = int(arg[2:])
            else:
                levels = 2 ** (int(arg or 8) - 1) - 1
        except ValueError:
            levels = 0
        if levels < 1:
            raise ConfigError(f"grad_compression {spec!r}: use qsgd:<bits >= 2> or qsgd:s=<levels >= 1>")
        return {"kind": "qsgd", "levels": levels}
    raise ConfigError(f"grad_compression {spec!r}: unknown scheme; use qsgd:<bits>, qsgd:s=<levels>, terngrad, none")


class GradientCompressor:
    """Replaces each parameter gradient by its decoded quantization and counts bits per step."""

    def __init__(self, spec: str, *, seed: int = 0, bucket_size: int | None = None):
        self.spec = parse_spec(spec)
        self.bucket_size = bucket_size
        self.generator = torch.Generator().manual_seed(int(seed))
        self.steps = 0
        self.total_bits = 0
        self.total_dense_bits = 0

    def __call__(self, model: torch.nn.Module) -> int:
        """Compress the gradients of ``model`` in place; return this step's bits."""
        kind, step_bits = self.spec["kind"], 0
        for param in model.parameters():
            if param.grad is None:
                continue
            if kind == "none":
                step_bits += param.numel() * FLOAT_BITS
                self.total_dense_bits += param.numel() * FLOAT_BITS
                continue
            if kind == "qsgd":
                out = qsgd(param.grad, levels=self.spec["levels"], bucket_size=self.bucket_size,
                           generator=self.generator)
            else:
                out = terngrad(param.grad, clip_sigma=self.spec["clip_sigma"], generator=self.generator)
            param.grad.copy_(out.values)
            step_bits += out.bits
            self.total_dense_bits += out.dense_bits
        self.steps += 1
        self.total_bits += step_bits
        return step_bits

    @property
    def bits_per_step(self) -> float:
        return self.total_bits / max(self.steps, 1)

    @property
    def dense_bits_per_step(self) -> float:
        return self.total_dense_bits / max(self.steps, 1)


def _train_with(spec: str, model, *, epochs: int, lr: float, bucket_size: int | None, data, seed: int):
    from hwsim.compress.distill import fit   # lazy: distill imports this module
    from hwsim.compress.registry import LayerChange, StepReport

    if data is None:
        raise ConfigError(f"{spec}: training needs data=(x_train, y_train, x_test, y_test)")
    compressor = GradientCompressor(spec, seed=seed, bucket_size=bucket_size)
    result = fit(model, data, loss="ce", epochs=epochs, lr=lr, seed=seed, grad_compression=compressor)
    metrics = (("accuracy", result.accuracy), ("bits_per_step", result.bits_per_step),
               ("dense_bits_per_step", result.dense_bits_per_step), ("steps", float(result.steps)))
    return StepReport(method=spec.partition(":")[0], metrics=metrics,
                      changes=(LayerChange(module="", change=f"trained({spec})", values=metrics),))


_TRAIN_PARAMS = {"epochs": "training epochs with compressed gradients (default 3)",
                 "lr": "Adam learning rate (default 0.01)"}


def _register() -> None:
    from hwsim.compress.registry import register_method

    @register_method("qsgd", family="train", trainable=True,
                     paper="Alistarh et al., QSGD: Communication-Efficient SGD via Gradient Quantization and "
                     "Encoding, NIPS 2017",
                     params={"bits": "bits per element incl. sign: s = 2^(bits-1) - 1 levels (default 4)",
                             "levels": "QSGD levels s (overrides bits)", "bucket_size": "elements per norm "
                             "(default: whole tensor)", **_TRAIN_PARAMS})
    def qsgd_method(model, modules, *, bits: int = 4, levels: int | None = None, bucket_size: int | None = None,
                    epochs: int = 3, lr: float = 1e-2, data=None, seed: int = 0):
        """Train the model with QSGD-quantized gradients; report accuracy and bits per step."""
        spec = f"qsgd:s={levels}" if levels is not None else f"qsgd:{bits}"
        return _train_with(spec, model, epochs=epochs, lr=lr, bucket_size=bucket_size, data=data, seed=seed)

    @register_method("terngrad", family="train", trainable=True,
                     paper="Wen et al., TernGrad: Ternary Gradients to Reduce Communication in Distributed Deep "
                     "Learning, NIPS 2017",
                     params={"clip_sigma": "clip gradients to c * std first (paper: 2.5; default off)",
                             **_TRAIN_PARAMS})
    def terngrad_method(model, modules, *, clip_sigma: float | None = None, epochs: int = 3, lr: float = 1e-2,
                        data=None, seed: int = 0):
        """Train the model with ternary gradients; report accuracy and bits per step."""
        spec = "terngrad" + (f":{clip_sigma}" if clip_sigma is not None else "")
        return _train_with(spec, model, epochs=epochs, lr=lr, bucket_size=None, data=data, seed=seed)


_register()
