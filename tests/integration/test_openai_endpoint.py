"""A real OpenAI-compatible server (`transformers serve`, from the pinned transformers with its
serving extra) on the real small model, driven through the harness like a worker: Offline
accuracy mode (its answers are the gRPC hf workers' answers, re-tokenized), then a Server run with
a gRPC sim worker beside it while the server is killed (nothing is lost). The server takes text
prompts only and returns no ids, so the run is marked Open division only."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from harness.run.local_workers import LocalWorkers
from helpers import REPO, free_port, manifest_of, only_run_dir, run_harness

pytest.importorskip("fastapi", reason="transformers serve needs its serving extra: pip install -e '.[all]'")
pytest.importorskip("uvicorn", reason="transformers serve needs its serving extra: pip install -e '.[all]'")
pytest.importorskip("httpx", reason="the OpenAI link needs httpx: pip install -e .")

SAMPLES = 6
MAX_NEW = 24


@pytest.fixture(scope="module")
def openai_server(real_model, tmp_path_factory):
    """`transformers serve` on the real model; yields (process, endpoint address). Stopped by pid."""
    port = free_port()
    log = tmp_path_factory.mktemp("openai-server") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(real_model),
                                    "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error"))
    deadline = time.monotonic() + 300
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as answer:
                    assert json.load(answer)["data"]
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield process, f"openai+http://127.0.0.1:{port}/v1?tokenizer={real_model}&max_concurrency=2"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_until_running(output, harness: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and harness.poll() is None:
        manifests = list(output.glob("*/manifest.json")) if output.is_dir() else []
        try:
            if manifests and json.loads(manifests[0].read_text()).get("status") == "running":
                return
        except ValueError:  # caught mid-write
            pass
        time.sleep(0.2)
    pytest.fail(f"the run did not start: {harness.poll()=}")


def _outputs(run_dir) -> dict[int, list[int]]:
    log = json.loads((run_dir / "mlperf_log_accuracy.json").read_text())
    return {e["qsl_idx"]: np.frombuffer(bytes.fromhex(e["data"]), "<i4").tolist() for e in log}


def _offline(workers: str, dataset, conf, out):
    return run_harness("--scenario", "Offline", "--mode", "AccuracyOnly", "--workers", workers, "--dataset", dataset,
                       "--total-sample-count", SAMPLES, "--user-conf", conf, "--max-new-tokens", MAX_NEW,
                       "--output", out, cwd=out.parent, timeout=240)


def test_offline_through_a_real_server_matches_the_grpc_workers(openai_server, real_workers, real_dataset,
                                                                smoke_conf, tmp_path):
    _, endpoint = openai_server
    conf = smoke_conf(SAMPLES)
    http = _offline(endpoint, real_dataset, conf, tmp_path / "http")
    assert http.returncode == 0, http.stderr + http.stdout
    assert "Open division only" in http.stderr
    run_dir = only_run_dir(tmp_path / "http")
    manifest = manifest_of(run_dir)
    validity = manifest["result_validity"]
    assert validity["divisions"] == ["open"] and not validity["comparable"]
    assert any("prompts sent as text" in r for r in validity["reasons"])
    assert any("re-tokenizing" in r for r in validity["reasons"])
    [worker] = manifest["workers"]
    assert worker["engine"] == "openai-http" and worker["versions"]["identity.output_ids"] == "retokenized"
    assert "api_key" not in json.dumps(manifest).replace('"api_key": "no"', "")
    assert manifest["dispatch"]["completed"] == SAMPLES
    grpc = _offline(",".join(real_workers), real_dataset, conf, tmp_path / "grpc")
    assert grpc.returncode == 0, grpc.stderr + grpc.stdout
    over_http, over_grpc = _outputs(run_dir), _outputs(only_run_dir(tmp_path / "grpc"))
    assert sorted(over_http) == list(range(SAMPLES))
    same = [i for i in over_http if over_http[i] == over_grpc[i]]
    # greedy on the same weights; only a prompt or output whose text does not re-tokenize to the same ids differs
    assert len(same) >= SAMPLES - 1, {i: (over_http[i][:8], over_grpc[i][:8]) for i in over_http}


def test_server_run_survives_the_server_being_killed(openai_server, real_dataset, smoke_conf, tmp_path):
    process, endpoint = openai_server
    sim = LocalWorkers(1, "sim", "sim-model", tmp_path, ["--step-ms", "20", "--max-seqs", "4"])
    try:
        sim_address = sim.wait_ready(60)[0]
        conf = smoke_conf(24, extra="llama3_1-8b.Server.target_qps = 4\n")
        command = [sys.executable, "-m", "harness", "--quiet", "--scenario", "Server", "--workers",
                   f"{endpoint},{sim_address}", "--dataset", str(real_dataset), "--user-conf", str(conf),
                   "--max-new-tokens", str(MAX_NEW), "--allow-invalid", "--connect-timeout", "60", "--output", str(tmp_path / "runs")]
        harness = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, PYTHONPATH=str(REPO)))
        _wait_until_running(tmp_path / "runs", harness)
        time.sleep(1.5)  # LoadGen is issuing: the endpoint has work in flight
        assert harness.poll() is None, "the run ended before the kill"
        os.killpg(process.pid, signal.SIGKILL)
        out, err = harness.communicate(timeout=180)
        assert harness.returncode == 0, out + err
    finally:
        sim.stop()
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    dispatch = manifest["dispatch"]
    assert dispatch["completed"] == dispatch["issued"] and dispatch["outstanding"] == 0
    http, grpc = dispatch["workers"]
    assert http["disconnects"] == 1 and http["state"] != "ready", http
    assert dispatch["reissued"] > 0 and grpc["completed"] > 0, dispatch
    assert manifest["num_errors"] == 0
