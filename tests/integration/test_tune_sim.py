"""find-qps and tune on sim workers whose knee and optimum follow from the sim's parameters.

Durations are scaled down: probes of 2 s (--probe-duration-ms 2000) instead of 60 s, a confirming run
of 4 s (--confirm-duration-ms 4000) instead of 600 s, outputs of 8 or 16 tokens, subsets of 150
prompts. The Interactive sim and its knee (151 qps) are tests/helpers.py's INTERACTIVE_SIM and
INTERACTIVE_KNEE.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harness.run.synthetic import synthetic_records
from sut.worker.launch import WorkerProcess, WorkerSpec
from helpers import INTERACTIVE_KNEE as KNEE, INTERACTIVE_SIM, interrupt_when_ready, sigint_ignored


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    work = tmp_path_factory.mktemp("tune-sim")
    dataset = work / "data.json"
    dataset.write_text(json.dumps(synthetic_records(400, 0)))
    worker = WorkerProcess(WorkerSpec("sim", "sim", engine_args=INTERACTIVE_SIM), work / "worker.log")
    try:
        yield worker.wait_ready(time.monotonic() + 60), dataset, work
    finally:
        worker.stop()


def find_qps(address, dataset, out, *extra, popen=False):
    cmd = [sys.executable, "-m", "harness", "find-qps", "--workers", address, "--dataset", str(dataset),
           "--scenario", "Interactive", "--output", str(out), "--probe-duration-ms", "2000",
           "--confirm-duration-ms", "4000", "--offline-samples", "400", "--harness-arg=--max-new-tokens=8",
           "--quiet", *extra]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=sigint_ignored)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def test_find_qps_lands_below_the_knee_and_confirms(sim):
    address, dataset, work = sim
    out = work / "fq"
    proc = find_qps(address, dataset, out, "--max-probes", "8")
    assert proc.returncode == 0, proc.stderr
    state = json.loads((out / "find-qps.json").read_text())
    result = state["result"]
    assert result["probes_used"] <= 7 and result["stopped"] in ("converged", "--max-probes 8")
    assert 0.6 * KNEE < result["found_qps"] < KNEE < result["upper_qps"]
    assert result["confirm"]["validity"] == "VALID"
    confirm = [p for p in state["probes"] if p["kind"] == "confirm"][-1]
    assert confirm["duration_ms"] == 4000 and confirm["tpot_p99_ms"] <= 30
    assert (out / "user.conf").read_text().strip() == f"llama3_1-8b-interactive.Server.target_qps = {result['found_qps']}"
    assert (out / "find-qps.svg").is_file() and "| probe |" in (out / "find-qps.md").read_text()
    for p in state["probes"]:
        assert (work / "fq" / "runs").as_posix() in p["run_dir"] and os.path.isdir(p["run_dir"])


def test_find_qps_stops_on_sigint_and_resumes_within_budget(sim):
    address, dataset, work = sim
    out = work / "fq-resume"
    proc = find_qps(address, dataset, out, "--no-confirm", popen=True)
    state_file = out / "find-qps.json"
    # ready: the Offline run and one probe finished, the next one is running
    _, err = interrupt_when_ready(proc, lambda: state_file.is_file() and len(json.loads(state_file.read_text())["probes"]) >= 2,
                                  timeout=30, poll_s=0.2)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    kept = json.loads(state_file.read_text())["probes"]
    assert len(kept) >= 2 and not json.loads(state_file.read_text())["result"]
    again = find_qps(address, dataset, out, "--no-confirm", "--max-probes", "3")
    assert again.returncode in (0, 1), again.stderr
    state = json.loads(state_file.read_text())
    assert state["probes"][:len(kept)] == kept  # finished probes were replayed, not run again
    assert state["result"]["replayed"] == len(kept)
    assert state["result"]["probes_used"] <= 2 and state["result"]["stopped"] in ("--max-probes 3", "converged")
    # a budget smaller than one probe: nothing is run, and the command says why
    tight = find_qps(address, dataset, work / "fq-budget", "--offline-qps", "180", "--budget-s", "3")
    assert tight.returncode == 1
    result = json.loads((work / "fq-budget" / "find-qps.json").read_text())["result"]
    assert result["stopped"].startswith("--budget-s") and result["found_qps"] is None


def test_tune_finds_the_sim_optimum_and_resumes(tmp_path):
    """KV cache 32768 tokens, ~1000-token prompts: max-seqs beyond 32768 / (1000 + 8) ~ 32 recompute
    their overflow every step, so 32 is the best max-seqs; an unlimited prefill budget (0) is best."""
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps(synthetic_records(400, 0)))
    cmd = [sys.executable, "-m", "harness", "tune", "--engine", "sim", "--model", "sim", "--dataset", str(dataset),
           "--output", str(tmp_path / "tune"), "--preset-dir", str(tmp_path / "presets"), "--name", "sim-test",
           "--subset", "150", "--max-new-tokens", "16", "--space", "max-seqs=16,32,64",
           "--space", "max-batched-tokens=1024,4096,0", "--space", "credit-factor=2.0", "--quiet",
           "--space", "quantization=none", "--space", "kv-cache-dtype=auto",  # bf16: the analytic optimum holds
           "--warmup", "8",
           "--worker-arg=--step-ms=20", "--worker-arg=--step-ms-per-seq=0.4", "--worker-arg=--prefill-tps=1000000",
           "--worker-arg=--kv-cache-tokens=32768", "--worker-arg=--speed=2"]
    first = subprocess.run(cmd + ["--max-probes", "3"], capture_output=True, text=True, timeout=200)
    assert first.returncode == 0, first.stderr
    state = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(state["probes"]) == 3 and state["result"]["search"]["stopped"] == "--max-probes 3"
    second = subprocess.run(cmd + ["--max-probes", "12"], capture_output=True, text=True, timeout=200)
    assert second.returncode == 0, second.stderr
    state = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(state["probes"]) < 9  # fewer than the 9-setting grid (+1 noise repeat)
    preset = json.loads((tmp_path / "presets" / "sim-test.json").read_text())
    assert preset["engine_args"]["max-seqs"] == 32 and preset["engine_args"]["max-batched-tokens"] in (4096, 0)
    assert preset["engine_args"]["max-model-len"] == max(len(r["tok_input"]) for r in
                                                        json.loads(dataset.read_text())) + 16
    assert preset["hardware"]["device_name"] == "sim" and preset["measured"]["tokens_per_s"] > 0
    worker = WorkerProcess(WorkerSpec("sim", "sim", engine_args=("--preset", str(tmp_path / "presets" / "sim-test.json"),
                                                                  "--max-batched-tokens", "2048")), tmp_path / "w.log")
    try:
        worker.wait_ready(time.monotonic() + 30)
    finally:
        worker.stop()


def test_tune_tries_fp8_first_warms_up_and_skips_what_does_not_fit(tmp_path):
    """Three probes: the start point, FP8 weights, FP8 KV (the sim models FP8 as faster), each worker
    start followed by an untimed warm-up run; then a re-run whose budget is spent replays those three,
    starts nothing, and records what it skipped and why."""
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps(synthetic_records(300, 0)))
    cmd = [sys.executable, "-m", "harness", "tune", "--engine", "sim", "--model", "sim", "--dataset", str(dataset),
           "--output", str(tmp_path / "tune"), "--preset-dir", str(tmp_path / "presets"), "--name", "fp8",
           "--subset", "100", "--max-new-tokens", "16", "--warmup", "16", "--worker-arg=--step-ms=20",
           "--worker-arg=--step-ms-per-seq=0.4", "--worker-arg=--prefill-tps=1000000", "--worker-arg=--speed=2"]
    first = subprocess.run(cmd + ["--max-probes", "3", "--quiet"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    state = json.loads((tmp_path / "tune" / "tune.json").read_text())
    probes = state["probes"]
    assert [(p["config"]["quantization"], p["config"]["kv-cache-dtype"]) for p in probes] == [
        ("none", "auto"), ("fp8", "auto"), ("fp8", "fp8")]
    assert all(0 < p["warmup_s"] < p["restart_s"] < p["wall_s"] for p in probes)  # the warm-up is in the cost
    assert probes[2]["tokens_per_s"] > 1.3 * probes[0]["tokens_per_s"]
    assert state["result"]["search"]["order"][:2] == ["quantization", "kv-cache-dtype"]
    spent = sum(p["wall_s"] for p in probes)
    again = subprocess.run(cmd + ["--max-probes", "10", "--budget-s", f"{spent + 0.5:.2f}"], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    state = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(state["probes"]) == 3 and state["skipped"]  # nothing run again, nothing new started
    assert "skipped" in again.stdout and "--budget-s" in state["skipped"][0]["why"]
    assert "skipped" in state["result"]["search"]["stopped"]
    preset = json.loads((tmp_path / "presets" / "fp8.json").read_text())
    assert preset["engine_args"]["quantization"] == "fp8" and preset["engine_args"]["kv-cache-dtype"] == "fp8"
    assert preset["accuracy"]["note"] == "accuracy not verified on real weights"
