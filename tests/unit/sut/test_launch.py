"""WorkerSpec: the one worker command line (no process started here)."""
from __future__ import annotations

import os
import sys

from sut.worker.launch import WorkerSpec


def test_command_line():
    spec = WorkerSpec("hf", "/models/m", port=50051, worker_id="w0", engine_args=("--threads", "2"))
    assert spec.command() == [sys.executable, "-m", "sut.worker", "--engine", "hf", "--model", "/models/m",
                              "--host", "127.0.0.1", "--port", "50051", "--worker-id", "w0", "--threads", "2"]


def test_no_worker_id_lets_the_worker_name_itself():
    assert "--worker-id" not in WorkerSpec("sim", "sim").command()


def test_environment_adds_to_this_process():
    assert WorkerSpec("sim", "sim").environment() is None
    env = WorkerSpec("sim", "sim", env={"CUDA_VISIBLE_DEVICES": "3"}).environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["PATH"] == os.environ["PATH"]


def test_python_of_another_host():
    assert WorkerSpec("sim", "sim", python="/opt/venv/bin/python").command()[:3] == [
        "/opt/venv/bin/python", "-m", "sut.worker"]
