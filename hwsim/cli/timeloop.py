"""``hwsim timeloop``: replay a Timeloop/Sparseloop run's output folder and set hwsim's numbers beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

out_console = Console()


def _counts(row: dict) -> tuple[int, int, int]:
    keys = (("reads_per_instance", "reads"), ("fills_per_instance", "fills"), ("updates_per_instance", "updates"))
    return tuple(int(row.get(a, row.get(b, 0))) for a, b in keys)


def comparison_rows(replay: dict) -> list[dict]:
    """One row per level x tensor Timeloop reports: both tools' per-instance counts and energies."""
    mine, theirs = replay["hwsim"], replay["timeloop"]
    rows = []
    for level, tensors in theirs["storage_accesses"].items():
        for tensor, row in tensors.items():
            got = mine["storage_accesses"].get(level, {}).get(tensor, {})
            rows.append({"level": level, "tensor": tensor, "timeloop": _counts(row), "hwsim": _counts(got),
                         "timeloop_pj": row["energy_total_pJ"], "hwsim_pj": got.get("energy_total_pJ", 0.0)})
    return rows


def timeloop_command(
    folder: Path = typer.Argument(..., help="a Timeloop output folder (timeloop-mapper.stats.txt and friends)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the comparison as JSON"),
) -> None:
    """Evaluate the mapping Timeloop chose with hwsim and print both tools' counts, cycles and energy."""
    from hwsim.interop.timeloop_outputs import replay_outputs

    replay = replay_outputs(folder)
    mine, theirs = replay["hwsim"], replay["timeloop"]
    rows = comparison_rows(replay)
    table = Table(title=f"{folder.name}: Timeloop vs hwsim ({replay['engine']} engine), per instance")
    for column in ("level", "tensor", "reads/fills/updates Timeloop", "hwsim", "energy pJ Timeloop", "hwsim", "match"):
        table.add_column(column, justify="left" if column in ("level", "tensor") else "right")
    for r in rows:
        same = r["timeloop"] == r["hwsim"] and abs(r["hwsim_pj"] - r["timeloop_pj"]) <= max(0.01, 5e-3 * r["timeloop_pj"])
        table.add_row(r["level"], r["tensor"], "/".join(map(str, r["timeloop"])), "/".join(map(str, r["hwsim"])),
                      f"{r['timeloop_pj']:.2f}", f"{r['hwsim_pj']:.2f}", "yes" if same else "NO")
    out_console.print(table)
    energy = mine.get("energy_pj", mine.get("total_energy_pJ", 0.0))
    out_console.print(f"cycles: Timeloop {theirs['cycles']}, hwsim {mine['cycles']}; energy: Timeloop "
                      f"{theirs['total_energy_pJ']:.1f} pJ, hwsim {energy:.1f} pJ")
    if json_out:
        json_out.write_text(json.dumps({"folder": str(folder), "engine": replay["engine"], "rows": rows,
                                        "cycles": {"timeloop": theirs["cycles"], "hwsim": mine["cycles"]},
                                        "energy_pj": {"timeloop": theirs["total_energy_pJ"], "hwsim": energy}},
                                       indent=1))


def register(app: typer.Typer) -> None:
    app.command("timeloop")(timeloop_command)
