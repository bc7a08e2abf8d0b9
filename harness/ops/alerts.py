"""Regression alerts: a run against the median of the runs before it, and its workers against each other.

What is compared is data (`HIGHER_IS_BETTER`, `LOWER_IS_BETTER`, the benchmark's accuracy targets):
- against history (same benchmark, scenario, mode and system; earlier accepted runs, not audits): a
  throughput drop, a p99 latency rise, or an accuracy drop beyond a threshold relative to the median
  of the last N runs, once there are at least `min_runs` of them;
- the run itself: INVALID, failed or interrupted;
- within the run: a worker whose tokens/s falls below the median of all the run's workers beyond a
  threshold, with its node's and its peers' fingerprints so the difference can be explained.
Delivery: a JSON POST (or Slack's {"text": ...}) to a webhook; a timeout or refusal is one line.
"""
from __future__ import annotations

import json
import statistics
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from harness.benchmarks.definitions import UnknownBenchmark, by_model_name
from harness.benchmarks.scenarios import SCENARIOS
from harness.ops.run_record import RunRecord, WorkerRecord

HIGHER_IS_BETTER = ("tokens_per_s", "samples_per_s")
LOWER_IS_BETTER = ("ttft_p99_ms", "tpot_p99_ms")
LATENCY_WITHOUT_TTFT = "latency_p99_ms"  # compared where a run has no first-token figures (not Offline)
GOOD_VERDICTS = ("VALID",)
FINGERPRINT_SHOWN = ("node.hostname", "node.gpu", "node.driver", "node.cuda", "node.gpu_sm_clock_mhz",
                     "node.gpu_power_limit_w", "node.cpu", "node.nvml", "engine", "identity.engine_args_hash")


@dataclass
class AlertPolicy:
    window: int = 5
    min_runs: int = 3
    threshold_pct: float = 10.0
    accuracy_threshold_pct: float = 1.0
    divergence_pct: float = 25.0
    divergence_min_samples: int = 100

    @classmethod
    def from_args(cls, args) -> "AlertPolicy":
        return cls(window=args.alert_window, min_runs=args.alert_min_runs, threshold_pct=args.alert_threshold,
                   accuracy_threshold_pct=args.alert_accuracy_threshold, divergence_pct=args.worker_divergence,
                   divergence_min_samples=args.divergence_min_samples)


@dataclass
class Alert:
    kind: str                 # "regression", "verdict", "worker-divergence"
    message: str
    metric: str | None = None
    value: float | None = None
    baseline: float | None = None
    change_pct: float | None = None
    details: dict = field(default_factory=dict)


def comparable(record: RunRecord, earlier: RunRecord) -> bool:
    return (earlier.verdict in GOOD_VERDICTS and earlier.accepted and not earlier.config.get("audit")
            and earlier.key == record.key and earlier.mode == record.mode and earlier.run_dir != record.run_dir)


def _change_pct(value: float, baseline: float) -> float:
    return (value - baseline) / baseline * 100.0


def _accuracy_metrics(record: RunRecord) -> tuple[str, ...]:
    try:
        targets = by_model_name(record.model_name or "").accuracy_targets
    except UnknownBenchmark:
        return ()
    return tuple(t.metric for t in targets if t.high is None)  # scores with a floor; gen_len has a band


def _metric_values(records: list[RunRecord], name: str, accuracy: bool) -> list[float]:
    values = [(r.metrics.accuracy.get(name) if accuracy else getattr(r.metrics, name)) for r in records]
    return [v for v in values if v is not None]


def against_history(record: RunRecord, earlier: list[RunRecord], policy: AlertPolicy) -> list[Alert]:
    base = [r for r in earlier if comparable(record, r)][-policy.window:]
    if len(base) < policy.min_runs or record.verdict not in GOOD_VERDICTS:
        return []
    checks = [(m, True, False, policy.threshold_pct) for m in HIGHER_IS_BETTER]
    checks += [(m, False, False, policy.threshold_pct) for m in LOWER_IS_BETTER]
    if record.scenario in SCENARIOS and not SCENARIOS[record.scenario].one_query and record.metrics.ttft_p99_ms is None:
        checks.append((LATENCY_WITHOUT_TTFT, False, False, policy.threshold_pct))
    checks += [(m, True, True, policy.accuracy_threshold_pct) for m in _accuracy_metrics(record)]
    alerts = []
    for name, higher_better, accuracy, threshold in checks:
        value = record.metrics.accuracy.get(name) if accuracy else getattr(record.metrics, name)
        history = _metric_values(base, name, accuracy)
        if value is None or len(history) < policy.min_runs:
            continue
        median = statistics.median(history)
        if not median:
            continue
        change = _change_pct(value, median)
        worse = -change if higher_better else change
        if worse > threshold:
            word = "dropped" if higher_better else "rose"
            alerts.append(Alert("regression", f"{name} {word} {abs(change):.1f}% to {value:g} (median of the last "
                                              f"{len(history)} runs: {median:g}; threshold {threshold:g}%)",
                                metric=name, value=value, baseline=median, change_pct=round(change, 2),
                                details={"compared_with": [r.run_id for r in base],
                                         "changed": _what_changed(record, base[-1])}))
    return alerts


def _what_changed(record: RunRecord, last: RunRecord) -> dict:
    """What differs from the last good run: code, engine args, model weights (the likely causes)."""
    changed = {}
    if record.git_revision != last.git_revision:
        changed["git_revision"] = [last.git_revision, record.git_revision]
    for key in ("identity.engine_args_hash", "identity.model_fingerprint"):
        now = sorted({w.fingerprint.get(key) or "" for w in record.workers})
        before = sorted({w.fingerprint.get(key) or "" for w in last.workers})
        if now != before:
            changed[key] = [before, now]
    return changed


def verdict_alerts(record: RunRecord) -> list[Alert]:
    if record.verdict in GOOD_VERDICTS and record.accepted:
        return []
    reasons = "; ".join(dict.fromkeys(record.reasons[:3])) or (
        f"{record.num_errors} LoadGen error(s)" if record.num_errors else "no reason recorded")
    if record.verdict in GOOD_VERDICTS:
        return [Alert("verdict", f"run not accepted: {reasons}")]
    return [Alert("verdict", f"run is {record.verdict}: {reasons}")]


def fingerprint_summary(worker: WorkerRecord) -> dict[str, str]:
    shown = {key: worker.fingerprint[key] for key in FINGERPRINT_SHOWN if key in worker.fingerprint}
    if worker.engine:
        shown["engine"] = worker.engine
    return shown


def worker_divergence(record: RunRecord, policy: AlertPolicy) -> list[Alert]:
    workers = [w for w in record.workers if w.tokens_per_s is not None]
    if len(workers) < 2 or sum(w.samples for w in record.workers) < policy.divergence_min_samples:
        return []
    alerts = []
    median = statistics.median(w.tokens_per_s for w in workers)  # the slow one stands out; the rest set the pace
    for worker in workers:
        if not median:
            break
        change = _change_pct(worker.tokens_per_s, median)
        if -change > policy.divergence_pct:
            alerts.append(Alert(
                "worker-divergence",
                f"worker {worker.name + ' at ' if worker.name else ''}{worker.address} ran at {worker.tokens_per_s:g} tokens/s, {-change:.0f}% "
                f"below the workers' median {median:g} (threshold {policy.divergence_pct:g}%); node: "
                f"{_short(fingerprint_summary(worker))}",
                metric="worker_tokens_per_s", value=worker.tokens_per_s, baseline=median,
                change_pct=round(change, 2),
                details={"worker": worker.address, "fingerprint": fingerprint_summary(worker),
                         "peers": {w.address: fingerprint_summary(w) for w in workers if w is not worker}}))
    return alerts


def _short(fingerprint: dict[str, str]) -> str:
    return ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in fingerprint.items() if k != "identity.engine_args_hash")


def evaluate(record: RunRecord, earlier: list[RunRecord], policy: AlertPolicy) -> list[Alert]:
    return verdict_alerts(record) + against_history(record, earlier, policy) + worker_divergence(record, policy)


def payload(record: RunRecord, alerts: list[Alert], fmt: str = "json") -> dict:
    title = (f"MLPerf {record.benchmark} {record.scenario} {record.mode} on {record.system}: {len(alerts)} alert(s) "
             f"for run {record.run_id} ({record.verdict}, {record.trigger})")
    if fmt == "slack":
        return {"text": "\n".join([title] + [f"• {a.message}" for a in alerts])}
    return {"title": title, "run_id": record.run_id, "run_dir": record.run_dir, "benchmark": record.benchmark,
            "scenario": record.scenario, "mode": record.mode, "system": record.system, "verdict": record.verdict,
            "trigger": record.trigger, "schedule": record.schedule, "git_revision": record.git_revision,
            "started_at": record.started_at.isoformat(), "metrics": record.metrics.model_dump(),
            "alerts": [asdict(a) for a in alerts]}


class DeliveryError(RuntimeError):
    pass


def post_webhook(url: str, body: dict, timeout_s: float) -> None:
    """One POST; any failure is one DeliveryError line (the URL is not in it: it may be a secret)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"the webhook answered HTTP {exc.code} {exc.reason}") from None
    except TimeoutError:
        raise DeliveryError(f"the webhook did not answer within {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise DeliveryError(f"the webhook did not answer within {timeout_s:g} s") from None
        raise DeliveryError(f"the webhook could not be reached: {reason}") from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"the webhook could not be reached: {exc}") from None
