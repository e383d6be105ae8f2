"""Design-space commands: ``hwsim sweep``, ``hwsim rank``, ``hwsim report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from hwsim.errors import ConfigError

out_console = Console()
err_console = Console(stderr=True)


def _progress(quiet: bool, what: str = "sweep"):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=err_console,
                    disable=quiet or not sys.stderr.isatty())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _label(param: str) -> str:
    """Short column label: ``hw.memory.SRAM.partition_bytes.W`` -> ``SRAM.partition_bytes.W``."""
    return param.removeprefix("hw.").removeprefix("memory.")


def _front_table(records: list[dict[str, Any]], metrics: list[str], title: str) -> Table:
    table = Table(title=title)
    # the columns that vary (all of them for a single point)
    params = [p for p in sorted({p for r in records for p in r["params"]})
              if len(records) < 2 or len({str(r["params"].get(p)) for r in records}) > 1 or p == "recipe"]
    for column in params + metrics:
        table.add_column(_label(column), overflow="fold")
    for r in records:
        table.add_row(*[_fmt(r["params"].get(p)) for p in params], *[_fmt(r["objectives"].get(m)) for m in metrics])
    return table


# rank columns (header, row key, scale) in simulate's units, narrow enough for an 80-column terminal
_HARDWARE_COLUMNS = (("latency ms", "latency_s", 1e3), ("energy µJ", "energy_pj", 1e-6),
                     ("power mW", "power_mw", 1.0))
_FIDELITY_COLUMNS = {"top1_accuracy": ("acc %", "top1_accuracy", 100.0),
                     "top1_agreement": ("agree %", "top1_agreement", 100.0)}


def _rank_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The ``hwsim rank`` table: one row per ranked recipe, metrics in ms/µJ/mW/%, ranks and the Pareto mark."""
    from hwsim.dse.rank import rank_metrics

    metrics = rank_metrics(rows)
    fidelity = metrics[-1][0]
    columns = (*_HARDWARE_COLUMNS, _FIDELITY_COLUMNS[fidelity])
    table = Table(title=title, caption="ranks: latency / energy / power / "
                  f"{'accuracy' if fidelity == 'top1_accuracy' else 'agreement'}, 1 = best")
    table.add_column("recipe", overflow="fold")
    for header, _, _ in columns:
        table.add_column(header, justify="right")
    table.add_column("ranks", justify="right")
    table.add_column("P")
    for row in (r for r in rows if r["status"] == "ok"):
        values = [("" if row.get(key) is None else f"{row[key] * scale:,.4g}") for _, key, scale in columns]
        ranks = "/".join(str(row[f"rank_{m}"]) for m, _ in metrics)
        table.add_row(row["recipe"], *values, ranks, "*" if row["pareto"] else "")
    return table


def _backend(workers: int | None, dask: str | None, *, preload_torch: bool = False):
    from hwsim.dse.runner import DaskBackend, ProcessBackend, SerialBackend

    if dask:
        return DaskBackend(dask)
    if workers == 1:
        return SerialBackend()
    return ProcessBackend(workers, preload_torch=preload_torch)


def sweep_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="sweep spec (YAML)"),
    store_path: Path = typer.Option(Path("hwsim-results.sqlite"), "--store", help="SQLite results store"),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="local processes (default: all cores)"),
    dask: Optional[str] = typer.Option(None, "--dask", help="Dask scheduler address, e.g. tcp://host:8786"),
    chunk_size: int = typer.Option(1, "--chunk-size", min=1, help="points per task"),
    graph_cache: Optional[Path] = typer.Option(None, "--graph-cache", metavar="DIR",
                                               help="lowered-graph cache (default: the per-user hwsim cache)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate, print the number of points, stop"),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="re-run points stored as failed"),
    keep_going: bool = typer.Option(False, "--keep-going", help="exit 0 even when some points failed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Run (or resume) the sweep in SPEC; every finished point is committed to the store.

    Failed points are listed with their reasons at the end; the exit code is 1 when any failed
    (unless ``--keep-going``).
    """
    from hwsim.dse.spec import load_spec, space_size

    from hwsim.dse import warm_server

    local = not dry_run and not dask and workers != 1
    # graph builders fork from one server that imports torch once; it starts on a guess from the raw
    # spec, so its ~3 s warm-up runs while this process validates the spec and checks the graph cache
    early = local and warm_server.may_build_in_parallel(spec_path)
    if early:
        warm_server.warm_context()
        warm_server.start_stager()
    try:
        spec = load_spec(spec_path)
        _check_models(spec.models, spec.weights)
    except BaseException:
        if early:
            warm_server.stop()
            warm_server.stop_stager()
        raise
    backend = None
    if local:
        from hwsim.dse.runner import torch_builds_ahead, warm_pool_pays

        cache = None if graph_cache is None else str(graph_cache)
        builds = torch_builds_ahead(spec, graph_dir=cache)
        preload = warm_pool_pays(builds)
        if early and not preload:
            warm_server.stop()                 # nothing to build: workers are spawned, torch-free
            warm_server.stop_stager()
        backend = _backend(workers, None, preload_torch=preload)
        # workers start while the store is opened and the sweep reads ahead (a lone build spawns its own)
        backend.start(0 if builds == 1 else None)
    if dry_run:
        out_console.print(f"{space_size(spec)} points ({spec.sampler.kind} sampler, sweep {spec.name!r})")
        return
    _quiet_optuna()
    from hwsim.dse.pareto import front
    from hwsim.dse.runner import run_sweep
    from hwsim.dse.store import ResultStore

    backend = backend or _backend(workers, dask)
    with ResultStore(store_path) as store, _progress(quiet) as bar:
        task = bar.add_task("sweep", total=space_size(spec))
        try:
            summary = run_sweep(spec, store, backend=backend, chunk_size=chunk_size, retry_errors=retry_errors,
                                graph_dir=None if graph_cache is None else str(graph_cache),
                                progress=lambda done, total: bar.update(task, completed=done))
        finally:
            backend.close()
        best = front(store.records(sweep=spec.name), spec.objectives, constraints=spec.constraints)
        failures = [(r["params"], r.get("error")) for r in store.records(sweep=spec.name, status="error")]
    built = f", {summary.graphs_built} graphs built" if summary.graphs_built else ""
    err_console.print(f"{summary.evaluated} evaluated, {summary.skipped} already stored, {summary.failed} failed "
                      f"in {summary.seconds:.1f} s{built} -> {store_path}")
    out_console.print(_front_table(best, spec.metric_names, f"Pareto front ({len(best)} points)"))
    for params, error in failures[:20]:
        where = ", ".join(f"{_label(k)}={_fmt(v)}" for k, v in sorted(params.items()))
        err_console.print(f"[red]failed[/] {where}: {error}", highlight=False, soft_wrap=True)
    if len(failures) > 20:
        err_console.print(f"... and {len(failures) - 20} more failed points (hwsim report {store_path} --csv)")
    if failures and not keep_going:
        raise typer.Exit(1)


def _check_models(models, weights=None) -> None:
    """Every model is a zoo name or an existing .json/.onnx/.pt file, every weights file exists and belongs
    to a zoo-name model (checked before any point runs, without torch)."""
    from hwsim import zoo
    from hwsim.errors import UnknownNameError
    from hwsim.sources import is_graph_file, is_model_file

    for model in models:
        if is_graph_file(model) or is_model_file(model):
            if not Path(model).is_file():
                raise ConfigError(f"models: {model!r}: no such file")
        elif model not in zoo.names():
            raise UnknownNameError(f"models: unknown model {model!r}; zoo names: {', '.join(zoo.names())}")
    for model, path in (weights or {}).items():
        if model not in zoo.names():
            raise ConfigError(f"weights: {model!r}: weights go with a zoo-name model (got {model!r})")
        if not Path(path).is_file():
            raise ConfigError(f"weights: {path!r}: no such file")


def _quiet_optuna() -> None:
    import logging

    logging.getLogger("optuna").setLevel(logging.WARNING)


def rank_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="zoo name, full-model .pt, or saved layer graph"),
    arch: str = typer.Option("edge_tpu_like", "--arch", "-a", help="preset name or YAML file"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict file for a zoo-name MODEL"),
    data: Optional[str] = typer.Option(None, "--data", help="labelled data: digits | digits32 | image folder "
                                       "| module:function (real accuracy)"),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", min=0,
                                        help="retrain each compressed model N epochs on --data (Han et al.)"),
    recipes: Optional[list[str]] = typer.Option(None, "--recipes", "-r",
                                                help="recipe files or shipped names (default: one per family)"),
    all_recipes: bool = typer.Option(False, "--all", help="rank every shipped recipe (slow: some train)"),
    batch: int = typer.Option(1, "--batch", min=1),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. 1,3,224,224"),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="local processes (recipes compress in parallel)"),
    as_json: bool = typer.Option(False, "--json", help="print the table as JSON"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="also write the table as CSV"),
    store_path: Optional[Path] = typer.Option(None, "--store", help="keep points and compressed graphs in this "
                                              "SQLite store: ranking on another arch reuses the compressed models"),
) -> None:
    """Rank compression recipes for MODEL on ARCH by latency, energy, power and fidelity."""
    from hwsim.cli.core import parse_input_shape
    from hwsim.dse.rank import FIDELITY_HOW_TO_ACCURACY, no_effect_recipes, rank_recipes, shipped_recipes

    _check_models([model], {model: str(weights)} if weights else {})
    if unknown := [a for a in ctx.args if a.startswith("-")]:
        raise ConfigError(f"hwsim rank: unknown option(s) {' '.join(unknown)} (see hwsim rank --help)")
    chosen = (list(recipes or []) + list(ctx.args)) or None
    if weights is not None or data is not None or model.endswith((".pt", ".pth")):
        from hwsim.sources import resolve_with_data   # a bad checkpoint or data fails here, not per variant

        resolve_with_data(model, weights=weights, data=data, input_shape=parse_input_shape(input_shape))
    if all_recipes:
        chosen = shipped_recipes()
    from hwsim.dse.store import ResultStore

    backend = _backend(workers, None)
    store = ResultStore(store_path) if store_path is not None else None
    with _progress(as_json, "compress + simulate") as bar:
        task = bar.add_task("rank", total=None)
        try:
            rows = rank_recipes(model, arch, chosen, batch=batch, input_shape=parse_input_shape(input_shape),
                                backend=backend, weights=weights, data=data, finetune_epochs=finetune_epochs,
                                store=store,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
        finally:
            backend.close()
            if store is not None:
                store.close()
    if csv_path is not None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(csv_path, index=False)
    if as_json:
        out_console.print_json(json.dumps(rows, default=str))
        return
    out_console.print(_rank_table(rows, f"{model} on {arch}: best mean rank first (* = Pareto-optimal)"))
    ok = [r for r in rows if r["status"] == "ok"]
    if ok and ok[0]["fidelity_metric"] == "top1_accuracy":
        out_console.print(f"acc % (top1_accuracy): {ok[0]['fidelity_basis']}", highlight=False)
    elif ok:
        out_console.print(f"agree % (top1_agreement): {ok[0]['fidelity_basis']}, not accuracy; "
                          f"{FIDELITY_HOW_TO_ACCURACY}", highlight=False)
    if finetune_epochs and ok and ok[0]["fidelity_metric"] != "top1_accuracy":
        out_console.print("--finetune-epochs had no effect: fine-tuning needs labelled data (--data)", highlight=False)
    if same := no_effect_recipes(rows):
        out_console.print(f"no hardware effect on {arch}: {', '.join(same)} (latency, energy and power equal "
                          f"the uncompressed model's)", highlight=False)
    for row in (r for r in rows if r["status"] != "ok"):
        err_console.print(f"[yellow]skipped[/] {row['recipe']}: {row.get('error')}", highlight=False, soft_wrap=True)


def report_command(
    store_path: Path = typer.Argument(..., metavar="STORE", help="SQLite results store"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML report path"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="one row per point as CSV"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="one object per point as JSON"),
    figures: Optional[Path] = typer.Option(None, "--figures", help="folder for static figures"),
    fmt: str = typer.Option("png", "--format", help="figure format: png | svg"),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="2-3 metrics, e.g. latency,energy,area"),
    constraints: Optional[list[str]] = typer.Option(None, "--constraint", help="e.g. 'power_mw <= 500'"),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="only this sweep's points"),
) -> None:
    """Write an HTML report (and/or CSV, JSON, figures) from a results store."""
    from hwsim.dse.report import report_data, write_csv, write_json
    from hwsim.dse.store import ResultStore

    if not store_path.is_file():
        raise ConfigError(f"{store_path}: results store not found")
    if not any((output, csv_path, json_path, figures)):
        output = Path("report.html")
    objs = [o.strip() for o in objectives.split(",") if o.strip()] if objectives else None
    with ResultStore(store_path) as store:
        if csv_path:
            err_console.print(f"wrote {write_csv(store, csv_path, sweep=sweep)}")
        if json_path:
            err_console.print(f"wrote {write_json(store, json_path, sweep=sweep)}")
        if output or figures:
            data = report_data(store, objectives=objs, constraints=constraints or None, sweep=sweep)
            if output:
                from hwsim.dse.report_html import write_html

                err_console.print(f"wrote {write_html(data, output)}")
            if figures:
                from hwsim.dse.report_figures import write_figures

                paths = write_figures(data, figures, fmt=fmt)
                err_console.print(f"wrote {len(paths)} figures to {figures}")


def register(app: typer.Typer) -> None:
    """Add ``sweep``, ``rank`` and ``report`` to the ``hwsim`` app."""
    app.command("sweep")(sweep_command)
    app.command("rank", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(rank_command)
    app.command("report")(report_command)


__all__ = ["register", "sweep_command", "rank_command", "report_command"]
