"""Training-time sparsification: variational dropout (Molchanov et al. 2017) and meProp (Sun et al. 2017)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.compress.prune import materialize
from hwsim.compress.recipe import change
from hwsim.compress.registry import StepReport, annotate, register_method
from hwsim.data import train_classifier
from hwsim.errors import ConfigError

# Molchanov et al. 2017, eq. 14: -KL ~= k1*sigmoid(k2 + k3*log_alpha) - 0.5*log1p(1/alpha) - k1
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695


class VariationalDropout(nn.Module):
    """Wraps a conv/linear: weight ``theta`` with per-weight ``log_sigma2``; local reparameterization in training."""

    def __init__(self, inner: nn.Module, threshold: float) -> None:
        super().__init__()
        self.inner = inner
        self.threshold = threshold
        self.log_sigma2 = nn.Parameter(torch.full_like(inner.weight, -10.0))

    def log_alpha(self) -> torch.Tensor:
        return (self.log_sigma2 - torch.log(self.inner.weight.pow(2) + 1e-8)).clamp(-10.0, 10.0)

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if isinstance(self.inner, nn.Linear):
            return F.linear(x, weight, bias)
        return self.inner._conv_forward(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self._op(x, self.inner.weight * (self.log_alpha() < self.threshold), self.inner.bias)
        mean = self._op(x, self.inner.weight, self.inner.bias)
        var = self._op(x.pow(2), torch.exp(self.log_sigma2), None)
        return mean + torch.sqrt(var + 1e-8) * torch.randn_like(mean)

    def kl(self) -> torch.Tensor:
        log_alpha = self.log_alpha()
        neg_kl = _K1 * torch.sigmoid(_K2 + _K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - _K1
        return -neg_kl.sum()


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace submodule ``path`` of ``model`` by ``new``."""
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)


def _check_vd(params: dict[str, Any]) -> None:
    for name in ("epochs", "lr", "kl_weight"):
        value = params.get(name, 1)
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number, got {value!r}")


@register_method("variational_dropout", paper="Molchanov et al., Variational Dropout Sparsifies Deep Neural "
                 "Networks, ICML 2017",
                 params={"epochs": "training epochs (default 10)", "lr": "Adam learning rate (default 3e-3)",
                         "threshold": "prune weights with log alpha above this (default 3.0)",
                         "kl_weight": "final weight of the KL term, ramped up linearly over the first half "
                                      "(default 1.0)"},
                 family="prune", applies_to=("conv", "linear"), trainable=True, check=_check_vd)
def variational_dropout(model: nn.Module, modules: list, *, epochs: int = 10, lr: float = 3e-3,
                        threshold: float = 3.0, kl_weight: float = 1.0, data: Any = None,
                        seed: int = 0) -> StepReport:
    """Sparse variational dropout: train log alpha per weight, then zero weights with log alpha > threshold."""
    wrappers = []
    for path, module in modules:
        materialize(module)
        wrapper = VariationalDropout(module, threshold)
        set_module(model, path, wrapper)
        wrappers.append((path, wrapper))
    n_train = len(data[0])
    total_steps = max(1, epochs * -(-n_train // 64))
    state = {"step": 0}

    def kl_term(_model: nn.Module) -> torch.Tensor:
        state["step"] += 1
        ramp = min(1.0, 2.0 * state["step"] / total_steps)
        return ramp * kl_weight * sum(w.kl() for _, w in wrappers) / n_train

    acc = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed, extra_loss=kl_term)
    changes = []
    for path, wrapper in wrappers:
        with torch.no_grad():
            wrapper.inner.weight.mul_(wrapper.log_alpha() < threshold)
        set_module(model, path, wrapper.inner)
        density = float((wrapper.inner.weight != 0).float().mean())
        annotate(wrapper.inner, compression=f"variational_dropout(log_alpha<{threshold:g})", weight_density=density)
        changes.append(change(path, "variational_dropout", density=density, structure="unstructured"))
    from hwsim.data import accuracy

    final = accuracy(model, data[2], data[3])
    return StepReport(method="variational_dropout", changes=tuple(changes),
                      metrics=(("accuracy_sampled_eval", acc), ("accuracy", final)))


# ----- meProp (Sun et al. 2017) -------------------------------------------------------------------------
class MePropHook:
    """Forward hook: in training, keep only the top-k |gradient| entries of the output along the feature axis."""

    def __init__(self, k: int) -> None:
        self.k = k

    def _sparsify(self, grad: torch.Tensor) -> torch.Tensor:
        moved = grad.movedim(1, -1)
        if moved.shape[-1] <= self.k:
            return grad
        top = torch.topk(moved.abs(), self.k, dim=-1).indices
        kept = torch.zeros_like(moved).scatter_(-1, top, moved.gather(-1, top))
        return kept.movedim(-1, 1)

    def __call__(self, module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if module.training and output.requires_grad:
            output.register_hook(self._sparsify)


@register_method("meprop", paper="Sun et al., meProp: Sparsified Back Propagation for Accelerated Deep Learning "
                 "with Reduced Overfitting, ICML 2017",
                 params={"k": "output-gradient entries kept per sample and position (default 8)",
                         "epochs": "training epochs (default 6)", "lr": "Adam learning rate (default 3e-3)"},
                 family="train", applies_to=("conv", "linear"), trainable=True)
def meprop(model: nn.Module, modules: list, *, k: int = 8, epochs: int = 6, lr: float = 3e-3, data: Any = None,
           seed: int = 0) -> StepReport:
    """Train with top-k sparsified output gradients; records each layer's backward gradient density k/K."""
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive int, got {k!r}")
    handles = [module.register_forward_hook(MePropHook(k)) for _, module in modules]
    try:
        acc = train_classifier(model, data, epochs=epochs, lr=lr, seed=seed)
    finally:
        for handle in handles:
            handle.remove()
    changes = []
    for path, module in modules:
        features = module.weight.shape[0]
        grad_density = min(1.0, k / features)
        annotate(module, compression=f"meprop(k={k})", grad_density=grad_density,
                 backward_mac_fraction=grad_density)
        changes.append(change(path, "meprop", k=k, out_features=features, grad_density=grad_density))
    return StepReport(method="meprop", changes=tuple(changes), metrics=(("accuracy", acc),))
