"""Core commands: ``hwsim list``, ``hwsim lower``, ``hwsim simulate``."""

from __future__ import annotations

from contextlib import contextmanager

import re
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hwsim.errors import ConfigError

# Tables are wider than 80 columns; when stdout is not a terminal (pipes, CI logs) do not squeeze them.
out_console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True)


ARCH_HELP = "preset name, arch YAML file, or zigzag:HARDWARE.yaml (a ZigZag accelerator)"
ZIGZAG_MAPPING_HELP = ("ZigZag mapping YAML for a zigzag: arch (operand links, dims each array axis unrolls)")


class MapperChoice(str, Enum):
    default = "default"
    search = "search"


CONSTRAINTS_HELP = ("mapper constraints YAML for --mapper search: hwsim's levels/spatial spelling or Timeloop's "
                    "mapspace constraints (keep/bypass, factors, permutation, spatial)")


def make_mapper(choice: MapperChoice, objective: str, constraints: Optional[Path] = None):
    """``None`` (each engine's fixed dataflow) or a ``SearchMapper`` with ``objective`` and ``constraints``."""
    if choice is MapperChoice.default:
        if constraints is not None:
            raise ConfigError(f"--constraints {constraints.name}: constraints steer the mapping search; "
                              f"add --mapper search")
        return None
    from hwsim.mappers import SearchMapper
    from hwsim.mappers.constraints import load_constraints

    if objective not in ("edp", "energy", "latency"):
        raise ConfigError(f"--objective: expected edp, energy or latency (got {objective!r})")
    return SearchMapper(objective=objective,
                        constraints=load_constraints(constraints) if constraints is not None else None)


WEIGHTS_HELP = "state_dict file (torch.save(model.state_dict())) for a zoo-name MODEL"
DATA_HELP = ("calibration data: digits | digits32 | image folder (ImageFolder layout) | module:function "
             "returning a torch Dataset")


class ListWhat(str, Enum):
    models = "models"
    archs = "archs"
    methods = "methods"


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``; a clear error otherwise."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in re.split(r"[,x]", text.strip()))
    except ValueError:
        raise ConfigError(f"--input-shape: expected comma-separated integers such as 1,3,224,224 (got {text!r})") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"--input-shape: every dimension must be a positive integer (got {text!r})")
    return shape


def parse_technology(text: str | None) -> float | None:
    """``"28nm"`` or ``"28"`` -> ``28.0`` (a clear error otherwise)."""
    if text is None:
        return None
    from hwsim.models.energy import parse_technology_nm

    try:
        return parse_technology_nm(text)
    except ValueError:
        raise ConfigError(f"--tech: expected a node such as 28nm (got {text!r})") from None


def _list_models() -> Table:
    from hwsim import zoo

    table = Table(title="Zoo models")
    for column in ("name", "input shape", "description"):
        table.add_column(column)
    for name in zoo.names():
        info = zoo.info(name)
        table.add_row(name, "x".join(map(str, zoo.input_shape(name))), str(info.get("description", "")))
    return table


def _list_archs() -> Table:
    from hwsim.models.energy import describe_presets

    table = Table(title="Architecture presets")
    columns = [("name", "name"), ("engine", "engine"), ("MACs", "macs"), ("clock (MHz)", "clock_mhz"),
               ("peak TOPS", "peak_tops"), ("on-chip (KiB)", "on_chip_kib"), ("node (nm)", "technology_nm"),
               ("source", "source")]
    for header, _ in columns:
        if header == "source":
            table.add_column(header, overflow="ellipsis", max_width=60, no_wrap=True)
        else:
            table.add_column(header, no_wrap=True)
    for row in describe_presets():
        row = dict(row)
        row.setdefault("clock_mhz", row.get("clock_hz", 0) / 1e6)
        row.setdefault("on_chip_kib", row.get("on_chip_bytes", 0) / 1024)
        table.add_row(*[_fmt(row.get(key, "")) for _, key in columns])
    return table


def _list_methods() -> Table:
    from hwsim.compress.registry import methods

    table = Table(title="Compression methods")
    for column in ("method", "family", "paper", "parameters"):
        table.add_column(column, overflow="fold")
    for name, method in methods().items():
        params = ", ".join(f"{key} ({desc})" for key, desc in method.params.items())
        table.add_row(name, method.family, method.paper, params)
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def list_command(what: ListWhat = typer.Argument(..., help="models | archs | methods")) -> None:
    """List zoo models, architecture presets, or compression methods."""
    builders = {ListWhat.models: _list_models, ListWhat.archs: _list_archs, ListWhat.methods: _list_methods}
    out_console.print(builders[what]())


def lower_command(
    model: str = typer.Argument(..., help="zoo name, full-model .pt, or .onnx file"),
    output: Path = typer.Option(..., "-o", "--output", help="where to write the layer graph (JSON)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="batch size (default: 1, or a saved graph's own)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. 1,3,224,224"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="compression recipe applied before lowering"),
    scalesim_csv: Optional[Path] = typer.Option(None, "--scalesim-csv", help="also write a SCALE-Sim topology CSV"),
    skip_unsupported: bool = typer.Option(False, "--skip-unsupported", help="skip unsupported ops and report them"),
) -> None:
    """Lower MODEL to a layer graph (JSON) that simulate can read without torch."""
    from hwsim.simulate import resolve_graph

    graph = resolve_graph(model, batch=batch, input_shape=parse_input_shape(input_shape),
                          recipe=str(recipe) if recipe else None, skip_unsupported=skip_unsupported,
                          weights=weights, data=data)
    graph.save(output)
    if scalesim_csv is not None:
        from hwsim.interop.scalesim import export_topology_csv

        export_topology_csv(graph, scalesim_csv)
    summary = graph.summary()
    out_console.print(f"wrote {output}: {summary['layers']} layers, {summary['compute_layers']} with MACs, "
                      f"{summary['macs']:,} MACs, {summary['weights']:,} weights")
    if calib := graph.meta.get("calibration"):
        out_console.print(f"activation density and essential bits measured on {calib['source']} "
                          f"(batch {calib['batch']}, {calib['layers_profiled']} layers)")
    for skipped in graph.meta.get("skipped", []):
        err_console.print(f"[yellow]skipped[/] unsupported op {skipped.get('op')} at {skipped.get('module')}")


def result_table(result) -> Table:
    """Per-layer table with units in the headers."""
    table = Table(title=f"{result.model} on {result.arch}")
    for header in ("layer", "op", "MACs", "cycles", "latency (us)", "energy (uJ)", "power (mW)", "util %",
                   "active PEs"):
        table.add_column(header, justify="left" if header in ("layer", "op") else "right")
    for layer in result.layers:
        table.add_row(layer.name, layer.op, f"{layer.macs:,}", f"{layer.cycles:,}", f"{layer.latency_s * 1e6:,.2f}",
                      f"{layer.energy_pj / 1e6:,.3f}", f"{layer.power_mw:,.1f}", f"{100 * layer.utilization:.1f}",
                      f"{layer.active_pes:,}")
    return table


def summary_table(result) -> Table:
    total = result.total
    table = Table(title="Summary", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("MACs", f"{total['macs']:,}"), ("cycles", f"{total['cycles']:,}"),
        ("latency (ms)", f"{total['latency_s'] * 1e3:,.4f}"), ("energy (uJ)", f"{total['energy_pj'] / 1e6:,.2f}"),
        ("average power (mW)", f"{total['power_mw']:,.1f}"), ("peak-layer power (mW)", f"{total['peak_power_mw']:,.1f}"),
        ("MAC utilization (%)", f"{100 * total['utilization']:.1f}"), ("area (mm2)", f"{total['area_mm2']:,.2f}"),
        ("EDP (pJ*s)", f"{total['edp_pj_s']:.4g}"), ("TOPS/W", f"{total['tops_per_w']:.3f}"),
    ]
    breakdown = total["energy_breakdown_pj"]
    rows.append(("energy: compute (uJ)", f"{breakdown['compute'] / 1e6:,.2f}"))
    for level, value in breakdown["by_level"].items():
        rows.append((f"energy: {level} (uJ)", f"{value / 1e6:,.2f}"))
    if breakdown["leakage"]:
        rows.append(("energy: leakage (uJ)", f"{breakdown['leakage'] / 1e6:,.2f}"))
    for metric, value in rows:
        table.add_row(metric, value)
    return table


def _link_names() -> list[str]:
    """``hwsim.models.comm.link_names()``, read here so building the CLI does not import NumPy."""
    from importlib import resources

    folder = resources.files("hwsim.configs") / "links"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def simulate_command(
    model: str = typer.Argument(..., help="zoo name, full-model .pt, .onnx file, or saved layer graph (.json)"),
    arch: str = typer.Option("edge_tpu_like", "--arch", "-a", help=ARCH_HELP),
    zigzag_mapping: Optional[Path] = typer.Option(None, "--zigzag-mapping", help=ZIGZAG_MAPPING_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="batch size (default: 1, or a saved graph's own)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. 1,3,224,224"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="compression recipe (YAML) applied first"),
    tech: Optional[str] = typer.Option(None, "--tech", help="re-price at another node, e.g. 28nm"),
    clock_mhz: Optional[float] = typer.Option(None, "--clock-mhz", min=1e-3, help="re-time at another clock"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the result as JSON"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="write one row per layer as CSV"),
    skip_unsupported: bool = typer.Option(False, "--skip-unsupported"),
    mapper: MapperChoice = typer.Option(MapperChoice.default, "--mapper",
                                        help="default: the engine's fixed dataflow; search: mapping search (spatial engine)"),
    objective: str = typer.Option("edp", "--objective", help="search objective: edp | energy | latency"),
    constraints: Optional[Path] = typer.Option(None, "--constraints", help=CONSTRAINTS_HELP),
    training: bool = typer.Option(False, "--training", help="simulate one training step (forward, backward, update)"),
    devices: int = typer.Option(1, "--devices", min=1, help="data-parallel devices (with --training)"),
    link: Optional[str] = typer.Option(None, "--link", help="interconnect preset: " + ", ".join(_link_names())),
    link_gbps: Optional[float] = typer.Option(None, "--link-gbps", help="custom link bandwidth, gigabits/s"),
    link_latency_us: Optional[float] = typer.Option(None, "--link-latency-us", help="custom link latency, µs"),
    grad_compression: str = typer.Option("none", "--grad-compression", help="none | qsgd:<bits> | terngrad"),
    allreduce: str = typer.Option("ring", "--allreduce", help="ring | ps (parameter server)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the summary"),
) -> None:
    """Simulate MODEL on ARCH and print a per-layer table and a summary."""
    from hwsim.simulate import simulate

    spec = arch_with_mapping(arch, zigzag_mapping)
    with compile_notice():
        result = simulate(model, spec, batch=batch, input_shape=parse_input_shape(input_shape),
                          recipe=str(recipe) if recipe else None, technology_nm=parse_technology(tech),
                          clock_hz=clock_mhz * 1e6 if clock_mhz else None, skip_unsupported=skip_unsupported,
                          mapper=make_mapper(mapper, objective, constraints), training=training, weights=weights, data=data)
    if not quiet:
        out_console.print(result_table(result))
    out_console.print(summary_table(result))
    if training:
        out_console.print(phase_table(result))
    if devices > 1 or link or link_gbps:
        if not training:
            raise ConfigError("--devices/--link model data-parallel training: add --training")
        from hwsim.models.comm import data_parallel, load_link

        parallel = data_parallel(result, devices=devices, link=load_link(link, gbps=link_gbps,
                                                                         latency_us=link_latency_us),
                                 scheme=grad_compression, algorithm=allreduce,
                                 arch=load_arch_for(spec))
        result.meta["data_parallel"] = parallel
        out_console.print(f"{devices} devices over {parallel['link']} ({allreduce}, {grad_compression}): step "
                          f"{parallel['step_s'] * 1e3:.4g} ms, exposed communication {parallel['communication_s'] * 1e3:.4g} ms "
                          f"of {parallel['communication_total_s'] * 1e3:.4g} ms, speed-up {parallel['speedup_vs_one_device']:.3g}x")
    for note in result.meta.get("notes", []):
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if json_path is not None:
        result.write_json(json_path)
        err_console.print(f"wrote {json_path}")
    if csv_path is not None:
        result.write_csv(csv_path)
        err_console.print(f"wrote {csv_path}")


def map_command(
    model: str = typer.Argument(..., help="zoo name, .onnx file, or saved layer graph (.json)"),
    arch: str = typer.Option("eyeriss", "--arch", "-a", help=ARCH_HELP),
    zigzag_mapping: Optional[Path] = typer.Option(None, "--zigzag-mapping", help=ZIGZAG_MAPPING_HELP),
    layer_name: Optional[str] = typer.Option(None, "--layer", help="only this layer (default: every MAC layer)"),
    mapper: MapperChoice = typer.Option(MapperChoice.search, "--mapper"),
    objective: str = typer.Option("edp", "--objective", help="edp | energy | latency"),
    constraints: Optional[Path] = typer.Option(None, "--constraints", help=CONSTRAINTS_HELP),
    save: Optional[Path] = typer.Option(None, "--save", help="save the (first) mapping as YAML"),
) -> None:
    """Print the mapping of each MAC layer of MODEL on ARCH as a loop nest."""
    from hwsim.models import get_engine
    from hwsim.models.arch import load_arch
    from hwsim.simulate import resolve_graph

    spec = load_arch(arch_with_mapping(arch, zigzag_mapping))
    graph = resolve_graph(model)
    layers = [layer for layer in graph.compute_layers() if layer_name in (None, layer.name)]
    if not layers:
        raise ConfigError(f"--layer: no MAC layer named {layer_name!r} in {graph.name}")
    chosen = make_mapper(mapper, objective, constraints)
    for index, layer in enumerate(layers):
        mapping = chosen.map(layer, spec) if chosen else get_engine(spec.engine).default_mapping(layer, spec)
        text = mapping.to_loop_nest() if hasattr(mapping, "to_loop_nest") else repr(mapping)
        out_console.print(f"[bold]{layer.name}[/] ({layer.op.value}, {layer.macs:,} MACs)")
        out_console.print(text, highlight=False, markup=False)
        if save is not None and index == 0:
            if not hasattr(mapping, "save"):
                raise ConfigError(f"--save: {spec.engine} mappings are fixed dataflows and cannot be saved as YAML")
            mapping.save(save)
            err_console.print(f"wrote {save}")


def load_arch_for(arch):
    from hwsim.models.arch import load_arch

    return load_arch(arch)


def arch_with_mapping(arch: str, zigzag_mapping: Optional[Path]):
    """``arch`` as given, or the ZigZag accelerator it names read with ``zigzag_mapping``."""
    if zigzag_mapping is None:
        return arch
    if not arch.startswith("zigzag:"):
        raise ConfigError(f"--zigzag-mapping {zigzag_mapping.name}: applies to a ZigZag accelerator; "
                          f"pass --arch zigzag:HARDWARE.yaml (got --arch {arch})")
    from hwsim.interop.zigzag import load_zigzag_accelerator

    return load_zigzag_accelerator(arch[len("zigzag:"):], mapping=zigzag_mapping)


def phase_table(result) -> Table:
    """One row per training phase: MACs, latency, energy."""
    table = Table(title="training step by phase")
    for column in ("phase", "MACs", "latency ms", "energy µJ"):
        table.add_column(column)
    for phase, row in result.phases.items():
        table.add_row(phase, f"{row['macs']:.4g}", f"{row['latency_s'] * 1e3:.4g}", f"{row['energy_pj'] / 1e6:.4g}")
    return table


@contextmanager
def compile_notice():
    """A one-line notice with a spinner while a cold Numba cache compiles the kernels this run needs.

    The spinner starts when the run first loads Numba (``hwsim._cache.NUMBA_LOAD_HOOKS``), so a run whose
    engines need no kernel (the physical systolic model is closed-form) shows nothing.
    """
    import sys

    from hwsim._cache import NUMBA_LOAD_HOOKS, kernels_cached, numba_cache_dir

    if kernels_cached():
        yield
        return
    status = err_console.status(f"compiling simulation kernels, once (~1 min; cached in {numba_cache_dir()}; "
                                "`hwsim warmup` compiles them all ahead)")
    started = []

    def start() -> None:
        status.start()
        started.append(True)

    if "hwsim._numba" in sys.modules:       # Numba is loaded already: kernels may compile at any point
        start()
    else:
        NUMBA_LOAD_HOOKS.append(start)
    try:
        yield
    finally:
        if start in NUMBA_LOAD_HOOKS:
            NUMBA_LOAD_HOOKS.remove(start)
        if started:
            status.stop()


def warmup_command() -> None:
    """Compile every simulation kernel now (later runs only load them); for CI and containers."""
    from hwsim._cache import numba_cache_dir
    from hwsim.warmup import warmup

    with err_console.status("compiling simulation kernels") as status:
        seconds = warmup(lambda name: status.update(f"compiling simulation kernels: {name}"))
    err_console.print(f"kernels ready in {numba_cache_dir()} ({seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("warmup")(warmup_command)
    app.command("list")(list_command)
    app.command("lower")(lower_command)
    app.command("simulate")(simulate_command)
    app.command("map")(map_command)


__all__ = ["register", "parse_input_shape", "parse_technology", "result_table", "summary_table"]
