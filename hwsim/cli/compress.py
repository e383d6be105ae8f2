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


def load_model(model: str, *, seed: int = 0):
    """A zoo model by name, or a whole module saved with ``torch.save`` (``.pt``/``.pth``)."""
    import torch

    path = Path(model)
    if path.suffix in (".pt", ".pth"):
        if not path.exists():
            raise ConfigError(f"{model}: no such model file")
        loaded = torch.load(path, weights_only=False)
        if not isinstance(loaded, torch.nn.Module):
            raise ConfigError(f"{model}: holds a {type(loaded).__name__}, not a whole torch.nn.Module")
        return loaded
    from hwsim import zoo

    return zoo.create(model, seed=seed)


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
    recipe: Path = typer.Option(..., "--recipe", "-r", help="recipe YAML (or a shipped recipe name)"),
    output: Path = typer.Option(..., "--output", "-o", help="where to torch.save the compressed module"),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path (default: OUTPUT with .json)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="per-sample input shape, e.g. 3,224,224"),
    seed: int = typer.Option(0, "--seed", help="seed for the model, calibration noise and training"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
) -> None:
    """Compress MODEL with a recipe; save the module (torch.save) and a JSON report."""
    import torch

    from hwsim.compress.recipe import apply_recipe, load_recipe, resolve_input_shape

    parsed = load_recipe(str(recipe))
    net = load_model(model, seed=seed)
    shape = None
    if input_shape:
        shape = tuple(int(p) for p in input_shape.replace("x", ",").split(",") if p.strip())
    elif Path(model).suffix not in (".pt", ".pth"):
        from hwsim import zoo

        shape = zoo.input_shape(model)[1:]
    net, result = apply_recipe(net, parsed, seed=seed, input_shape=shape or resolve_input_shape(net, parsed))
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
