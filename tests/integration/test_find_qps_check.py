"""`python -m harness.perf.find_qps_check` on a sim worker whose Interactive knee is known
(tests/helpers.py: INTERACTIVE_KNEE, 151 qps): the check starts its own worker, runs find-qps as a
child, runs found x 1.10, prices the grid from its own timings, and leaves no worker behind.
Durations scaled down: probes 1 s, confirm (and grid runs) 4 s: about the fewest that still let
LoadGen's early stopping pass at ~120-150 qps (460 queries at least); a fixed 10 % margin and three
probes keep it short (find-qps's margin and step rules are tests/integration/test_tune_sim.py's)."""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

from harness.perf.find_qps_check import grid_steps
from helpers import INTERACTIVE_KNEE, INTERACTIVE_SIM, REPO, group_alive


def check(tmp_path, *extra, popen=False):
    cmd = [sys.executable, "-m", "harness.perf.find_qps_check", "--engine", "sim", "--model", "sim",
           *[f"--worker-arg={a}" for a in INTERACTIVE_SIM], "--scenario", "Interactive", "--prompts", "400",
           "--probe-duration-ms", "1000", "--confirm-duration-ms", "4000", "--offline-samples", "200",
           "--budget-s", "90", "--warmup", "4", "--harness-arg=--max-new-tokens=8", "--find-qps-arg=--max-probes=3",
           "--find-qps-arg=--confirm-attempts=1", "--find-qps-arg=--margin=0.1",  # find-qps's own rules: test_tune_sim
           "--commit", "abc1234def", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--quiet",
           *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=200, env=env)


def test_the_check_finds_the_knee_verifies_it_and_prices_the_grid_from_its_timings(tmp_path):
    proc = check(tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads((tmp_path / "out" / "find-qps-check-cpu-sim-abc1234.json").read_text())
    assert report["gpu"] == "cpu/sim" and report["commit"] == "abc1234def" and report["scenario"] == "Interactive"
    assert report["command"].startswith("python -m harness.perf.find_qps_check --engine sim --model sim")
    assert report["find_qps_command"].startswith("-m harness find-qps --workers 127.0.0.1:")
    assert report["durations"]["confirm_ms"] == report["durations"]["grid_run_ms"] == 4000
    found = report["found_qps"]
    assert 0.6 * INTERACTIVE_KNEE < found < INTERACTIVE_KNEE < report["upper_qps"]
    plus = report["plus_10"]
    assert plus["qps"] == round(found * 1.1, 3) and plus["duration_ms"] == 4000 and plus["tpot_p99_ms"] > 0
    assert plus["validity"] in ("VALID", "INVALID") and os.path.isdir(plus["run_dir"])
    assert report["within_5pct"] == (report["confirm_verdict"] == "VALID" and plus["validity"] == "INVALID")
    # the ratio comes from the runs' own clocks: find-qps's wall holds every run it made
    probes = report["probes"]
    assert [p["kind"] for p in probes][:2] == ["offline", "probe"] and probes[-1]["kind"] == "confirm"
    runs_s = sum(p["wall_s"] for p in probes)
    assert report["find_qps_wall_s"] >= report["find_qps_runs_s"] == pytest.approx(runs_s, abs=0.2)
    long_runs = [p for p in probes if p["kind"] == "confirm"] + [plus]
    grid = report["grid"]
    assert grid["overheads_s"] == [round(p["wall_s"] - 4.0, 2) for p in long_runs] and min(grid["overheads_s"]) > 0
    runs, _ = grid_steps(report["upper_qps"], found)
    assert grid["runs"] == runs
    assert grid["estimate_s"] == pytest.approx(runs * (4.0 + statistics.median(grid["overheads_s"])))
    assert report["ratio"] == pytest.approx(report["find_qps_wall_s"] / grid["estimate_s"])
    assert report["ratio_walk_up"] == pytest.approx(report["find_qps_wall_s"] / grid["up_s"])
    assert proc.returncode == (0 if report["within_5pct"] and report["ratio"] <= 0.25 else 1)
    assert "| probe |" in (tmp_path / "out" / "find-qps-check-cpu-sim-abc1234.probes.md").read_text()
    assert f"ratio {report['ratio']:.3f}" in proc.stdout and "find-qps-check-cpu-sim-abc1234.json" in proc.stdout
    pid = int(proc.stdout.split("(pid ")[1].split(")")[0])
    assert not group_alive(pid)  # the worker (and any engine child) was stopped


def test_a_sigterm_stops_the_check_and_its_worker(tmp_path):
    proc = check(tmp_path, popen=True)
    line = proc.stdout.readline()  # "worker HOST:PORT ready in S s (pid N)"
    assert "ready" in line, proc.stderr.read() if proc.poll() is not None else line
    pid = int(line.split("(pid ")[1].split(")")[0])
    time.sleep(2.0)  # into the warm-up or find-qps
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    deadline = time.monotonic() + 10
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pid)


def test_a_worker_that_does_not_start_is_one_line_and_exit_3(tmp_path):
    proc = check(tmp_path, "--worker-arg=--no-such-flag")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: worker") and "exited" in proc.stderr
