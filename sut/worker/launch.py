"""The one place a worker command line is built and a worker process started.

`WorkerSpec` is what to run; `WorkerProcess` runs it in its own session, copies its output to a
log and reads the `READY host:port` line the worker prints once its engine is serving.
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

_READY = re.compile(r"^READY (\S+)")


class LaunchError(RuntimeError):
    pass


def die_with_parent(sig: int):
    """A Popen `preexec_fn` that asks Linux to send `sig` to the child when the thread that started
    it dies (even by SIGKILL), so a killed coordinator leaves no worker or step running; elsewhere
    None (no such facility). prctl is looked up before the fork: the child only calls it."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), int(sig))
    return arm


@dataclass(frozen=True)
class WorkerSpec:
    engine: str
    model: str
    host: str = "127.0.0.1"
    port: int = 0
    worker_id: str | None = None           # None: the worker names itself hostname:port
    engine_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # set on top of this process's environment
    python: str | None = None              # None: this interpreter; a path on another host for remote workers

    def command(self) -> list[str]:
        argv = [self.python or sys.executable, "-m", "sut.worker", "--engine", self.engine, "--model", self.model,
                "--host", self.host, "--port", str(self.port)]
        if self.worker_id is not None:
            argv += ["--worker-id", self.worker_id]
        return argv + list(self.engine_args)

    def environment(self) -> dict[str, str] | None:
        return dict(os.environ, **self.env) if self.env else None


class WorkerProcess:
    def __init__(self, spec: WorkerSpec, log_path: pathlib.Path, die_with_parent_signal: int | None = None):
        self.spec = spec
        self.command = spec.command()
        self.log_path = log_path
        self.address: str | None = None
        self._ready = threading.Event()
        self._log = open(log_path, "w", buffering=1)
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=spec.environment(), start_new_session=True,
                                        preexec_fn=die_with_parent(die_with_parent_signal)
                                        if die_with_parent_signal else None)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            match = _READY.match(line)
            if match and not self._ready.is_set():
                self.address = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, deadline: float) -> str:
        """The worker's `host:port` once it is serving; LaunchError if it exits or `deadline`
        (time.monotonic()) passes first."""
        self._ready.wait(max(0.0, deadline - time.monotonic()))
        if self.address is None:
            try:  # its output ended: it is exiting, and its exit code says more than a timeout
                code = self.process.wait(timeout=2) if self._ready.is_set() else self.process.poll()
            except subprocess.TimeoutExpired:
                code = None
            state = f"exited with code {code}" if code is not None else "not ready in time"
            raise LaunchError(f"worker ({' '.join(self.command[2:6])} ...) {state}; log {self.log_path}: "
                              f"{self.tail()}")
        return self.address

    def tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def send_signal(self, sig: int) -> None:
        """To the worker's whole process group (an engine may have children)."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.running:
            self.send_signal(signal.SIGKILL)
            self.process.wait()
