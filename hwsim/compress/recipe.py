"""Compression recipes: an ordered list of registered methods applied to selected layers.

A recipe is YAML or Python: either a list of steps or a mapping with ``steps`` (and optionally
``name``, ``model``, ``input_shape``, ``description``). A step names a ``method`` plus its parameters
and selects layers with ``layers`` (glob(s) on the module path), ``ops`` (conv, depthwise, linear),
``index`` (a Python slice like ``"1:-1"`` or an int over the ops-matching layers in model order) and
``exclude`` (globs); ``overrides`` maps a glob to parameter changes for the layers it matches::

    steps:
      - {method: nm_prune, n: 2, m: 4, ops: [conv, linear]}
      - {method: quantize, weight_bits: 8, overrides: {"layer3.*": {weight_bits: 4}}}
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hwsim.compress.registry import LayerChange, Method, StepReport, get_method
from hwsim.errors import ConfigError, UnknownNameError

SELECTOR_KEYS = ("layers", "ops", "index", "exclude")
STEP_KEYS = ("method", "overrides", *SELECTOR_KEYS)
CONTEXT_NAMES = ("calib", "data", "seed")
OP_KINDS = ("conv", "depthwise", "linear", "lstm", "gru")
_RECIPE_KEYS = ("name", "model", "input_shape", "description", "steps")


@dataclass(frozen=True)
class Step:
    """One recipe step: a method, its parameters, a layer selector and per-layer overrides."""

    index: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ("*",)
    ops: tuple[str, ...] | None = None
    index_range: str | int | None = None
    exclude: tuple[str, ...] = ()
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"step {self.index} ({self.method})"


@dataclass(frozen=True)
class Recipe:
    """A validated recipe (see the module docstring for the format)."""

    steps: tuple[Step, ...]
    name: str = "recipe"
    model: str | None = None
    input_shape: tuple[int, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class CompressionReport:
    """What a recipe did: per step, per layer changes; parameter counts before and after."""

    recipe: str
    steps: tuple[StepReport, ...]
    params_before: int
    params_after: int
    nonzero_params_after: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (layer change values become plain dicts)."""
        steps = []
        for step in self.steps:
            changes = [{"module": c.module, "change": c.change, **_jsonable(dict(c.values))}
                       for c in step.changes]
            steps.append({"method": step.method, "changes": changes, "metrics": _jsonable(dict(step.metrics))})
        return {"recipe": self.recipe, "params_before": self.params_before, "params_after": self.params_after,
                "nonzero_params_after": self.nonzero_params_after, "steps": steps}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ----- loading and validation ----------------------------------------------------------------------
def load_recipe(source: str | Path | dict[str, Any] | list[Any] | Recipe) -> Recipe:
    """A ``Recipe`` from a YAML path, a shipped recipe name (``configs/recipes/<name>.yaml``), a dict or a list."""
    if isinstance(source, Recipe):
        return source
    origin = "recipe"
    if isinstance(source, (str, Path)):
        path = _recipe_path(source)
        origin = path.name
        import yaml

        from hwsim import _yaml

        try:
            source = _yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{origin}: not valid YAML ({err})") from None
    if isinstance(source, list):
        source = {"steps": source}
    if not isinstance(source, dict) or not isinstance(source.get("steps"), list) or not source["steps"]:
        raise ConfigError(f"{origin}: a recipe is a non-empty list of steps or a mapping with 'steps'")
    if unknown := sorted(set(source) - set(_RECIPE_KEYS)):
        raise ConfigError(f"{origin}: unknown recipe key(s) {unknown}; allowed: {list(_RECIPE_KEYS)}")
    steps = tuple(_parse_step(i, raw, origin) for i, raw in enumerate(source["steps"]))
    shape = source.get("input_shape")
    return Recipe(steps=steps, name=str(source.get("name", Path(origin).stem)), model=source.get("model"),
                  input_shape=tuple(int(s) for s in shape) if shape else None,
                  description=str(source.get("description", "")))


def _recipe_path(source: str | Path) -> Path:
    path = Path(source)
    if path.exists():
        return path
    if path.suffix == "" and "/" not in str(source):
        from importlib.resources import files

        shipped = Path(str(files("hwsim.configs") / "recipes" / f"{source}.yaml"))
        if shipped.exists():
            return shipped
    raise ConfigError(f"recipe {str(source)!r}: no such file or shipped recipe ({', '.join(shipped_recipes())})")


def shipped_recipes() -> list[str]:
    """Names of the recipes in ``configs/recipes/``."""
    from importlib.resources import files

    return sorted(Path(str(p)).stem for p in files("hwsim.configs").joinpath("recipes").iterdir()
                  if str(p).endswith(".yaml"))


def _as_tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def _parse_step(index: int, raw: Any, origin: str) -> Step:
    if not isinstance(raw, dict) or "method" not in raw:
        raise ConfigError(f"{origin}: step {index} must be a mapping with a 'method' key (got {raw!r})")
    where = f"{origin}: step {index} ({raw['method']})"
    try:
        method = get_method(str(raw["method"]))
    except UnknownNameError as err:
        raise ConfigError(f"{origin}: step {index}: {err}") from None
    params = {k: v for k, v in raw.items() if k not in STEP_KEYS}
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ConfigError(f"{where}: overrides must map a layer glob to a mapping of parameters")
    ops = raw.get("ops")
    if ops is not None and (bad := sorted(set(_as_tuple(ops)) - set(OP_KINDS))):
        raise ConfigError(f"{where}: unknown op kind(s) {bad} in 'ops'; allowed: {list(OP_KINDS)}")
    _check_params(method, params, where)
    for glob, changes in overrides.items():
        _check_params(method, {**params, **changes}, f"{where}, override {glob!r}")
    index_range = raw.get("index")
    if index_range is not None:
        _parse_index(index_range, where)
    return Step(index=index, method=method.name, params=params, layers=_as_tuple(raw.get("layers", "*")),
                ops=_as_tuple(ops) if ops is not None else None, index_range=index_range,
                exclude=_as_tuple(raw.get("exclude", ())), overrides={str(k): dict(v) for k, v in overrides.items()})


def _check_params(method: Method, params: dict[str, Any], where: str) -> None:
    if unknown := sorted(set(params) - set(method.params)):
        raise ConfigError(f"{where}: unknown parameter(s) {unknown}; {method.name} takes {sorted(method.params)}")
    if missing := [p for p in method.required if p not in params]:
        raise ConfigError(f"{where}: missing required parameter(s) {missing}")
    if method.check is not None:
        try:
            method.check(params)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def _parse_index(value: str | int, where: str) -> slice:
    if isinstance(value, int):
        return slice(value, (value + 1) or None)
    try:
        parts = [int(p) if p.strip() else None for p in str(value).split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3:
        raise ConfigError(f"{where}: index must be an int or a slice like '1:-1' (got {value!r})")
    if len(parts) == 1:
        return slice(parts[0], (parts[0] + 1) or None)
    return slice(*parts)


# ----- layer selection -----------------------------------------------------------------------------
def op_kind(module: Any) -> str | None:
    """'conv', 'depthwise', 'linear', 'lstm' or 'gru' for a weight layer; None for anything else."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.LSTM, nn.GRU)):
        return "lstm" if isinstance(module, nn.LSTM) else "gru"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise"
        return "conv"
    return None


def compute_modules(model: Any) -> list[tuple[str, Any]]:
    """All conv/linear/recurrent modules of ``model`` as ``(path, module)`` in registration order."""
    return [(path, module) for path, module in model.named_modules() if op_kind(module) is not None]


def select_modules(model: Any, step: Step, default_ops: Iterable[str]) -> list[tuple[str, Any]]:
    """The ``(path, module)`` pairs ``step`` selects (ops, then index range, then globs, then exclude)."""
    ops = set(step.ops if step.ops is not None else default_ops)
    candidates = [(p, m) for p, m in compute_modules(model) if op_kind(m) in ops]
    if step.index_range is not None:
        candidates = candidates[_parse_index(step.index_range, step.where)]
    chosen = [(p, m) for p, m in candidates
              if any(fnmatch.fnmatchcase(p, g) for g in step.layers)
              and not any(fnmatch.fnmatchcase(p, g) for g in step.exclude)]
    if not chosen:
        raise ConfigError(f"{step.where}: selector matched no layer (layers={list(step.layers)}, ops={sorted(ops)}, "
                          f"index={step.index_range!r}, exclude={list(step.exclude)})")
    return chosen


def _param_groups(step: Step, modules: list[tuple[str, Any]]) -> list[tuple[dict[str, Any], list]]:
    groups: dict[str, tuple[dict[str, Any], list]] = {}
    for path, module in modules:
        params = dict(step.params)
        for glob, changes in step.overrides.items():
            if fnmatch.fnmatchcase(path, glob):
                params.update(changes)
        key = json.dumps(params, sort_keys=True, default=str)
        groups.setdefault(key, (params, []))[1].append((path, module))
    return list(groups.values())


# ----- applying ------------------------------------------------------------------------------------
def resolve_input_shape(model: Any, recipe: Recipe | None = None) -> tuple[int, ...] | None:
    """Per-sample input shape: the recipe's, else ``model.input_shape``, else the zoo's for ``recipe.model``."""
    if recipe is not None and recipe.input_shape:
        return tuple(recipe.input_shape)
    shape = getattr(model, "input_shape", None)
    if shape:
        return tuple(int(s) for s in shape)
    if recipe is not None and recipe.model:
        try:
            from hwsim import zoo

            return tuple(zoo.input_shape(recipe.model))[1:]
        except (ImportError, AttributeError, KeyError):
            return None
    return None


@dataclass
class _Context:
    input_shape: tuple[int, ...] | None
    seed: int
    calib: Any = None
    data: Any = None

    def get(self, name: str, where: str) -> Any:
        if name == "seed":
            return self.seed
        if name == "calib" and self.calib is None and self.input_shape is not None:
            from hwsim.fidelity import smooth_noise

            batch = 32 if math.prod(self.input_shape) <= 4096 else 8
            self.calib = smooth_noise((batch, *self.input_shape), self.seed)
        if name == "data" and self.data is None:
            if self.input_shape not in (None, (1, 8, 8)):
                return None        # methods that train raise a ConfigError asking for data
            from hwsim.data import load_digits_tensors

            self.data = load_digits_tensors(self.seed)
        return getattr(self, name)


def _count_params(model: Any) -> tuple[int, int]:
    total = nonzero = 0
    for param in model.parameters():
        total += param.numel()
        nonzero += int((param != 0).sum())
    return total, nonzero


def apply_recipe(model: Any, recipe: Any, *, calib: Any = None, data: Any = None, seed: int = 0,
                 input_shape: tuple[int, ...] | None = None) -> tuple[Any, "CompressionReport"]:
    """Apply ``recipe`` to ``model`` in place; return ``(model, CompressionReport)``.

    ``calib`` is an input batch for calibration (default: smooth noise of the model's input shape);
    ``data`` is ``(x_train, y_train, x_test, y_test)`` for trainable methods (default: digits).
    """
    import torch

    recipe = load_recipe(recipe)
    ctx = _Context(input_shape=tuple(input_shape) if input_shape else resolve_input_shape(model, recipe),
                   seed=int(seed), calib=calib, data=data)
    before, _ = _count_params(model)
    reports = []
    for step in recipe.steps:
        method = get_method(step.method)
        wanted = [n for n in CONTEXT_NAMES if n in inspect.signature(method.fn).parameters]
        changes, metrics = [], []
        for params, modules in _param_groups(step, select_modules(model, step, method.applies_to)):
            extra = {name: ctx.get(name, step.where) for name in wanted}
            torch.manual_seed(ctx.seed + step.index)
            try:
                result = method.fn(model, modules, **params, **extra)
            except ConfigError as err:
                raise ConfigError(f"{step.where}: {err}") from None
            changes.extend(result.changes)
            metrics.extend(result.metrics)
            if result.new_model is not None:  # distillation: the student replaces the model for later steps
                model = result.new_model
                break
        reports.append(StepReport(method=step.method, changes=tuple(changes), metrics=tuple(metrics)))
    after, nonzero = _count_params(model)
    return model, CompressionReport(recipe=recipe.name, steps=tuple(reports), params_before=before,
                                    params_after=after, nonzero_params_after=nonzero)


def change(module_path: str, what: str, **values: Any) -> LayerChange:
    """A ``LayerChange`` with keyword values (helper for method implementations)."""
    return LayerChange(module=module_path, change=what, values=tuple(values.items()))


def require_calib(calib: Any, what: str) -> Any:
    """``calib`` or a ConfigError saying ``what`` needs a calibration batch."""
    if calib is None:
        raise ConfigError(f"{what} needs a calibration batch: pass calib=, or input_shape= / a recipe input_shape")
    return calib
