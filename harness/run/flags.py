"""Flags of `python -m harness [run]`: one LoadGen test per process."""
from __future__ import annotations

import argparse
import math
import os

from harness.benchmarks.definitions import MODEL_NAMES
from harness.benchmarks.scenarios import SCENARIOS
from harness.run.settings import MODES


INT32_MAX = 2 ** 31 - 1
# flags whose values the manifest never keeps (harness/run/manifest.py: redacted_argv): "password" hides
# a URL's password and query, "whole" the whole value (a Slack webhook URL is its own secret)
SECRET_FLAGS = {"--store": "password", "--alert-webhook": "whole"}
STORE_ENV = "MLPERF_HARNESS_STORE"
WEBHOOK_ENV = "MLPERF_HARNESS_ALERT_WEBHOOK"
HISTORY_FILE = "history.sqlite"


class OneLineParser(argparse.ArgumentParser):
    """A bad flag is one `error:` line naming it (argparse's default adds the whole usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (python -m harness --help lists the flags)\n")


def int_in(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range ({low}..{high if high is not None else 'any'})")
        return value
    parse.__name__ = "int"
    return parse


def float_in(low: float, high: float | None = None, low_open: bool = False, note: str = ""):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            bounds = f"{'(' if low_open else '['}{low:g}, {'%g]' % high if high is not None else 'inf)'}"
            raise argparse.ArgumentTypeError(f"{text} is outside {bounds}{note}")
        return value
    parse.__name__ = "float"
    return parse


_positive_int = int_in(1)
_token_count = int_in(1, INT32_MAX)
_seconds = float_in(0, low_open=True)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m harness",
        description="Run one MLPerf LoadGen test of Llama-3.1-8B against gRPC backend workers. With no "
                    "--workers and no --dataset it runs a short smoke test on a built-in small instruct model.",
        epilog="other commands: python -m harness {package,check,accuracy,synthetic} --help")
    run = p.add_argument_group("test")
    run.add_argument("--scenario", choices=tuple(SCENARIOS), default="Offline")
    run.add_argument("--mode", choices=MODES, default="PerformanceOnly")
    run.add_argument("--model-name", choices=MODEL_NAMES, default=None,
                     help="LoadGen model name (default: llama3_1-8b; -interactive for Interactive; "
                          "-edge for SingleStream)")
    run.add_argument("--user-conf", default=None,
                     help="LoadGen user.conf (default ./user.conf; the smoke profile for the embedded default)")
    run.add_argument("--dataset", default=None, help="cnn_eval.json-format file (default: the built-in news evaluation set)")
    run.add_argument("--total-sample-count", type=_positive_int, default=None,
                     help="use only the first N records of the dataset")
    run.add_argument("--output", default="runs", help="parent folder of the run directory (default ./runs)")
    run.add_argument("--audit", choices=("TEST06",), default=None,
                     help="compliance test: applies audit/TEST06/audit.config to this run only")
    run.add_argument("--tokenizer", default=None,
                     help="tokenizer directory for scoring AccuracyOnly runs (default: --model when local "
                          "workers run)")
    run.add_argument("--eos-ids", default=None,
                     type=lambda text: [int(t) for t in text.split(",") if t.strip()],
                     help="TEST06: EOS token ids, overriding the model's (default: its generation_config.json or "
                          "tokenizer config, else the benchmark's: Llama-3's 128001,128008,128009)")
    run.add_argument("--allow-invalid", action="store_true", help="exit 0 even when LoadGen says INVALID")
    run.add_argument("--trace", action="store_true", help="write LoadGen's trace file (large)")
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    run.add_argument("--status-port", type=int_in(0, 65535), default=None,
                     help="serve a live status page, /events and /metrics on this port (0: any free port)")
    run.add_argument("--status-host", default="127.0.0.1",
                     help="address of the status page (default 127.0.0.1; any other needs --auth-token-file)")

    workers = p.add_argument_group("workers")
    workers.add_argument("--workers", default=None, help="HOST:PORT[,HOST:PORT...] of running workers")
    workers.add_argument("--cluster", default=None, metavar="FILE",
                         help="cluster file (python -m harness cluster): its workers' addresses, TLS and token")
    workers.add_argument("--up", action="store_true",
                         help="with --cluster: start its workers over SSH for this run and stop them after")
    workers.add_argument("--allow-mixed-revisions", action="store_true",
                         help="run even when the workers report different code revisions (identity.revision)")
    workers.add_argument("--auth-token-file", default=None,
                         help="file holding the workers' shared token (sent as authorization: Bearer)")
    workers.add_argument("--tls-ca", default=None, help="CA certificate (PEM) the workers' TLS certificates chain to")
    workers.add_argument("--tls-client-cert", default=None, help="client certificate (PEM) for workers that "
                                                                 "require one (--tls-client-ca on the worker)")
    workers.add_argument("--tls-client-key", default=None, help="the client certificate's key (PEM)")
    workers.add_argument("--tls-server-name", default=None,
                         help="name to expect in the workers' certificates when it differs from the address")
    workers.add_argument("--local-workers", type=_positive_int, default=2,
                         help="without --workers: how many local workers to start (default 2)")
    workers.add_argument("--local-engine", default="hf", help="without --workers: engine of local workers")
    workers.add_argument("--model", default=None, help="without --workers: model directory for local workers "
                                                        "(default: the built-in SmolLM2-135M-Instruct)")
    workers.add_argument("--local-worker-args", default="", help="extra flags for local workers, one string")
    workers.add_argument("--connect-timeout", type=_seconds, default=600.0,
                         help="seconds to wait for every worker to be ready (default 600); the run starts "
                              "with those ready, late ones join")

    sampling = p.add_argument_group("sampling (defaults: the MLPerf rules)")
    sampling.add_argument("--max-new-tokens", type=_token_count, default=128)
    sampling.add_argument("--min-new-tokens", type=_token_count, default=1)
    sampling.add_argument("--temperature", type=float_in(0), default=0.0)
    sampling.add_argument("--top-k", type=int_in(0, INT32_MAX), default=1, help="0: no top-k limit")
    sampling.add_argument("--top-p", type=float_in(0, 1, low_open=True), default=1.0)
    sampling.add_argument("--seed", type=int_in(0, 2 ** 63 - 1), default=42)
    sampling.add_argument("--force-output-tokens", action="store_true",
                          help="benchmark only: exactly --max-new-tokens per sample, EOS ignored "
                               "(refused in AccuracyOnly; marked in the manifest)")

    dispatch = p.add_argument_group("dispatch")
    dispatch.add_argument("--policy", default="auto", choices=("auto", "pull", "least-work"),
                          help="auto: pull for Offline, least-work otherwise")
    dispatch.add_argument("--order", default="fifo", choices=("fifo", "longest-first"),
                          help="pull policy: order of queries (default fifo)")
    dispatch.add_argument("--credit-factor", type=_seconds, default=2.0,
                          help="pull policy: in-flight requests per worker as a multiple of its capacity "
                               "(default 2)")
    dispatch.add_argument("--stall-timeout", type=_seconds, default=120.0,
                          help="seconds without any event from a busy worker before its work is re-issued")
    dispatch.add_argument("--request-timeout", type=_seconds, default=600.0,
                          help="seconds after which a request also goes to another worker; the first "
                               "answer wins (default 600)")
    dispatch.add_argument("--no-worker-timeout", type=_seconds, default=30.0,
                          help="seconds with no worker available before the run fails (default 30)")
    dispatch.add_argument("--max-attempts", type=_positive_int, default=3,
                          help="engine errors tolerated per sample before the run fails")
    add_history_flags(p)
    return p


def add_store_flag(group) -> None:
    group.add_argument("--store", default=os.environ.get(STORE_ENV) or None, metavar="URL",
                       help=f"history store, an SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db; default "
                            f"${STORE_ENV}, else sqlite:///OUTPUT/{HISTORY_FILE}); its password is never recorded")


def add_history_flags(p: argparse.ArgumentParser) -> None:
    """History and alerts (harness.ops): every run is recorded and compared with the runs before it."""
    ops = p.add_argument_group("history and alerts")
    add_store_flag(ops)
    ops.add_argument("--no-history", action="store_true", help="do not record this run or compare it")
    ops.add_argument("--system-name", default=None,
                     help="name of the system for comparisons (default: derived from the workers' hardware)")
    ops.add_argument("--alert-webhook", default=os.environ.get(WEBHOOK_ENV) or None, metavar="URL",
                     help=f"POST alerts as JSON to this URL (default ${WEBHOOK_ENV}); never recorded")
    ops.add_argument("--alert-format", choices=("json", "slack"), default="json",
                     help="webhook payload: the alert as JSON, or Slack's {\"text\": ...} (default json)")
    ops.add_argument("--alert-timeout", type=_seconds, default=5.0, help="webhook timeout in seconds (default 5)")
    ops.add_argument("--alert-window", type=_positive_int, default=5,
                     help="compare with the median of the last N accepted runs of the same benchmark, scenario, "
                          "mode and system (default 5)")
    ops.add_argument("--alert-min-runs", type=_positive_int, default=3,
                     help="earlier runs needed before comparing (default 3)")
    ops.add_argument("--alert-threshold", type=float_in(0, low_open=True), default=10.0, metavar="PCT",
                     help="alert when tokens/s or samples/s drop, or p99 TTFT/TPOT/latency rise, by more than "
                          "PCT %% of the median (default 10)")
    ops.add_argument("--alert-accuracy-threshold", type=float_in(0, low_open=True), default=1.0, metavar="PCT",
                     help="alert when an accuracy score drops by more than PCT %% of the median (default 1)")
    ops.add_argument("--worker-divergence", type=float_in(0, low_open=True), default=25.0, metavar="PCT",
                     help="alert when a worker's tokens/s falls below the median of the run's workers by more than "
                          "PCT %% (runs of --divergence-min-samples or more; default 25)")
    ops.add_argument("--divergence-min-samples", type=_positive_int, default=100,
                     help="samples a run needs before worker rates are compared (default 100)")
