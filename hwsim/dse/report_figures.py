"""Static figures (PNG or SVG, matplotlib, headless): Pareto, hypervolume, breakdown, roofline, sensitivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwsim.errors import ConfigError

from hwsim.dse.report import ReportData, layer_table, point_label, roofline_points
from hwsim.dse.spec import metric_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")                       # headless; no display needed
    import matplotlib.pyplot as plt

    return plt


def write_figures(data: ReportData, folder: str | Path, *, fmt: str = "png") -> list[Path]:
    """Write every figure as ``<folder>/<name>.<fmt>``; returns the paths written."""
    if fmt not in ("png", "svg"):
        raise ConfigError(f"figure format must be png or svg, got {fmt!r}")
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("pareto", _pareto), ("hypervolume", _hypervolume), ("breakdown", _breakdown),
                       ("roofline", _roofline), ("sensitivity", _sensitivity)):
        fig = draw(plt, data)
        if fig is None:
            continue
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _pareto(plt, data: ReportData):
    metrics = [o.metric for o in data.objectives]
    if len(metrics) < 2 or not data.records:
        return None
    x_m, y_m = metrics[:2]
    front = set(data.front_keys)
    rows = [r for r in data.records if x_m in r["objectives"] and y_m in r["objectives"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    rest = [r for r in rows if r["key"] not in front]
    best = sorted((r for r in rows if r["key"] in front), key=lambda r: r["objectives"][x_m])
    ax.scatter([r["objectives"][x_m] for r in rest], [r["objectives"][y_m] for r in rest], s=12, c="#9aa5b1",
               label="other points")
    ax.plot([r["objectives"][x_m] for r in best], [r["objectives"][y_m] for r in best], "o-", c="#d62728",
            label="Pareto front")
    ax.set(xscale="log", yscale="log", xlabel=metric_label(x_m), ylabel=metric_label(y_m), title="Design points")
    ax.legend()
    return fig


def _hypervolume(plt, data: ReportData):
    if not data.hypervolume:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(np.arange(1, len(data.hypervolume) + 1), data.hypervolume)
    ax.set(xlabel="points evaluated", ylabel="hypervolume", title="Hypervolume of the feasible front")
    return fig


def _breakdown(plt, data: ReportData):
    if not data.chosen:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    width = 0.8 / len(data.chosen)
    for i, record in enumerate(data.chosen):
        rows = layer_table(record)
        x = np.arange(len(rows)) + i * width
        top.bar(x, [r["latency_s"] for r in rows], width, label=point_label(record))
        bottom.bar(x, [r["energy_pj"] for r in rows], width)
        bottom.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [r["name"] for r in rows], rotation=90, fontsize=6)
    top.set(ylabel=metric_label("latency_s"), title="Per-layer breakdown of chosen Pareto points")
    bottom.set(ylabel=metric_label("energy_pj"))
    top.legend(fontsize=6)
    return fig


def _roofline(plt, data: ReportData):
    if not data.chosen:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for record in data.chosen:
        xs, ys, peak, bw = roofline_points(record)
        line = ax.scatter(xs, ys, s=12, label=point_label(record))
        if peak and bw and xs:
            knee = peak / bw
            lo, hi = min(xs + [knee]) / 2, max(xs + [knee]) * 2
            ax.plot([lo, knee, hi], [lo * bw, peak, peak], ":", color=line.get_facecolor()[0])
    ax.set(xscale="log", yscale="log", xlabel="MACs per DRAM byte", ylabel="MACs per second", title="Roofline")
    ax.legend(fontsize=6)
    return fig


def _sensitivity(plt, data: ReportData):
    if not data.sensitivity:
        return None
    params = list(data.sensitivity)
    fig, ax = plt.subplots(figsize=(max(6.4, len(params) * 1.2), 4))
    width = 0.8 / len(data.objectives)
    for i, objective in enumerate(data.objectives):
        ax.bar(np.arange(len(params)) + i * width, [data.sensitivity[p].get(objective.metric, 0.0) for p in params],
               width, label=objective.metric)
    ax.set_xticks(np.arange(len(params)) + 0.4 - width / 2, params, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="(max - min) / mean", title="Parameter sensitivity")
    ax.legend()
    return fig
