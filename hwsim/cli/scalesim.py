"""``hwsim scalesim``: run a SCALE-Sim config + topology and write SCALE-Sim's three reports."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hwsim.errors import ConfigError

out_console = Console()
err_console = Console(stderr=True)


class CompatMode(str, Enum):
    scalesim = "scalesim"
    physical = "physical"


def scalesim_reports(config_path: Path, topology: Path, *, gemm: bool, compat: str) -> tuple[list, list[str]]:
    """Report rows for every topology layer, plus notes about columns that are not simulated."""
    from hwsim.interop.scalesim import config_to_arch, read_config, read_topology, topology_to_layers

    config = read_config(config_path)
    arch = config_to_arch(config, mode="scalesim" if compat == "scalesim" else "physical",
                          origin=config_path.name)
    if compat == "physical":
        from hwsim.models.systolic.report import physical_report
        return [physical_report(layer, arch) for layer in topology_to_layers(topology, gemm=gemm)], []
    from hwsim.models.systolic.buffers import simulate_buffers
    words = (config.ifmap_kb * 1024, config.filter_kb * 1024, config.ofmap_kb * 1024)
    reports = [simulate_buffers(layer, rows=config.rows, cols=config.cols, dataflow=config.dataflow,
                                sram_words=words, interface=config.interface_bandwidth,
                                fill_words_per_cycle=(config.ifmap_bank_bandwidth, config.filter_bank_bandwidth),
                                drain_words_per_cycle=config.bandwidth[0] if config.bandwidth else None)
               for layer in read_topology(topology, gemm=gemm)]
    return reports, []


def _table(reports) -> Table:
    table = Table(title="SCALE-Sim compatible reports")
    for column in ("layer", "total cycles", "stall cycles", "overall util %", "mapping eff %", "DRAM I/W/O words"):
        table.add_column(column, justify="right" if column != "layer" else "left")
    for r in reports:
        table.add_row(r.name, str(r.total_cycles), str(r.stall_cycles), f"{r.overall_util_pct:.2f}",
                      f"{r.mapping_efficiency_pct:.2f}", "/".join(str(d[2]) for d in r.dram))
    return table


def scalesim_command(
    config: Path = typer.Option(..., "-c", "--config", help="SCALE-Sim .cfg file"),
    topology: Path = typer.Option(..., "-t", "--topology", help="SCALE-Sim topology CSV"),
    gemm: bool = typer.Option(False, "--gemm", help="the topology is GEMM format (name, M, N, K)"),
    out_dir: Path = typer.Option(Path("scalesim_out"), "-o", "--out", help="directory for the reports"),
    compat: CompatMode = typer.Option(CompatMode.scalesim, "--compat",
                                      help="scalesim: reproduce SCALE-Sim 3.0.0; physical: hwsim's model"),
    traces: bool = typer.Option(False, "--traces", help="also write per-layer stall-free SRAM demand traces"),
    layout: Optional[Path] = typer.Option(None, "-l", "--layout", help="SCALE-Sim layout CSV (read, unused)"),
    quiet: bool = typer.Option(False, "--quiet", help="do not print the summary table"),
) -> None:
    """Run a SCALE-Sim config + topology; write COMPUTE/BANDWIDTH/DETAILED_ACCESS_REPORT.csv to OUT."""
    from hwsim.interop.scalesim import read_layout, write_reports

    if layout is not None:
        read_layout(layout)
    if not topology.is_file():
        raise ConfigError(f"{topology}: topology file not found")
    reports, notes = scalesim_reports(config, topology, gemm=gemm, compat=compat.value)
    paths = write_reports(reports, out_dir)
    if traces:
        from hwsim.interop.scalesim import read_config, read_topology
        from hwsim.models.systolic.report import write_sram_traces
        cfg = read_config(config)
        for i, layer in enumerate(read_topology(topology, gemm=gemm)):
            write_sram_traces(layer, out_dir / f"layer{i}", rows=cfg.rows, cols=cfg.cols,
                              dataflow=cfg.dataflow, offsets=cfg.offsets)
    for note in notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if not quiet:
        out_console.print(_table(reports))
        out_console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``hwsim scalesim`` to ``app``."""
    app.command("scalesim")(scalesim_command)
