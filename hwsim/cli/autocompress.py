"""``hwsim autocompress``: search a per-layer compression policy with the hardware model in the loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

out_console = Console()
err_console = Console(stderr=True)


def autocompress_command(
    model: str = typer.Argument(..., help="zoo name, whole-model .pt, or zoo name + --weights (digits_* models "
                                          "are trained by hwsim: real accuracy)"),
    arch: str = typer.Option("edge_tpu_like", "--arch", "-a", help="preset name or arch YAML"),
    space: Optional[Path] = typer.Option(None, "--space", help="policy space YAML (default: the engine's)"),
    objectives: str = typer.Option("accuracy,latency,energy", "--objectives",
                                   help="comma list from accuracy, latency, energy, power"),
    budget: list[str] = typer.Option([], "--budget", help="NAME=VALUE: latency_ms, energy_uj, power_mw, "
                                                          "accuracy_drop (repeatable)"),
    trials: int = typer.Option(64, "--trials", min=1, help="search trials (a resumed search counts stored ones)"),
    seed: int = typer.Option(0, "--seed", help="search and model seed"),
    data: Optional[str] = typer.Option(None, "--data", help="labelled data: digits, digits32, an ImageFolder "
                                                            "directory, or module:function"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict checkpoint for a zoo-name MODEL"),
    finetune_epochs: int = typer.Option(2, "--finetune-epochs", min=0, help="fine-tuning of Pareto candidates"),
    store: Optional[Path] = typer.Option(None, "--store", help="SQLite file: keep trials, resume a killed search"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write baselines and the Pareto set as JSON"),
    outdir: Optional[Path] = typer.Option(None, "-o", "--outdir", help="write result.json, recipes, report.html"),
    rank_baseline: bool = typer.Option(True, "--rank-baseline/--no-rank-baseline",
                                       help="also run `hwsim rank` and show its best fixed recipe as a baseline"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Search per-layer bits / pruning for MODEL on ARCH; print the Pareto set against uniform baselines."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hwsim.dse.autocompress import autocompress

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=quiet or not sys.stderr.isatty())
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        label = {"search": "search (hardware + proxy accuracy)", "final": "fine-tune + real accuracy"}[stage]
        if stage not in tasks:
            tasks[stage] = progress.add_task(label, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        result = autocompress(model, arch, space=space, objectives=[o.strip() for o in objectives.split(",") if o],
                              budgets=budget, trials=trials, seed=seed, store=store, finetune_epochs=finetune_epochs,
                              data=data, weights=str(weights) if weights else None, rank_baseline=rank_baseline,
                              progress=report)
    _print(result)
    if json_path:
        json_path.write_text(json.dumps(result.to_json(), indent=1))
    if outdir:
        result.write(outdir)
        err_console.print(f"wrote {outdir}/result.json, recipes/, report.html")


def _print(result) -> None:
    table = Table(title=f"{result.model} on {result.arch}", caption=f"accuracy: {result.accuracy_kind}")
    for column in ("policy", "accuracy", "latency ms", "energy µJ", "power mW"):
        table.add_column(column, overflow="fold")
    rows = [(name, b) for name, b in result.baselines.items()] + [(f"pareto {i}", p) for i, p in enumerate(result.pareto)]
    for name, r in rows:
        table.add_row(name, f"{r['accuracy']:.4f}", f"{r['latency_s'] * 1e3:.4g}", f"{r['energy_pj'] / 1e6:.4g}",
                      f"{r['power_mw']:.4g}")
    out_console.print(table)
    out_console.print(f"{len(result.trials)} trials in {result.wall_s:.1f} s; {result.hardware_evaluations} hardware "
                      f"evaluations at {result.hardware_evals_per_s:.0f}/s")


def register(app: typer.Typer) -> None:
    app.command("autocompress")(autocompress_command)
