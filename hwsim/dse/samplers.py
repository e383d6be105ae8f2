"""Samplers that turn a ``SweepSpec`` into a stream of design ``Point``s.

``grid`` (the full product, lazily), ``random`` and ``lhs`` (Latin hypercube, scipy.stats.qmc) map unit
vectors onto the space; ``nsga2`` asks optuna's ``NSGAIISampler`` for each point and is told the
objectives back, so it steers towards the Pareto front. Every sampler is a generator (memory stays
flat) and has ``tell(point, values, violations)``; non-adaptive samplers ignore it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from hwsim.dse.spec import Dimension, SweepSpec, grid_product


BARRIER = object()   # yielded by adaptive samplers: finish and tell all in-flight points before continuing


@dataclass(frozen=True)
class Point:
    """One design point: a model, a recipe with its parameters, and hardware overrides."""

    model: str
    recipe: str
    recipe_params: tuple[tuple[str, Any], ...] = ()
    hw: tuple[tuple[str, Any], ...] = ()
    tag: int = -1                     # sampler bookkeeping (optuna trial number); not part of the key

    def params(self) -> dict[str, Any]:
        """Flat parameters: ``model``, ``recipe``, ``recipe.<name>``, ``hw.<path>``."""
        return {"model": self.model, "recipe": self.recipe,
                **{f"recipe.{k}": v for k, v in self.recipe_params},
                **{f"hw.{k}": v for k, v in self.hw}}


def _short(dim: Dimension) -> str:
    return dim.name.split(".", 1)[1]


class GridSampler:
    """Every combination; hardware varies fastest so consecutive points share one lowered graph."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec

    def points(self) -> Iterator[Point]:
        hw_dims = self.spec.hw_dimensions()
        for model in self.spec.models:
            for recipe in self.spec.recipes:
                rdims = self.spec.recipe_dimensions(recipe)
                for rvals in grid_product(rdims):
                    rparams = tuple((k.split(".", 1)[1], v) for k, v in rvals.items())
                    for hw in grid_product(hw_dims):
                        yield Point(model, recipe, rparams, tuple(hw.items()))

    def tell(self, point: Point, values: dict[str, float] | None, violations: list[float]) -> None:
        """Grid sampling does not adapt."""


class UnitCubeSampler:
    """``random`` (independent uniform draws) or ``lhs`` (Latin hypercube) over the whole space."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self.recipes = list(spec.recipes)
        self.hw_dims = spec.hw_dimensions()
        self.rdims = {r: spec.recipe_dimensions(r) for r in self.recipes}
        self.width = 2 + max((len(d) for d in self.rdims.values()), default=0) + len(self.hw_dims)

    def _unit_rows(self) -> Iterator[np.ndarray]:
        n, seed = int(self.spec.sampler.n), self.spec.sampler.seed
        if self.spec.sampler.kind == "lhs":
            from scipy.stats import qmc

            yield from qmc.LatinHypercube(d=self.width, seed=np.random.default_rng(seed)).random(n)
        else:
            rng = np.random.default_rng(seed)
            for _ in range(n):
                yield rng.random(self.width)

    def point_from_unit(self, u: np.ndarray) -> Point:
        """Map a unit vector onto a point: [model, recipe, recipe params..., hw params...]."""
        models = self.spec.models
        model = models[min(int(u[0] * len(models)), len(models) - 1)]
        recipe = self.recipes[min(int(u[1] * len(self.recipes)), len(self.recipes) - 1)]
        rdims = self.rdims[recipe]
        rparams = tuple((_short(d), d.from_unit(float(u[2 + i]))) for i, d in enumerate(rdims))
        offset = self.width - len(self.hw_dims)
        hw = tuple((d.name, d.from_unit(float(u[offset + i]))) for i, d in enumerate(self.hw_dims))
        return Point(model, recipe, rparams, hw)

    def points(self) -> Iterator[Point]:
        for u in self._unit_rows():
            yield self.point_from_unit(u)

    def tell(self, point: Point, values: dict[str, float] | None, violations: list[float]) -> None:
        """Random and LHS sampling do not adapt."""


class NSGA2Sampler:
    """NSGA-II via optuna's ask/tell interface, generation by generation (``sampler.population`` each).

    Telling a whole generation before asking the next makes a resumed sweep propose the same points."""

    def __init__(self, spec: SweepSpec):
        import optuna

        self.spec = spec
        sampler = optuna.samplers.NSGAIISampler(population_size=spec.sampler.population, seed=spec.sampler.seed)
        directions = ["maximize" if o.sense == "max" else "minimize" for o in spec.objectives]
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.trials: dict[int, Any] = {}

    def _suggest(self, trial: Any, name: str, dim: Dimension) -> Any:
        if dim.values is not None:
            if all(isinstance(v, (str, int, float, bool)) or v is None for v in dim.values):
                return trial.suggest_categorical(name, list(dim.values))
            return dim.values[trial.suggest_categorical(name, list(range(len(dim.values))))]
        rng = dim.range
        if rng.int:
            return trial.suggest_int(name, int(rng.low), int(rng.high), log=rng.log,
                                     step=int(rng.step) if rng.step and not rng.log else 1)
        return trial.suggest_float(name, rng.low, rng.high, log=rng.log,
                                   step=rng.step if rng.step and not rng.log else None)

    def points(self) -> Iterator[Point | object]:
        """One generation at a time, then ``BARRIER`` (the runner tells every result before going on)."""
        total, size = int(self.spec.sampler.n), self.spec.sampler.population
        for start in range(0, total, size):
            yield from self._generation(min(size, total - start))
            yield BARRIER

    def _generation(self, count: int) -> Iterator[Point]:
        for _ in range(count):
            trial = self.study.ask()
            model = trial.suggest_categorical("model", list(self.spec.models))
            recipe = trial.suggest_categorical("recipe", list(self.spec.recipes))
            rparams = tuple((_short(d), self._suggest(trial, d.name, d)) for d in self.spec.recipe_dimensions(recipe))
            hw = tuple((d.name, self._suggest(trial, f"hw.{d.name}", d)) for d in self.spec.hw_dimensions())
            self.trials[trial.number] = trial
            yield Point(model, recipe, rparams, hw, tag=trial.number)

    def tell(self, point: Point, values: dict[str, float] | None, violations: list[float]) -> None:
        """Report a finished point's objectives (``None``: the point failed)."""
        import optuna

        trial = self.trials.pop(point.tag, None)
        if trial is None:
            return
        if values is None or any(values.get(o.metric) is None for o in self.spec.objectives):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        for constraint, violation in zip(self.spec.constraints, violations):
            trial.set_constraint(f"{constraint.metric}{constraint.op}{constraint.value:g}", float(violation))
        self.study.tell(trial, [float(values[o.metric]) for o in self.spec.objectives])


def make_sampler(spec: SweepSpec) -> GridSampler | UnitCubeSampler | NSGA2Sampler:
    """The sampler named by ``spec.sampler.kind``."""
    kind = spec.sampler.kind
    if kind == "grid":
        return GridSampler(spec)
    if kind in ("random", "lhs"):
        return UnitCubeSampler(spec)
    return NSGA2Sampler(spec)


def take(iterator: Iterator[Point], count: int) -> list[Point]:
    """The first ``count`` points (for previews and tests)."""
    return list(itertools.islice(iterator, count))
