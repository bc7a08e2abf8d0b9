"""The markdown summary of a report, for terminals and chat: the same numbers as the HTML page."""
from __future__ import annotations

from harness.ops.report.data import RunData
from harness.ops.report.summary import BY_KEY, accuracy_text, delta_text, fmt, shown_metrics, value, verdict_line
from harness.ops.report.trend import TREND_METRICS, regressions
from harness.ops.run_record import RunRecord


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _run(run: RunData) -> list[str]:
    r = run.record
    lines = [f"## {r.run_id}", "", f"{r.scenario} {r.mode} ({r.model_name}), started "
             f"{r.started_at.isoformat(timespec='seconds')}, system {r.system or '-'}, trigger {r.trigger}", "",
             f"**Verdict: {verdict_line(r)}**"]
    lines += [f"- {reason}" for reason in dict.fromkeys(r.reasons)]
    if accuracy_text(r):
        lines += ["", f"Accuracy: {accuracy_text(r)}"]
    lines += [f"- ALERT: {alert}" for alert in r.alerts]
    lines += [""] + _table(["metric", "value"], [[m.label, fmt(value(r, m.key), 2)] for m in shown_metrics([r])])
    if r.workers:
        lines += [""] + _table(["worker", "samples", "tokens", "tokens/s", "failures", "re-issued"],
                               [[w.name or w.address, w.samples, f"{w.output_tokens:,}", fmt(w.tokens_per_s),
                                 w.failures, w.reissued] for w in r.workers])
    return lines + [""]


def render_markdown(runs: list[RunData], trend: list[RunRecord] | None = None, threshold: float = 0.05,
                    window: int = 10) -> str:
    lines = ["# MLPerf run report", ""]
    if len(runs) > 1:
        records = [run.record for run in runs]
        rows = [["verdict"] + [verdict_line(r) for r in records]]
        for metric in shown_metrics(records):
            base = value(records[0], metric.key)
            rows.append([metric.label, fmt(base, 2)] + [
                f"{fmt(value(r, metric.key), 2)} {delta_text(metric, base, value(r, metric.key))[0]}".strip()
                for r in records[1:]])
        lines += ["## Side by side (deltas against the first run)", ""]
        lines += _table(["metric"] + [r.run_id for r in records], rows) + [""]
    for run in runs:
        lines += _run(run)
    if trend:
        ordered = sorted(trend, key=lambda r: r.started_at)
        lines += [f"## Trend over {len(ordered)} runs (threshold {threshold:.0%} against the median of the "
                  f"last {window})", ""]
        for key in TREND_METRICS:
            flags = regressions(ordered, BY_KEY[key], threshold, window)
            bad = [r.run_id for r, f in zip(ordered, flags) if f]
            if any(value(r, key) is not None for r in ordered):
                lines.append(f"- {BY_KEY[key].label}: " + (f"REGRESSION in {', '.join(bad)}" if bad else "no regression"))
        lines.append("")
    return "\n".join(lines)
