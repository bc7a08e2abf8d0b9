"""`python -m sut.worker` as a process: it owns its port, refuses a reachable address without
authentication, reads its token and certificates (one-line errors, exit 2), never prints the token,
and reports its identity in Info."""
from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys

import grpc
import pytest

from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.security import LinkSecurity
from sut.wire import CHANNEL_OPTIONS

REPO = pathlib.Path(__file__).resolve().parents[3]
WORKER = [sys.executable, "-m", "sut.worker", "--engine", "sim", "--model", "sim", "--instant"]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def run_worker(*flags: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*WORKER, *flags], capture_output=True, text=True, timeout=timeout, env=ENV)


class Running:
    """A worker process that has printed READY; stopped with SIGTERM."""

    def __init__(self, *flags: str):
        self.process = subprocess.Popen([*WORKER, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=ENV)
        self.lines = []
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("READY "):
                self.address = line.split()[1]
                self.port = int(self.address.rsplit(":", 1)[1])
                return
        raise AssertionError(f"worker never got ready: {self.lines} {self.process.stderr.read()}")

    def stop(self) -> tuple[str, str]:
        self.process.terminate()
        out, err = self.process.communicate(timeout=30)
        return "".join(self.lines) + out, err


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The worker's own line on stderr (grpc may log a line of its own before it)."""
    ours = [line for line in result.stderr.splitlines() if line.startswith("worker")]
    assert len(ours) == 1, result.stderr
    return ours[0]


def test_second_worker_on_a_port_in_use_fails_with_exit_2():
    first = Running("--port", "0")
    try:
        second = run_worker("--port", str(first.port))
        assert second.returncode == 2
        line = one_line_error(second)
        assert f"--host 127.0.0.1 --port {first.port}" in line and "in use" in line
        assert first.process.poll() is None  # the first one is untouched
    finally:
        first.stop()


def test_reachable_address_without_auth_is_refused():
    result = run_worker("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "--auth-token-file" in line and "--insecure" in line
    assert "LISTENING" not in result.stdout


def test_insecure_prints_a_warning_and_serves():
    worker = Running("--host", "0.0.0.0", "--port", "0", "--insecure")
    out, err = worker.stop()
    assert "WARNING: --insecure" in err and worker.process.returncode == 0


@pytest.mark.parametrize("content,fragment", [("", "the file is empty"), ("  \n", "the file is empty"),
                                              (None, "cannot read")])
def test_bad_token_file_is_a_one_line_error(tmp_path, content, fragment):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    result = run_worker("--port", "0", "--auth-token-file", str(path))
    assert result.returncode == 2
    line = one_line_error(result)
    assert f"--auth-token-file {path}" in line and fragment in line


def test_tls_flags_are_checked_before_anything_starts(tmp_path):
    result = run_worker("--port", "0", "--tls-cert", str(tmp_path / "c.pem"))
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in one_line_error(result)
    result = run_worker("--port", "0", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    assert result.returncode == 2 and "cannot read" in one_line_error(result)


def test_token_worker_serves_the_right_token_only_never_prints_it_and_reports_its_identity(tmp_path):
    token = "tok-" + os.urandom(8).hex()
    (tmp_path / "token").write_text(token + "\n")
    worker = Running("--port", "0", "--host", "0.0.0.0", "--auth-token-file", str(tmp_path / "token"),
                     "--log-level", "DEBUG")

    async def call(security: LinkSecurity):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}", options=CHANNEL_OPTIONS) as channel:
            return await pb_grpc.BackendStub(channel).Info(pb.InfoRequest(), timeout=10,
                                                           metadata=security.call_metadata())
    try:
        reply = asyncio.run(call(LinkSecurity.from_files(token_file=str(tmp_path / "token"))))
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            asyncio.run(call(LinkSecurity(token="wrong")))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        out, err = worker.stop()
    assert token not in out and token not in err
    assert "cleartext" in err  # a token without TLS on a reachable address is warned about
    versions = dict(reply.versions)
    assert len(versions["identity.model_fingerprint"]) == 64
    assert len(versions["identity.engine_args_hash"]) == 64
    assert versions["identity.revision"]
