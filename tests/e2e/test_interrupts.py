"""Ctrl-C, SIGTERM and SIGHUP during a run: real signals to a real `python -m harness` process with
slow simulated local workers. The run stops within 10 s, says "interrupted" and why in failure.txt
and the manifest, keeps LoadGen's logs (Offline: summary and detail), leaves no local worker behind
and exits 128 + the signal number."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO, group_alive, manifest_of, only_run_dir
from harness.run.settings import short_run_user_conf
from harness.perf.stages import read_records
from harness.run.synthetic import synthetic_records
from sut.stage_trace import ENV as STAGE_TRACE_ENV, FILE_PREFIX, FILE_SUFFIX, ISSUE

SAMPLES = 64


@pytest.fixture
def inputs(tmp_path):
    dataset = tmp_path / "synthetic.json"
    dataset.write_text(json.dumps(synthetic_records(SAMPLES)))
    conf = tmp_path / "user.conf"  # long enough that the run is still going when the signal comes
    conf.write_text(short_run_user_conf("llama3_1-8b", SAMPLES, qps=4, server_min_duration_ms=120000))
    return dataset, conf


def start(tmp_path, inputs, scenario: str, **env) -> subprocess.Popen:
    dataset, conf = inputs
    command = [sys.executable, "-m", "harness", "--quiet", "--scenario", scenario, "--local-engine", "sim",
               "--model", "sim", "--local-worker-args", "--step-ms 50 --max-seqs 4", "--dataset", str(dataset),
               "--user-conf", str(conf), "--output", str(tmp_path / "runs"), "--allow-invalid"]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO), **env), start_new_session=True)


def wait_running(process: subprocess.Popen, runs, timeout: float = 90) -> None:
    """Until the manifest says the test is running (LoadGen has been started), then ~3 s more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if manifest_of(only_run_dir(runs))["status"] == "running":
                time.sleep(3)
                assert process.poll() is None, "the run ended before the signal"
                return
        except (AssertionError, FileNotFoundError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("the run never started")


def check_interrupted(process, runs, signum: int, elapsed: float, limit: float = 10) -> tuple[dict, str]:
    out, err = process.communicate(timeout=5)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, (process.returncode, out, err)
    assert elapsed < limit, (elapsed, err)
    run_dir = only_run_dir(runs)
    failure = (run_dir / "failure.txt").read_text()
    assert "interrupted" in failure and name in failure, failure
    manifest = manifest_of(run_dir)
    assert manifest["status"] == "interrupted" and manifest["interrupted_by"] == name, manifest
    pids = [w["pid"] for w in manifest["local_workers"]]
    assert len(pids) == 2
    for pid in pids:  # each worker led its own process group: nothing of it survives
        assert not group_alive(pid), f"local worker group {pid} survived"
    return manifest, err


def send_and_wait(process, signum: int, again_after: float | None = None) -> float:
    sent = time.monotonic()
    process.send_signal(signum)
    if again_after is not None:
        time.sleep(again_after)
        process.send_signal(signum)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("the harness did not stop within 30 s of the signal")
    return time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_offline_signal_stops_the_run_and_keeps_loadgen_logs(signum, inputs, tmp_path):
    process = start(tmp_path, inputs, "Offline")
    wait_running(process, tmp_path / "runs")
    elapsed = send_and_wait(process, signum)
    check_interrupted(process, tmp_path / "runs", signum, elapsed)
    run_dir = only_run_dir(tmp_path / "runs")
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):  # LoadGen finished and wrote them
        assert (run_dir / name).stat().st_size > 0, name
    assert "LoadGen finished" in (run_dir / "failure.txt").read_text()


def test_server_sigint_ends_within_the_bound_keeping_the_detail_log(inputs, tmp_path):
    """LoadGen keeps a Server schedule going until min_duration whatever the SUT answers: the run
    ends 8 s after the signal without LoadGen's summary, the detail log so far kept, and the stage
    trace written although the way out skips atexit."""
    trace = tmp_path / "trace"
    process = start(tmp_path, inputs, "Server", **{STAGE_TRACE_ENV: str(trace)})
    wait_running(process, tmp_path / "runs")
    elapsed = send_and_wait(process, signal.SIGINT)
    check_interrupted(process, tmp_path / "runs", signal.SIGINT, elapsed)
    run_dir = only_run_dir(tmp_path / "runs")
    assert (run_dir / "mlperf_log_detail.txt").stat().st_size > 0
    assert "LoadGen cannot end a Server schedule early" in (run_dir / "failure.txt").read_text()
    coordinator = read_records(trace / f"{FILE_PREFIX}{process.pid}{FILE_SUFFIX}")
    assert any(stage == ISSUE for stage, *_ in coordinator)
    assert manifest_of(run_dir)["stage_trace"] == str(trace)


def test_second_sigint_exits_at_once(inputs, tmp_path):
    process = start(tmp_path, inputs, "Server")
    wait_running(process, tmp_path / "runs")
    elapsed = send_and_wait(process, signal.SIGINT, again_after=0.5)
    manifest, err = check_interrupted(process, tmp_path / "runs", signal.SIGINT, elapsed, limit=4)
    assert "forced exit at once" in (only_run_dir(tmp_path / "runs") / "failure.txt").read_text()


def test_sigterm_while_connecting_to_workers(inputs, tmp_path):
    """Before LoadGen starts (here: waiting for a worker that never answers) a signal ends the run too."""
    dataset, conf = inputs
    command = [sys.executable, "-m", "harness", "--quiet", "--workers", "127.0.0.1:9", "--dataset", str(dataset),
               "--user-conf", str(conf), "--output", str(tmp_path / "runs")]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if manifest_of(only_run_dir(tmp_path / "runs"))["status"] == "starting":
                break
        except (AssertionError, FileNotFoundError, ValueError):
            pass
        time.sleep(0.2)
    time.sleep(1)
    elapsed = send_and_wait(process, signal.SIGTERM)
    out, err = process.communicate(timeout=5)
    assert process.returncode == 143 and elapsed < 10, (process.returncode, elapsed, err)
    run_dir = only_run_dir(tmp_path / "runs")
    assert "interrupted by SIGTERM" in (run_dir / "failure.txt").read_text()
    assert manifest_of(run_dir)["status"] == "interrupted"
