"""The registry of compression methods: every recipe step names one of these.

A method is a function ``fn(model, modules, **params) -> StepReport`` that transforms ``model``
(a ``torch.nn.Module``) in place on the selected ``modules`` (list of ``(path, module)`` pairs)
and reports what it did per layer. It is registered with its paper and the parameters it takes,
so ``hwsim list methods`` and recipe validation read one source of truth.
Besides its own parameters a method may name ``calib`` (a calibration input batch), ``data``
(``(x_train, y_train, x_test, y_test)`` tensors) and ``seed`` in its signature; ``apply_recipe``
passes those it names. ``check(params) -> None`` (optional) raises ``ConfigError`` for an
impossible setting before anything runs. ``annotate`` merges the per-module facts the lowering reads.
This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from hwsim.errors import UnknownNameError


@dataclass(frozen=True)
class LayerChange:
    """What one step did to one module (density, structure, channels removed, bits, new shape)."""

    module: str
    change: str
    values: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class StepReport:
    method: str
    changes: tuple[LayerChange, ...] = ()
    metrics: tuple[tuple[str, float], ...] = ()     # e.g. training accuracy, reconstruction error
    new_model: Any = field(default=None, compare=False, repr=False)  # distillation: the student replacing the model


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., StepReport]
    paper: str                                      # citation of the method
    params: dict[str, str]                          # parameter name -> description (with default)
    family: str                                     # prune | quantize | lowrank | distill | train
    applies_to: tuple[str, ...] = ("conv", "linear")
    trainable: bool = False
    required: tuple[str, ...] = field(default_factory=tuple)  # params that must be given
    check: Callable[[dict[str, Any]], None] | None = None      # raises ConfigError on impossible params


_METHODS: dict[str, Method] = {}


def register_method(name: str, *, paper: str, params: dict[str, str], family: str,
                    applies_to: tuple[str, ...] = ("conv", "linear"), trainable: bool = False,
                    required: tuple[str, ...] = (),
                    check: Callable[[dict[str, Any]], None] | None = None) -> Callable[[Callable[..., StepReport]], Callable[..., StepReport]]:
    """Decorator: register ``fn`` as compression method ``name``."""

    def decorate(fn: Callable[..., StepReport]) -> Callable[..., StepReport]:
        previous = _METHODS.get(name)
        # A module re-imported after a failed first import registers the same function again: allowed.
        if previous is not None and (previous.fn.__module__, previous.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"compression method {name!r} registered twice "
                             f"({previous.fn.__module__} and {fn.__module__})")
        _METHODS[name] = Method(name=name, fn=fn, paper=paper, params=dict(params), family=family,
                                applies_to=tuple(applies_to), trainable=trainable, required=tuple(required),
                                check=check)
        return fn

    return decorate


def _load_all() -> None:
    # Importing the method modules registers their methods (they import torch lazily inside functions
    # where possible, but may import it at module level: only the software side calls this).
    import importlib

    for module in ("prune", "channel_prune", "train_prune", "quantize", "quant_train", "lowrank", "distill",
                   "gradients", "sbnet"):
        try:
            importlib.import_module(f"hwsim.compress.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"hwsim.compress.{module}":
                raise


def methods() -> dict[str, Method]:
    """All registered methods by name."""
    _load_all()
    return dict(sorted(_METHODS.items()))


def get_method(name: str) -> Method:
    all_methods = methods()
    if name not in all_methods:
        raise UnknownNameError(f"unknown compression method {name!r}; methods: {', '.join(all_methods)}")
    return all_methods[name]


def annotate(module: Any, *, compression: str | None = None, **facts: Any) -> dict[str, Any]:
    """Merge ``facts`` into ``module.hwsim_meta`` (None values skipped) and append ``compression``.

    Only the keys the lowering reads (``hwsim.lower.META_KEYS``) go to ``hwsim_meta``; any other
    fact (e.g. ``weight_density``, ``sparsity``, ``removed_out_channels``) goes to ``module.hwsim_facts``.
    """
    from hwsim.lower import META_KEYS

    facts = {key: value for key, value in facts.items() if value is not None}
    meta = dict(getattr(module, "hwsim_meta", None) or {})
    meta.update({key: value for key, value in facts.items() if key in META_KEYS})
    if compression:
        meta["compression"] = [*meta.get("compression", []), compression]
    module.hwsim_meta = meta
    extra = {key: value for key, value in facts.items() if key not in META_KEYS}
    if extra:
        module.hwsim_facts = {**(getattr(module, "hwsim_facts", None) or {}), **extra}
    return meta
