"""The coordinator reaches workers over TLS with a token; without the token it fails fast, naming why."""
from __future__ import annotations

import time

import pytest

from helpers import manifest_of, only_run_dir, run_harness
from sut.worker.launch import WorkerProcess, WorkerSpec

pytest.importorskip("cryptography")
from sut.worker.bench_security import make_certificates  # noqa: E402

SIM = ("--step-ms", "2", "--max-seqs", "16")


@pytest.fixture
def secure_workers(tmp_path):
    files = make_certificates(tmp_path)
    flags = ("--auth-token-file", files["token"], "--tls-cert", files["cert"], "--tls-key", files["key"], *SIM)
    workers = [WorkerProcess(WorkerSpec("sim", "sim", engine_args=flags), tmp_path / f"worker-{i}.log")
               for i in range(2)]
    deadline = time.monotonic() + 60
    try:
        yield files, [w.wait_ready(deadline) for w in workers]
    finally:
        for worker in workers:
            worker.stop()


def test_a_run_over_tls_with_a_token_is_accepted_and_recorded(secure_workers, tiny_dataset, smoke_conf, tmp_path):
    files, addresses = secure_workers
    result = run_harness("--workers", ",".join(addresses), "--dataset", tiny_dataset, "--user-conf", smoke_conf(16),
                         "--output", tmp_path / "runs", "--auth-token-file", files["token"], "--tls-ca", files["ca"],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(only_run_dir(tmp_path / "runs"))
    assert manifest["link_security"]["tls"] and manifest["link_security"]["token"]
    assert open(files["token"]).read().strip() not in str(manifest)  # the path may appear, never the token


def test_without_the_token_the_run_fails_fast_and_says_unauthenticated(secure_workers, tiny_dataset, smoke_conf,
                                                                       tmp_path):
    files, addresses = secure_workers
    started = time.monotonic()
    result = run_harness("--workers", ",".join(addresses), "--dataset", tiny_dataset, "--user-conf", smoke_conf(16),
                         "--output", tmp_path / "runs", "--tls-ca", files["ca"], cwd=tmp_path)
    assert result.returncode == 3 and "UNAUTHENTICATED" in result.stderr, result.stderr
    assert time.monotonic() - started < 40


def test_a_mistyped_address_fails_within_seconds_naming_it(tiny_dataset, smoke_conf, tmp_path):
    started = time.monotonic()
    result = run_harness("--workers", "127.0.0.1:1,no-such-host.invalid:50051", "--dataset", tiny_dataset,
                         "--user-conf", smoke_conf(16), "--output", tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1:1" in result.stderr and "no-such-host.invalid:50051" in result.stderr
    assert time.monotonic() - started < 40
