"""Filter/channel pruning that really removes channels: L1-norm filters, ThiNet, He et al. 2017.

A selected layer is a *producer* when its output reaches exactly one consumer conv/linear through
channel-wise ops only (BN, activations, pooling, depthwise convs, flatten); that is a ResNet block's
conv1, a MobileNetV2 expansion conv and a ShuffleNetV2 branch2 bottleneck. Removing producer
channel ``c`` removes filter ``c`` of the producer, entry ``c`` of every BN / depthwise in between
and input channel ``c`` of the consumer, so shapes stay consistent without a dependency graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.compress.prune import _check_fraction, materialize
from hwsim.compress.recipe import change
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.errors import ConfigError

_PASS_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.Hardtanh,
                 nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d)
_PASS_FUNCS = {F.relu, F.relu6, torch.relu, torch.sigmoid, torch.tanh, F.dropout, F.hardtanh, F.silu, F.gelu,
               F.leaky_relu, F.hardswish, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clamp"}
_FLATTEN_METHODS = {"flatten", "view", "reshape", "mean"}


@dataclass(frozen=True)
class Chain:
    """Producer -> (BN | depthwise | activation)* -> consumer, by module path."""

    producer: str
    norms: tuple[str, ...]
    depthwise: tuple[str, ...]
    consumer: str


def _data_users(node: Any) -> list[Any]:
    # ``x.size(0)`` / ``x.shape`` read only the shape; they do not consume the channels.
    return [u for u in node.users if not (u.op == "call_method" and u.target in ("size", "dim"))
            and not (u.op == "call_function" and u.target is getattr)]


def _follow(model: nn.Module, node: Any) -> tuple[list[str], list[str], str] | None:
    norms, depthwise = [], []
    while True:
        users = _data_users(node)
        if len(users) != 1:
            return None
        node = users[0]
        if node.op == "call_module":
            mod = model.get_submodule(node.target)
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                norms.append(node.target)
            elif isinstance(mod, nn.Conv2d) and mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels:
                depthwise.append(node.target)
            elif isinstance(mod, (nn.Conv2d, nn.Linear)) and getattr(mod, "groups", 1) == 1:
                return norms, depthwise, node.target
            elif not isinstance(mod, (*_PASS_MODULES, nn.Flatten)):
                return None
        elif node.op == "call_function" and (node.target in _PASS_FUNCS or node.target is torch.flatten):
            continue
        elif not (node.op == "call_method" and node.target in _PASS_METHODS | _FLATTEN_METHODS):
            return None


def find_chains(model: nn.Module) -> dict[str, Chain]:
    """Every prunable producer of ``model`` (traced with torch.fx) mapped to its chain."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as err:  # noqa: BLE001 - fx raises many types; report it as a config problem
        raise ConfigError(f"channel pruning needs a torch.fx-traceable model ({type(err).__name__}: {err})") from None
    chains = {}
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        mod = model.get_submodule(node.target)
        if not (isinstance(mod, nn.Linear) or (isinstance(mod, nn.Conv2d) and mod.groups == 1)):
            continue
        found = _follow(model, node)
        if found is not None:
            chains[node.target] = Chain(node.target, tuple(found[0]), tuple(found[1]), found[2])
    return chains


def _param(tensor: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=like.requires_grad)


def _consumer_columns(consumer: nn.Module, keep: torch.Tensor, channels: int) -> torch.Tensor:
    if isinstance(consumer, nn.Conv2d):
        return keep
    spatial = consumer.in_features // channels
    return (keep[:, None] * spatial + torch.arange(spatial)[None, :]).flatten()


def shrink_chain(model: nn.Module, chain: Chain, keep: torch.Tensor, *, method: str,
                 consumer_weight: torch.Tensor | None = None) -> dict[str, int]:
    """Keep only producer channels ``keep`` (sorted indices) along ``chain``; returns before/after counts."""
    keep = torch.sort(keep).values
    producer = model.get_submodule(chain.producer)
    consumer = model.get_submodule(chain.consumer)
    materialize(producer), materialize(consumer)
    before = producer.weight.shape[0]
    for path in (chain.producer, *chain.depthwise):
        mod = model.get_submodule(path)
        mod.weight = _param(mod.weight[keep], mod.weight)
        if mod.bias is not None:
            mod.bias = _param(mod.bias[keep], mod.bias)
        if isinstance(mod, nn.Linear):
            mod.out_features = len(keep)
        else:
            mod.out_channels = len(keep)
            if path != chain.producer:
                mod.in_channels = mod.groups = len(keep)
    for path in chain.norms:
        norm = model.get_submodule(path)
        norm.num_features = len(keep)
        for name in ("weight", "bias"):
            if getattr(norm, name) is not None:
                setattr(norm, name, _param(getattr(norm, name)[keep], getattr(norm, name)))
        for name in ("running_mean", "running_var"):
            if getattr(norm, name) is not None:
                setattr(norm, name, getattr(norm, name)[keep].clone())
    columns = _consumer_columns(consumer, keep, before)
    new_weight = consumer.weight[:, columns] if consumer_weight is None else consumer_weight
    consumer.weight = _param(new_weight, consumer.weight)
    if isinstance(consumer, nn.Conv2d):
        consumer.in_channels = len(keep)
    else:
        consumer.in_features = len(columns)
    label = f"{method}({len(keep)}/{before})"
    annotate(producer, compression=label, removed_out_channels=before - len(keep))
    annotate(consumer, compression=f"{method}(inputs {len(keep)}/{before})")
    return {"channels_before": before, "channels_after": len(keep)}


def keep_count(channels: int, ratio: float, multiple: int = 1) -> int:
    """Channels kept when removing ``ratio`` of ``channels``, rounded to ``multiple`` (at least one)."""
    kept = max(1, int(round(channels * (1.0 - ratio))))
    if multiple > 1:
        kept = max(multiple, int(round(kept / multiple)) * multiple)
    return min(kept, channels)


def _check_ratio(params: dict[str, Any]) -> None:
    _check_fraction(params.get("ratio", 0.5), "ratio")
    if not isinstance(params.get("multiple", 1), int) or params.get("multiple", 1) < 1:
        raise ConfigError(f"multiple must be a positive int, got {params.get('multiple')!r}")


def prune_channels(model: nn.Module, modules: list, method: str, select: Any, **select_kw: Any) -> StepReport:
    """Shared driver: for each selected producer ``select(model, chain, **kw) -> (keep, consumer_weight|None)``."""
    chains = find_chains(model)
    changes = []
    for path, _ in modules:
        if path not in chains:
            changes.append(change(path, "skipped", reason="output not consumed by exactly one conv/linear "
                                                          "through channel-wise ops (residual, concat or output)"))
            continue
        keep, consumer_weight = select(model, chains[path], **select_kw)
        counts = shrink_chain(model, chains[path], keep, method=method, consumer_weight=consumer_weight)
        changes.append(change(path, method, structure="channel", consumer=chains[path].consumer,
                              removed_channels=counts["channels_before"] - counts["channels_after"], **counts))
    if not any(c.change == method for c in changes):
        raise ConfigError("no selected layer can have its output channels removed (select e.g. a ResNet block's "
                          "conv1, a MobileNetV2 expansion conv or a ShuffleNetV2 branch2 first conv)")
    return StepReport(method=method, changes=tuple(changes))


_RATIO_PARAMS = {"ratio": "fraction of output channels removed per layer (default 0.5)",
                 "multiple": "round kept channels to a multiple of this (default 1)"}


def _l1_select(model: nn.Module, chain: Chain, *, ratio: float, multiple: int) -> tuple[torch.Tensor, None]:
    weight = model.get_submodule(chain.producer).weight.detach()
    scores = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
    return torch.topk(scores, keep_count(len(scores), ratio, multiple)).indices, None


@register_method("l1_filter_prune", paper="Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017",
                 params=_RATIO_PARAMS, family="prune", applies_to=("conv", "linear"), check=_check_ratio)
def l1_filter_prune(model: nn.Module, modules: list, *, ratio: float = 0.5, multiple: int = 1) -> StepReport:
    """Remove the filters with the smallest L1 norm (and the matching consumer input channels)."""
    return prune_channels(model, modules, "l1_filter_prune", _l1_select, ratio=ratio, multiple=multiple)


def _register_reconstruction() -> None:
    # ThiNet and He et al. 2017 live in channel_recon.py (they need calibration activations).
    import hwsim.compress.channel_recon  # noqa: F401


_register_reconstruction()
