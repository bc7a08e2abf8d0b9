"""Shared fixtures (the tiny model, hf workers, the real small model and its workers, a short
user.conf) and the tier markers.

Tiers by folder: tests/unit (no processes, seconds), tests/integration (real gRPC workers, real
LoadGen, the tiny model), tests/e2e (whole `python -m harness` flows). `pytest tests/unit` runs
one tier; `pytest -m "not e2e"` selects by marker.
"""
from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
_CACHE = tempfile.mkdtemp(prefix="harness-cache-")
os.environ["MLPERF_HARNESS_CACHE"] = _CACHE  # inherited by every subprocess the tests start
os.environ.setdefault("PYTHONPATH", str(REPO))

from harness.run.local_workers import LocalWorkers  # noqa: E402
from harness.run.settings import short_run_user_conf  # noqa: E402
from harness.run.tiny_model import tiny_dataset_path, tiny_model_dir  # noqa: E402

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = pathlib.Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


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


@pytest.fixture(scope="session")
def real_model() -> pathlib.Path:
    """The embedded default's SmolLM2-135M-Instruct, converted once per session (about 40 s)."""
    from harness.run.default_model import default_model_dir
    return default_model_dir()


@pytest.fixture(scope="session")
def real_dataset(real_model) -> pathlib.Path:
    from harness.run.default_model import default_dataset_path
    return default_dataset_path(real_model)


@pytest.fixture(scope="session")
def real_workers(real_model, tmp_path_factory):
    """Two hf workers on the real model, one CPU thread each (float32, as the default runs it)."""
    workers = LocalWorkers(2, "hf", str(real_model), tmp_path_factory.mktemp("real-workers"), [],
                           threads_per_worker=1)
    try:
        yield workers.wait_ready(180)
    finally:
        workers.stop()


@pytest.fixture
def smoke_conf(tmp_path):
    def write(samples: int, model_name: str = "llama3_1-8b", extra: str = "") -> pathlib.Path:
        path = tmp_path / "user.conf"
        path.write_text(short_run_user_conf(model_name, samples) + extra)
        return path
    return write
