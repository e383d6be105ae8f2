"""Mask pruning that keeps layer shapes: unstructured magnitude, N:M and block sparsity.

Weights are viewed as the ``(K, C/G*R*S)`` matrix the IR's ``weight_mask`` uses (torch's
``(c, r, s)`` flattening order); pruned weights become real zeros. Channel pruning lives in
``channel_prune`` / ``channel_recon``, trainable pruning in ``train_prune`` / ``train_sparse``.
"""

from __future__ import annotations

from typing import Any

import torch

from hwsim.compress.recipe import change
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.errors import ConfigError


# ----- shared helpers (also used by channel_prune / train_prune) -------------------------------------
def materialize(module: Any) -> None:
    """Fold a ``torch.nn.utils.prune`` mask into the weight so zeros are real (no-op otherwise)."""
    from torch.nn.utils import prune

    if hasattr(module, "weight_orig"):
        prune.remove(module, "weight")


def weight_matrix(module: Any) -> torch.Tensor:
    """The weight as ``(K, C/G*R*S)`` (a view; writes go to the module)."""
    materialize(module)
    return module.weight.data.reshape(module.weight.shape[0], -1)


def density(module: Any) -> float:
    return float((module.weight.data != 0).float().mean())


def apply_mask(path: str, module: Any, mask: torch.Tensor, *, method: str, label: str,
               sparsity: dict[str, Any]) -> Any:
    """Zero the weights where ``mask`` (shaped like the weight matrix) is False; annotate; report."""
    with torch.no_grad():
        weight_matrix(module).mul_(mask.to(module.weight.dtype))
    dens = density(module)
    annotate(module, compression=f"{method}({label})", weight_density=dens, sparsity=dict(sparsity))
    return change(path, method, density=dens, structure=label)


def _check_fraction(value: Any, name: str) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a fraction in [0, 1), got {value!r}")


def _keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` largest entries of a flat score tensor (ties broken by index)."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(scores.flatten(), keep, sorted=False).indices] = True
    return mask.reshape(scores.shape)


# ----- unstructured magnitude (Han et al. 2015) ------------------------------------------------------
def _check_magnitude(params: dict[str, Any]) -> None:
    _check_fraction(params.get("sparsity", 0.5), "sparsity")
    if params.get("scope", "layer") not in ("layer", "global"):
        raise ConfigError(f"scope must be 'layer' or 'global', got {params.get('scope')!r}")
    for name in ("retrain_epochs", "iterations"):
        value = params.get(name, 1 if name == "iterations" else 0)
        if not isinstance(value, int) or value < (1 if name == "iterations" else 0):
            raise ConfigError(f"{name} must be an integer >= {1 if name == 'iterations' else 0}, got {value!r}")


def magnitude_masks(mats: list[torch.Tensor], sparsity: float, scope: str) -> list[torch.Tensor]:
    """Keep-masks of the largest |w|: ``sparsity`` of each matrix (layer) or of all of them (global)."""
    if scope == "global":
        flat = torch.cat([w.flatten() for w in mats])
        keep = flat.numel() - int(round(sparsity * flat.numel()))
        masks = list(torch.split(_keep_top(flat, keep), [w.numel() for w in mats]))
        return [mask.reshape(w.shape) for mask, w in zip(masks, mats)]
    return [_keep_top(w, w.numel() - int(round(sparsity * w.numel()))) for w in mats]


@register_method("magnitude_prune", paper="Han et al., Learning both Weights and Connections, NIPS 2015",
                 params={"sparsity": "fraction of weights zeroed (default 0.5)",
                         "scope": "'layer' (each layer to the sparsity) or 'global' (one threshold; default layer)",
                         "retrain_epochs": "retraining after each pruning step, pruned weights held at zero "
                                           "(Han et al. Sec. 3; default 0: prune only)",
                         "iterations": "prune -> retrain rounds, sparsity rising evenly to the target (default 1)"},
                 family="prune", applies_to=("conv", "depthwise", "linear"), check=_check_magnitude)
def magnitude_prune(model: Any, modules: list, *, sparsity: float = 0.5, scope: str = "layer",
                    retrain_epochs: int = 0, iterations: int = 1, data: Any = None, seed: int = 0) -> StepReport:
    """Zero the smallest-magnitude weights (per layer or one global threshold); with ``retrain_epochs``,
    Han et al.'s prune -> retrain, ``iterations`` times at rising sparsity."""
    from hwsim.data import finetune

    metrics: tuple[tuple[str, float], ...] = ()
    for step in range(1, iterations + 1):
        target = sparsity * step / iterations
        for (_, module), mask in zip(modules, magnitude_masks([weight_matrix(m).abs() for _, m in modules],
                                                              target, scope)):
            with torch.no_grad():
                weight_matrix(module).mul_(mask.to(module.weight.dtype))
        if retrain_epochs:
            metrics = (("accuracy", finetune(model, data, epochs=retrain_epochs, seed=seed + step)),)
    label = f"{sparsity:g},{scope}" + (f",retrain {iterations}x{retrain_epochs}" if retrain_epochs else "")
    changes = [apply_mask(p, m, weight_matrix(m) != 0, method="magnitude_prune", label=label,
                          sparsity={"kind": "unstructured"}) for p, m in modules]
    return StepReport(method="magnitude_prune", changes=tuple(changes), metrics=metrics)


# ----- N:M along the reduction axis --------------------------------------------------------------------
def _check_nm(params: dict[str, Any]) -> None:
    n, m = params.get("n", 2), params.get("m", 4)
    if not all(isinstance(v, int) for v in (n, m)) or m < 1 or not 1 <= n <= m:
        raise ConfigError(f"N:M needs integers 1 <= n <= m, got n={n!r}, m={m!r}")


def nm_mask(matrix: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest |w| in every ``m`` consecutive weights of each row (row length % m == 0)."""
    rows, cols = matrix.shape
    groups = matrix.abs().reshape(rows, cols // m, m)
    top = torch.topk(groups, n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
    return mask.reshape(rows, cols)


@register_method("nm_prune", paper="Mishra et al., Accelerating Sparse Deep Neural Networks (NVIDIA 2:4), 2021",
                 params={"n": "nonzeros kept per group (default 2)", "m": "group length along C/G*R*S (default 4)"},
                 family="prune", applies_to=("conv", "linear"), check=_check_nm)
def nm_prune(model: Any, modules: list, *, n: int = 2, m: int = 4) -> StepReport:
    """N:M structured sparsity; layers whose reduction length is not a multiple of m are skipped."""
    changes = []
    for path, module in modules:
        matrix = weight_matrix(module)
        if matrix.shape[1] % m:
            changes.append(change(path, "skipped", reason=f"reduction length {matrix.shape[1]} not a multiple of {m}"))
            continue
        changes.append(apply_mask(path, module, nm_mask(matrix, n, m), method="nm_prune", label=f"{n}:{m}",
                                  sparsity={"kind": "n:m", "n": n, "m": m}))
    return StepReport(method="nm_prune", changes=tuple(changes))


# ----- weight-block sparsity (block masks over the weight matrix) --------------------------------------
def _check_block(params: dict[str, Any]) -> None:
    _check_fraction(params.get("sparsity", 0.5), "sparsity")
    block = params.get("block", [4, 4])
    if not (isinstance(block, (list, tuple)) and len(block) == 2 and all(isinstance(b, int) and b >= 1 for b in block)):
        raise ConfigError(f"block must be two positive ints [rows, cols], got {block!r}")


def block_mask(matrix: torch.Tensor, block: tuple[int, int], sparsity: float) -> torch.Tensor:
    """Zero the ``sparsity`` fraction of (bh, bw) blocks with the smallest mean |w| (edge blocks padded)."""
    bh, bw = block
    rows, cols = matrix.shape
    padded = torch.nn.functional.pad(matrix.abs(), (0, -cols % bw, 0, -rows % bh))
    grid = padded.reshape(padded.shape[0] // bh, bh, padded.shape[1] // bw, bw).mean(dim=(1, 3))
    keep = grid.numel() - int(round(sparsity * grid.numel()))
    keep_blocks = _keep_top(grid, keep)
    full = keep_blocks.repeat_interleave(bh, dim=0).repeat_interleave(bw, dim=1)
    return full[:rows, :cols]


# not SBNet (Ren et al., CVPR 2018), whose blocks are tiles of *activations*: these are weight blocks
@register_method("block_prune", paper="Narang, Undersander, Diamos, Block-Sparse Recurrent Neural Networks, "
                 "arXiv:1711.02782, 2017 (weight-block pruning)",
                 params={"sparsity": "fraction of blocks zeroed (default 0.5)",
                         "block": "block shape [rows (K), cols (C/G*R*S)] (default [4, 4])"},
                 family="prune", applies_to=("conv", "linear"), check=_check_block)
def block_prune(model: Any, modules: list, *, sparsity: float = 0.5, block: Any = (4, 4)) -> StepReport:
    """Block sparsity: whole (bh, bw) tiles of the weight matrix zeroed by block magnitude."""
    bh, bw = int(block[0]), int(block[1])
    changes = [apply_mask(p, m, block_mask(weight_matrix(m), (bh, bw), sparsity), method="block_prune",
                          label=f"{bh}x{bw},{sparsity:g}", sparsity={"kind": "block", "block": [bh, bw]})
               for p, m in modules]
    return StepReport(method="block_prune", changes=tuple(changes))

