"""Reports from a results store: CSV, JSON, a self-contained HTML page (plotly) and PNG/SVG (matplotlib).

The HTML page inlines plotly.js (no network needed) and holds the Pareto scatter (hover shows the
design point), per-layer latency/energy of chosen points, a roofline of those points' layers, the
parameter sensitivity and the hypervolume history. The figures are built once as plain data
(``report_data``) and drawn by either backend.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwsim.dse.pareto import front, hypervolume_history, parse_constraints, parse_objectives
from hwsim.dse.store import ResultStore

DEFAULT_OBJECTIVES = ("latency_s", "energy_pj")
_SUMMARY_COLUMNS = ("key", "model", "recipe", "params", "objectives")


def flat_rows(store: ResultStore, *, sweep: str | None = None):
    """Stream one flat dict per stored point: key, parameters, then objectives."""
    for record in store.records(sweep=sweep, columns=_SUMMARY_COLUMNS):
        yield {"key": record["key"], **record["params"], **record["objectives"]}


def load_frame(store: ResultStore, *, sweep: str | None = None):
    """All successful points as a pandas DataFrame (parameters and objectives as columns)."""
    import pandas as pd

    return pd.DataFrame(list(flat_rows(store, sweep=sweep)))


def write_csv(store: ResultStore, path: str | Path, *, sweep: str | None = None) -> Path:
    """One CSV row per stored point."""
    path = Path(path)
    load_frame(store, sweep=sweep).to_csv(path, index=False)
    return path


def write_json(store: ResultStore, path: str | Path, *, sweep: str | None = None) -> Path:
    """A JSON list with one object per stored point: ``key``, ``params``, ``objectives`` (streamed)."""
    path = Path(path)
    with path.open("w") as handle:
        handle.write("[")
        for i, record in enumerate(store.records(sweep=sweep, columns=_SUMMARY_COLUMNS)):
            item = {"key": record["key"], "params": record["params"], "objectives": record["objectives"]}
            handle.write(("," if i else "") + "\n" + json.dumps(item, default=str))
        handle.write("\n]\n")
    return path


@dataclass(frozen=True)
class ReportData:
    """Everything the figures need, independent of the plotting library."""

    objectives: tuple[Any, ...]
    constraints: tuple[Any, ...]
    records: tuple[dict[str, Any], ...]          # key, params, objectives (successful points)
    front_keys: tuple[str, ...]
    chosen: tuple[dict[str, Any], ...]           # full records (with layers/meta) of chosen points
    hypervolume: tuple[float, ...]
    sensitivity: dict[str, dict[str, float]]     # param -> objective -> relative main effect


def _spec_defaults(store: ResultStore, sweep: str | None) -> tuple[list[Any], list[Any]]:
    specs = store.sweeps()
    spec = specs.get(sweep) if sweep else (next(iter(specs.values())) if len(specs) == 1 else None)
    if spec is None:
        return list(DEFAULT_OBJECTIVES), []
    objectives = [o["metric"] if o["sense"] == "min" else f"max:{o['metric']}" for o in spec["objectives"]]
    constraints = [f"{c['metric']} {c['op']} {c['value']}" for c in spec["constraints"]]
    return objectives[:3], constraints


def report_data(store: ResultStore, *, objectives: Sequence[Any] | None = None, constraints: Sequence[Any] | None = None,
                sweep: str | None = None, chosen: int = 4) -> ReportData:
    """Collect the report's data: front, chosen points, hypervolume history, sensitivity."""
    default_objs, default_cons = _spec_defaults(store, sweep)
    objs = parse_objectives(objectives or default_objs)
    cons = parse_constraints(constraints if constraints is not None else default_cons)
    records = tuple(store.records(sweep=sweep, columns=_SUMMARY_COLUMNS))
    best = front(records, objs, constraints=cons)
    picks = _spread(best, chosen)
    full = tuple(store.get(r["key"]) for r in picks)
    history = hypervolume_history(records, objs, constraints=cons) if len(objs) >= 2 and records else []
    return ReportData(objectives=tuple(objs), constraints=tuple(cons), records=records,
                      front_keys=tuple(r["key"] for r in best), chosen=full, hypervolume=tuple(history),
                      sensitivity=sensitivity(records, [o.metric for o in objs]))


def _spread(items: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` items evenly spread along the (sorted) front, ends included."""
    if len(items) <= count:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (count - 1)) for i in range(count)})
    return [items[i] for i in idx]


def sensitivity(records: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per swept parameter and metric: (max - min) of the per-value mean over the overall mean."""
    params = sorted({k for r in records for k in r["params"]})
    out: dict[str, dict[str, float]] = {}
    for param in params:
        levels: dict[str, list[dict[str, float]]] = {}
        for r in records:
            levels.setdefault(json.dumps(r["params"].get(param), default=str), []).append(r["objectives"])
        if len(levels) < 2:
            continue
        out[param] = {}
        for metric in metrics:
            means = [np.mean([o[metric] for o in group if metric in o] or [np.nan]) for group in levels.values()]
            overall = np.nanmean([r["objectives"].get(metric, np.nan) for r in records])
            spread = (np.nanmax(means) - np.nanmin(means)) / abs(overall) if overall else 0.0
            out[param][metric] = float(spread)
    return out


def hover_text(params: dict[str, Any], objectives: dict[str, float], metrics: Sequence[str]) -> str:
    """Hover label: the design point's parameters and the plotted objectives."""
    lines = [f"{k}: {v}" for k, v in params.items()] + [f"{m}: {objectives.get(m, float('nan')):.4g}" for m in metrics]
    return "<br>".join(html.escape(line) for line in lines)


def layer_table(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A chosen record's per-layer rows as dicts."""
    layers = record.get("layers") or {"columns": [], "rows": []}
    return [dict(zip(layers["columns"], row)) for row in layers["rows"]]


def point_label(record: dict[str, Any]) -> str:
    """A short label for a design point: recipe plus swept hardware values."""
    hw = ", ".join(f"{k.split('.')[-2] if k.count('.') > 1 else k[3:]}={v}" for k, v in record["params"].items()
                   if k.startswith("hw."))
    return f"{record['params'].get('recipe', '')} [{hw}]" if hw else str(record["params"].get("recipe", ""))


def roofline_points(record: dict[str, Any]) -> tuple[list[float], list[float], float, float]:
    """Per-layer (MACs per DRAM byte, achieved MACs/s) and the roofs (peak MACs/s, DRAM bytes/s)."""
    meta = record.get("meta") or {}
    clock = float(meta.get("clock_hz") or 1.0)
    peak = float(meta.get("peak_macs_per_cycle") or 0.0) * clock
    bw = float(meta.get("dram_bw_bytes_per_cycle") or 0.0) * clock
    xs, ys = [], []
    for row in layer_table(record):
        if row.get("macs") and row.get("dram_bytes") and row.get("latency_s"):
            xs.append(row["macs"] / row["dram_bytes"])
            ys.append(row["macs"] / row["latency_s"])
    return xs, ys, peak, bw


def write_report(store: ResultStore, output: str | Path, *, objectives: Sequence[Any] | None = None,
                 constraints: Sequence[Any] | None = None, sweep: str | None = None,
                 chosen: int = 4) -> Path:
    """Write ``output`` by suffix: ``.html``, ``.csv``, ``.json``, or a folder/``.png``/``.svg`` of figures."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return write_csv(store, output, sweep=sweep)
    if suffix == ".json":
        return write_json(store, output, sweep=sweep)
    data = report_data(store, objectives=objectives, constraints=constraints, sweep=sweep, chosen=chosen)
    if suffix in (".html", ".htm"):
        from hwsim.dse.report_html import write_html

        return write_html(data, output)
    from hwsim.dse.report_figures import write_figures

    fmt = suffix[1:] if suffix in (".png", ".svg") else "png"
    folder = output.with_suffix("") if suffix in (".png", ".svg") else output
    write_figures(data, folder, fmt=fmt)
    return folder
