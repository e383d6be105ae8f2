"""Mapper constraints: a parsed, validated ``ConstraintSet`` and its resolution against an arch and a layer.

A constraint set restricts the mapspace ``SearchMapper`` searches; every candidate the search evaluates
is projected onto it first, so no plan that violates a constraint is scored or returned. Kinds:

* per level ``keep`` (tensors the level must keep) and ``bypass`` (tensors it must not keep);
* per level temporal ``factors`` ``{dim: n}`` (exact; ``0`` is Timeloop's residual: the level takes
  whatever the other levels leave of that dim);
* per level ``permutation`` (Timeloop's spelling, inner -> outer) or ``order`` (hwsim's, outer -> inner,
  or a stationarity name ``W``/``O``/``I``); a partial list fixes the *innermost* loops in that sequence,
  the other dims stay free above them, as Timeloop's permutation does;
* spatial unrolling, for the whole array (top-level ``spatial``) or one level's fan-out (the level's
  ``spatial``): per axis ``x``/``y`` a list of allowed dims or an exact ``{dim: n}`` (that axis unrolls
  exactly these), and axis-free exact ``factors`` ``{dim: n}`` (``1``: not unrolled there).

Spellings (all give the same ``ConstraintSet``): a Python dict (``parse_constraints``), a YAML file of the
same shape, or Timeloop's mapspace constraints (``from_timeloop``: v0.3 ``mapspace: {constraints: [..]}``
or ``mapspace_constraints: [..]``, v0.4 ``mapspace_constraints: {targets: [..]}``); ``load_constraints``
reads either file kind. Dict form::

    {"spatial": {"x": ["K"] | {"K": 4}, "y": [...], "factors": {"C": 8}},
     "levels": {"GLB": {"keep": ["W"], "bypass": ["I"], "factors": {"K": 2, "P": 0},
                        "permutation": "SR" | "order": ["C", "R", "S"] | "W",
                        "spatial": {"x": {"K": 8}}}}}

Malformed input raises a one-sentence ``ConfigError`` naming the level and field; so do constraints that
the architecture or the layer cannot satisfy (``Resolved``), and ``run_search`` when no mapping satisfies
all of them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hwsim.errors import ConfigError
from hwsim.mappers.mapping import DIMS, TENSORS

_TENSOR_NAMES = {"w": "W", "weight": "W", "weights": "W", "filter": "W", "filters": "W",
                 "i": "I", "input": "I", "inputs": "I", "ifmap": "I", "ifmaps": "I",
                 "o": "O", "output": "O", "outputs": "O", "ofmap": "O", "ofmaps": "O", "psum": "O"}
_DIM_ALIASES = {"M": "K"}          # Timeloop v0.4 examples name output channels M
_LEVEL_KEYS = {"keep", "bypass", "factors", "order", "permutation", "spatial"}
Pairs = tuple[tuple[str, int], ...]


# ----- the constraint set ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisRule:
    """One mesh axis: allowed dims (``None``: the architecture's) and/or an exact unrolling."""

    dims: tuple[str, ...] | None = None
    exact: Pairs | None = None            # the axis unrolls exactly these (dims not listed: not at all)


@dataclass(frozen=True)
class SpatialRule:
    """Spatial constraints of one scope (the whole array, or one level's fan-out)."""

    x: AxisRule = AxisRule()
    y: AxisRule = AxisRule()
    factors: Pairs = ()                   # axis-free exact products over x and y (1: not unrolled)

    @property
    def empty(self) -> bool:
        return self == SpatialRule()


@dataclass(frozen=True)
class LevelRule:
    """Constraints on one memory level."""

    keep: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()
    factors: Pairs = ()                   # exact temporal factors
    residual: tuple[str, ...] = ()        # dims this level takes the rest of (Timeloop's ``=0``)
    permutation: tuple[str, ...] = ()     # inner -> outer; partial: the innermost loops
    spatial: SpatialRule = SpatialRule()


@dataclass(frozen=True)
class ConstraintSet:
    """A validated, architecture-independent set of mapper constraints (hashable, JSON round-trip)."""

    spatial: SpatialRule = SpatialRule()
    levels: tuple[tuple[str, LevelRule], ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return self.spatial.empty and not self.levels

    def level(self, name: str) -> LevelRule:
        return dict(self.levels).get(name, LevelRule())

    def to_dict(self) -> dict[str, Any]:
        """The canonical dict spelling (``parse_constraints(c.to_dict()) == c``)."""
        out: dict[str, Any] = {}
        if not self.spatial.empty:
            out["spatial"] = _spatial_dict(self.spatial)
        levels = {}
        for name, rule in self.levels:
            entry: dict[str, Any] = {}
            if rule.keep:
                entry["keep"] = list(rule.keep)
            if rule.bypass:
                entry["bypass"] = list(rule.bypass)
            if rule.factors or rule.residual:
                entry["factors"] = dict(rule.factors) | {d: 0 for d in rule.residual}
            if rule.permutation:
                entry["permutation"] = list(rule.permutation)
            if not rule.spatial.empty:
                entry["spatial"] = _spatial_dict(rule.spatial)
            levels[name] = entry
        if levels:
            out["levels"] = levels
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _spatial_dict(rule: SpatialRule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for axis in ("x", "y"):
        ax: AxisRule = getattr(rule, axis)
        if ax.exact is not None:
            out[axis] = dict(ax.exact)
        elif ax.dims is not None:
            out[axis] = list(ax.dims)
    if rule.factors:
        out["factors"] = dict(rule.factors)
    return out


# ----- parsing the dict / YAML spelling ---------------------------------------------------------------
def _dim(name: Any, *, where: str) -> str:
    dim = _DIM_ALIASES.get(str(name).strip(), str(name).strip())
    if dim not in DIMS:
        raise ConfigError(f"{where}: unknown dim {name!r} (valid: {' '.join(DIMS)})")
    return dim


def _tensor(name: Any, *, where: str) -> str:
    tensor = _TENSOR_NAMES.get(str(name).strip().lower())
    if tensor is None:
        raise ConfigError(f"{where}: unknown tensor {name!r} (valid: W I O, or Weights Inputs Outputs)")
    return tensor


def _tensors(items: Any, *, where: str) -> tuple[str, ...]:
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of tensors (got {items!r})")
    chosen = {_tensor(t, where=where) for t in items}
    return tuple(t for t in TENSORS if t in chosen)


def _factor_map(raw: Any, *, where: str, allow_zero: bool) -> dict[str, int]:
    """``{dim: n}`` or Timeloop's ``"R=3 S=3 P=0"`` / ``["R=3", "S=3"]`` -> {dim: n} (dims validated)."""
    if isinstance(raw, (str, list, tuple)):
        text = " ".join(str(x) for x in raw) if isinstance(raw, (list, tuple)) else raw
        pairs = re.findall(r"(\w+)\s*=\s*(-?\d+)", text)
        if re.sub(r"(\w+)\s*=\s*(-?\d+)", "", text).strip(" ,"):
            raise ConfigError(f"{where}: cannot parse factors {text!r} (expected 'DIM=n' terms, e.g. 'R=3 P=0')")
        raw = dict(pairs)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected factors as {{dim: n}} or 'DIM=n ...' (got {raw!r})")
    out: dict[str, int] = {}
    for name, value in raw.items():
        dim = _dim(name, where=where)
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: factor of {dim} must be an integer (got {value!r})") from None
        if n < (0 if allow_zero else 1) or (isinstance(value, float) and value != n):
            raise ConfigError(f"{where}: factor of {dim} must be {'>= 0 (0: residual)' if allow_zero else '>= 1'}"
                              f" (got {value!r})")
        if dim in out and out[dim] != n:
            raise ConfigError(f"{where}: dim {dim} given two factors ({out[dim]} and {n})")
        out[dim] = n
    return out


def _dim_list(raw: Any, *, where: str) -> tuple[str, ...]:
    items = list(raw) if isinstance(raw, str) and " " not in raw.strip() else (
        raw.split() if isinstance(raw, str) else raw)
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of dims (got {raw!r})")
    dims = tuple(_dim(d, where=where) for d in items)
    if len(set(dims)) != len(dims):
        raise ConfigError(f"{where}: a dim appears twice in {list(dims)}")
    return dims


def _axis(raw: Any, *, where: str) -> AxisRule:
    if isinstance(raw, dict):
        exact = _factor_map(raw, where=where, allow_zero=False)
        return AxisRule(dims=None, exact=tuple((d, n) for d, n in exact.items() if n > 1))
    return AxisRule(dims=_dim_list(raw, where=where))


def _spatial(raw: Any, *, where: str) -> SpatialRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{x: .., y: .., factors: ..}} (got {raw!r})")
    if unknown := sorted(set(raw) - {"x", "y", "factors"}):
        raise ConfigError(f"{where}: unknown key(s) {unknown} (valid: x, y, factors)")
    x = _axis(raw["x"], where=f"{where}.x") if "x" in raw else AxisRule()
    y = _axis(raw["y"], where=f"{where}.y") if "y" in raw else AxisRule()
    factors = _factor_map(raw.get("factors") or {}, where=f"{where}.factors", allow_zero=False)
    return SpatialRule(x=x, y=y, factors=tuple(sorted(factors.items(), key=lambda p: DIMS.index(p[0]))))


def _level(name: str, spec: Any, *, where: str) -> LevelRule:
    where = f"{where}.levels.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of constraint kinds (got {spec!r})")
    if unknown := sorted(set(spec) - _LEVEL_KEYS):
        raise ConfigError(f"{where}: unknown key(s) {unknown} (valid: {', '.join(sorted(_LEVEL_KEYS))})")
    keep = _tensors(spec.get("keep") or [], where=f"{where}.keep")
    bypass = _tensors(spec.get("bypass") or [], where=f"{where}.bypass")
    if both := [t for t in keep if t in bypass]:
        raise ConfigError(f"{where}: tensor(s) {both} are both kept and bypassed")
    factors = _factor_map(spec.get("factors") or {}, where=f"{where}.factors", allow_zero=True)
    if "order" in spec and "permutation" in spec:
        raise ConfigError(f"{where}: give order (outer -> inner) or permutation (inner -> outer), not both")
    permutation: tuple[str, ...] = ()
    if "order" in spec:
        order = spec["order"]
        from hwsim.models.spatial.default import ORDERS    # the engine's stationarity orders, outer -> inner
        if isinstance(order, str) and order in ORDERS:
            permutation = tuple(reversed(ORDERS[order]))
        else:
            permutation = tuple(reversed(_dim_list(order, where=f"{where}.order")))
    elif "permutation" in spec:
        permutation = _dim_list(spec["permutation"], where=f"{where}.permutation")
    spatial = _spatial(spec["spatial"], where=f"{where}.spatial") if spec.get("spatial") else SpatialRule()
    ordered = lambda dims: sorted(dims, key=DIMS.index)  # noqa: E731
    return LevelRule(keep=keep, bypass=bypass,
                     factors=tuple((d, factors[d]) for d in ordered(d for d in factors if factors[d] > 0)),
                     residual=tuple(ordered(d for d in factors if factors[d] == 0)),
                     permutation=permutation, spatial=spatial)


def parse_constraints(raw: Any, *, where: str = "constraints") -> ConstraintSet:
    """A ``ConstraintSet`` from the dict spelling (``None`` / ``{}``: no constraints)."""
    if raw is None:
        return ConstraintSet()
    if isinstance(raw, ConstraintSet):
        return raw
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{where}: a string must be a JSON constraint set; pass a file through "
                              f"load_constraints(path)") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a dict with 'levels' and/or 'spatial' (got {type(raw).__name__})")
    if unknown := sorted(set(raw) - {"levels", "spatial"}):
        raise ConfigError(f"{where}: unknown key(s) {unknown} (valid: levels, spatial)")
    levels = raw.get("levels") or {}
    if not isinstance(levels, dict):
        raise ConfigError(f"{where}.levels: expected {{LEVEL: {{...}}}} (got {levels!r})")
    rules = tuple((str(name), _level(str(name), spec, where=where)) for name, spec in levels.items())
    spatial = _spatial(raw["spatial"], where=f"{where}.spatial") if raw.get("spatial") else SpatialRule()
    return ConstraintSet(spatial=spatial, levels=tuple(sorted((n, r) for n, r in rules if r != LevelRule())))


# ----- Timeloop's mapspace constraints ----------------------------------------------------------------
def _timeloop_entries(data: Any, *, where: str) -> list[dict[str, Any]]:
    """The list of constraint entries of a Timeloop v0.3 / v0.4 constraints document."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected Timeloop mapspace constraints (a mapping)")
    found = False
    entries: list[dict[str, Any]] = []
    for key in ("mapspace", "mapspace_constraints", "architecture_constraints", "constraints"):
        block = data.get(key)
        if block is None:
            continue
        found = True
        if key == "mapspace" and isinstance(block, dict):
            block = block.get("constraints", [])
        if isinstance(block, dict):
            block = block.get("targets", [])
        if not isinstance(block, list):
            raise ConfigError(f"{where}: {key}: expected a list of constraints or {{targets: [...]}}")
        entries += block
    if not found:
        raise ConfigError(f"{where}: no Timeloop constraints found (expected 'mapspace: {{constraints: [...]}}', "
                          f"'mapspace_constraints' or 'architecture_constraints')")
    return entries


def from_timeloop(data: Any, *, where: str = "timeloop constraints") -> ConstraintSet:
    """A ``ConstraintSet`` from Timeloop's mapspace constraints (parsed YAML).

    ``temporal``: ``factors`` (``=0``: residual) and ``permutation`` (inner -> outer); ``spatial``:
    ``factors`` (``=1``: not unrolled, ``=0``: free) and ``permutation`` + ``split`` (dims before ``split``
    go to X, the rest to Y, dims it leaves out are not unrolled; no ``split``: all X, as
    ``hwsim.interop.timeloop``'s mapping reader takes it); ``bypass`` /
    ``datatype`` / ``dataspace``: ``keep`` and ``bypass``. Other types are refused, not ignored.
    """
    levels: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(_timeloop_entries(data, where=where)):
        at = f"{where}: constraint {i}"
        if not isinstance(entry, dict) or "target" not in entry or "type" not in entry:
            raise ConfigError(f"{at}: each constraint needs a 'target' level and a 'type'")
        target, kind = str(entry["target"]), str(entry["type"])
        spec = levels.setdefault(target, {})
        at = f"{at} ({target}, {kind})"
        if kind in ("bypass", "datatype", "dataspace"):
            for key in ("keep", "bypass"):
                spec[key] = list(spec.get(key, [])) + list(entry.get(key) or [])
        elif kind == "temporal":
            if "temporal" in spec:
                raise ConfigError(f"{at}: a second temporal constraint for the same level")
            spec["temporal"] = True
            if entry.get("factors"):
                spec["factors"] = _factor_map(entry["factors"], where=f"{at}.factors", allow_zero=True)
            if entry.get("permutation"):
                spec["permutation"] = _dim_list(entry["permutation"], where=f"{at}.permutation")
        elif kind == "spatial":
            if "spatial" in spec:
                raise ConfigError(f"{at}: a second spatial constraint for the same level")
            factors = _factor_map(entry.get("factors") or {}, where=f"{at}.factors", allow_zero=True)
            rule: dict[str, Any] = {"factors": {d: n for d, n in factors.items() if n > 0}}
            if entry.get("permutation"):
                perm = _dim_list(entry["permutation"], where=f"{at}.permutation")
                split = int(entry.get("split", len(perm)))
                if not 0 <= split <= len(perm):
                    raise ConfigError(f"{at}.split: must lie in 0..{len(perm)} (got {split})")
                rule["x"], rule["y"] = list(perm[:split]), list(perm[split:])
            spec["spatial"] = rule
        else:
            raise ConfigError(f"{at}.type: {kind!r} is not supported (temporal, spatial, bypass/datatype/dataspace)")
        unknown = sorted(set(entry) - {"target", "type", "factors", "permutation", "split", "keep", "bypass"})
        if unknown:
            raise ConfigError(f"{at}: key(s) {unknown} are not supported")
    spelled = {name: {k: v for k, v in spec.items() if k != "temporal"} for name, spec in levels.items()}
    return parse_constraints({"levels": spelled}, where=where)


def load_constraints(path: str | Path) -> ConstraintSet:
    """Read a constraints YAML: hwsim's dict spelling (``levels``/``spatial``) or Timeloop's mapspace
    constraints (``mapspace``, ``mapspace_constraints`` or ``architecture_constraints`` at the top)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: constraints file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path.name}: malformed YAML: {str(err).splitlines()[0]}") from None
    timeloop = isinstance(data, list) or (isinstance(data, dict) and bool(
        {"mapspace", "mapspace_constraints", "architecture_constraints", "constraints"} & set(data)))
    return from_timeloop(data, where=path.name) if timeloop else parse_constraints(data, where=path.name)


# ----- resolution against an architecture and a layer ---------------------------------------------------
class Resolved:
    """A ``ConstraintSet`` checked against an arch and a problem, in the search's terms (level indices).

    ``project(plan)`` maps any plan onto the constraint set (``None`` when no plan with that spatial
    unrolling can satisfy it); ``violations(mapping)`` lists what a finished mapping breaks (empty: obeys).
    """

    def __init__(self, cons: ConstraintSet, arch: Any, problem: Any) -> None:
        from hwsim.models.spatial.default import default_keep
        from hwsim.models.spatial.nest import fanouts
        self.cons, self.arch, self.problem = cons, arch, problem
        names = [lvl.name for lvl in arch.memory]
        if unknown := sorted({n for n, _ in cons.levels} - set(names)):
            raise ConfigError(f"constraints: unknown level(s) {unknown} on {arch.name} (levels: {names})")
        self.n = len(names)
        self.names = names
        self.fanouts = fanouts(arch)
        holdable = default_keep(arch)
        self.must = [frozenset() for _ in names]
        self.never = [frozenset() for _ in names]
        self.fixed: dict[tuple[int, int], int] = {}
        self.residual: dict[int, int] = {}                  # dim index -> level index
        self.perms: dict[int, tuple[str, ...]] = {}
        self.level_spatial: dict[int, SpatialRule] = {}
        for name, rule in cons.levels:
            i = names.index(name)
            if cannot := [t for t in rule.keep if t not in holdable[i]]:
                raise ConfigError(f"constraints: level {name!r} cannot keep {cannot} (it can hold: "
                                  f"{list(holdable[i]) or 'nothing'})")
            if rule.bypass and i == 0:
                raise ConfigError(f"constraints: level {name!r} is the outermost level and holds every tensor; "
                                  f"it cannot bypass {list(rule.bypass)}")
            self.must[i], self.never[i] = frozenset(rule.keep), frozenset(rule.bypass)
            for d, f in rule.factors:
                self.fixed[(i, DIMS.index(d))] = f
            for d in rule.residual:
                if DIMS.index(d) in self.residual:
                    raise ConfigError(f"constraints: dim {d} has a residual (=0) factor at two levels "
                                      f"({names[self.residual[DIMS.index(d)]]!r} and {name!r})")
                self.residual[DIMS.index(d)] = i
            if rule.permutation:
                self.perms[i] = rule.permutation
            if not rule.spatial.empty:
                self.level_spatial[i] = rule.spatial
        self.keep_seed = tuple(tuple(t for t in holdable[i] if t not in self.never[i]) for i in range(self.n))
        self.toggles = tuple(tuple(t for t in holdable[i] if t not in self.must[i] | self.never[i])
                             for i in range(self.n))
        self.has_spatial = bool(self.level_spatial) or not cons.spatial.empty
        self._check_bounds()

    # -- validation against the layer --------------------------------------------------------------
    def _check_bounds(self) -> None:
        bound = self.problem.bound
        for d in DIMS:
            found = [(f"level {self.names[i]!r} temporal", f) for (i, k), f in self.fixed.items() if DIMS[k] == d]
            found += [(f"level {self.names[i]!r} spatial", f) for i, rule in self.level_spatial.items()
                      for f in [_scope_product(rule, d)] if f]
            g = _scope_product(self.cons.spatial, d)
            for where, f in found + ([("array spatial", g)] if g else []):
                if f > bound[d] or bound[d] % f:
                    raise ConfigError(f"constraints: {where} factor {d}={f} "
                                      f"{'exceeds' if f > bound[d] else 'does not divide'} the layer's {d} = {bound[d]}")
            total = math.prod(f for _, f in found)
            if total > bound[d] or bound[d] % total:
                raise ConfigError(f"constraints: the factors of {d} ({', '.join(f'{w} {f}' for w, f in found)}) "
                                  f"multiply to {total}, which {'exceeds' if total > bound[d] else 'does not divide'} "
                                  f"the layer's {d} = {bound[d]}")
        for i, rule in self.level_spatial.items():
            for axis, size in zip(("x", "y"), self.fanouts[i]):
                exact = getattr(rule, axis).exact
                if exact and math.prod(f for _, f in exact) > size:
                    raise ConfigError(f"constraints: level {self.names[i]!r} spatial.{axis} unrolls "
                                      f"{math.prod(f for _, f in exact)} but its fan-out has {size} on {axis}")
            wanted = math.prod(f for _, f in rule.factors)
            if wanted > math.prod(self.fanouts[i]):
                raise ConfigError(f"constraints: level {self.names[i]!r} spatial factors multiply to {wanted} "
                                  f"but its fan-out has {math.prod(self.fanouts[i])} units")

    # -- projection of plans ------------------------------------------------------------------------
    def project(self, plan: Any) -> Any:
        """``plan`` with every constraint imposed (keep, bypass, factors, permutations), or ``None``."""
        from dataclasses import replace
        keep = tuple(tuple(t for t in TENSORS if (t in plan.keep[i] or t in self.must[i]) and t not in self.never[i])
                     for i in range(self.n))
        orders = tuple(self.order(i, o) for i, o in enumerate(plan.orders))
        factors = self.factors(plan.factors)
        if factors is None:
            return None
        return replace(plan, keep=keep, orders=orders, factors=factors)

    def order(self, i: int, order: tuple[str, ...]) -> tuple[str, ...]:
        """A level's order (outer -> inner) with its permutation's dims moved innermost, in sequence."""
        perm = self.perms.get(i)
        if not perm:
            return order
        return tuple(d for d in order if d not in perm) + tuple(reversed(perm))

    def factors(self, factors: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...] | None:
        """Temporal factors with the fixed ones imposed; the rest of each dim goes to its residual level
        (or the outermost free one), keeping as much of the plan's inner tiling as divides what is left."""
        if not self.fixed:
            return factors
        out = [list(f) for f in factors]
        for k in {k for _, k in self.fixed}:
            total = math.prod(out[i][k] for i in range(self.n))
            fixed = {i: f for (i, kk), f in self.fixed.items() if kk == k}
            prod = math.prod(fixed.values())
            if total % prod:
                return None
            rest = total // prod
            free = [i for i in range(self.n) if i not in fixed]
            if not free:
                if rest != 1:
                    return None
            else:
                sink = self.residual.get(k, free[0])
                for i in sorted((i for i in free if i != sink), reverse=True):
                    out[i][k] = math.gcd(out[i][k], rest)
                    rest //= out[i][k]
                out[sink][k] = rest
            for i, f in fixed.items():
                out[i][k] = f
        return tuple(tuple(f) for f in out)

    # -- spatial rules (used by spatial_candidates) -------------------------------------------------
    def axis_dims(self, level: int, axis: int, default: tuple[str, ...]) -> tuple[str, ...]:
        """Dims mesh ``axis`` (0: x, 1: y) of ``level``'s fan-out may unroll."""
        name = "xy"[axis]
        scopes = (self.cons.spatial, self.level_spatial.get(level, SpatialRule()))
        dims, listed = default, False
        for rule in scopes:
            ax: AxisRule = getattr(rule, name)
            if ax.exact is not None:
                dims, listed = tuple(d for d, _ in ax.exact), True
            elif ax.dims is not None:
                dims, listed = ax.dims, True
        if not listed:       # axis-free exact factors may use any axis no rule restricts
            dims += tuple(d for rule in scopes for d, f in rule.factors if f > 1 and d not in dims)
        banned = {d for rule in (self.cons.spatial, self.level_spatial.get(level, SpatialRule()))
                  for d, f in rule.factors if f == 1}
        return tuple(d for d in dims if d not in banned)

    def axis_options(self, level: int, axis: int, options: list[Pairs], size: int) -> list[Pairs]:
        """``options`` (the default unrollings of one axis) with the exact ones the constraints need added
        and the ones no constraint admits removed."""
        name = "xy"[axis]
        rules = [self.cons.spatial, self.level_spatial.get(level, SpatialRule())]
        level_exact = getattr(rules[1], name).exact
        if level_exact is not None:
            return [tuple(level_exact)]
        caps: dict[str, int] = {}
        extra: list[Pairs] = []
        for rule in rules:
            exact = getattr(rule, name).exact
            wanted = list(exact or ()) + [(d, f) for d, f in rule.factors if f > 1]
            for d, f in wanted:
                caps[d] = math.gcd(caps.get(d, f), f)
            if exact:
                extra.append(tuple(exact))
            big = tuple((d, f) for d, f in rule.factors if f > 1)
            if big:
                extra += [big] + [((d, f),) for d, f in big]
        allowed = set(self.axis_dims(level, axis, tuple(DIMS)))
        out = []
        for opt in list(options) + extra:
            if math.prod(f for _, f in opt) > size or any(d not in allowed for d, _ in opt):
                continue
            if all(caps.get(d, f) % f == 0 for d, f in opt) and opt not in out:
                out.append(opt)
        return out or [()]

    def spatial_violations(self, spatial: Any) -> list[str]:
        """What a spatial unrolling (per level: (x loops, y loops)) breaks."""
        out = []
        scopes = [("the array", self.cons.spatial, list(range(self.n)))]
        scopes += [(f"level {self.names[i]!r}", rule, [i]) for i, rule in self.level_spatial.items()]
        for label, rule, levels in scopes:
            for a, name in enumerate("xy"):
                loops = [(d, f) for i in levels for d, f in spatial[i][a] if f > 1]
                ax: AxisRule = getattr(rule, name)
                if ax.dims is not None and (bad := sorted({d for d, _ in loops} - set(ax.dims))):
                    out.append(f"{label} unrolls {bad} on {name} (allowed: {list(ax.dims)})")
                if ax.exact is not None:
                    got = _products(loops)
                    if got != dict(ax.exact):
                        out.append(f"{label} unrolls {got} on {name} (required exactly {dict(ax.exact)})")
            both = _products([(d, f) for i in levels for a in (0, 1) for d, f in spatial[i][a]])
            for d, f in rule.factors:
                if both.get(d, 1) != f:
                    out.append(f"{label} unrolls {d} by {both.get(d, 1)} (required {f})")
        return out

    def temporal_fits(self, remaining: dict[str, int]) -> bool:
        """Whether the trip counts an unrolling leaves (``remaining``) admit the fixed temporal factors."""
        for k in {k for _, k in self.fixed}:
            prod = math.prod(f for (i, kk), f in self.fixed.items() if kk == k)
            left = remaining[DIMS[k]]
            if left % prod or (len({i for i, kk in self.fixed if kk == k}) == self.n and left != prod):
                return False
        return True

    def violations(self, mapping: Any) -> list[str]:
        """Every constraint ``mapping`` breaks, one line each (empty: it obeys them all)."""
        out = []
        for i, lvl in enumerate(mapping.levels):
            name = self.names[i]
            if missing := sorted(self.must[i] - set(lvl.keep)):
                out.append(f"level {name!r} does not keep {missing}")
            if kept := sorted(self.never[i] & set(lvl.keep)):
                out.append(f"level {name!r} keeps bypassed {kept}")
            for (j, k), f in self.fixed.items():
                if j == i and lvl.factor(DIMS[k], spatial=False) != f:
                    out.append(f"level {name!r} temporal {DIMS[k]} is {lvl.factor(DIMS[k], spatial=False)} (required {f})")
            perm = self.perms.get(i)
            if perm:
                live = [d for d, b in reversed(lvl.temporal) if b > 1]          # inner -> outer
                want = [d for d in perm if d in live]
                if live[:len(want)] != want:
                    out.append(f"level {name!r} loops inner -> outer {live} break permutation {list(perm)}")
        out += self.spatial_violations([(lvl.spatial_x, lvl.spatial_y) for lvl in mapping.levels])
        return out


def _products(loops: Iterable[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, f in loops:
        if f > 1:
            out[d] = out.get(d, 1) * f
    return out


def _scope_product(rule: SpatialRule, dim: str) -> int:
    """The exact spatial factor a scope fixes for ``dim`` (0: none)."""
    for ax in (rule.x, rule.y):
        if ax.exact is not None and dim in dict(ax.exact):
            return dict(ax.exact)[dim]
    return dict(rule.factors).get(dim, 0) if dict(rule.factors).get(dim, 1) > 1 else 0


__all__ = ["AxisRule", "ConstraintSet", "LevelRule", "Resolved", "SpatialRule", "from_timeloop",
           "load_constraints", "parse_constraints"]
