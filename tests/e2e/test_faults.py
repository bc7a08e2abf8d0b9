"""Workers that die, stall or arrive late: real worker processes (sim engine), real LoadGen."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO, free_port, manifest_of, only_run_dir
from harness.run.local_workers import LocalWorkers
from sut.worker.launch import WorkerProcess, WorkerSpec

def start_harness(tmp_path, workers: list[str], dataset, conf, *extra) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness", "--quiet", "--workers", ",".join(workers), "--dataset",
               str(dataset), "--user-conf", str(conf), "--output", str(tmp_path / "runs"), *map(str, extra)]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


def wait_until_issuing(tmp_path, harness: subprocess.Popen, settle_s: float = 1.0, timeout: float = 60) -> None:
    """Until LoadGen has started the test (its detail log exists), then `settle_s` more, so that the
    workers hold queries: a fixed sleep from process start loses the race on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not list((tmp_path / "runs").glob("*/mlperf_log_detail.txt")):
        assert harness.poll() is None, "the run ended before it started issuing"
        assert time.monotonic() < deadline, "LoadGen did not start within the timeout"
        time.sleep(0.1)
    time.sleep(settle_s)
    assert harness.poll() is None, "the run ended before the fault"


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_kill_9_one_worker_mid_run_loses_nothing(scenario, sim_workers, tiny_dataset, smoke_conf, tmp_path):
    workers = sim_workers(2)
    conf = smoke_conf(32, extra="llama3_1-8b.Server.target_qps = 10\n")
    harness = start_harness(tmp_path, [w.address for w in workers.workers], tiny_dataset, conf,
                            "--allow-invalid", "--scenario", scenario)
    wait_until_issuing(tmp_path, harness)
    workers.workers[0].send_signal(signal.SIGKILL)
    code, out, err = finish(harness)
    assert code == 0, out + err
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    assert manifest["num_errors"] == 0
    dispatch = manifest["dispatch"]
    assert dispatch["reissued"] > 0, dispatch
    assert dispatch["completed"] == dispatch["issued"] and dispatch["outstanding"] == 0
    assert dispatch["workers"][0]["state"] != "ready" and dispatch["workers"][0]["disconnects"] == 1


def test_dead_cluster_fails_fast_and_loudly(sim_workers, tiny_dataset, smoke_conf, tmp_path):
    workers = sim_workers(2)
    addresses = [w.address for w in workers.workers]
    harness = start_harness(tmp_path, addresses, tiny_dataset, smoke_conf(32), "--no-worker-timeout", "3")
    time.sleep(2.0)
    for worker in workers.workers:
        worker.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    code, out, err = finish(harness, timeout=60)
    assert code == 3, out + err
    assert time.monotonic() - killed_at < 30
    assert "no worker has been available for 3 s" in err
    for address in addresses:
        assert address in err
    run_dir = only_run_dir(tmp_path / "runs")
    assert "no worker has been available" in (run_dir / "failure.txt").read_text()
    assert (run_dir / "mlperf_log_detail.txt").is_file()
    assert manifest_of(run_dir)["status"] == "failed"


def test_stalled_worker_has_its_queries_reissued(sim_workers, tiny_dataset, smoke_conf, tmp_path):
    workers = sim_workers(2)
    harness = start_harness(tmp_path, [w.address for w in workers.workers], tiny_dataset, smoke_conf(32),
                            "--stall-timeout", "2")
    wait_until_issuing(tmp_path, harness)
    workers.workers[0].send_signal(signal.SIGSTOP)  # alive, connection open, no answers
    code, out, err = finish(harness)
    assert code == 0, out + err
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    stalled = manifest["dispatch"]["workers"][0]
    assert stalled["reissued"] > 0 and stalled["disconnects"] >= 1, stalled
    assert f"worker {stalled['address']} down: no progress for 2 s" in err
    assert manifest["num_errors"] == 0 and manifest["validity"] == "VALID"


def test_a_stopped_worker_in_server_is_dropped_within_seconds_with_default_limits(sim_workers, tiny_dataset,
                                                                                   smoke_conf, tmp_path):
    workers = sim_workers(2)
    harness = start_harness(tmp_path, [w.address for w in workers.workers], tiny_dataset,
                            smoke_conf(32, extra="llama3_1-8b.Server.target_qps = 10\n"), "--scenario", "Server",
                            "--allow-invalid")
    time.sleep(1.5)
    workers.workers[0].send_signal(signal.SIGSTOP)  # its heartbeats stop; the default stall timeout is 120 s
    code, out, err = finish(harness)
    assert code == 0, out + err
    assert "down: silent for 5 s (no event, no heartbeat)" in err
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    assert manifest["num_errors"] == 0 and manifest["dispatch"]["workers"][0]["disconnects"] >= 1


def test_worker_started_after_the_run_began_joins(sim_workers, slow_sim_args, tiny_dataset, smoke_conf, tmp_path):
    first = sim_workers(1)
    late_port = free_port()
    late_address = f"127.0.0.1:{late_port}"
    harness = start_harness(tmp_path, [first.workers[0].address, late_address], tiny_dataset, smoke_conf(32),
                            "--connect-timeout", "1")
    time.sleep(2.0)
    late = WorkerProcess(WorkerSpec("sim", "sim-model", port=late_port, engine_args=slow_sim_args),
                         tmp_path / "late.log")
    try:
        code, out, err = finish(harness)
    finally:
        late.stop()
    assert code == 0, out + err
    assert "starting without" in err
    workers = manifest_of(only_run_dir(tmp_path / "runs"))["dispatch"]["workers"]
    assert workers[1]["address"] == late_address and workers[1]["completed"] > 0, workers


def test_thousands_in_flight_share_one_stream(tmp_path, smoke_conf):
    """Far beyond HTTP/2's ~100 concurrent streams per connection: one stream carries them all."""
    from harness.run.synthetic import synthetic_records
    import json
    dataset = tmp_path / "synthetic.json"
    dataset.write_text(json.dumps(synthetic_records(1200)))
    workers = LocalWorkers(1, "sim", "sim-model", tmp_path, ["--max-seqs", "600", "--step-ms", "5",
                                                              "--step-ms-per-seq", "0", "--prefill-tps", "1e8"])
    try:
        address = workers.wait_ready(30)
        harness = start_harness(tmp_path, address, dataset, smoke_conf(1200), "--force-output-tokens")
        code, out, err = finish(harness)
    finally:
        workers.stop()
    assert code == 0, out + err
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    worker = manifest["dispatch"]["workers"][0]
    assert worker["peak_in_flight"] >= 1000 and worker["completed"] == 2400, worker
    assert manifest["validity"] == "VALID" and manifest["num_errors"] == 0
