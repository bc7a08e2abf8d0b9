"""Alerts: regressions against the median of earlier comparable runs, verdicts, worker divergence."""
from __future__ import annotations

from harness.ops.alerts import AlertPolicy, against_history, evaluate, payload, worker_divergence
from harness.ops.run_record import read_run_record
from helpers import write_run_dir


def history(tmp_path, figures, **kw):
    return [read_run_record(write_run_dir(tmp_path, f"r{i}", tokens_per_s=t, started_at=f"2026-11-{10 + i}T19:00:00+00:00",
                                          **kw)) for i, t in enumerate(figures)]


def test_throughput_drop_beyond_threshold_against_the_median(tmp_path):
    *earlier, now = history(tmp_path, [1000, 1040, 980, 5, 1010, 850])  # one broken outlier: the median ignores it
    alerts = against_history(now, earlier, AlertPolicy(window=5, threshold_pct=10))
    assert {a.metric for a in alerts} == {"tokens_per_s", "samples_per_s"}
    tokens = next(a for a in alerts if a.metric == "tokens_per_s")
    assert tokens.baseline == 1000 and round(tokens.change_pct) == -15
    assert not against_history(now, earlier, AlertPolicy(window=5, threshold_pct=20))


def test_no_comparison_without_enough_comparable_runs(tmp_path):
    *earlier, now = history(tmp_path, [1000, 1000, 500])
    assert not against_history(now, earlier, AlertPolicy(min_runs=3))
    assert against_history(now, earlier, AlertPolicy(min_runs=2))
    other_scenario = history(tmp_path / "s", [1000, 1000, 1000], scenario="Server")
    assert not against_history(now, other_scenario, AlertPolicy(min_runs=1))


def test_latency_rise_and_accuracy_drop(tmp_path):
    runs = [read_run_record(write_run_dir(
        tmp_path, f"r{i}", scenario="Server", started_at=f"2026-11-1{i}T00:00:00+00:00",
        results={"result_first_token_99.00_percentile_latency_ns": ttft * 1e6},
        accuracy={"rouge1": rouge, "gen_len": 100})) for i, (ttft, rouge) in enumerate(
        [(100, 38.0), (110, 38.1), (105, 37.9), (130, 37.0)])]
    alerts = against_history(runs[-1], runs[:-1], AlertPolicy())
    assert {a.metric for a in alerts} == {"ttft_p99_ms", "rouge1"}  # gen_len has a band, not a floor


def test_invalid_run_alerts_and_divergent_worker_names_its_node(tmp_path):
    invalid = read_run_record(write_run_dir(tmp_path, "bad", validity="INVALID"))
    assert [a.kind for a in evaluate(invalid, [], AlertPolicy())] == ["verdict"]
    slow = read_run_record(write_run_dir(tmp_path, "slow", worker_tokens=(17000, 42000, 41000)))
    alerts = worker_divergence(slow, AlertPolicy(divergence_pct=25, divergence_min_samples=10))
    assert len(alerts) == 1 and "w0" in alerts[0].message and "Test CPU" in alerts[0].message
    assert alerts[0].details["fingerprint"]["node.nvml"] == "absent: test"
    assert not worker_divergence(slow, AlertPolicy(divergence_min_samples=10_000))  # too few samples to judge


def test_payloads(tmp_path):
    *earlier, now = history(tmp_path, [1000, 1000, 1000, 500])
    alerts = evaluate(now, earlier, AlertPolicy())
    body = payload(now, alerts)
    assert body["alerts"][0]["metric"] == "tokens_per_s" and body["metrics"]["tokens_per_s"] == 500
    slack = payload(now, alerts, "slack")
    assert set(slack) == {"text"} and "tokens_per_s dropped 50.0%" in slack["text"]
