"""Trends over a history of runs (e.g. the last 30 nightly runs): each metric over time with the
median of the runs before it and the regression threshold drawn (a drop in throughput, or a rise
in latency, beyond `threshold` relative to that median). Takes RunRecords, from the history
store or read from run directories, so either can feed it."""
from __future__ import annotations

import statistics

import plotly.graph_objects as go

from harness.ops.report.charts import LAYOUT
from harness.ops.report.summary import BY_KEY, Metric, value
from harness.ops.run_record import RunRecord

TREND_METRICS = ("tokens_per_s", "ttft_p99_ms", "tpot_p99_ms")


def baseline(records: list[RunRecord], key: str, window: int) -> list[float | None]:
    """For each run, the median of the `window` runs before it that have the metric (None for the first)."""
    out, seen = [], []
    for record in records:
        out.append(statistics.median(seen[-window:]) if seen else None)
        v = value(record, key)
        if v is not None:
            seen.append(v)
    return out


def regressions(records: list[RunRecord], metric: Metric, threshold: float, window: int) -> list[bool]:
    flags = []
    for record, base in zip(records, baseline(records, metric.key, window)):
        v = value(record, metric.key)
        if v is None or base is None:
            flags.append(False)
        elif metric.higher_is_better:
            flags.append(v < base * (1 - threshold))
        else:
            flags.append(v > base * (1 + threshold))
    return flags


def trend_figure(records: list[RunRecord], key: str, threshold: float, window: int = 10) -> go.Figure | None:
    records = sorted(records, key=lambda r: r.started_at)
    metric = BY_KEY[key]
    points = [(r, value(r, key)) for r in records]
    if sum(v is not None for _, v in points) < 2:
        return None
    x = [r.started_at for r in records]
    base = baseline(records, key, window)
    limit = [None if b is None else b * (1 - threshold if metric.higher_is_better else 1 + threshold) for b in base]
    flags = regressions(records, metric, threshold, window)
    fig = go.Figure()
    fig.add_scatter(x=x, y=[v for _, v in points], mode="lines+markers", name=metric.label,
                    text=[f"{r.run_id}<br>{r.verdict}" for r in records], hovertemplate="%{y:,.2f}<br>%{text}")
    fig.add_scatter(x=x, y=base, mode="lines", name=f"median of the last {window}", line=dict(dash="dot", color="#777"))
    fig.add_scatter(x=x, y=limit, mode="lines", name=f"regression threshold ({threshold:.0%})",
                    line=dict(color="red", dash="dash"))
    bad = [(xi, v) for xi, (_, v), f in zip(x, points, flags) if f]
    if bad:
        fig.add_scatter(x=[b[0] for b in bad], y=[b[1] for b in bad], mode="markers", name="regression",
                        marker=dict(color="red", size=12, symbol="x"))
    fig.update_layout(title=f"Trend: {metric.label}", xaxis_title="run start", yaxis_title=metric.label, **LAYOUT)
    return fig


def trend_figures(records: list[RunRecord], threshold: float, window: int = 10) -> list[go.Figure]:
    figures = [trend_figure(records, key, threshold, window) for key in TREND_METRICS]
    return [f for f in figures if f is not None]
