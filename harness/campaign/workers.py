"""The campaign's workers, made ready before any step runs: running ones (addresses) must answer the
health check now; local ones are started once for the whole campaign (a vLLM worker takes minutes
to load) and die with it, even if the campaign is killed (parent-death signal)."""
from __future__ import annotations

import pathlib
import signal

from harness.campaign.config import CampaignConfig
from harness.run.local_workers import LocalWorkers
from harness.run.preflight import check_reachable
from sut.security import LinkSecurity


def embedded_default_model() -> str:
    from harness.run.default_model import default_model_dir
    return str(default_model_dir())


def local_model(config: CampaignConfig) -> str | None:
    local = config.workers.local
    if local is None:
        return None
    return local.model or embedded_default_model()


class CampaignWorkers:
    def __init__(self, config: CampaignConfig, log_dir: pathlib.Path):
        self.config = config
        self.log_dir = log_dir
        self.local: LocalWorkers | None = None

    def start(self) -> list[str]:
        """Worker addresses, every one ready; raises PreflightError, SecurityError or LaunchError."""
        w = self.config.workers
        if w.addresses is not None:
            security = LinkSecurity.from_files(w.auth_token_file, w.tls_ca, w.tls_client_cert, w.tls_client_key,
                                               w.tls_server_name)
            check_reachable(w.addresses, security, w.reachable_timeout_s)
            return list(w.addresses)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.local = LocalWorkers(w.local.count, w.local.engine, local_model(self.config), self.log_dir,
                                  list(w.local.args), die_with_parent_signal=signal.SIGTERM)
        return self.local.wait_ready(w.local.ready_timeout_s)

    def ensure(self, addresses: list[str]) -> list[str]:
        """Before each step: local workers that died (the step before them ran into it, under the
        runs' fault-tolerance rules) are started again, so one crash costs one step, not the rest."""
        if self.local is None or all(worker.running for worker in self.local.workers):
            return addresses
        self.stop()
        return self.start()

    def pids(self) -> list[int]:
        return [pid for pid, _ in self.local.pids_and_logs()] if self.local else []

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            self.local = None
