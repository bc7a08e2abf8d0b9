"""An operated benchmark as a person runs it: every run lands in the history, a schedule fires runs
(run-now, and the foreground scheduler on a cron expression seconds ahead), a planted regression in a
scheduled run alerts a real local webhook, a worker slower than its peers is named with its node, and
a store or webhook that fails never fails the run. Real LoadGen, real sim worker processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from fake_crontab import fake_crontab_env
from helpers import REPO, manifest_of, only_run_dir, run_harness
from harness.run.local_workers import LocalWorkers
from harness.run.settings import short_run_user_conf
from harness.run.synthetic import synthetic_records
from webhook_server import WebhookServer

SAMPLES = 32
SIM = "--step-ms 10 --max-seqs 8 --prefill-tps 1000000"


@pytest.fixture
def inputs(tmp_path):
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps(synthetic_records(SAMPLES)))
    conf = tmp_path / "user.conf"
    conf.write_text(short_run_user_conf("llama3_1-8b", SAMPLES))
    return dataset, conf


def sim_run(inputs, output, speed: float = 1.0, *extra) -> list[str]:
    dataset, conf = inputs
    return ["--scenario", "Offline", "--local-engine", "sim", "--model", "sim", "--local-worker-args",
            f"{SIM} --speed {speed}", "--max-new-tokens", "16", "--dataset", str(dataset), "--user-conf", str(conf),
            "--output", str(output), *map(str, extra)]


def history_json(tmp_path, output, *filters) -> list[dict]:
    listed = run_harness("history", "--output", output, "--json", *filters, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def harness_env(**extra) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def test_every_run_is_recorded_listed_and_importable(inputs, tmp_path):
    result = run_harness(*sim_run(inputs, tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert f"history: recorded {run_dir.name} in sqlite:///{tmp_path / 'runs' / 'history.sqlite'}" in result.stdout
    [record] = history_json(tmp_path, tmp_path / "runs")
    assert record["run_dir"] == str(run_dir) and record["trigger"] == "manual" and record["verdict"] == "VALID"
    assert record["metrics"]["tokens_per_s"] == pytest.approx(
        float(next(line.split(":")[1] for line in (run_dir / "mlperf_log_summary.txt").read_text().splitlines()
                   if line.startswith("Tokens per second"))))
    assert sum(w["samples"] for w in record["workers"]) == 64 and len(record["workers"]) == 2
    # each worker's node is in the manifest and the history; on this CPU host NVML says why it is absent
    for worker, info in zip(record["workers"], manifest_of(run_dir)["workers"]):
        assert worker["fingerprint"]["node.cpu"] == info["versions"]["node.cpu"]
        assert worker["fingerprint"]["node.nvml"].startswith("absent: ")
    listed = run_harness("history", "--output", tmp_path / "runs", "--scenario", "Offline", "--last", "5", cwd=tmp_path)
    assert run_dir.name in listed.stdout and "1 run(s) in sqlite:///" in listed.stdout
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    imported = run_harness("history", "import", run_dir, "--store", other, cwd=tmp_path)
    assert imported.returncode == 0 and f"imported {run_dir.name} (VALID)" in imported.stdout
    assert run_harness("history", "import", run_dir, "--store", other, cwd=tmp_path).stdout.startswith("updated")


def test_planted_regression_in_a_scheduled_run_alerts_the_webhook(inputs, tmp_path):
    runs = tmp_path / "runs"
    for _ in range(2):
        good = run_harness(*sim_run(inputs, runs), cwd=tmp_path)
        assert good.returncode == 0, good.stdout + good.stderr
    env = harness_env(**fake_crontab_env(tmp_path))
    with WebhookServer() as hook:
        add = subprocess.run([sys.executable, "-m", "harness", "schedule", "add", "--cron", "0 19 * * *", "--tz",
                              "Asia/Seoul", "--name", "nightly", "--output", runs, "--backend", "crontab", "--",
                              *sim_run(inputs, runs, 0.3, "--quiet", "--alert-min-runs", "2", "--alert-webhook", hook.url)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert add.returncode == 0, add.stderr
        assert "installing (crontab):\n* * * * * " in add.stdout and hook.url not in add.stdout
        fired = subprocess.run([sys.executable, "-m", "harness", "schedule", "run-now", "nightly", "--output", runs],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert fired.returncode == 4, fired.stdout + fired.stderr  # accepted by LoadGen, but a regression
    assert "ALERT: tokens_per_s dropped" in fired.stdout and "alerts: 2 posted to the webhook" in fired.stdout
    [post] = hook.received
    body = post["body"]
    assert body["trigger"] == "scheduled" and body["schedule"] == "nightly" and body["verdict"] == "VALID"
    assert {a["metric"] for a in body["alerts"]} == {"tokens_per_s", "samples_per_s"}
    assert all(a["change_pct"] < -40 for a in body["alerts"])
    records = history_json(tmp_path, runs)
    assert [r["trigger"] for r in records] == ["manual"] * 2 + ["scheduled"]
    assert records[-1]["schedule"] == "nightly" and len(records[-1]["alerts"]) == 2
    planted = records[-1]["run_dir"]
    assert hook.url not in (tmp_path / "runs" / planted.rsplit("/", 1)[1] / "manifest.json").read_text()
    events = run_harness("history", "--output", runs, "--events", cwd=tmp_path).stdout
    assert "alert" in events and "fired" in events and "exit 4" in events


def test_foreground_scheduler_fires_within_seconds(inputs, tmp_path):
    runs = tmp_path / "runs"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness", "schedule", "add", "--cron", "* * * * * */2",
                             "--tz", "Europe/Berlin", "--name", "every2s", "--output", runs, "--foreground",
                             "--max-runs", "1", "--", *sim_run(inputs, runs, 1.0, "--quiet")],
                            cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scheduler: firing every2s" in result.stdout and "scheduler: stopped after 1 firing(s)" in result.stdout
    [record] = history_json(tmp_path, runs, "--trigger", "scheduled")
    assert record["schedule"] == "every2s" and record["verdict"] == "VALID"
    assert time.monotonic() - started < 90


def test_two_firings_at_once_one_runs_the_other_is_skipped(inputs, tmp_path):
    runs = tmp_path / "runs"
    env = harness_env(**fake_crontab_env(tmp_path))
    slow = sim_run(inputs, runs, 0.2, "--quiet")
    add = subprocess.run([sys.executable, "-m", "harness", "schedule", "add", "--cron", "*/5 * * * *", "--name",
                          "busy", "--output", runs, "--backend", "crontab", "--", *slow],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    fire = [sys.executable, "-m", "harness", "schedule", "fire", "busy", "--output", str(runs)]
    first = subprocess.Popen(fire, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(runs.glob("2*/manifest.json")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the first firing's run has started
        second = subprocess.run(fire, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0 and "schedule busy: skipped: already running (pid" in second.stdout
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert [r["schedule"] for r in history_json(tmp_path, runs)] == ["busy"]
    events = run_harness("history", "--output", runs, "--events", cwd=tmp_path).stdout
    assert "skipped: already running" in events and "exit 0" in events


def test_slow_worker_is_named_with_its_node_and_a_webhook_timeout_does_not_fail_the_run(inputs, tmp_path):
    dataset, conf = inputs
    (tmp_path / "slow").mkdir()
    fast = LocalWorkers(1, "sim", "sim", tmp_path, [*SIM.split(), "--speed", "1"])
    slow = LocalWorkers(1, "sim", "sim", tmp_path / "slow", [*SIM.split(), "--speed", "0.25"])
    try:
        addresses = fast.wait_ready(30) + slow.wait_ready(30)
        with WebhookServer(delay_s=3) as hook:
            result = run_harness("--scenario", "Offline", "--workers", ",".join(addresses), "--dataset", dataset,
                                 "--user-conf", conf, "--max-new-tokens", "16", "--output", tmp_path / "runs",
                                 "--divergence-min-samples", "10", "--alert-webhook", hook.url,
                                 "--alert-timeout", "0.5", cwd=tmp_path)
    finally:
        fast.stop()
        slow.stop()
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"worker local-0 at {addresses[1]} ran at" in result.stdout  # the slow one, and only it
    assert result.stdout.count("below the workers' median") == 1
    assert "node: hostname=" in result.stdout and "nvml=absent: " in result.stdout
    assert "alerts: not delivered: the webhook did not answer within 0.5 s; the run's result stands" in result.stderr
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    assert manifest["alerts"][0].startswith(f"worker local-0 at {addresses[1]}") and manifest["status"] == "done"
    slow_worker = next(w for w in manifest["workers"] if w["address"] == addresses[1])
    assert slow_worker["engine_args"]["speed"] == "0.25" and "node.cpu" in slow_worker["versions"]


def test_a_store_that_fails_never_fails_the_run(inputs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "history.sqlite").write_bytes(b"not a database" * 64)
    corrupt = run_harness(*sim_run(inputs, runs), cwd=tmp_path)
    assert corrupt.returncode == 0, corrupt.stdout + corrupt.stderr
    assert (f"history: not recorded, not compared: store sqlite:///{runs / 'history.sqlite'}: file is not a "
            f"database") in corrupt.stderr
    assert (runs / "history.sqlite").read_bytes().startswith(b"not a database")  # left as it was
    unreachable = run_harness(*sim_run(inputs, tmp_path / "runs2"), "--store",
                              "postgresql://bench:s3cret@127.0.0.1:1/history", cwd=tmp_path)
    assert unreachable.returncode == 0, unreachable.stdout + unreachable.stderr
    [line] = [l for l in unreachable.stderr.splitlines() if l.startswith("history:")]
    assert "postgresql+psycopg://bench:***@127.0.0.1:1/history" in line or "bench:***@" in line
    assert "Connection refused" in line and "s3cret" not in unreachable.stdout + unreachable.stderr
    assert "s3cret" not in (only_run_dir(tmp_path / "runs2") / "manifest.json").read_text()
