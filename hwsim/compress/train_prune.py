"""Pruning that needs training: group / exclusive sparsity, Network Slimming, variational dropout, meProp.

Each method trains the whole model on ``data`` (default: digits) with ``hwsim.data.train_classifier``
and reports the test accuracy it reached as a step metric.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hwsim.compress.channel_prune import find_chains, shrink_chain
from hwsim.compress.prune import _check_fraction, materialize
from hwsim.compress.recipe import change
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.data import finetune, train_classifier
from hwsim.errors import ConfigError

_TRAIN_PARAMS = {"epochs": "training epochs (default 6)", "lr": "Adam learning rate (default 3e-3)"}


def _check_positive(params: dict[str, Any], *names: str) -> None:
    for name in names:
        value = params.get(name, 1)
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number, got {value!r}")


def _rows(module: nn.Module) -> torch.Tensor:
    return module.weight.reshape(module.weight.shape[0], -1)


# ----- group sparsity and combined group + exclusive sparsity (Yoon & Hwang 2017) --------------------
def _group_penalty(modules: list, strength: float, mu: float):
    """(1-mu)*group lasso + mu*exclusive lasso over filter rows, each divided by the layer's Frobenius norm
    (resp. its square) so it is scale invariant: a conv followed by BatchNorm cannot dodge it by shrinking."""
    def penalty(_model: nn.Module) -> torch.Tensor:
        total = 0.0
        for _, module in modules:
            rows = _rows(module)
            scale = rows.norm().clamp_min(1e-12)
            group = rows.norm(dim=1).sum() / scale
            exclusive = 0.5 * rows.abs().sum(dim=1).pow(2).sum() / scale.pow(2)
            total = total + (1 - mu) * group + mu * exclusive
        return strength * total
    return penalty


def _threshold_groups(module: nn.Module, threshold: float, mu: float) -> torch.Tensor:
    """Zero whole groups (and, with exclusive sparsity, single weights) below ``threshold`` x the layer max."""
    rows = _rows(module).detach()
    norms = rows.norm(dim=1)
    keep = (norms >= threshold * norms.max())[:, None].expand_as(rows).clone()
    if mu > 0:
        keep &= rows.abs() >= threshold * rows.abs().max()
    return keep


def _check_group(params: dict[str, Any]) -> None:
    _check_positive(params, "strength", "epochs", "lr", "finetune_epochs")
    _check_fraction(params.get("threshold", 0.1), "threshold")
    mu = params.get("mu", 0.0)
    if not isinstance(mu, (int, float)) or not 0 <= mu <= 1:
        raise ConfigError(f"mu (exclusive share) must be in [0, 1], got {mu!r}")


_GROUP_PARAMS = {"epochs": "training epochs (default 6)", "lr": "SGD (momentum 0.9) learning rate (default 0.05)", "strength": "regularization strength (default 0.5)",
                 "mu": "exclusive-lasso share: 0 = group lasso, 1 = exclusive lasso (default 0)",
                 "threshold": "zero groups/weights below this fraction of the layer max after training (default 0.15)",
                 "finetune_epochs": "masked fine-tuning epochs after thresholding (default 2)"}


@register_method("group_sparsity", paper="Yoon & Hwang, Combined Group and Exclusive Sparsity for Deep Neural "
                 "Networks, ICML 2017 (group lasso; mu > 0 adds exclusive lasso)", params=_GROUP_PARAMS,
                 family="prune", applies_to=("conv", "linear"), trainable=True, check=_check_group)
def group_sparsity(model: nn.Module, modules: list, *, strength: float = 0.5, mu: float = 0.0,
                   threshold: float = 0.15, epochs: int = 6, lr: float = 0.05, finetune_epochs: int = 2,
                   data: Any = None, seed: int = 0) -> StepReport:
    """Train with (1-mu)*group + mu*exclusive lasso, threshold, then masked fine-tuning."""
    for _, module in modules:
        materialize(module)
    trained = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed, optimizer="sgd",
                               extra_loss=_group_penalty(modules, strength, mu))
    masks = [(module, _threshold_groups(module, threshold, mu)) for _, module in modules]
    with torch.no_grad():
        for module, mask in masks:
            _rows(module).mul_(mask)
    # masked retraining (thresholded weights stay zero): the one retraining path, hwsim.data.finetune
    acc = finetune(model, data, epochs=finetune_epochs, lr=lr / 3, seed=seed + 1, optimizer="sgd") \
        if finetune_epochs else trained
    method = "group_exclusive_sparsity" if mu > 0 else "group_sparsity"
    changes = []
    for (path, module), (_, mask) in zip(modules, masks):
        zero_groups = int((~mask.any(dim=1)).sum())
        density = float((module.weight != 0).float().mean())
        annotate(module, compression=f"{method}(mu={mu:g})", weight_density=density,
                 zero_groups=zero_groups)
        changes.append(change(path, method, density=density, zero_groups=zero_groups, groups=mask.shape[0],
                              structure="channel" if mu == 0 else "channel+unstructured"))
    return StepReport(method=method, changes=tuple(changes),
                      metrics=(("accuracy_before_threshold", trained), ("accuracy", acc)))


@register_method("group_exclusive_sparsity", paper="Yoon & Hwang, Combined Group and Exclusive Sparsity for Deep "
                 "Neural Networks, ICML 2017", params=_GROUP_PARAMS, family="prune", applies_to=("conv", "linear"),
                 trainable=True, check=_check_group)
def group_exclusive_sparsity(model: nn.Module, modules: list, *, mu: float = 0.5, strength: float = 0.05,
                             threshold: float = 0.05, data: Any = None, seed: int = 0, **params: Any) -> StepReport:
    """Combined group + exclusive sparsity (group_sparsity with exclusive share mu 0.5, strength 0.05,
    threshold 0.05 by default)."""
    return group_sparsity(model, modules, mu=mu, strength=strength, threshold=threshold, data=data, seed=seed,
                          **params)


# ----- Network Slimming (Liu et al. 2017) -------------------------------------------------------------
def _check_slim(params: dict[str, Any]) -> None:
    _check_positive(params, "strength", "epochs", "lr", "finetune_epochs")
    _check_fraction(params.get("ratio", 0.5), "ratio")


@register_method("network_slimming", paper="Liu et al., Learning Efficient Convolutional Networks through Network "
                 "Slimming, ICCV 2017",
                 params={**_TRAIN_PARAMS, "strength": "L1 strength on BN scales (default 1e-3)",
                         "ratio": "fraction of the selected layers' channels removed, one global threshold "
                                  "(default 0.5)", "finetune_epochs": "fine-tuning epochs after pruning (default 2)"},
                 family="prune", applies_to=("conv", "linear"), trainable=True, check=_check_slim)
def network_slimming(model: nn.Module, modules: list, *, strength: float = 1e-3, ratio: float = 0.5,
                     epochs: int = 6, lr: float = 3e-3, finetune_epochs: int = 2, data: Any = None,
                     seed: int = 0) -> StepReport:
    """Train with L1 on the BN scales after each selected producer, remove channels under a global threshold."""
    chains = find_chains(model)
    chosen = [(path, chains[path]) for path, _ in modules if path in chains and chains[path].norms]
    if not chosen:
        raise ConfigError("no selected layer is followed by a BatchNorm and consumed by one conv/linear")
    norms = [model.get_submodule(chain.norms[0]) for _, chain in chosen]
    trained = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed,
                               extra_loss=lambda _m: strength * sum(bn.weight.abs().sum() for bn in norms))
    scales = torch.cat([bn.weight.detach().abs() for bn in norms])
    cut = torch.sort(scales).values[int(ratio * len(scales))] if ratio > 0 else -1.0
    changes = []
    for (path, chain), bn in zip(chosen, norms):
        gamma = bn.weight.detach().abs()
        keep = torch.nonzero(gamma >= cut).flatten()
        if len(keep) == 0:
            keep = torch.argmax(gamma).reshape(1)
        counts = shrink_chain(model, chain, keep, method="network_slimming")
        changes.append(change(path, "network_slimming", structure="channel", consumer=chain.consumer,
                              removed_channels=counts["channels_before"] - counts["channels_after"], **counts))
    acc = finetune(model, data, epochs=finetune_epochs, lr=lr / 3, seed=seed + 1) if finetune_epochs else trained
    return StepReport(method="network_slimming", changes=tuple(changes),
                      metrics=(("accuracy_before_pruning", trained), ("accuracy", acc)))


def _register_rest() -> None:
    import hwsim.compress.train_sparse  # noqa: F401  (variational dropout, meProp)


_register_rest()
