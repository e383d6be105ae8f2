"""Sweep specifications: models x compression recipes x hardware parameters, objectives, constraints.

A spec is YAML or a Python dict::

    name: example
    models: [digits_cnn]
    recipes:
      dense: null                                  # the uncompressed baseline
      prune:
        template: {steps: [{method: magnitude_prune, sparsity: "${sparsity}"}]}
        params: {sparsity: [0.5, 0.75]}
    arch:
      base: edge_tpu_like                          # preset name or YAML path
      params:                                      # dotted ArchSpec paths (see ArchSpec.with_overrides)
        systolic.rows: [8, 16, 32]
        memory.GLB.size_bytes: {low: 65536, high: 1048576, num: 3, log: true, int: true}
      fixed: {technology_nm: 28}
      link: {systolic.cols: systolic.rows}         # square arrays
    objectives: [latency, energy]
    constraints: ["power_mw <= 500"]
    sampler: {kind: grid}                          # grid | random | lhs | nsga2 (with n, seed, population)

Every value and every override path is checked against the base preset before anything runs;
problems raise one ``ConfigError`` naming the spec, the key and the value.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, field_validator

from hwsim import _yaml
from hwsim.errors import ConfigError, HwsimError
from hwsim.models.arch import ArchSpec, load_arch

# metric aliases accepted in objectives/constraints -> stored metric name, and its sense
METRIC_ALIASES = {"latency": "latency_s", "energy": "energy_pj", "power": "power_mw", "area": "area_mm2",
                  "edp": "edp_pj_s", "fidelity": "top1_agreement", "peak_power": "peak_power_mw",
                  "efficiency": "tops_per_w"}
MAXIMIZED = {"top1_agreement", "tops_per_w", "utilization", "inferences_per_s"}
METRICS = ("latency_s", "energy_pj", "power_mw", "peak_power_mw", "area_mm2", "edp_pj_s", "tops_per_w",
           "utilization", "cycles", "macs", "inferences_per_s", "top1_agreement", "kl", "nrmse")
FIDELITY_METRICS = ("top1_agreement", "kl", "nrmse")
# axis and column labels for reports: what each stored metric is, with its unit
METRIC_LABELS = {"latency_s": "latency (s)", "energy_pj": "energy (pJ)", "power_mw": "average power (mW)",
                 "peak_power_mw": "peak power (mW)", "area_mm2": "area (mm²)", "edp_pj_s": "energy-delay (pJ·s)",
                 "tops_per_w": "efficiency (TOPS/W)", "utilization": "PE utilization (0-1)", "cycles": "cycles",
                 "macs": "MACs", "inferences_per_s": "throughput (inferences/s)",
                 "top1_agreement": "top-1 agreement with the uncompressed model (0-1)",
                 "top1_accuracy": "top-1 accuracy on held-out data (0-1)",
                 "kl": "KL divergence from the uncompressed model", "nrmse": "output NRMSE vs the uncompressed model"}


def metric_label(metric: str) -> str:
    """Human label with unit for a stored metric name (the name itself when it has none)."""
    return METRIC_LABELS.get(metric, metric)
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A numeric range; ``step`` or ``num`` make it griddable, ``log``/``int`` shape sampling."""

    low: float
    high: float
    step: float | None = None
    num: PositiveInt | None = None
    log: bool = False
    int: bool = False

    def grid(self) -> list[Any]:
        """The grid values (needs ``step`` or ``num``)."""
        if self.num is not None:
            if self.num == 1:
                raw = [self.low]
            elif self.log:
                raw = [self.low * (self.high / self.low) ** (i / (self.num - 1)) for i in range(self.num)]
            else:
                raw = [self.low + (self.high - self.low) * i / (self.num - 1) for i in range(self.num)]
        elif self.step is not None:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            raw = [self.low + i * self.step for i in range(count)]
        else:
            raise ValueError("a grid needs 'step' or 'num' for a range (or give a list of values)")
        return [self.cast(v) for v in raw]

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1) onto the range (log-uniform when ``log``)."""
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return self.cast(min(max(value, self.low), self.high))

    def cast(self, value: float) -> Any:
        return int(round(value)) if self.int else float(value)


ParamValue = Any  # a list of values, a Range, or a scalar (fixed)


class Dimension(_Strict):
    """One swept parameter: categorical ``values`` or a ``Range``."""

    name: str
    values: tuple[Any, ...] | None = None
    range: Range | None = None

    def grid(self) -> list[Any]:
        return list(self.values) if self.values is not None else self.range.grid()

    def from_unit(self, u: float) -> Any:
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        return self.range.from_unit(u)


def make_dimension(name: str, raw: Any, origin: str) -> Dimension:
    """A ``Dimension`` from a list, ``{values: [...]}``, a range mapping, or a scalar (one value)."""
    try:
        if isinstance(raw, dict) and "values" in raw:
            if set(raw) != {"values"}:
                raise ValueError(f"'values' cannot be combined with {sorted(set(raw) - {'values'})}")
            raw = raw["values"]
        if isinstance(raw, dict):
            rng = Range.model_validate(raw)
            if rng.high < rng.low or (rng.log and rng.low <= 0):
                raise ValueError(f"need low <= high (and low > 0 for log), got {raw}")
            return Dimension(name=name, range=rng)
        values = tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)
        if not values:
            raise ValueError("empty list of values")
        return Dimension(name=name, values=values)
    except (ValidationError, ValueError) as err:
        msg = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
        raise ConfigError(f"{origin}: {name}: {msg}") from None


class RecipeSpec(_Strict):
    """A recipe template (path, shipped name, dict or list of steps) with ``${param}`` placeholders."""

    template: Any
    params: dict[str, Any] = Field(default_factory=dict)


class ArchSweep(_Strict):
    base: str
    params: dict[str, Any] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    link: dict[str, str] = Field(default_factory=dict)


class Objective(_Strict):
    metric: str
    sense: Literal["min", "max"] = "min"


class Constraint(_Strict):
    metric: str
    op: Literal["<=", ">=", "<", ">", "=="]
    value: float

    def ok(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the constraint (a missing metric never does)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return {"<=": value <= self.value, ">=": value >= self.value, "<": value < self.value,
                ">": value > self.value, "==": value == self.value}[self.op]

    def violation(self, value: float | None) -> float:
        """How far ``value`` is from feasible (0 when satisfied): NSGA-II's constraint value."""
        if value is None:
            return 1.0
        gap = value - self.value if self.op in ("<=", "<") else self.value - value
        return 0.0 if self.ok(value) else max(abs(gap), 1e-12)


class SamplerSpec(_Strict):
    kind: Literal["grid", "random", "lhs", "nsga2"] = "grid"
    n: PositiveInt | None = None
    seed: int = 0
    population: PositiveInt = 16


class FidelitySpec(_Strict):
    enabled: bool = True
    batch: PositiveInt = 32
    seed: int = 0
    data: str | None = None              # hwsim.datasets name, image folder or module:function (labelled data)
    finetune_epochs: NonNegativeInt = 0  # retrain each compressed model this long (hwsim.data.finetune)


class SweepSpec(_Strict):
    """A whole sweep (see the module docstring)."""

    name: str = "sweep"
    models: tuple[str, ...] = Field(min_length=1)
    weights: dict[str, str] = Field(default_factory=dict)   # zoo-name model -> state_dict file
    batch: PositiveInt = 1
    input_shape: tuple[PositiveInt, ...] | None = None
    recipes: dict[str, RecipeSpec | None] = Field(default_factory=lambda: {"dense": None})
    arch: ArchSweep
    mapper: dict[str, Any] = Field(default_factory=dict)
    objectives: tuple[Objective, ...] = (Objective(metric="latency_s"), Objective(metric="energy_pj"))
    constraints: tuple[Constraint, ...] = ()
    sampler: SamplerSpec = SamplerSpec()
    fidelity: FidelitySpec = FidelitySpec()
    origin: str = "sweep"

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, raw: Any) -> Any:
        items = [raw] if isinstance(raw, (str, dict)) else list(raw)
        return tuple(_objective(item) for item in items)

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, raw: Any) -> Any:
        items = [raw] if isinstance(raw, (str, dict)) else list(raw or [])
        return tuple(_constraint(item) for item in items)

    @field_validator("recipes", mode="before")
    @classmethod
    def _recipes(cls, raw: Any) -> Any:
        if isinstance(raw, (list, tuple)):  # a list of shipped names / paths, no parameters
            return {Path(str(r)).stem if r else "dense": ({"template": r} if r else None) for r in raw}
        return {name: (value if value is None or (isinstance(value, dict) and "template" in value)
                       else {"template": value}) for name, value in (raw or {}).items()}

    # ----- derived -------------------------------------------------------------------------------
    def hw_dimensions(self) -> list[Dimension]:
        return [make_dimension(path, raw, self.origin) for path, raw in self.arch.params.items()]

    def recipe_dimensions(self, recipe: str) -> list[Dimension]:
        spec = self.recipes[recipe]
        if spec is None:
            return []
        return [make_dimension(f"{recipe}.{name}", raw, self.origin) for name, raw in spec.params.items()]

    def base_arch(self) -> ArchSpec:
        return load_arch(self.arch.base)

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def needs_fidelity(self) -> bool:
        used = {o.metric for o in self.objectives} | {c.metric for c in self.constraints}
        return self.fidelity.enabled and bool(used & set(FIDELITY_METRICS))


def canonical_metric(name: str) -> str:
    """The stored metric name for ``name`` (aliases such as ``latency`` -> ``latency_s``)."""
    metric = METRIC_ALIASES.get(name, name)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {name!r}; metrics: {', '.join(METRICS)} "
                         f"(aliases: {', '.join(METRIC_ALIASES)})")
    return metric


def _objective(item: Any) -> dict[str, Any]:
    if isinstance(item, Objective):
        return item.model_dump()
    if isinstance(item, str):
        sense = "max" if item.startswith("max:") else "min"
        name = item.split(":", 1)[1] if ":" in item else item
        metric = canonical_metric(name)
        return {"metric": metric, "sense": "max" if metric in MAXIMIZED and ":" not in item else sense}
    if isinstance(item, dict):
        metric = canonical_metric(str(item.get("metric", "")))
        return {**item, "metric": metric, "sense": item.get("sense", "max" if metric in MAXIMIZED else "min")}
    raise ValueError(f"an objective is a metric name or {{metric, sense}}, got {item!r}")


def _constraint(item: Any) -> dict[str, Any]:
    if isinstance(item, Constraint):
        return item.model_dump()
    if isinstance(item, str):
        match = _CONSTRAINT.match(item)
        if not match:
            raise ValueError(f"a constraint looks like 'power_mw <= 500', got {item!r}")
        metric, op, value = match.groups()
        return {"metric": canonical_metric(metric), "op": op, "value": float(value)}
    if isinstance(item, dict):
        return {**item, "metric": canonical_metric(str(item.get("metric", "")))}
    raise ValueError(f"a constraint is 'metric <= value' or {{metric, op, value}}, got {item!r}")


# ----- loading and validation -----------------------------------------------------------------------
def load_spec(source: str | Path | dict[str, Any] | SweepSpec) -> SweepSpec:
    """Load and fully validate a sweep spec (YAML path or dict); raises ``ConfigError`` on any problem."""
    if isinstance(source, SweepSpec):
        check_spec(source)
        return source
    origin = "sweep"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{source}: sweep spec file not found")
        origin = path.name
        try:
            source = _yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{origin}: malformed YAML: {str(err).splitlines()[0]}") from None
        source = _resolve_relative(source, path.parent)
    if not isinstance(source, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(source).__name__}")
    try:
        spec = SweepSpec.model_validate({**source, "origin": origin})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "<root>"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{origin}: {key}: {msg}") from None
    check_spec(spec)
    return spec


def _resolve_relative(data: Any, folder: Path) -> Any:
    """Make a relative arch base / recipe template path relative to the spec file's folder."""
    if not isinstance(data, dict):
        return data
    arch = data.get("arch")
    if isinstance(arch, dict) and isinstance(arch.get("base"), str) and (folder / arch["base"]).is_file():
        data = {**data, "arch": {**arch, "base": str(folder / arch["base"])}}
    recipes = data.get("recipes")
    if isinstance(recipes, dict):
        fixed = {}
        for name, value in recipes.items():
            template = value.get("template") if isinstance(value, dict) else value
            if isinstance(template, str) and (folder / template).is_file():
                value = {**value, "template": str(folder / template)} if isinstance(value, dict) else str(folder / template)
            fixed[name] = value
        data = {**data, "recipes": fixed}
    return data


def check_spec(spec: SweepSpec) -> None:
    """Check every override path and value against the base preset, every recipe template and the sampler."""
    origin = spec.origin
    try:
        base = spec.base_arch()
    except HwsimError as err:
        raise ConfigError(f"{origin}: arch.base: {err}") from None
    for path, value in spec.arch.fixed.items():
        _check_override(base, {path: value}, f"{origin}: arch.fixed.{path}")
    for dim in spec.hw_dimensions():
        probe = dim.values if dim.values is not None else (dim.range.cast(dim.range.low), dim.range.cast(dim.range.high))
        for value in probe:
            _check_override(base, {**spec.arch.fixed, dim.name: value, **_linked(spec, {dim.name: value})},
                            f"{origin}: arch.params.{dim.name}")
    for target, source in spec.arch.link.items():
        if source not in spec.arch.params:
            raise ConfigError(f"{origin}: arch.link.{target}: {source!r} is not a swept arch parameter "
                              f"(swept: {sorted(spec.arch.params)})")
    from hwsim.dse.templates import recipe_template

    for name in spec.recipes:
        recipe_template(spec, name)          # loads the template and checks placeholders
        spec.recipe_dimensions(name)
    if not 1 <= len(spec.objectives) <= 3:
        raise ConfigError(f"{origin}: objectives: give 1 to 3 objectives (got {len(spec.objectives)})")
    if spec.mapper.get("kind", "default") not in ("default", "search"):
        raise ConfigError(f"{origin}: mapper.kind: must be 'default' or 'search' (got {spec.mapper.get('kind')!r})")
    if spec.sampler.kind == "grid":
        for dim in spec.hw_dimensions() + [d for r in spec.recipes for d in spec.recipe_dimensions(r)]:
            try:
                dim.grid()
            except ValueError as err:
                raise ConfigError(f"{origin}: {dim.name}: {err}") from None
    elif spec.sampler.n is None:
        raise ConfigError(f"{origin}: sampler.n: the {spec.sampler.kind!r} sampler needs n (number of points)")


def _linked(spec: SweepSpec, hw: dict[str, Any]) -> dict[str, Any]:
    return {target: hw[source] for target, source in spec.arch.link.items() if source in hw}


def _check_override(base: ArchSpec, overrides: dict[str, Any], where: str) -> None:
    try:
        base.with_overrides(overrides, origin=base.name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def arch_overrides(spec: SweepSpec, hw: dict[str, Any]) -> dict[str, Any]:
    """All overrides for one point: fixed values, swept values, then linked copies."""
    return {**spec.arch.fixed, **hw, **_linked(spec, hw)}


def space_size(spec: SweepSpec) -> int:
    """Number of points the sampler will propose (grid: the full product)."""
    if spec.sampler.kind != "grid":
        return int(spec.sampler.n)
    hw = math.prod(len(d.grid()) for d in spec.hw_dimensions())
    recipes = sum(math.prod(len(d.grid()) for d in spec.recipe_dimensions(r)) for r in spec.recipes)
    return len(spec.models) * recipes * hw


def grid_product(dims: list[Dimension]):
    """Lazily yield dicts over the cartesian product of ``dims``' grid values."""
    names = [d.name for d in dims]
    for combo in itertools.product(*(d.grid() for d in dims)):
        yield dict(zip(names, combo))
