"""The HTML report: one file with everything inline (plotly.js once in <head>, styles, charts), so it
renders with the network off and survives being mailed or archived."""
from __future__ import annotations

import datetime as dt
import html

import plotly.io as pio
from plotly.offline import get_plotlyjs

from harness.ops.report import charts
from harness.ops.report.data import RunData
from harness.ops.report.summary import accuracy_text, delta_text, fmt, shown_metrics, value, verdict_line
from harness.ops.report.trend import trend_figures
from harness.ops.run_record import RunRecord

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.verdict { padding: 0.6em 1em; border-radius: 6px; margin: 0.6em 0; }
.ok { background: #e6f4ea; border: 1px solid #1b7f3b; } .warn { background: #fff4e0; border: 1px solid #b26a00; } .bad { background: #fdecea; border: 1px solid #b00020; }
.better { color: #1b7f3b; } .worse { color: #b00020; font-weight: bold; } .note { color: #666; }
.chart { margin: 0.4em 0 1em 0; }
"""


def _e(text) -> str:
    return html.escape(str(text))


class Page:
    def __init__(self):
        self.parts: list[str] = []
        self.charts = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def chart(self, fig, missing: str) -> None:
        if fig is None:
            self.add(f'<p class="note">{_e(missing)}</p>')
            return
        self.charts += 1
        self.add('<div class="chart">' + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                                      div_id=f"chart-{self.charts}",
                                                      config={"displaylogo": False, "responsive": True}) + "</div>")

    def table(self, header: list[str], rows: list[list], left: int = 1, css_id: str = "") -> None:
        head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header))
        head = f"<tr>{head}</tr>" if header else ""
        body = "".join("<tr>" + "".join(_cell(c, i < left) for i, c in enumerate(row)) + "</tr>" for row in rows)
        self.add(f'<table{f" id={chr(34)}{css_id}{chr(34)}" if css_id else ""}>{head}{body}</table>')

    def html(self, title: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{_e(title)}</title><style>{STYLE}</style>"
                f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
                + "\n".join(self.parts) + "</body></html>\n")


def _cell(content, left: bool) -> str:
    if isinstance(content, tuple):  # (text, css class)
        text, css = content
        return f'<td class="{"l " if left else ""}{css}">{_e(text)}</td>'
    return f'<td class="{"l" if left else ""}">{_e(content)}</td>'


def _facts(page: Page, record: RunRecord) -> None:
    page.table([], [
        ["scenario / mode", f"{record.scenario} {record.mode} ({record.model_name})"],
        ["started", record.started_at.isoformat(timespec="seconds")],
        ["host", record.host or "-"], ["git revision", record.git_revision or "-"],
        ["system", record.system or "-"], ["trigger", record.trigger + (f" ({record.schedule})" if record.schedule else "")],
        ["smoke run", "yes" if record.smoke else "no"], ["run directory", record.run_dir]], left=2, css_id="facts")


def _verdict(page: Page, record: RunRecord) -> None:
    css = "bad" if not record.accepted else "ok" if record.verdict == "VALID" else "warn"  # warn: --allow-invalid
    reasons = "".join(f"<li>{_e(r)}</li>" for r in dict.fromkeys(record.reasons))
    page.add(f'<div class="verdict {css}" data-verdict="{_e(record.verdict)}"><b>Verdict: {_e(verdict_line(record))}</b>'
             + (f"<ul>{reasons}</ul>" if reasons else "<div>no reason given against it</div>") + "</div>")
    if accuracy_text(record):
        page.add(f"<p>Accuracy: {_e(accuracy_text(record))}</p>")
    for alert in record.alerts:
        page.add(f'<p class="worse">Alert: {_e(alert)}</p>')


def _workers(page: Page, run: RunData) -> None:
    rows = [[w.name or w.address, w.address, w.samples, f"{w.output_tokens:,}", fmt(w.tokens_per_s), w.failures,
             w.reissued, w.state or "-", w.fingerprint.get("node.gpu") or w.engine or "-"] for w in run.record.workers]
    if rows:
        page.table(["worker", "address", "samples", "tokens", "tokens/s", "failures", "re-issued", "state", "device"],
                   rows, left=2, css_id="workers")


def _one_run(page: Page, run: RunData, heading: str) -> None:
    record = run.record
    page.add(f"<h2>{_e(heading)}</h2>")
    _verdict(page, record)
    _facts(page, record)
    metrics = shown_metrics([record])
    page.table(["metric", "value"], [[m.label, fmt(value(record, m.key), 2)] for m in metrics], css_id="metrics")
    page.chart(charts.throughput([run]), "Throughput over time: this run has no latencies.csv or timeline.jsonl "
                                         "(made before the harness recorded them).")
    for metric in ("ttft", "tpot"):
        page.chart(charts.latency_distribution(run, metric),
                   f"{metric.upper()} distribution: not measured in {record.scenario}" if record.scenario == "Offline"
                   else f"{metric.upper()} distribution: no per-sample times in this run.")
    page.add("<h3>Per-worker split</h3>")
    _workers(page, run)
    page.chart(charts.worker_split(run), "No per-worker accounting in the manifest.")


def _comparison(page: Page, runs: list[RunData]) -> None:
    records = [r.record for r in runs]
    page.add("<h2>Side by side</h2>"
             f'<p class="note">Deltas against the first run, {_e(records[0].run_id)}.</p>')
    header = ["metric"] + [r.run_id for r in records]
    rows = [["verdict"] + [verdict_line(r) for r in records],
            ["scenario"] + [f"{r.scenario} {r.mode}" for r in records],
            ["workers"] + [str(len(r.workers)) for r in records]]
    for metric in shown_metrics(records):
        base = value(records[0], metric.key)
        row = [metric.label, fmt(base, 2)]
        for record in records[1:]:
            text, css = delta_text(metric, base, value(record, metric.key))
            row.append((f"{fmt(value(record, metric.key), 2)} ({text})" if text else fmt(value(record, metric.key), 2), css))
        rows.append(row)
    page.table(header, rows, css_id="comparison")
    page.chart(charts.throughput(runs), "No run has a time series.")
    page.chart(charts.compare_bars(runs, "tokens_per_s", "Output tokens/s (LoadGen)"), "No throughput reported.")
    page.chart(charts.compare_bars(runs, "ttft_p99_ms", "TTFT p99 (ms)"), "")


def render(runs: list[RunData], trend: list[RunRecord] | None = None, threshold: float = 0.05,
           window: int = 10) -> str:
    page = Page()
    names = ", ".join(run.name for run in runs) if runs else "history"
    page.add(f"<h1>MLPerf run report: {_e(names)}</h1>"
             f'<p class="note">Generated {dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")} by '
             "python -m harness report. LoadGen's summary is the number of record; TTFT/TPOT distributions are "
             "measured at the coordinator.</p>")
    if len(runs) > 1:
        _comparison(page, runs)
    for i, run in enumerate(runs):
        _one_run(page, run, run.name if len(runs) == 1 else f"Run {i + 1}: {run.name}")
    if trend:
        page.add(f"<h2>Trend over {len(trend)} runs</h2>")
        figures = trend_figures(trend, threshold, window)
        if not figures:
            page.add('<p class="note">Fewer than two runs with these metrics: no trend to draw.</p>')
        for fig in figures:
            page.chart(fig, "")
    return page.html(f"MLPerf run report: {names}")
