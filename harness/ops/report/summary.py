"""The numbers a report shows, shared by the HTML page and the markdown summary: the headline
metrics of a run, and the side-by-side comparison of several with deltas against the first."""
from __future__ import annotations

from dataclasses import dataclass

from harness.ops.run_record import RunRecord


@dataclass(frozen=True)
class Metric:
    key: str            # a field of RunRecord.metrics
    label: str
    higher_is_better: bool


METRICS = (
    Metric("tokens_per_s", "output tokens/s", True),
    Metric("samples_per_s", "samples/s", True),
    Metric("ttft_p50_ms", "TTFT p50 (ms)", False),
    Metric("ttft_p99_ms", "TTFT p99 (ms)", False),
    Metric("tpot_p50_ms", "TPOT p50 (ms)", False),
    Metric("tpot_p99_ms", "TPOT p99 (ms)", False),
    Metric("latency_p99_ms", "latency p99 (ms)", False),
)
BY_KEY = {m.key: m for m in METRICS}


def value(record: RunRecord, key: str) -> float | None:
    return getattr(record.metrics, key)


def fmt(number: float | None, digits: int = 1) -> str:
    return "-" if number is None else f"{number:,.{digits}f}"


def delta_pct(base: float | None, other: float | None) -> float | None:
    if base in (None, 0) or other is None:
        return None
    return 100.0 * (other - base) / base


def delta_text(metric: Metric, base: float | None, other: float | None) -> tuple[str, str]:
    """('+3.2 %', 'better'|'worse'|'same'|'') for a run against the first."""
    pct = delta_pct(base, other)
    if pct is None:
        return "", ""
    if abs(pct) < 0.05:
        return "±0.0 %", "same"
    better = (pct > 0) == metric.higher_is_better
    return f"{pct:+.1f} %", "better" if better else "worse"


def shown_metrics(records: list[RunRecord]) -> list[Metric]:
    """The metrics at least one of the runs has (Offline runs have no TTFT/TPOT)."""
    return [m for m in METRICS if any(value(r, m.key) is not None for r in records)]


def verdict_line(record: RunRecord) -> str:
    accepted = "accepted" if record.accepted else "NOT accepted"
    return f"{record.verdict}, {accepted}, {record.num_errors} error(s)"


def accuracy_text(record: RunRecord) -> str:
    acc = record.metrics.accuracy
    if not acc:
        return ""
    scores = ", ".join(f"{k} {v:,.4g}" for k, v in acc.items())
    passed = {True: " (PASS)", False: " (FAIL)", None: ""}[record.metrics.accuracy_pass]
    return scores + passed
