"""SCALE-Sim 3.0.0 interop: .cfg/topology/layout readers, report writers, zoo -> topology export.

File formats as SCALE-Sim 3.0.0 reads and writes them (``shared/research/scalesim.md`` §1, §7):
configs are configparser files (keys case-insensitive), topology rows end with a trailing comma
(tolerated without), a name containing ``DP`` is a depthwise layer expanded to one single-channel
layer per channel, and report rows are ``LayerID, v1, v2, ...,`` with Python float formatting.
"""

from __future__ import annotations

import configparser
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from hwsim.errors import ConfigError, UnsupportedOpError
from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import ArchSpec, validate_arch
from hwsim.models.systolic.compat import ScaleSimLayer, scalesim_layer_from
from hwsim.models.systolic.compat_engine import CompatReport

_REQUIRED = {
    "general": ("run_name",),
    "architecture_presets": ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB",
                             "IfmapOffset", "FilterOffset", "OfmapOffset", "Dataflow", "ReadRequestBuffer",
                             "WriteRequestBuffer"),
    "layout": ("IfmapCustomLayout", "FilterCustomLayout", "IfmapSRAMBankBandwidth", "IfmapSRAMBankNum",
               "IfmapSRAMBankPort", "FilterSRAMBankBandwidth", "FilterSRAMBankNum", "FilterSRAMBankPort"),
    "sparsity": ("SparsitySupport",),
    "run_presets": ("InterfaceBandwidth", "UseRamulatorTrace"),
}
COMPUTE_HEADER = ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, "
                  "Mapping Efficiency %, Compute Util %,\n")
BANDWIDTH_HEADER = ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                    "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n")
DETAIL_HEADER = "LayerID, " + "".join(
    f"{mem} {op} Start Cycle, {mem} {op} Stop Cycle, {mem} {op} {what}, "
    for mem, op, what in (("SRAM", "IFMAP", "Reads"), ("SRAM", "Filter", "Reads"), ("SRAM", "OFMAP", "Writes"),
                          ("DRAM", "IFMAP", "Reads"), ("DRAM", "Filter", "Reads"), ("DRAM", "OFMAP", "Writes"))
).rstrip(" ").rstrip(",") + ",\n"


@dataclass(frozen=True)
class ScaleSimConfig:
    """Every key SCALE-Sim 3.0.0 reads from a .cfg file (sizes in kB, as in the file)."""

    run_name: str
    rows: int
    cols: int
    ifmap_kb: int
    filter_kb: int
    ofmap_kb: int
    dataflow: str
    interface_bandwidth: str = "CALC"
    bandwidth: tuple[int, ...] = ()
    offsets: tuple[int, int, int] = (0, 10000000, 20000000)
    read_request_buffer: int = 32
    write_request_buffer: int = 32
    ifmap_bank_bandwidth: int = 10
    filter_bank_bandwidth: int = 10
    bank_num: tuple[int, int] = (1, 1)
    bank_port: tuple[int, int] = (2, 2)
    custom_layout: tuple[bool, bool] = (False, False)
    sparsity_support: bool = False
    use_ramulator_trace: bool = False


def _get(parser: configparser.ConfigParser, path: Path, section: str, key: str) -> str:
    if not parser.has_section(section):
        raise ConfigError(f"{path.name}: section '{section}', key '{key}': the section is missing "
                          "(SCALE-Sim 3.0.0 requires it)")
    if not parser.has_option(section, key):
        raise ConfigError(f"{path.name}: section '{section}', key '{key}': missing required key")
    return parser.get(section, key).strip()


def _int(parser, path: Path, section: str, key: str) -> int:
    text = _get(parser, path, section, key)
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{path.name}: section '{section}', key '{key}': expected an integer (got {text!r})") from None


def _bool(parser, path: Path, section: str, key: str) -> bool:
    text = _get(parser, path, section, key).lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ConfigError(f"{path.name}: section '{section}', key '{key}': expected True or False (got {text!r})")
    return text in ("true", "1", "yes", "on")


def read_config(path: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim .cfg file; a missing section/key raises one ``ConfigError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: SCALE-Sim config file not found")
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as err:
        raise ConfigError(f"{path.name}: malformed config ({err.message.splitlines()[0]})") from None
    for section, keys in _REQUIRED.items():
        for key in keys:
            _get(parser, path, section, key)
    arch, lay = "architecture_presets", "layout"
    mode = _get(parser, path, "run_presets", "InterfaceBandwidth")
    if mode not in ("CALC", "USER"):
        raise ConfigError(f"{path.name}: section 'run_presets', key 'InterfaceBandwidth': must be CALC or USER (got {mode!r})")
    dataflow = _get(parser, path, arch, "Dataflow")
    if dataflow not in ("ws", "os", "is"):
        raise ConfigError(f"{path.name}: section '{arch}', key 'Dataflow': must be ws, os or is (got {dataflow!r})")
    bandwidth: tuple[int, ...] = ()
    if mode == "USER":
        text = _get(parser, path, arch, "Bandwidth")
        try:
            bandwidth = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise ConfigError(f"{path.name}: section '{arch}', key 'Bandwidth': expected integers (got {text!r})") from None
    return ScaleSimConfig(
        run_name=_get(parser, path, "general", "run_name"),
        rows=_int(parser, path, arch, "ArrayHeight"), cols=_int(parser, path, arch, "ArrayWidth"),
        ifmap_kb=_int(parser, path, arch, "IfmapSramSzkB"), filter_kb=_int(parser, path, arch, "FilterSramSzkB"),
        ofmap_kb=_int(parser, path, arch, "OfmapSramSzkB"), dataflow=dataflow, interface_bandwidth=mode,
        bandwidth=bandwidth,
        offsets=tuple(_int(parser, path, arch, k) for k in ("IfmapOffset", "FilterOffset", "OfmapOffset")),
        read_request_buffer=_int(parser, path, arch, "ReadRequestBuffer"),
        write_request_buffer=_int(parser, path, arch, "WriteRequestBuffer"),
        ifmap_bank_bandwidth=_int(parser, path, lay, "IfmapSRAMBankBandwidth"),
        filter_bank_bandwidth=_int(parser, path, lay, "FilterSRAMBankBandwidth"),
        bank_num=(_int(parser, path, lay, "IfmapSRAMBankNum"), _int(parser, path, lay, "FilterSRAMBankNum")),
        bank_port=(_int(parser, path, lay, "IfmapSRAMBankPort"), _int(parser, path, lay, "FilterSRAMBankPort")),
        custom_layout=(_bool(parser, path, lay, "IfmapCustomLayout"), _bool(parser, path, lay, "FilterCustomLayout")),
        sparsity_support=_bool(parser, path, "sparsity", "SparsitySupport"),
        use_ramulator_trace=_get(parser, path, "run_presets", "UseRamulatorTrace") == "True",
    )


def config_to_arch(config: ScaleSimConfig, *, mode: str = "scalesim", origin: str = "scalesim.cfg") -> ArchSpec:
    """An ``ArchSpec`` (systolic engine, DRAM + one partitioned SRAM level "GLB") for a SCALE-Sim config."""
    dram: dict = {"name": "DRAM", "kind": "dram"}
    if config.bandwidth:
        dram.update(read_bw_bytes_per_cycle=config.bandwidth[0], write_bw_bytes_per_cycle=config.bandwidth[0])
    kb = 1024
    data = {
        "name": config.run_name, "engine": "systolic", "clock_hz": 1e9, "technology_nm": 45,
        "description": f"SCALE-Sim config {origin}",
        "memory": [dram, {"name": "GLB", "kind": "sram", "word_bits": 8, "partition_bytes": {
            "I": config.ifmap_kb * kb, "W": config.filter_kb * kb, "O": config.ofmap_kb * kb}}],
        "compute": {"units": config.rows * config.cols},
        "systolic": {"rows": config.rows, "cols": config.cols, "dataflow": config.dataflow, "mode": mode},
        "sources": {"systolic": f"SCALE-Sim config {origin}",
                    "clock_hz": "SCALE-Sim has no clock; 1 GHz placeholder",
                    "technology_nm": "SCALE-Sim has no technology node; 45 nm placeholder"},
    }
    if mode == "scalesim":        # SCALE-Sim's interface fields are read by its compatible mode only
        data["systolic"]["interface_bandwidth"] = config.interface_bandwidth
        if config.interface_bandwidth == "USER":
            data["systolic"].update(ifmap_fill_words_per_cycle=config.ifmap_bank_bandwidth,
                                    filter_fill_words_per_cycle=config.filter_bank_bandwidth)
    return validate_arch(data, origin=origin)


def write_config(config: ScaleSimConfig, path: str | Path) -> Path:
    """Write ``config`` as a .cfg file SCALE-Sim 3.0.0 accepts."""
    path = Path(path)
    bw = ",".join(str(b) for b in config.bandwidth) or "10"
    text = f"""[general]
run_name = {config.run_name}

[architecture_presets]
ArrayHeight: {config.rows}
ArrayWidth: {config.cols}
IfmapSramSzkB: {config.ifmap_kb}
FilterSramSzkB: {config.filter_kb}
OfmapSramSzkB: {config.ofmap_kb}
IfmapOffset: {config.offsets[0]}
FilterOffset: {config.offsets[1]}
OfmapOffset: {config.offsets[2]}
Bandwidth: {bw}
Dataflow: {config.dataflow}
MemoryBanks: 1
ReadRequestBuffer: {config.read_request_buffer}
WriteRequestBuffer: {config.write_request_buffer}

[layout]
IfmapCustomLayout: {config.custom_layout[0]}
IfmapSRAMBankBandwidth: {config.ifmap_bank_bandwidth}
IfmapSRAMBankNum: {config.bank_num[0]}
IfmapSRAMBankPort: {config.bank_port[0]}
FilterCustomLayout: {config.custom_layout[1]}
FilterSRAMBankBandwidth: {config.filter_bank_bandwidth}
FilterSRAMBankNum: {config.bank_num[1]}
FilterSRAMBankPort: {config.bank_port[1]}

[sparsity]
SparsitySupport: {str(config.sparsity_support).lower()}
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: {config.interface_bandwidth}
UseRamulatorTrace: {config.use_ramulator_trace}
"""
    path.write_text(text)
    return path


# ----- topology and layout files ---------------------------------------------------------------
def _fields(line: str) -> list[str]:
    parts = [p.strip() for p in line.split(",")]
    return parts[:-1] if parts and parts[-1] == "" else parts     # the trailing comma is optional


def _ints(path: Path, lineno: int, values: Iterable[str], names: Iterable[str]) -> list[int]:
    out = []
    for value, name in zip(values, names):
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{path.name}: line {lineno}: {name} must be an integer (got {value!r})") from None
        if number < 1:
            raise ConfigError(f"{path.name}: line {lineno}: {name} must be >= 1 (got {number})")
        out.append(number)
    return out


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if lineno > 1 and line.strip():
            yield lineno, _fields(line)


_CONV_COLS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter", "Strides")


def read_topology(path: str | Path, *, gemm: bool = False) -> list[ScaleSimLayer]:
    """Topology rows as SCALE-Sim runs them (``DP`` rows expanded to one layer per channel)."""
    path = Path(path)
    layers: list[ScaleSimLayer] = []
    for lineno, fields in _rows(path):
        need = 4 if gemm else 8
        if len(fields) < need:
            raise ConfigError(f"{path.name}: line {lineno}: expected {need} fields "
                              f"({'name, M, N, K' if gemm else 'name, ' + ', '.join(_CONV_COLS)}), got {len(fields)}")
        name = fields[0]
        if gemm:
            m, n, k = _ints(path, lineno, fields[1:4], ("M", "N", "K"))
            layers.append(ScaleSimLayer.gemm(name, m=m, n=n, k=k))
            continue
        h, w, r, s, c, nf, stride = _ints(path, lineno, fields[1:8], _CONV_COLS)
        if r > h or s > w:
            raise ConfigError(f"{path.name}: line {lineno}: filter {r}x{s} is larger than the ifmap {h}x{w}")
        base = ScaleSimLayer(name, h, w, r, s, c, nf, stride, stride)
        if "DP" in name:
            layers.extend(replace(base, name=f"{name}Channel_{i}", channels=1) for i in range(c))
        else:
            layers.append(base)
    return layers


def read_layout(path: str | Path) -> list[tuple[str, tuple[int, ...]]]:
    """Layout rows ``(name, ints)`` (SCALE-Sim requires the file even when layouts are off)."""
    path = Path(path)
    return [(fields[0], tuple(_ints(path, lineno, fields[1:], (f"field {i}" for i in range(2, 99)))))
            for lineno, fields in _rows(path) if fields]


def topology_to_layers(path: str | Path, *, gemm: bool = False) -> list[Layer]:
    """hwsim layers of a topology file (DP rows become one depthwise layer, GEMMs linear layers)."""
    layers = []
    for lineno, fields in _rows(Path(path)):
        if gemm:
            m, n, k = _ints(Path(path), lineno, fields[1:4], ("M", "N", "K"))
            layers.append(Layer(fields[0], Op.LINEAR, N=1, P=m, K=n, C=k, source=f"{Path(path).name}:{lineno}"))
            continue
        h, w, r, s, c, nf, stride = _ints(Path(path), lineno, fields[1:8], _CONV_COLS)
        sl = ScaleSimLayer(fields[0], h, w, r, s, c, nf, stride, stride)
        groups = c if "DP" in fields[0] else 1
        layers.append(Layer(fields[0], Op.DEPTHWISE if groups > 1 else Op.CONV, K=nf * groups, C=c, G=groups,
                            P=sl.ofmap_h, Q=sl.ofmap_w, R=r, S=s, stride=stride, input_size=(h, w),
                            source=f"{Path(path).name}:{lineno}"))
    return layers


def _topology_rows(layer: Layer) -> list[str]:
    """SCALE-Sim conv-format rows (``name, H, W, R, S, C, N, stride,``) of one hwsim MAC layer."""
    sl = scalesim_layer_from(layer)
    if sl.stride_h != sl.stride_w:
        raise UnsupportedOpError(f"layer {layer.name!r}: SCALE-Sim topologies have one stride, got {layer.stride}")
    name = layer.name.replace(",", "_")
    depthwise = layer.op is Op.DEPTHWISE or (layer.G > 1 and layer.G == layer.C)
    if not depthwise:
        name = name.replace("DP", "Dp")           # SCALE-Sim expands any name containing DP
    copies = sl.repeats // layer.G if depthwise else sl.repeats
    if depthwise:
        name = name if "DP" in name else f"{name}_DP"
    row = [sl.ifmap_h, sl.ifmap_w, sl.filter_h, sl.filter_w, layer.G if depthwise else sl.channels,
           sl.num_filters, sl.stride_h]
    body = ", ".join(str(v) for v in row)
    if copies == 1:
        return [f"{name}, {body},"]
    return [f"{name}_{i}, {body}," for i in range(copies)]


def export_topology_csv(graph: LayerGraph, path: str | Path) -> Path:
    """Write every MAC layer of ``graph`` as a SCALE-Sim conv topology CSV (GEMMs as 1xK convs)."""
    path = Path(path)
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
    for layer in graph.compute_layers():
        lines.extend(_topology_rows(layer))
    path.write_text("\n".join(lines) + "\n")
    return path


# ----- reports ---------------------------------------------------------------------------------
def _row(lid: int, items: Iterable[object]) -> str:
    return f"{lid}, " + ", ".join(str(x) for x in items) + ",\n"


def write_reports(reports: list[CompatReport], out_dir: str | Path) -> list[Path]:
    """COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv, DETAILED_ACCESS_REPORT.csv as SCALE-Sim writes them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compute = [COMPUTE_HEADER] + [_row(i, (r.total_cycles_incl_prefetch, r.total_cycles, r.stall_cycles,
                                            r.overall_util_pct, r.mapping_efficiency_pct, r.compute_util_pct))
                                  for i, r in enumerate(reports)]
    bandwidth = [BANDWIDTH_HEADER] + [_row(i, r.bandwidths()) for i, r in enumerate(reports)]
    detail = [DETAIL_HEADER] + [_row(i, [v for block in (r.sram + r.dram) for v in block])
                                for i, r in enumerate(reports)]
    paths = []
    for name, lines in (("COMPUTE_REPORT.csv", compute), ("BANDWIDTH_REPORT.csv", bandwidth),
                        ("DETAILED_ACCESS_REPORT.csv", detail)):
        paths.append(out_dir / name)
        paths[-1].write_text("".join(lines))
    return paths


def read_report(path: str | Path) -> list[dict[str, float]]:
    """Rows of a SCALE-Sim report CSV as {column: value} (ours or the tool's)."""
    lines = Path(path).read_text().splitlines()
    header = _fields(lines[0])
    return [dict(zip(header, (float(v) for v in _fields(line)))) for line in lines[1:] if line.strip()]


def run_peer(python: str, config: ScaleSimConfig, topology: Path, out_dir: Path, *, gemm: bool = False,
             timeout_s: float | None = None) -> Path:
    """Run the real SCALE-Sim (``python -m scalesim.scale``) and return its report directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = write_config(config, out_dir / "peer.cfg")
    layout = out_dir / "layout.csv"
    layout.write_text("Layer name,\n")
    cmd = [python, "-m", "scalesim.scale", "-c", str(cfg), "-t", str(topology), "-l", str(layout),
           "-p", str(out_dir)] + (["-i", "gemm"] if gemm else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s, cwd=out_dir)
    return out_dir / config.run_name
