"""RunRecord from a run directory: figures, workers and fingerprints, verdicts, one-line errors."""
from __future__ import annotations

import json

import pytest

from harness.ops.run_record import RunRecordError, read_run_record, system_key
from harness.run.manifest import redacted_argv
from helpers import write_run_dir


def test_record_reads_metrics_workers_and_fingerprints(tmp_path):
    run = write_run_dir(tmp_path, "r1", scenario="Server", tokens_per_s=0, worker_tokens=(300, 700), results={
        "result_completed_tokens_per_second": 812.5, "result_completed_samples_per_sec": 4.5,
        "result_first_token_99.00_percentile_latency_ns": 92_000_000,
        "result_time_per_output_token_50.00_percentile_ns": 7_000_000}, trigger="scheduled", schedule="nightly")
    record = read_run_record(run)
    assert (record.benchmark, record.scenario, record.mode, record.verdict) == ("llama3.1-8b", "Server",
                                                                                "PerformanceOnly", "VALID")
    assert record.metrics.tokens_per_s == 812.5 and record.metrics.samples_per_s == 4.5
    assert record.metrics.ttft_p99_ms == 92.0 and record.metrics.tpot_p50_ms == 7.0
    assert record.metrics.ttft_p50_ms is None  # not in the log: not invented
    assert [w.output_tokens for w in record.workers] == [300, 700]
    assert [w.tokens_per_s for w in record.workers] == [300.0, 700.0]
    assert record.workers[0].fingerprint["node.cpu"] == "Test CPU"
    assert record.workers[0].fingerprint["version.sim"] == "1"
    assert (record.trigger, record.schedule, record.git_revision) == ("scheduled", "nightly", "abc123")
    assert record.system == system_key(record.workers) and record.system.startswith("2x-")


def test_failed_and_interrupted_runs_have_their_own_verdicts(tmp_path):
    failed = write_run_dir(tmp_path, "f", status="failed", failure="no worker left")
    stopped = write_run_dir(tmp_path, "i", status="interrupted", failure="interrupted by SIGINT")
    assert read_run_record(failed).verdict == "FAILED"
    assert read_run_record(failed).reasons[0] == "no worker left"
    assert read_run_record(stopped).verdict == "INTERRUPTED"


def test_accuracy_scores_and_system_name(tmp_path):
    run = write_run_dir(tmp_path, "a", mode="AccuracyOnly", validity="MISSING", accepted=True,
                        accuracy={"rouge1": 43.4, "gen_num": 40}, accuracy_pass=False, system_name="lab-a30")
    record = read_run_record(run)
    assert record.verdict == "VALID" and record.metrics.accuracy == {"rouge1": 43.4, "gen_num": 40.0}
    assert record.metrics.accuracy_pass is False and record.system == "lab-a30"


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "absent", "not a directory"),
    (lambda p: p, "no manifest.json"),
    (lambda p: (p / "manifest.json").write_text('{"a": 1,\n oops}') and p, "line 2: not JSON"),
    (lambda p: (p / "manifest.json").write_text("[1, 2]") and p, "not a JSON object"),
])
def test_broken_run_directories_are_one_line(tmp_path, make, message):
    with pytest.raises(RunRecordError) as info:
        read_run_record(make(tmp_path))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_secret_flag_values_never_reach_the_manifest():
    argv = ["harness", "--store", "postgresql://bench:s3cret@db/history", "--alert-webhook=https://hooks.x/T/B/tok",
            "--output", "runs"]
    shown = redacted_argv(argv)
    assert "s3cret" not in json.dumps(shown) and "tok" not in json.dumps(shown)
    assert shown[2] == "postgresql://bench:<redacted>@db/history" and shown[3] == "--alert-webhook=<redacted>"
    assert shown[4:] == ["--output", "runs"]


def test_a_wrong_trigger_from_a_scheduler_is_refused_before_the_run(monkeypatch, capsys, tmp_path):
    from harness.ops import recorded_run
    monkeypatch.setenv("MLPERF_HARNESS_TRIGGER", "cron")
    assert recorded_run.main(["--output", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == ("error: MLPERF_HARNESS_TRIGGER='cron': must be one of manual, scheduled, "
                                       "campaign\n")
    assert not (tmp_path / "runs").exists()
