"""Workers on this machine for runs without --workers: loopback, kernel-chosen ports, CPU threads
shared out between them."""
from __future__ import annotations

import os
import pathlib
import time

from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec


class LocalWorkers:
    def __init__(self, count: int, engine: str, model: str, log_dir: pathlib.Path, extra_args: list[str],
                 threads_per_worker: int | None = None):
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // count)
        engine_args = (["--threads", str(threads)] if engine == "hf" else []) + list(extra_args)
        self.workers = [
            WorkerProcess(WorkerSpec(engine, model, worker_id=f"local-{i}", engine_args=tuple(engine_args),
                                     env={"OMP_NUM_THREADS": str(threads)}), log_dir / f"worker-{i}.log")
            for i in range(count)]

    def wait_ready(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        try:
            return [worker.wait_ready(deadline) for worker in self.workers]
        except LaunchError as exc:
            self.stop()
            raise LaunchError(f"local {exc}") from None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()
