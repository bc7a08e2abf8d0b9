"""Shared fixtures: the tiny model, real worker processes on loopback, and a harness runner."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
_CACHE = tempfile.mkdtemp(prefix="harness-cache-")
os.environ["MLPERF_HARNESS_CACHE"] = _CACHE  # inherited by every subprocess the tests start
os.environ.setdefault("PYTHONPATH", str(REPO))

from harness.run.local_workers import LocalWorkers  # noqa: E402
from harness.run.settings import short_run_user_conf  # noqa: E402
from harness.run.tiny_model import tiny_dataset_path, tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> pathlib.Path:
    return tiny_model_dir()


@pytest.fixture(scope="session")
def tiny_dataset(tiny_model) -> pathlib.Path:
    return tiny_dataset_path()


@pytest.fixture(scope="session")
def hf_workers(tiny_model, tmp_path_factory):
    """Two hf workers (float64, so batched and unbatched outputs agree exactly)."""
    workers = LocalWorkers(2, "hf", str(tiny_model), tmp_path_factory.mktemp("hf-workers"),
                           ["--dtype", "float64"], threads_per_worker=1)
    try:
        yield workers.wait_ready(120)
    finally:
        workers.stop()


def start_workers(count: int, engine: str, log_dir: pathlib.Path, extra: list[str]) -> LocalWorkers:
    return LocalWorkers(count, engine, "sim-model", log_dir, extra)


@pytest.fixture
def smoke_conf(tmp_path):
    def write(samples: int, model_name: str = "llama3_1-8b", extra: str = "") -> pathlib.Path:
        path = tmp_path / "user.conf"
        path.write_text(short_run_user_conf(model_name, samples) + extra)
        return path
    return write


def run_harness(*args: str, cwd: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    if not (args and args[0] in ("package", "check")):
        args = ["--quiet", *args]
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def only_run_dir(output: pathlib.Path) -> pathlib.Path:
    runs = sorted(p for p in output.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def manifest_of(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())
