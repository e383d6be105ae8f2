"""The autocompress HTML page: trials, the fine-tuned Pareto set and the uniform baselines on one plot."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hwsim.dse.policy import LayerPolicy


def figure(result: Any) -> Any:
    """Latency (ms) against accuracy: every trial (proxy), the Pareto set and baselines (final accuracy)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[t["latency_s"] * 1e3 for t in result.trials], y=[t["proxy_accuracy"] for t in result.trials],
                             mode="markers", name="trials (proxy accuracy)", marker=dict(color="#9aa5b1", size=6),
                             hovertext=[f"trial {t['trial']}: {t['energy_pj'] / 1e6:.3g} µJ" for t in result.trials]))
    fig.add_trace(go.Scatter(x=[p["latency_s"] * 1e3 for p in result.pareto], y=[p["accuracy"] for p in result.pareto],
                             mode="lines+markers", name="Pareto set (fine-tuned)", marker=dict(color="#d62728", size=10),
                             hovertext=[f"{p['energy_pj'] / 1e6:.3g} µJ, {p['power_mw']:.3g} mW" for p in result.pareto]))
    fig.add_trace(go.Scatter(x=[b["latency_s"] * 1e3 for b in result.baselines.values()],
                             y=[b["accuracy"] for b in result.baselines.values()], mode="markers+text",
                             name="baselines", text=list(result.baselines), textposition="top center",
                             marker=dict(color="#1f77b4", size=10, symbol="diamond")))
    fig.update_layout(title=f"{result.model} on {result.arch}: policies found by autocompress",
                      xaxis_title="latency (ms)", yaxis_title="accuracy", yaxis=dict(range=[0, 1.02]),
                      template="plotly_white")
    return fig


def _policy_table(policy: dict[str, dict[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{html.escape(path)}</td><td>{html.escape(LayerPolicy(**lp).describe())}</td></tr>"
                   for path, lp in policy.items())
    return f"<table><tr><th>layer</th><th>policy</th></tr>{rows}</table>"


def write_html(result: Any, path: str | Path) -> Path:
    """A self-contained page (plotly inlined) with the plot, the baselines and each Pareto point's policy."""
    path = Path(path)
    plot = figure(result).to_html(full_html=False, include_plotlyjs=True)
    base = "".join(f"<tr><td>{html.escape(n)}</td><td>{b['accuracy']:.4f}</td><td>{b['latency_s'] * 1e3:.4g}</td>"
                   f"<td>{b['energy_pj'] / 1e6:.4g}</td><td>{b['power_mw']:.4g}</td></tr>"
                   for n, b in result.baselines.items())
    points = "".join(f"<h3>Pareto point {i}: accuracy {p['accuracy']:.4f}, {p['latency_s'] * 1e3:.4g} ms, "
                     f"{p['energy_pj'] / 1e6:.4g} µJ</h3>{_policy_table(p['policy'])}"
                     for i, p in enumerate(result.pareto))
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>hwsim autocompress</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>{html.escape(result.model)} on {html.escape(result.arch)}</h1>"
        f"<p>Accuracy: {html.escape(result.accuracy_kind)}.</p>{plot}"
        "<h2>Baselines</h2><table><tr><th>baseline</th><th>accuracy</th><th>latency (ms)</th><th>energy (µJ)</th>"
        f"<th>power (mW)</th></tr>{base}</table><h2>Pareto set</h2>{points}</body></html>")
    return path
