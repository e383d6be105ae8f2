"""``hwsim compress MODEL --recipe R.yaml -o out.pt``: apply a compression recipe and save the model + report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hwsim.errors import ConfigError

out_console = Console()


def _summary(report) -> Table:
    table = Table(title=f"recipe {report.recipe}")
    for column in ("step", "method", "layers changed", "layers skipped"):
        table.add_column(column)
    for index, step in enumerate(report.steps):
        skipped = sum(1 for c in step.changes if c.change == "skipped")
        table.add_row(str(index), step.method, str(len(step.changes) - skipped), str(skipped))
    table.caption = (f"params {report.params_before:,} -> {report.params_after:,} "
                     f"({report.nonzero_params_after:,} nonzero)")
    return table


def compress_command(
    model: str = typer.Argument(..., help="zoo model name or a .pt file holding a whole torch module"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict file for a zoo-name MODEL"),
    data: Optional[str] = typer.Option(None, "--data", help="calibration / training data: digits | digits32 | "
                                       "image folder | module:function"),
    recipe: Path = typer.Option(..., "--recipe", "-r", help="recipe YAML (or a shipped recipe name)"),
    output: Path = typer.Option(..., "--output", "-o", help="where to torch.save the compressed module"),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path (default: OUTPUT with .json)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="per-sample input shape, e.g. 3,224,224"),
    seed: int = typer.Option(0, "--seed", help="seed for the model, calibration noise and training"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
) -> None:
    """Compress MODEL with a recipe; save the module (torch.save) and a JSON report."""
    import torch

    from hwsim.compress.pipeline import compress_model
    from hwsim.compress.recipe import load_recipe, resolve_input_shape
    from hwsim.datasets import check_shape, load_data
    from hwsim.sources import resolve_model

    parsed = load_recipe(str(recipe))
    source = resolve_model(model, weights=weights, seed=seed)
    if source.graph_file:
        raise ConfigError(f"{model}: a lowered graph cannot be compressed; give a zoo name or a .pt file")
    shape = tuple(int(p) for p in input_shape.replace("x", ",").split(",") if p.strip()) if input_shape \
        else source.sample_shape
    split = load_data(data, seed=seed, sample_shape=shape) if data else None
    if split is not None:
        check_shape(split, shape or split.sample_shape, source.name)
        shape = shape or split.sample_shape
    if shape is None:
        shape = resolve_input_shape(source.module, parsed)
    _, net, result, _ = compress_model(source.module, parsed, seed=seed, name=source.name, data=split,
                                       input_shape=shape)
    if shape and getattr(net, "input_shape", None) is None:
        net.input_shape = tuple(shape)   # lets `hwsim simulate out.pt` lower without --input-shape
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net, output)
    report_path = report or output.with_suffix(".json")
    report_path.write_text(json.dumps(result.to_dict(), indent=1))
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        out_console.print(_summary(result))
        out_console.print(f"saved {output} and {report_path}")


def register(app: typer.Typer) -> None:
    """Add ``hwsim compress`` to ``app``."""
    app.command("compress")(compress_command)
