"""`python -m harness run --cluster FILE [--up]`: the cluster's worker addresses and link security for
one run; with `--up`, its workers brought up before the run and down after, with the same methods
as the run's local workers (`wait_ready`, `stop`, `kill`), so every way a run ends (done, failed,
interrupted, a second signal) also stops the cluster it started."""
from __future__ import annotations

import asyncio
import sys
import threading

from harness.deploy.bringup import SERVING, Cluster
from harness.deploy.config import load_cluster
from harness.deploy.errors import ClusterUpError
from harness.deploy.plan import link_security, worker_addresses


def _in_own_loop(coro_factory, timeout_s: float | None = None):
    """Runs a coroutine to completion from any thread, including one whose event loop is running
    (the run's fatal handler is called from the dispatcher's loop). A signal may interrupt the
    join in the main thread; the coroutine then goes on in its thread."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro_factory())), daemon=True)
    thread.start()
    thread.join(timeout_s)
    return result[0] if result else None


class ClusterRun:
    def __init__(self, cluster_file: str, bring_up: bool):
        self.file = cluster_file
        self.config = load_cluster(cluster_file)   # ClusterFileError: exit 2
        self.security = link_security(self.config, cluster_file)
        self.bring_up = bring_up
        self._stopped = False
        self._bringing_up: Cluster | None = None

    def addresses(self) -> list[str]:
        return worker_addresses(self.config)

    def describe(self) -> dict:
        """For the manifest: where the workers run, never the security material."""
        return {"file": str(self.file), "name": self.config.name, "engine": self.config.engine,
                "model": self.config.model, "brought_up": self.bring_up,
                "hosts": [{"host": h.label, "address": h.address, "gpus": h.gpus} for h in self.config.hosts]}

    def wait_ready(self, timeout_s: float) -> list[str]:
        """With --up: starts the workers and waits for SERVING (ClusterUpError if any host fails;
        what was started is stopped again). Without: the addresses, for the run to connect to."""
        if not self.bring_up:
            return self.addresses()
        cluster = self._bringing_up = Cluster(self.config, self.file, self.security)
        print(f"cluster {self.config.name}: bringing up {len(cluster.plans)} workers over SSH", flush=True)
        outcome = _in_own_loop(lambda: cluster.up(timeout_s=min(timeout_s, self.config.ready_timeout_s)))
        if outcome is None or outcome.errors:
            self._stopped = True  # up() already stopped what it started
            raise ClusterUpError("; ".join(outcome.errors) if outcome else "cluster up did not finish")
        return [w.plan.address for w in outcome.workers if w.state == SERVING]

    def stop(self, grace_s: float = 5.0) -> None:
        if not self.bring_up or self._stopped:
            return
        self._stopped = True
        if self._bringing_up is not None:
            self._bringing_up.cancel.set()  # an interrupted `up` stops waiting and stops what it started
        cluster = Cluster(self.config, self.file, self.security)
        lines = _in_own_loop(lambda: cluster.down(grace_s=grace_s), timeout_s=grace_s + 60) or [
            "error: cluster down did not finish; run python -m harness cluster down " + str(self.file)]
        for line in lines:
            print(f"cluster {self.config.name}: {line}", file=sys.stderr, flush=True)

    def kill(self) -> None:
        self.stop(grace_s=0.0)
