"""A run's live status wired into the runner: per-sample times, `timeline.jsonl`, `live_status.md`
and `latencies.csv` in the run directory, and with --status-port the status page and /metrics.

The server binds before any worker starts, so a port in use is a bad flag (exit 2) that leaves no
run behind; its page says "starting" until the test begins."""
from __future__ import annotations

import contextlib
import pathlib
import sys

from harness.benchmarks.definitions import by_model_name
from harness.benchmarks.scenarios import SCENARIOS
from harness.run.status.recorder import RecordingResponder, RunRecorder
from harness.run.status.server import StatusServer, check_status_exposure
from harness.run.status.live import LiveStatus, RunFacts
from sut.security import read_token

STATUS_LINE = "status page: "  # on stderr, the URL after it; a campaign reads it from its step's log


def check_status_flags(args) -> None:
    if args.status_port is not None:
        check_status_exposure(args.status_host, args.auth_token_file)


class RunObserver:
    def __init__(self, args, run_dir: pathlib.Path, model_name: str, settings, expected_samples: int):
        scenario = SCENARIOS[args.scenario]
        limit = by_model_name(model_name).latency_limits.get(args.scenario)
        facts = RunFacts(run=run_dir.name, scenario=args.scenario, mode=args.mode, model_name=model_name,
                         expected_samples=expected_samples,
                         ttft_limit_ms=limit.ttft_p99_ms if limit and scenario.needs_first_token else None,
                         tpot_limit_ms=limit.tpot_p99_ms if limit and scenario.needs_first_token else None,
                         min_duration_s=settings.min_duration_ms / 1000 if scenario.server_like else 0.0)
        self.run_dir = run_dir
        self.recorder = RunRecorder()
        self._snapshot = dict
        self.status = LiveStatus(facts, lambda: self._snapshot(), self.recorder, run_dir)
        self.server = None
        if args.status_port is not None:
            token = read_token(args.auth_token_file) if args.auth_token_file else None
            self.server = StatusServer(self.status, args.status_port, args.status_host, token).__enter__()
            print(f"{STATUS_LINE}{self.server.url}", file=sys.stderr, flush=True)

    def responder(self, inner) -> RecordingResponder:
        return RecordingResponder(inner, self.recorder)

    @contextlib.contextmanager
    def watching(self, snapshot, interrupted=lambda: False):
        """While LoadGen's test runs: sample the cluster; afterwards write latencies.csv."""
        self._snapshot = snapshot
        self.status.__enter__()
        try:
            yield self.status
        finally:
            self.status.finish("interrupted" if interrupted() else "done")
            try:
                self.recorder.write(self.run_dir)
            except OSError as exc:
                print(f"warning: could not write {self.run_dir}/latencies.csv: {exc.strerror or exc}",
                      file=sys.stderr, flush=True)

    def close(self) -> None:
        self.status.finish(self.status.state if self.status.closed else "stopped")
        if self.server is not None:
            self.server.close()
