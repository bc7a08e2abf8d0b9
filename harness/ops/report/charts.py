"""The report's charts, as plotly figures (no hand-drawn charts). Each returns a Figure, or None
when the run holds no data for it; the page says why."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from harness.ops.report.data import RunData, throughput_series

SMOOTH_S = 5  # rolling mean over 5 one-second bins: completions come in bursts (batches)
LAYOUT = dict(template="plotly_white", height=340, margin=dict(l=60, r=20, t=50, b=50),
              legend=dict(orientation="h", y=-0.25))


def _smooth(values: np.ndarray, width: int = SMOOTH_S) -> np.ndarray:
    if len(values) < width:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="same")


def throughput(runs: list[RunData]) -> go.Figure | None:
    fig = go.Figure()
    for run in runs:
        series = throughput_series(run)
        if series is None:
            continue
        t, tps = series
        if len(runs) == 1:
            fig.add_bar(x=t, y=tps, name="per second", marker_color="rgba(31,119,180,0.35)")
        fig.add_scatter(x=t, y=_smooth(tps), mode="lines", name=f"{run.name} ({SMOOTH_S} s mean)"
                        if len(runs) > 1 else f"{SMOOTH_S} s mean")
        if len(runs) == 1 and run.record.metrics.tokens_per_s:
            fig.add_hline(y=run.record.metrics.tokens_per_s, line_dash="dot", line_color="green",
                          annotation_text=f"LoadGen: {run.record.metrics.tokens_per_s:,.1f} tok/s")
    if not fig.data:
        return None
    fig.update_layout(title="Output tokens per second over time", xaxis_title="seconds since the first query",
                      yaxis_title="tokens/s", **LAYOUT)
    return fig


def latency_distribution(run: RunData, metric: str) -> go.Figure | None:
    """TTFT or TPOT histogram with the p99 and the scenario's p99 limit drawn."""
    if run.latencies is None:
        return None
    values = run.latencies.ttft_ms if metric == "ttft" else run.latencies.tpot_ms
    if not len(values):
        return None
    limit = run.ttft_limit_ms if metric == "ttft" else run.tpot_limit_ms
    name = metric.upper()
    fig = go.Figure(go.Histogram(x=values, nbinsx=min(60, max(10, len(values) // 4)), name=name,
                                 marker_color="#1f77b4"))
    p99 = float(np.percentile(values, 99))
    fig.add_vline(x=p99, line_dash="dash", line_color="#444", annotation_text=f"p99 {p99:,.1f} ms",
                  annotation_position="top left")
    if limit is not None:
        fig.add_vline(x=limit, line_color="red", line_width=2, annotation_text=f"limit {limit:,.0f} ms",
                      annotation_position="top right")
    fig.update_layout(title=f"{name} distribution ({len(values):,} samples, coordinator-side)",
                      xaxis_title=f"{name} (ms)", yaxis_title="samples", **LAYOUT)
    return fig


def worker_split(run: RunData) -> go.Figure | None:
    workers = run.record.workers
    if not workers:
        return None
    names = [w.name or w.address for w in workers]
    fig = go.Figure()
    fig.add_bar(x=names, y=[w.samples for w in workers], name="samples", offsetgroup=0)
    fig.add_bar(x=names, y=[w.tokens_per_s or 0 for w in workers], name="output tokens/s", yaxis="y2",
                offsetgroup=1)
    fig.update_layout(title="Per-worker split", yaxis=dict(title="samples"),
                      yaxis2=dict(title="tokens/s", overlaying="y", side="right"), barmode="group", **LAYOUT)
    return fig


def compare_bars(runs: list[RunData], metric: str, title: str) -> go.Figure | None:
    values = [getattr(run.record.metrics, metric) for run in runs]
    if all(v is None for v in values):
        return None
    fig = go.Figure(go.Bar(x=[run.name for run in runs], y=[v or 0 for v in values],
                           text=[("-" if v is None else f"{v:,.1f}") for v in values], textposition="auto"))
    fig.update_layout(title=title, **LAYOUT)
    return fig
