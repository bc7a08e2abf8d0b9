"""Starting real workers: WorkerProcess, and scripts/launch_workers.py (one worker per GPU group,
each healthy, the --workers list printed)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers import REPO
from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec


def _free_base_port(count: int) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65535 and all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_launcher_starts_one_healthy_worker_per_gpu_group(tmp_path):
    base = _free_base_port(2)
    launcher = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "launch_workers.py"), "--engine", "sim", "--model", "sim",
         "--gpus", "0,1,2,3", "--tp", "2", "--base-port", str(base), "--host", "127.0.0.1", "--advertise",
         "127.0.0.1", "--log-dir", str(tmp_path), "--", "--instant"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        line = launcher.stdout.readline().strip()
        assert line == f"--workers 127.0.0.1:{base},127.0.0.1:{base + 1}", line
        for address in line.split()[1].split(","):
            with grpc.insecure_channel(address) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert status.status == health_pb2.HealthCheckResponse.SERVING
        logs = sorted(p.name for p in tmp_path.iterdir())
        assert logs == ["worker-gpu0-1.log", "worker-gpu2-3.log"]
    finally:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
    for port in (base, base + 1):
        assert _port_free(port)


def test_worker_process_reports_its_address_and_stops(tmp_path):
    worker = WorkerProcess(WorkerSpec("sim", "sim", worker_id="w0", engine_args=("--instant",)), tmp_path / "w.log")
    try:
        address = worker.wait_ready(time.monotonic() + 30)
        assert address.startswith("127.0.0.1:") and worker.running
    finally:
        worker.stop()
    assert not worker.running and "READY" in (tmp_path / "w.log").read_text()


def test_worker_that_exits_is_a_launch_error_with_its_log(tmp_path):
    worker = WorkerProcess(WorkerSpec("sim", "sim", engine_args=("--no-such-flag",)), tmp_path / "w.log")
    with pytest.raises(LaunchError, match=r"worker \(sut.worker --engine sim --model .*\) exited with code 2; "
                                          r"log .*w.log: .*unrecognized arguments: --no-such-flag"):
        worker.wait_ready(time.monotonic() + 30)
    worker.stop()
