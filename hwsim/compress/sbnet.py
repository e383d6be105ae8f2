"""SBNet: sparsity over blocks of activations (Ren, Pokrovsky, Yang, Urtasun, "SBNet: Sparse Blocks
Network for Fast Inference", CVPR 2018).

A computation mask over the output plane is reduced to tiles; only active tiles are computed: the
input tiles they need (with the filter's halo) are *gathered* into a dense batch, convolved densely,
and *scattered* back. The method picks the active output tiles of each conv from a calibration batch
(the tiles with the largest mean |output|), zeroes the others in the model (a fixed output mask, so
fidelity measures the dropped tiles), and annotates the layer; lowering then emits the three steps
(``hwsim.interop.torch_lower``), so every engine sees fewer dense MACs plus the gather/scatter traffic.

SBNet computes its mask per input (from a road map or a cheap network); here it is frozen from the
calibration batch, which prices the hardware side exactly for a given active fraction.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hwsim.compress.capture import forward_with_hooks
from hwsim.compress.prune import _check_fraction, _keep_top
from hwsim.compress.recipe import change, require_calib
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.errors import ConfigError


def _check(params: dict[str, Any]) -> None:
    _check_fraction(params.get("sparsity", 0.5), "sparsity")
    block = params.get("block", [8, 8])
    if not (isinstance(block, (list, tuple)) and len(block) == 2 and all(isinstance(b, int) and b >= 1 for b in block)):
        raise ConfigError(f"block must be two positive ints [rows, cols] of output pixels, got {block!r}")


class TileMask:
    """Forward hook zeroing the inactive output tiles (a constant: lowering fuses the multiply)."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, _module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output * self.mask


def tile_mask(output: torch.Tensor, block: tuple[int, int], sparsity: float) -> tuple[torch.Tensor, int, int]:
    """(P x Q float mask of the active tiles, active tiles, all tiles) keeping the tiles of largest mean |y|."""
    bh, bw = block
    rows, cols = output.shape[-2:]
    tiles_h, tiles_w = math.ceil(rows / bh), math.ceil(cols / bw)
    score = nn.functional.avg_pool2d(output.detach().abs().mean(dim=(0, 1), keepdim=True), (bh, bw),
                                     ceil_mode=True)[0, 0]
    total = tiles_h * tiles_w
    keep = max(1, total - int(round(sparsity * total)))
    active = _keep_top(score, keep)
    full = active.repeat_interleave(bh, dim=0).repeat_interleave(bw, dim=1)[:rows, :cols]
    return full.to(output.dtype), keep, total


@register_method("sbnet", paper="Ren, Pokrovsky, Yang, Urtasun, SBNet: Sparse Blocks Network for Fast Inference, "
                 "CVPR 2018", params={"sparsity": "fraction of output tiles skipped (default 0.5)",
                                      "block": "output tile [rows, cols] in pixels (default [8, 8])"},
                 family="prune", applies_to=("conv",), check=_check)
def sbnet(model: Any, modules: list, *, sparsity: float = 0.5, block: Any = (8, 8), calib: Any = None) -> StepReport:
    """Skip the ``sparsity`` fraction of each conv's output tiles (gather -> dense conv -> scatter)."""
    require_calib(calib, "sbnet (the active tiles come from a calibration batch)")
    bh, bw = int(block[0]), int(block[1])
    outputs: dict[str, torch.Tensor] = {}
    order: list[Any] = []                     # modules in call order: a conv's BatchNorm comes right after it
    forward_with_hooks(model, calib, [m.register_forward_hook(
        lambda _m, _i, out, p=p: outputs.__setitem__(p, out.detach())) for p, m in modules] + [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in model.modules()
        if not list(m.children())])
    changes = []
    for path, module in modules:
        mask, keep, total = tile_mask(outputs[path], (bh, bw), sparsity)
        after = order[order.index(module) + 1] if module in order[:-1] else None
        norm = after if isinstance(after, nn.BatchNorm2d) and after.num_features == module.out_channels else None
        (norm or module).register_forward_hook(TileMask(mask))   # inactive tiles are zero after the norm
        label = f"{bh}x{bw},{keep}/{total}"
        annotate(module, compression=f"sbnet({label})", tiles={"block": [bh, bw], "active": keep})
        changes.append(change(path, "sbnet", block=[bh, bw], active_tiles=keep, tiles=total,
                              tile_density=keep / total))
    return StepReport(method="sbnet", changes=tuple(changes))
