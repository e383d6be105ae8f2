"""The self-contained HTML report (plotly, JS inlined: opens offline)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hwsim.dse.report import ReportData, hover_text, layer_table, point_label, roofline_points
from hwsim.dse.spec import metric_label

PARETO_DIV = "pareto-scatter"


def pareto_figure(data: ReportData) -> Any:
    """Scatter of every point over the first two objectives (third = colour); front highlighted."""
    import plotly.graph_objects as go

    metrics = [o.metric for o in data.objectives]
    x_m, y_m = metrics[0], metrics[1] if len(metrics) > 1 else metrics[0]
    front = set(data.front_keys)
    feasible_keys = {r["key"] for r in data.records
                     if all(c.ok(r["objectives"].get(c.metric)) for c in data.constraints)}
    groups = {"dominated": [], "infeasible": [], "Pareto front": []}
    for r in data.records:
        if any(r["objectives"].get(m) is None for m in metrics):
            continue
        name = "Pareto front" if r["key"] in front else ("dominated" if r["key"] in feasible_keys else "infeasible")
        groups[name].append(r)
    fig = go.Figure()
    colour_range = _colour_range(metrics[2], data.records) if len(metrics) == 3 else {}
    styles = {"dominated": dict(color="#9aa5b1", size=7), "infeasible": dict(color="#e0b0b0", size=7, symbol="x"),
              "Pareto front": dict(color="#d62728", size=10)}
    for name, rows in groups.items():
        if name == "Pareto front":
            rows = sorted(rows, key=lambda r: r["objectives"][x_m])
        marker = dict(styles[name])
        if len(metrics) == 3 and name != "infeasible":
            marker.update(color=[r["objectives"][metrics[2]] for r in rows], colorscale="Viridis", **colour_range,
                          showscale=name == "Pareto front", colorbar=dict(title=metric_label(metrics[2])))
        fig.add_trace(go.Scatter(
            x=[r["objectives"][x_m] for r in rows], y=[r["objectives"][y_m] for r in rows], name=name,
            mode="markers+lines" if name == "Pareto front" and len(metrics) == 2 else "markers", marker=marker,
            text=[hover_text(r["params"], r["objectives"], metrics) for r in rows], hoverinfo="text"))
    fig.update_layout(title=f"Design points: {y_m} vs {x_m}" + (f" (colour: {metrics[2]})" if len(metrics) == 3 else ""),
                      xaxis_title=metric_label(x_m), yaxis_title=metric_label(y_m), xaxis_type="log",
                      yaxis_type="log", height=560,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def breakdown_figure(data: ReportData) -> Any:
    """Per-layer latency and energy of the chosen points (grouped bars)."""
    import plotly
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("latency (s) per layer", "energy (pJ) per layer"))
    palette = plotly.colors.qualitative.Plotly
    for i, record in enumerate(data.chosen):
        rows = layer_table(record)
        names = [row["name"] for row in rows]
        label, color = point_label(record), palette[i % len(palette)]
        fig.add_trace(go.Bar(x=names, y=[row["latency_s"] for row in rows], name=label, legendgroup=label,
                             marker_color=color), 1, 1)
        fig.add_trace(go.Bar(x=names, y=[row["energy_pj"] for row in rows], name=label, legendgroup=label,
                             marker_color=color, showlegend=False), 2, 1)
    fig.update_layout(barmode="group", height=620, title="Per-layer breakdown of chosen Pareto points")
    return fig


def roofline_figure(data: ReportData) -> Any:
    """Roofline (MACs/s vs MACs per DRAM byte) with each chosen point's layers and roofs."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for record in data.chosen:
        xs, ys, peak, bw = roofline_points(record)
        label = point_label(record)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=label, text=[r["name"] for r in layer_table(record)
                                 if r.get("macs") and r.get("dram_bytes") and r.get("latency_s")]))
        if peak and bw and xs:
            lo, hi = min(xs + [peak / bw]) / 2, max(xs + [peak / bw]) * 2
            knee = peak / bw
            fig.add_trace(go.Scatter(x=[lo, knee, hi], y=[lo * bw, peak, peak], mode="lines",
                                     name=f"roof {label}", line=dict(dash="dot")))
    fig.update_layout(title="Roofline of chosen points (per layer)", xaxis_title="MACs per DRAM byte",
                      yaxis_title="MACs per second", xaxis_type="log", yaxis_type="log", height=480)
    return fig


def sensitivity_figure(data: ReportData) -> Any:
    """Relative main effect of each swept parameter on each objective."""
    import plotly.graph_objects as go

    params = list(data.sensitivity)
    fig = go.Figure()
    for objective in data.objectives:
        fig.add_trace(go.Bar(x=params, y=[data.sensitivity[p].get(objective.metric, 0.0) for p in params],
                             name=objective.metric))
    fig.update_layout(barmode="group", title="Parameter sensitivity: (max - min) of per-value mean / mean",
                      height=420)
    return fig


def hypervolume_figure(data: ReportData) -> Any:
    """Hypervolume of the feasible front as points were evaluated."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=list(range(1, len(data.hypervolume) + 1)), y=list(data.hypervolume), mode="lines"))
    fig.update_layout(title="Hypervolume of the feasible front vs points evaluated", xaxis_title="points",
                      yaxis_title="hypervolume", height=380)
    return fig


def _front_table(data: ReportData) -> str:
    metrics = [o.metric for o in data.objectives]
    by_key = {r["key"]: r for r in data.records}
    rows = [by_key[k] for k in data.front_keys]
    params = sorted({p for r in rows for p in r["params"]})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in params + metrics)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r['params'].get(p, '')))}</td>" for p in params)
                   + "".join(f"<td>{r['objectives'][m]:.4g}</td>" for m in metrics) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(data: ReportData, path: str | Path) -> Path:
    """Write the report page; plotly.js is inlined once (``include_plotlyjs=True``)."""
    path = Path(path)
    figures = [("pareto", pareto_figure(data))]
    if data.hypervolume:
        figures.append(("hypervolume", hypervolume_figure(data)))
    if data.chosen:
        figures += [("breakdown", breakdown_figure(data)), ("roofline", roofline_figure(data))]
    if data.sensitivity:
        figures.append(("sensitivity", sensitivity_figure(data)))
    parts = []
    for i, (name, fig) in enumerate(figures):
        div_id = PARETO_DIV if name == "pareto" else f"{name}-plot"
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=div_id))
    cons = ", ".join(f"{c.metric} {c.op} {c.value:g}" for c in data.constraints) or "none"
    summary = (f"<p>{len(data.records)} design points; {len(data.front_keys)} on the feasible Pareto front over "
               f"{', '.join(f'{o.sense} {o.metric}' for o in data.objectives)}; constraints: {html.escape(cons)}.</p>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>hwsim design-space report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
            "<h1>hwsim design-space report</h1>" + summary + "<h2>Pareto front</h2>" + _front_table(data)
            + "".join(parts) + "</body></html>")
    path.write_text(page)
    return path


FRACTION_METRICS = ("top1_accuracy", "top1_agreement", "utilization")   # metrics that live in [0, 1]


def _colour_range(metric: str, records: list) -> dict[str, float]:
    """One colour scale for every trace: [0, 1] for fractions, else the values' own range (plotly pads a
    constant one to +-40 %, e.g. 0.6-1.4 for an accuracy of 1.0)."""
    if metric in FRACTION_METRICS:
        return {"cmin": 0.0, "cmax": 1.0}
    values = [r["objectives"][metric] for r in records if r["objectives"].get(metric) is not None]
    if not values:
        return {}
    lo, hi = min(values), max(values)
    return {"cmin": lo, "cmax": hi} if hi > lo else {"cmin": lo * 0.999, "cmax": lo * 1.001 if lo else 1.0}
