"""Rank compression recipes for one model on one architecture: latency, energy, power, fidelity, Pareto.

``rank_recipes`` is a small sweep (one arch, one point per recipe plus the uncompressed baseline) run
through the same runner and store as every other sweep, then turned into one table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwsim.dse.pareto import pareto_mask
from hwsim.dse.store import ResultStore

RANK_METRICS = (("latency_s", "min"), ("energy_pj", "min"), ("power_mw", "min"), ("top1_agreement", "max"))
BASELINE = "dense"
HARDWARE_METRICS = ("latency_s", "energy_pj", "power_mw")
# What ``top1_agreement`` measures for a zoo model with random weights: agreement with the uncompressed
# model, not accuracy; every row and the CLI table say so.
FIDELITY_BASIS = "agreement with the uncompressed model (untrained weights)"
FIDELITY_HOW_TO_ACCURACY = ("real top-1 accuracy needs trained weights and labelled data: rank a model hwsim "
                            "trains itself (digits_cnn, digits_resnet18, digits_mobilenet_v2), or give a .pt "
                            "file or --weights with --data")
# a trained model (user weights or hwsim.trained.TRAINING) without labelled data
TRAINED_AGREEMENT_BASIS = "agreement with the uncompressed model (trained weights; no --data, so no accuracy)"


def fidelity_basis(model: str, *, metric: str, weights: Any = None, data: str | None = None,
                   finetune_epochs: int = 0) -> str:
    """What the fidelity column measures for ``model``: a sentence for the table, JSON and CSV."""
    from hwsim.trained import TRAINING, training_data

    trained = weights is not None or str(model).endswith((".pt", ".pth")) or model in TRAINING
    if metric != "top1_accuracy":
        return TRAINED_AGREEMENT_BASIS if trained else FIDELITY_BASIS
    source = data or (training_data(model) if model in TRAINING else "data")
    tuning = (f"after {finetune_epochs} fine-tuning epoch{'s' if finetune_epochs != 1 else ''} per compressed "
              "model (Han et al. retraining)" if finetune_epochs else "no fine-tuning after compression")
    weights_from = "hwsim-trained weights" if model in TRAINING and weights is None else "your weights"
    return f"top-1 accuracy on held-out {source} ({weights_from}, {tuning})"


# One or more shipped recipes per family of the survey: unstructured / N:M / block / channel pruning,
# low-rank (SVD, Tucker), quantization (8, 4, mixed bits), binarization, a distilled compact student.
DEFAULT_RECIPES = ("unstructured_50", "nm_2_4", "block_4x4", "l1_filter_resnet18", "svd", "tucker", "int8",
                   "int4_weights", "mixed_precision", "binarize_xnor", "distill")


def default_recipes() -> list[str]:
    """The default ranking set: ``DEFAULT_RECIPES`` (a missing one becomes an error row, not a crash)."""
    return list(DEFAULT_RECIPES)


def shipped_recipes() -> list[str]:
    """Every shipped recipe file (``configs/recipes/*.yaml``)."""
    from importlib.resources import files

    folder = files("hwsim.configs") / "recipes"
    return sorted(str(entry) for entry in folder.iterdir() if str(entry).endswith(".yaml"))


def _recipe_path(recipe: str | Path) -> Path | None:
    from importlib.resources import files

    path = Path(recipe)
    if path.is_file():
        return path
    shipped = Path(str(files("hwsim.configs") / "recipes" / f"{recipe}.yaml"))
    return shipped if shipped.is_file() else None


def _names(recipes: Sequence[str | Path]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Unique name -> recipe file for the recipes that exist; an error row for each that does not."""
    found: dict[str, str] = {}
    missing = []
    for recipe in recipes:
        path = _recipe_path(recipe)
        if path is None:
            missing.append({"recipe": Path(str(recipe)).stem, "status": "error",
                            "error": f"recipe {str(recipe)!r}: no such file or shipped recipe"})
            continue
        name, i = path.stem, 2
        while name in found or name == BASELINE:
            name, i = f"{path.stem}_{i}", i + 1
        found[name] = str(path)
    return found, missing


def rank_recipes(model: str, arch: str | Path, recipes: Sequence[str | Path] | None = None, *,
                 batch: int = 1, input_shape: tuple[int, ...] | None = None, fidelity_batch: int = 32,
                 seed: int = 0, store: ResultStore | None = None, backend: Any = None,
                 progress: Any = None, weights: str | Path | None = None, data: str | None = None,
                 finetune_epochs: int = 0) -> list[dict[str, Any]]:
    """One row per recipe (and the uncompressed baseline): metrics, per-metric ranks, ``pareto`` flag.

    Rows are sorted by mean rank; recipes that are missing or fail to compress/simulate come last with
    ``status: error`` and the reason. ``recipes`` defaults to ``default_recipes()``; ``progress`` is called
    as ``progress(recipes_done, recipes_expected)`` (the baseline counts as one). ``weights`` (a
    state_dict for a zoo name), ``data`` (``hwsim.datasets``) and ``finetune_epochs`` (retraining after
    compression, ``hwsim.data.finetune``) decide whether the fidelity column is real accuracy.
    """
    from hwsim.dse.runner import run_sweep

    found, rows = _names(default_recipes() if recipes is None else recipes)
    spec = {"models": [model], "batch": batch,
            "input_shape": list(input_shape) if input_shape else None,
            "recipes": {BASELINE: None, **{name: {"template": path} for name, path in found.items()}},
            "arch": {"base": str(arch)}, "objectives": ["latency", "energy", "fidelity"],
            "fidelity": {"enabled": True, "batch": fidelity_batch, "seed": seed, "data": data,
                         "finetune_epochs": finetune_epochs},
            "weights": {model: str(weights)} if weights is not None else {}}
    # one sweep name per distinct ranking, so a kept store (``hwsim rank --store``) never mixes two rankings;
    # the compressed graphs are keyed apart from the arch and shared between rankings on other hardware
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
    spec = {"name": f"rank:{model}@{Path(str(arch)).stem}:{digest}", **spec}
    own = store is None
    store = store or ResultStore(":memory:")
    try:
        run_sweep(spec, store, backend=backend, progress=progress)
        records = list(store.records(sweep=spec["name"], status=None))
    finally:
        if own:
            store.close()
    rows = _table(records) + rows
    for row in rows:
        if row.get("status") == "ok":
            row["fidelity_basis"] = fidelity_basis(model, metric=row["fidelity_metric"], weights=weights, data=data,
                                                   finetune_epochs=finetune_epochs)
    return rows


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def no_effect_recipes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Recipes whose latency, energy and power equal the uncompressed baseline's on this hardware."""
    return [row["recipe"] for row in rows if row.get("status") == "ok" and row.get("hardware_effect") is False]


def rank_metrics(rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The ranked metrics: real accuracy replaces agreement when every ranked row has it."""
    ok = [row for row in rows if row.get("status") == "ok"]
    if ok and all(row.get("top1_accuracy") is not None for row in ok):
        return RANK_METRICS[:-1] + (("top1_accuracy", "max"),)
    return RANK_METRICS


def _table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ok = [r for r in records if r["status"] == "ok"]
    rows = [{"recipe": r["recipe"], "status": "ok", **{m: r["objectives"].get(m) for m, _ in RANK_METRICS},
             "top1_accuracy": r["objectives"].get("top1_accuracy"),
             "edp_pj_s": r["objectives"].get("edp_pj_s"), "macs": r["objectives"].get("macs"),
             "top1_accuracy_before_finetune": r["objectives"].get("top1_accuracy_before_finetune"),
             "kl": r["objectives"].get("kl"), "nrmse": r["objectives"].get("nrmse")} for r in ok]
    metrics = rank_metrics(rows)
    for row in rows:
        row["fidelity_metric"] = metrics[-1][0]
    if rows:
        from scipy.stats import rankdata      # here, not at the top: every sweep worker imports hwsim.dse

        values = np.array([[row[m] if row[m] is not None else np.nan for m, _ in metrics] for row in rows])
        senses = [s for _, s in metrics]
        mask = pareto_mask(values, senses)
        for j, (metric, sense) in enumerate(metrics):
            order = np.nan_to_num(values[:, j] * (-1 if sense == "max" else 1), nan=np.inf)
            # equal values share the best rank ("1, 1, 3"): a tie on this hardware is not a win
            for row, rank in zip(rows, rankdata(order, method="min")):
                row[f"rank_{metric}"] = int(rank)
        base = next((row for row in rows if row["recipe"] == BASELINE), None)
        for row in rows:
            row["hardware_effect"] = base is None or row is base or not all(
                _same(row[m], base[m]) for m in HARDWARE_METRICS)
        for row, keep in zip(rows, mask):
            row["mean_rank"] = float(np.mean([row[f"rank_{m}"] for m, _ in metrics]))
            row["pareto"] = bool(keep)
        rows.sort(key=lambda row: (row["mean_rank"], row["recipe"]))
    failed = [{"recipe": r["recipe"], "status": "error", "error": r.get("error")} for r in records
              if r["status"] != "ok"]
    return rows + failed
