"""``hwsim validate``: hwsim against published silicon and paper numbers, one row per figure.

Each row names the reference value, its source (paper, table), what hwsim computes for the same workload
on the matching preset, the relative error and the tolerance. Rows are *gated* (they fail the command when
outside their tolerance) unless the reference file lists them as a known gap with the reason; a figure
that could not be found in the papers is a "not found" row, never a guess, and a figure whose workload
inputs could not be read is reported without an hwsim number. The Eyeriss and EIE workloads are built from
the papers' layer shapes; the Edge TPU rows lower the zoo's MobileNets.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hwsim.ir import Layer, LayerGraph, Op
from hwsim.models.arch import load_arch
from hwsim.simulate import simulate_graph

MB = 1e6   # the paper's MB taken as 10^6 bytes


@dataclass(frozen=True)
class ValidationRow:
    """One published figure next to hwsim's value for it."""

    case: str                    # workload / layer, e.g. "Eyeriss AlexNet CONV1 (batch 4)"
    metric: str
    unit: str
    reference: float | None      # None: the number was not found
    source: str
    hwsim: float | None
    tolerance: float             # relative; 0 = exact
    gated: bool                  # False: a known gap, reported but not failing
    note: str = ""
    system: str = ""             # the table the row belongs to (default: the case's first word)

    @property
    def error(self) -> float | None:
        """Relative error (hwsim - reference) / reference."""
        if self.reference is None or self.hwsim is None or self.reference == 0:
            return None
        return (self.hwsim - self.reference) / self.reference

    @property
    def within(self) -> bool | None:
        error = self.error
        return None if error is None else abs(error) <= self.tolerance + 1e-12

    @property
    def status(self) -> str:
        if self.reference is None:
            return "not found"
        if self.within:
            return "pass" if self.gated else "pass (known gap)"
        return "FAIL" if self.gated else "known gap"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error": self.error, "status": self.status}


@dataclass(frozen=True)
class ValidationReport:
    """All rows; ``failed`` are the gated rows outside their tolerance."""

    rows: tuple[ValidationRow, ...]

    @property
    def failed(self) -> tuple[ValidationRow, ...]:
        return tuple(row for row in self.rows if row.gated and row.within is False)

    @property
    def passed(self) -> bool:
        return not self.failed

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps([row.to_dict() for row in self.rows], indent=1))
        return path

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        rows = [row.to_dict() for row in self.rows]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return path


    def to_markdown(self) -> str:
        """Per system a table: one line per metric, one column per workload, the error and the row's status."""
        systems: dict[str, dict[str, dict[str, ValidationRow]]] = {}
        uncomputed = [row for row in self.rows if row.hwsim is None and row.reference is not None]
        for row in self.rows:
            if row in uncomputed:
                continue
            system = row.system or row.case.split(" ", 1)[0]
            systems.setdefault(system, {}).setdefault(row.metric, {})[_where(row.case)] = row
        out = []
        for system, metrics in systems.items():
            columns = list(dict.fromkeys(where for cells in metrics.values() for where in cells))
            out += [f"| {system} | tolerance | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
            for metric, cells in metrics.items():
                tol = next(iter(cells.values())).tolerance
                out.append(f"| {metric} | ±{100 * tol:g} % | "
                           + " | ".join(_cell(cells.get(column)) for column in columns) + " |")
            out.append("")
        if uncomputed:
            out += ["| paper figure, not computed yet | metric | paper | source |", "|---|---|---|---|"]
            out += [f"| {row.case} | {row.metric} | {row.reference:g} {row.unit} | {row.source} |"
                    for row in uncomputed]
            out.append("")
        return "\n".join(out)


def _where(case: str) -> str:
    """The workload part of a case name ("Eyeriss AlexNet CONV1 (batch 4)" -> "AlexNet CONV1")."""
    return case.split(" ", 1)[1].split(" (")[0] if " " in case else case


def _cell(row: ValidationRow | None) -> str:
    if row is None:
        return ""
    if row.error is None:
        return row.status
    if row.note.startswith("generalisation check"):
        return f"{100 * row.error:+.0f} %"
    mark = {"pass": " ✓", "FAIL": " ✗", "known gap": " (gap)", "pass (known gap)": " (gap)"}[row.status]
    return f"{100 * row.error:+.0f} %{mark}"


def load_reference(name: str) -> dict[str, Any]:
    """A shipped reference file (``configs/reference/<name>.yaml``)."""
    return yaml.safe_load((resources.files("hwsim.configs") / "reference" / f"{name}.yaml").read_text())


def eyeriss_graph(ref: dict[str, Any], name: str = "alexnet_conv1_5") -> LayerGraph:
    """A network's conv layers at the reference's batch, 16-bit (the chip's fixed point), with the
    measured fraction of zeros in each layer's input feature maps as its activation density."""
    batch = ref["batch"]
    side = ref.get("input_hw", 227)
    graph = LayerGraph(name, input_shape=(batch, ref["layers"][0]["C"], side, side))
    previous: list[str] = []
    for shape, zeros_pct in zip(ref["layers"], ref["measured"]["zeros_in_ifmaps_pct"]):
        layer = Layer(shape["name"].lower(), Op.CONV, N=batch, K=shape["K"], C=shape["C"], G=shape["G"],
                      P=shape["P"], Q=shape["P"], R=shape["R"], S=shape["R"], stride=shape["stride"],
                      padding=shape["padding"], weight_bits=16, act_bits=16, out_bits=16, acc_bits=16,
                      act_density=1.0 - zeros_pct / 100.0, source=f"{ref['paper']}, {ref['table']}")
        graph.add_layer(layer, inputs=previous)
        previous = [layer.name]
    return graph


def eyeriss_alexnet_graph(ref: dict[str, Any]) -> LayerGraph:
    """AlexNet CONV1-5 as the chip ran it (``eyeriss_alexnet.yaml``; shapes from Table III)."""
    return eyeriss_graph(ref, "alexnet_conv1_5")


_METRICS = {   # metric -> (unit, per-layer hwsim value)
    "active_pes": ("PEs", lambda layer, arch: float(layer.active_pes)),
    "processing_latency_ms": ("ms", lambda layer, arch: layer.compute_cycles / arch.clock_hz * 1e3),
    "total_latency_ms": ("ms", lambda layer, arch: layer.latency_s * 1e3),
    "dram_mb": ("MB", lambda layer, arch: layer.bytes_at(arch.dram.name) / MB),
    "power_mw": ("mW", lambda layer, arch: layer.power_mw),
}


def eyeriss_rows(reference: str = "eyeriss_alexnet", network: str = "AlexNet") -> list[ValidationRow]:
    """Eyeriss (JSSC 2017) measured per-layer figures against the ``eyeriss`` preset on the same layers.

    A ``null`` reference cell (an unreadable or self-contradicting table entry) gives no row.
    """
    ref = load_reference(reference)
    arch = load_arch("eyeriss")
    result = simulate_graph(eyeriss_graph(ref, reference), arch)
    gaps, tolerance = ref.get("known_gaps") or {}, ref["tolerance"]
    source = f"{ref['paper']}, {ref['table']}"
    names = [shape["name"] for shape in ref["layers"]]

    gate = ref.get("gated", True)

    def row(metric: str, where: str, reference: float, value: float, unit: str) -> ValidationRow:
        gap = (gaps.get(metric) or {}).get(where) or (None if gate else ref["ungated_reason"])
        return ValidationRow(case=f"Eyeriss {network} {where} (batch {ref['batch']})", metric=metric, unit=unit,
                             reference=float(reference), source=source, hwsim=value,
                             tolerance=tolerance[metric], gated=gap is None, note=gap or "",
                             system=f"Eyeriss {network}")

    rows = []
    for metric, (unit, value_of) in _METRICS.items():
        values = [value_of(layer, arch) for layer in result.layers]
        rows += [row(metric, name, measured, value, unit)
                 for name, measured, value in zip(names, ref["measured"][metric], values) if measured is not None]
        if metric == "active_pes":
            continue
        total = result.power_mw if metric == "power_mw" else float(sum(values))   # power: energy / time
        rows.append(row(metric, "total", ref["totals"][metric], total, unit))
    power = ref["measured"]["power_mw"]
    rows.append(row("power_trend", f"{names[-1]}/{names[0]}", power[-1] / power[0],
                    result.layers[-1].power_mw / result.layers[0].power_mw, "ratio"))
    return rows


def eyeriss_alexnet_rows() -> list[ValidationRow]:
    """Eyeriss (JSSC 2017, Table V) on AlexNet CONV1-5, batch 4, with the ``eyeriss`` preset."""
    return eyeriss_rows("eyeriss_alexnet", "AlexNet")


def eyeriss_vgg16_rows() -> list[ValidationRow]:
    """Eyeriss (JSSC 2017, Table VI) on VGG-16's 13 conv layers, batch 3: the generalisation check."""
    return eyeriss_rows("eyeriss_vgg16", "VGG-16")


def eie_rows() -> list[ValidationRow]:
    """EIE (Han et al., ISCA 2016) FC-layer times, theoretical and actual (``eie_fc.yaml``).

    The references are found; hwsim's number needs each layer's weight and activation density (the
    paper's benchmark table), which is not among the tables available here, so no hwsim value is given.
    """
    ref = load_reference("eie_fc")
    rows = []
    for layer, times in ref["time_us"].items():
        for kind in ("theoretical", "actual"):
            rows.append(ValidationRow(case=f"EIE {layer}", metric=f"{kind}_time_us", unit="us",
                                      reference=float(times[kind]), source=ref["source"], hwsim=None,
                                      tolerance=ref["tolerance"], gated=False,
                                      note=f"not computed: needs {ref['missing']}"))
    return rows


def headline_rows() -> list[ValidationRow]:
    """The accelerator papers' headline figures (``paper_headlines.yaml``): reference and source; no hwsim
    number where the paper's per-layer inputs could not be read (the row names what is missing)."""
    ref = load_reference("paper_headlines")
    return [ValidationRow(case=row["case"], metric=row["metric"], unit="x", reference=float(row["reference"]),
                          source=row["source"], hwsim=None, tolerance=0.20, gated=False,
                          note=f"not computed: needs {row['missing']}")
            for row in ref["rows"]]


def edge_tpu_rows() -> list[ValidationRow]:
    """Coral's published MobileNet latencies against the ``edge_tpu_like`` preset (batch 1)."""
    from hwsim.lower import load_graph

    ref = load_reference("paper_headlines")["edge_tpu"]
    arch = load_arch("edge_tpu_like")
    rows = []
    for model, measured in ref["latency_ms"].items():
        latency = simulate_graph(load_graph(model, batch=1), arch).latency_s * 1e3
        rows.append(ValidationRow(case=f"EdgeTPU {model} (batch 1)", metric="latency_ms", unit="ms",
                                  reference=float(measured), source=ref["source"], hwsim=latency,
                                  tolerance=ref["tolerance"], gated=False, note=ref["gap"]))
    return rows


def sparse_2_4_rows() -> list[ValidationRow]:
    """The 2:4 sparse tensor core doubles math throughput: a compute-bound GEMM, dense vs 2:4 weights."""
    from hwsim.ir import Sparsity, SparsityKind

    ref = load_reference("paper_headlines")["sparse_2_4"]
    arch = load_arch("sparse_tc_2_4")

    def cycles(sparse: bool) -> int:
        graph = LayerGraph("gemm", input_shape=(512, 4096))
        graph.add_layer(Layer("fc", Op.LINEAR, N=512, K=4096, C=4096, weight_density=0.5 if sparse else 1.0,
                              sparsity=Sparsity(SparsityKind.NM, n=2, m=4) if sparse else Sparsity()))
        return simulate_graph(graph, arch).layers[0].compute_cycles

    return [ValidationRow(case="2:4-TC GEMM 512x4096x4096 (compute-bound)", metric="math_speedup", unit="x",
                          reference=float(ref["math_speedup"]), source=ref["source"],
                          hwsim=cycles(False) / cycles(True), tolerance=ref["tolerance"], gated=True)]


def validate() -> ValidationReport:
    """Every validation row (Eyeriss AlexNet and VGG-16, EIE, Edge TPU, the 2:4 tensor core, the papers'
    headlines)."""
    return ValidationReport(rows=tuple(eyeriss_alexnet_rows() + eyeriss_vgg16_rows() + eie_rows() + edge_tpu_rows() + sparse_2_4_rows()
                                       + headline_rows()))


def format_value(value: float | None) -> str:
    """A table cell: 3 significant digits, or a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
