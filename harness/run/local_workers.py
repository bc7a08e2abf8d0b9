"""Start backend workers on this machine (loopback, kernel-chosen ports) and stop them again."""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

_READY = re.compile(r"^READY (\S+)")


class LocalWorkerError(RuntimeError):
    pass


class LocalWorker:
    def __init__(self, command: list[str], log_path: pathlib.Path, env: dict | None = None):
        self.command = command
        self.log_path = log_path
        self.address: str | None = None
        self._ready = threading.Event()
        self._log = open(log_path, "w", buffering=1)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            match = _READY.match(line)
            if match and not self._ready.is_set():
                self.address = match.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, deadline: float) -> str:
        self._ready.wait(max(0.0, deadline - time.monotonic()))
        if self.address is None:
            tail = self.tail()
            state = f"exited with code {self.process.poll()}" if self.process.poll() is not None else "not ready in time"
            raise LocalWorkerError(f"local worker ({' '.join(self.command[2:6])} ...) {state}; log {self.log_path}:"
                                   f" {tail}")
        return self.address

    def tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


class LocalWorkers:
    def __init__(self, count: int, engine: str, model: str, log_dir: pathlib.Path, extra_args: list[str],
                 threads_per_worker: int | None = None):
        self.workers: list[LocalWorker] = []
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // count)
        for i in range(count):
            command = [sys.executable, "-m", "sut.worker", "--engine", engine, "--model", model,
                       "--host", "127.0.0.1", "--port", "0", "--worker-id", f"local-{i}"]
            if engine == "hf":
                command += ["--threads", str(threads)]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            self.workers.append(LocalWorker(command + extra_args, log_dir / f"worker-{i}.log", env))

    def wait_ready(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        try:
            return [worker.wait_ready(deadline) for worker in self.workers]
        except LocalWorkerError:
            self.stop()
            raise

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()
