"""``hwsim validate``: the validation table against published silicon and paper numbers (``hwsim.validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

out_console = Console()

_STYLE = {"pass": "green", "FAIL": "bold red", "known gap": "yellow", "pass (known gap)": "green",
          "not found": "dim"}


def validation_table(report) -> Table:
    """One line per row: reference, source, hwsim, error, tolerance, status."""
    from hwsim.validate import format_value

    table = Table(title="hwsim against published numbers")
    for header in ("case", "metric", "unit", "reference", "source", "hwsim", "error %", "tol %", "status"):
        table.add_column(header, justify="right" if header in ("reference", "hwsim", "error %", "tol %") else "left",
                         no_wrap=header != "source", overflow="fold")
    for row in report.rows:
        error = None if row.error is None else 100 * row.error
        table.add_row(row.case, row.metric, row.unit, format_value(row.reference), row.source,
                      format_value(row.hwsim), "-" if error is None else f"{error:+.1f}", f"{100 * row.tolerance:g}",
                      f"[{_STYLE[row.status]}]{row.status}[/]")
    return table


def validate_command(
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the rows as JSON"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="write the rows as CSV"),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="write the summary table (README) as Markdown"),
) -> None:
    """Compare hwsim with published silicon and paper numbers; exit 1 if a gated row leaves its tolerance."""
    from hwsim.cli.core import compile_notice
    from hwsim.validate import validate

    with compile_notice():
        report = validate()
    out_console.print(validation_table(report))
    gaps = [row for row in report.rows if not row.gated and row.reference is not None]
    for row in sorted({row.note for row in gaps}):
        out_console.print(f"[yellow]known gap:[/] {row}")
    if json_path:
        report.write_json(json_path)
    if csv_path:
        report.write_csv(csv_path)
    if markdown_path:
        markdown_path.write_text(report.to_markdown())
    gated = [row for row in report.rows if row.gated]
    out_console.print(f"{len(gated) - len(report.failed)} of {len(gated)} gated rows pass; "
                      f"{len(gaps)} known gaps; {sum(row.reference is None for row in report.rows)} not found")
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``hwsim validate`` to ``app``."""
    app.command("validate")(validate_command)
