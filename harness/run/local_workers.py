"""Workers on this machine for runs without --workers: loopback, kernel-chosen ports, CPU threads
shared out between them."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec


class LocalWorkers:
    def __init__(self, count: int, engine: str, model: str, log_dir: pathlib.Path, extra_args: list[str],
                 threads_per_worker: int | None = None, die_with_parent_signal: int | None = None):
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // count)
        engine_args = (["--threads", str(threads)] if engine == "hf" else []) + list(extra_args)
        self.workers = [
            WorkerProcess(WorkerSpec(engine, model, worker_id=f"local-{i}", engine_args=tuple(engine_args),
                                     env={"OMP_NUM_THREADS": str(threads)}), log_dir / f"worker-{i}.log",
                          die_with_parent_signal)
            for i in range(count)]

    def wait_ready(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        try:
            return [worker.wait_ready(deadline) for worker in self.workers]
        except LaunchError as exc:
            self.stop()
            raise LaunchError(f"local {exc}") from None

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to each worker's whole process group (an engine may have children), SIGKILL to
        what is left after grace_s."""
        for worker in self.workers:
            if worker.running:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for worker in self.workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.send_signal(signal.SIGKILL)  # the group's stragglers, or the worker itself
        for worker in self.workers:
            worker.stop()  # reaps and closes the log

    def pids_and_logs(self) -> list[tuple[int, pathlib.Path]]:
        """Each worker's pid (also its process group id: it runs in a session of its own) and log."""
        return [(worker.process.pid, worker.log_path) for worker in self.workers]

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()
