"""Self-adaptive compression: search a per-layer policy with the hardware model in the loop.

HAQ (Wang et al., CVPR 2019) searched per-layer bit widths against a hardware simulator, AMC (He et
al., ECCV 2018) per-layer pruning ratios. Here a seeded multi-objective search (optuna's NSGA-II)
proposes per-layer policies (``hwsim.dse.policy``); each is priced by editing the lowered
``LayerGraph`` and simulating it (no torch, no re-lowering; per-layer results are memoized), and
scored with a cheap accuracy proxy (the compressed model on a held-out validation slice, no
fine-tuning). The candidates on the Pareto front then get real accuracy: prune, fine-tune with the
masks held, quantize, and evaluate on the test split. Every accuracy says which of these it is.
Trials are kept in an SQLite store (optuna's RDB storage), so a killed search resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwsim.dse.autospace import (PolicySpace, layer_groups, load_space, parse_prune, searched_layers,
                                 valid_prune_choices)
from hwsim.dse.pareto import pareto_mask
from hwsim.dse.policy import LayerPolicy, LayerStats, Policy, apply_policy, policy_recipe
from hwsim.errors import ConfigError
from hwsim.ir import LayerGraph

OBJECTIVES = {"accuracy": "max", "latency": "min", "energy": "min", "power": "min"}
_METRIC = {"accuracy": "accuracy", "latency": "latency_s", "energy": "energy_pj", "power": "power_mw"}
BUDGET_KEYS = {"latency_ms": ("latency_s", 1e-3), "energy_uj": ("energy_pj", 1e6), "power_mw": ("power_mw", 1.0)}


def parse_budgets(items: list[str] | dict[str, float] | None) -> dict[str, float]:
    """``["latency_ms=2", "accuracy_drop=0.01"]`` (or a dict) as ``{name: value}``, names checked."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, dict) else (_split_budget(item) for item in items)
    out = {}
    for key, value in pairs:
        if key not in (*BUDGET_KEYS, "accuracy_drop"):
            raise ConfigError(f"budget {key!r}: expected one of {[*BUDGET_KEYS, 'accuracy_drop']}")
        out[key] = float(value)
    return out


def _split_budget(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"budget {item!r}: write NAME=VALUE, e.g. latency_ms=2.5")
    try:
        float(value)
    except ValueError:
        raise ConfigError(f"budget {item!r}: {value!r} is not a number") from None
    return key.strip(), value


class HardwareCost:
    """Prices a policy: edit the graph, simulate it with memoized layers (torch-free)."""

    def __init__(self, graph: LayerGraph, arch: Any, stats: LayerStats | None = None, *, mapper: Any = None):
        self.graph, self.arch, self.stats, self.mapper = graph, arch, stats, mapper
        self.cache: dict[Any, Any] = {}
        self.evaluations = 0
        self.seconds = 0.0

    def __call__(self, policy: Policy) -> dict[str, float]:
        from hwsim.simulate import simulate_graph

        start = time.perf_counter()
        result = simulate_graph(apply_policy(self.graph, policy, self.stats), self.arch, mapper=self.mapper,
                                layer_cache=self.cache)
        self.evaluations += 1
        self.seconds += time.perf_counter() - start
        total = result.total
        return {"latency_s": total["latency_s"], "energy_pj": total["energy_pj"], "power_mw": total["power_mw"],
                "cycles": total["cycles"], "macs": total["macs"]}


@dataclass
class SearchResult:
    """What ``autocompress`` found: baselines, the Pareto set, every trial, and how long it took."""

    model: str
    arch: str
    accuracy_kind: str
    baselines: dict[str, dict[str, Any]]
    pareto: list[dict[str, Any]]
    trials: list[dict[str, Any]]
    wall_s: float
    hardware_evaluations: int
    hardware_s: float
    space: dict[str, Any] = field(default_factory=dict)

    @property
    def hardware_evals_per_s(self) -> float:
        return self.hardware_evaluations / self.hardware_s if self.hardware_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "arch": self.arch, "accuracy_kind": self.accuracy_kind,
                "baselines": self.baselines, "pareto": self.pareto, "trials": len(self.trials),
                "wall_s": self.wall_s, "hardware_evaluations": self.hardware_evaluations,
                "hardware_evals_per_s": self.hardware_evals_per_s, "space": self.space}

    def write(self, outdir: str | Path) -> Path:
        """``result.json``, ``trials.csv``, one replayable recipe and policy table per Pareto point, ``report.html``."""
        import csv

        import yaml

        out = Path(outdir)
        (out / "recipes").mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(self.to_json(), indent=1))
        for i, point in enumerate(self.pareto):
            (out / "recipes" / f"pareto_{i:02d}.yaml").write_text(yaml.safe_dump(point["recipe"], sort_keys=False))
            with (out / "recipes" / f"pareto_{i:02d}_policy.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["layer", "weight_bits", "act_bits", "prune"])
                for path, lp in point["policy"].items():
                    writer.writerow([path, lp.get("weight_bits"), lp.get("act_bits"), LayerPolicy(**lp).describe()])
        keys = ["trial", "proxy_accuracy", "latency_s", "energy_pj", "power_mw", "feasible"]
        with (out / "trials.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.trials)
        from hwsim.dse.autocompress_report import write_html

        write_html(self, out / "report.html")
        return out


def _choice_lists(graph: LayerGraph, space: PolicySpace, channel_prunable: set[str]) -> dict[str, dict[str, Any]]:
    """Per group: its layers, and the weight bits, act bits and prune choices valid for every one of them."""
    layers = {layer.source or layer.name: layer for layer in searched_layers(graph, space)}
    if not layers:
        raise ConfigError(f"{graph.name}: the policy space selects no weight layer (layers={space.layers}, "
                          f"exclude={space.exclude}, keep_first_last={space.keep_first_last})")
    out = {}
    for group, paths in layer_groups(list(layers.values()), space).items():
        out[group] = {"paths": paths, "layers": [layers[p] for p in paths], "weight_bits": space.weight_bits,
                      "act_bits": space.act_bits or [None],
                      "prune": _valid_for_all([layers[p] for p in paths], space.prune, channel_prunable) or ["none"]}
    return out


def _valid_for_all(layers: list, prune: list[str], channel_prunable: set[str]) -> list[str]:
    return [c for c in prune if all(valid_prune_choices(layer, [c], channel_prunable) for layer in layers)]


def _policy(choices: dict[str, dict[str, Any]], picks: dict[str, tuple[Any, Any, str]]) -> Policy:
    layers = {}
    for group, (wbits, abits, prune) in picks.items():
        lp = LayerPolicy(weight_bits=wbits, act_bits=abits, **parse_prune(prune))
        layers.update({path: lp for path in choices[group]["paths"]})
    return Policy(layers)


def _baselines(choices: dict[str, dict[str, Any]], arch: Any, channel_prunable: set[str]) -> dict[str, dict]:
    """Uniform policies over the searched layers: int8, int4, 50 % magnitude pruning, 2:4 (where each applies)."""
    quantize_acts = any(c["act_bits"] != [None] for c in choices.values())
    uniform = {"uniform int8": (8, 8 if quantize_acts else None, "none"),
               "uniform int4": (4, 4 if quantize_acts else None, "none"),
               "uniform 50% magnitude": (None, None, "unstructured:0.5"),
               "uniform 2:4": (None, None, "nm:2:4")}
    out = {}
    for name, (wbits, abits, prune) in uniform.items():
        picks = {g: (wbits, abits, prune if _valid_for_all(c["layers"], [prune], channel_prunable) else "none")
                 for g, c in choices.items()}
        if any(p != "none" or w is not None for w, _, p in picks.values()):
            out[name] = picks
    return out


def study_name(model: str, arch: Any, space: PolicySpace, objectives: list[str], budgets: dict[str, float],
               seed: int) -> str:
    """A stable name for (model, arch, space, objectives, budgets, seed): the resume key in the store."""
    key = json.dumps({"model": model, "arch": arch.model_dump(mode="json"), "space": space.model_dump(),
                      "objectives": objectives, "budgets": budgets, "seed": seed}, sort_keys=True, default=str)
    return f"autocompress:{model}@{arch.name}:{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def autocompress(model: str, arch: Any, *, space: Any = None, objectives: list[str] | None = None,
                 budgets: Any = None, trials: int = 64, seed: int = 0, store: str | Path | None = None,
                 finetune_epochs: int = 2, max_final: int = 8, data: Any = None, weights: str | None = None,
                 rank_baseline: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> SearchResult:
    """Search per-layer compression policies for ``model`` on ``arch`` (see the module docstring).

    ``objectives`` from accuracy/latency/energy/power (default all but power); ``budgets`` like
    ``["latency_ms=2", "accuracy_drop=0.01"]`` are constraints (a trial over budget is infeasible);
    ``store`` an SQLite file to keep trials in and resume from; ``max_final`` caps the Pareto candidates
    that get fine-tuned real accuracy. ``rank_baseline`` adds the best fixed recipe of ``hwsim rank``
    (by mean rank) as a baseline. ``progress(stage, done, total)`` reports the search and the final
    evaluations.
    """
    import optuna

    from hwsim.compress.policy_eval import PolicyEvaluator
    from hwsim.models.arch import load_arch

    start = time.perf_counter()
    arch_source, arch = arch, load_arch(arch)
    objectives = list(objectives or ["accuracy", "latency", "energy"])
    if bad := [o for o in objectives if o not in OBJECTIVES]:
        raise ConfigError(f"unknown objective(s) {bad}; choose from {list(OBJECTIVES)}")
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    budgets = parse_budgets(budgets)
    space = load_space(space, arch)

    evaluator = PolicyEvaluator.create(model, data=data, weights=weights, seed=seed)
    graph = evaluator.graph
    choices = _choice_lists(graph, space, evaluator.channel_prunable)
    stats = evaluator.measure(choices)
    cost = HardwareCost(graph, arch, stats)
    reference_accuracy = evaluator.proxy(Policy({}))

    def feasible_constraints(metrics: dict[str, float], accuracy: float) -> list[float]:
        values = [metrics[key] / scale - budgets[name] for name, (key, scale) in BUDGET_KEYS.items()
                  if name in budgets]
        if "accuracy_drop" in budgets:
            values.append((reference_accuracy - accuracy) - budgets["accuracy_drop"])
        return values

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{Path(store).resolve()}" if store else None
    sampler = optuna.samplers.NSGAIISampler(
        seed=seed, constraints_func=(lambda t: t.user_attrs["constraints"]) if budgets else None)
    data_key = data if data is None or isinstance(data, str) else "in-memory data"
    resume_key = model if weights is None and data is None else f"{model}+{weights}+{data_key}"
    study = optuna.create_study(study_name=study_name(resume_key, arch, space, objectives, budgets, seed),
                                storage=storage, load_if_exists=True, sampler=sampler,
                                directions=["maximize" if OBJECTIVES[o] == "max" else "minimize" for o in objectives])

    def objective(trial: Any) -> tuple[float, ...]:
        picks = {g: (trial.suggest_categorical(f"{g}/weight_bits", c["weight_bits"]),
                     trial.suggest_categorical(f"{g}/act_bits", c["act_bits"]),
                     trial.suggest_categorical(f"{g}/prune", c["prune"])) for g, c in choices.items()}
        policy = _policy(choices, picks)
        metrics = cost(policy)
        accuracy = evaluator.proxy(policy)
        trial.set_user_attr("policy", policy.to_dict())
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("proxy_accuracy", accuracy)
        trial.set_user_attr("constraints", feasible_constraints(metrics, accuracy))
        values = {"accuracy": accuracy, **{o: metrics[_METRIC[o]] for o in ("latency", "energy", "power")}}
        return tuple(values[o] for o in objectives)

    if not study.trials:   # start from the uniform baselines the space can express (HAQ starts from int8 too)
        for picks in _baselines(choices, arch, evaluator.channel_prunable).values():
            if all(w in choices[g]["weight_bits"] and a in choices[g]["act_bits"] and p in choices[g]["prune"]
                   for g, (w, a, p) in picks.items()):
                study.enqueue_trial({f"{g}/{k}": v for g, pick in picks.items()
                                     for k, v in zip(("weight_bits", "act_bits", "prune"), pick)})
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for index in range(done, trials):
        study.optimize(objective, n_trials=1)
        if progress:
            progress("search", index + 1, trials)

    records = [_trial_record(t) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = _hardware_front(records, max_final)
    finals = []
    baseline_picks = _baselines(choices, arch, evaluator.channel_prunable)
    total_final = len(front) + len(baseline_picks) + 1
    for i, record in enumerate(front):
        policy = Policy.from_dict(record["policy"])
        finals.append({**_final(evaluator, policy, record["metrics"], finetune_epochs, model, arch),
                       "proxy_accuracy": record["proxy_accuracy"], "trial": record["trial"]})
        if progress:
            progress("final", i + 1, total_final)
    baselines = {"dense": _final(evaluator, Policy({}), cost(Policy({})), finetune_epochs, model, arch)}
    for j, (name, picks) in enumerate(baseline_picks.items()):
        policy = _policy(choices, picks)
        baselines[name] = _final(evaluator, policy, cost(policy), finetune_epochs, model, arch)
        if progress:
            progress("final", len(front) + j + 2, total_final)
    if rank_baseline:
        if not isinstance(arch_source, (str, Path)):
            raise ConfigError("rank_baseline needs the arch as a preset name or YAML path (hwsim rank reads it)")
        baselines.update(_best_ranked_recipe(evaluator, model, arch_source, finetune_epochs, weights=weights,
                                             data=data if isinstance(data, str) else None))
    pareto = _final_front(finals, budgets, baselines["dense"]["accuracy"])
    return SearchResult(model=model, arch=arch.name, accuracy_kind=evaluator.accuracy_kind(finetune_epochs),
                        baselines=baselines, pareto=pareto, trials=records, wall_s=time.perf_counter() - start,
                        hardware_evaluations=cost.evaluations, hardware_s=cost.seconds, space=space.model_dump())


def _best_ranked_recipe(evaluator: Any, model: str, arch: str | Path, epochs: int, *, weights: str | None = None,
                        data: str | None = None) -> dict[str, dict[str, Any]]:
    """``{"best fixed recipe (<name>)": ...}``: the top of ``hwsim rank``, re-evaluated like the other baselines."""
    from hwsim.compress.recipe import load_recipe
    from hwsim.dse.rank import BASELINE, _recipe_path, rank_recipes
    from hwsim.simulate import simulate

    rows = [r for r in rank_recipes(model, arch, weights=weights, data=data)
            if r["status"] == "ok" and r["recipe"] != BASELINE]
    if not rows:
        return {}
    best = rows[0]["recipe"]
    path = _recipe_path(best)
    recipe = load_recipe(path)
    steps = [{"method": s.method, **s.params, "layers": list(s.layers),
              **({"ops": list(s.ops)} if s.ops else {}), **({"index": s.index_range} if s.index_range is not None else {}),
              **({"exclude": list(s.exclude)} if s.exclude else {}), **({"overrides": s.overrides} if s.overrides else {})}
             for s in recipe.steps]
    total = simulate(model, arch, recipe=path).total
    return {f"best fixed recipe ({best})": {"accuracy": evaluator.final_steps(steps, epochs),
                                            "latency_s": total["latency_s"], "energy_pj": total["energy_pj"],
                                            "power_mw": total["power_mw"], "recipe": str(path)}}


def _trial_record(trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {"trial": trial.number, "proxy_accuracy": attrs["proxy_accuracy"], "policy": attrs["policy"],
            "metrics": attrs["metrics"], **{k: attrs["metrics"][k] for k in ("latency_s", "energy_pj", "power_mw")},
            "feasible": all(v <= 0 for v in attrs.get("constraints", []))}


def _hardware_front(records: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Feasible trials on the (proxy accuracy, latency, energy) front, distinct policies, at most ``limit``."""
    import numpy as np

    feasible = [r for r in records if r["feasible"]] or records
    unique = list({json.dumps(r["policy"], sort_keys=True): r for r in feasible}.values())
    values = np.array([[r["proxy_accuracy"], r["latency_s"], r["energy_pj"]] for r in unique])
    front = [r for r, keep in zip(unique, pareto_mask(values, ["max", "min", "min"])) if keep]
    front.sort(key=lambda r: r["latency_s"])
    if len(front) > limit:   # spread the picks along the latency axis
        step = (len(front) - 1) / (limit - 1) if limit > 1 else 0
        front = [front[round(i * step)] for i in range(limit)]
    return front


def _final(evaluator: Any, policy: Policy, metrics: dict[str, float], epochs: int, model: str,
           arch: Any) -> dict[str, Any]:
    recipe = policy_recipe(policy, name="autocompress", model=model,
                           description=f"found by hwsim autocompress on {arch.name}") if policy.layers else None
    return {"accuracy": evaluator.final(policy, epochs), "latency_s": metrics["latency_s"],
            "energy_pj": metrics["energy_pj"], "power_mw": metrics["power_mw"],
            "policy": policy.to_dict(), "recipe": recipe}


def _final_front(finals: list[dict[str, Any]], budgets: dict[str, float], dense_accuracy: float) -> list[dict]:
    import numpy as np

    if not finals:
        return []
    values = np.array([[f["accuracy"], f["latency_s"], f["energy_pj"]] for f in finals])
    keep = pareto_mask(values, ["max", "min", "min"])
    out = [f for f, k in zip(finals, keep) if k]
    if "accuracy_drop" in budgets:
        out = [f for f in out if dense_accuracy - f["accuracy"] <= budgets["accuracy_drop"]] or out
    return sorted(out, key=lambda f: f["latency_s"])
