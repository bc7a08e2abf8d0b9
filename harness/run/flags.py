"""Flags of `python -m harness [run]`: one LoadGen test per process."""
from __future__ import annotations

import argparse
import math

from harness.benchmarks.definitions import MODEL_NAMES
from harness.benchmarks.scenarios import SCENARIOS
from harness.run.settings import MODES


INT32_MAX = 2 ** 31 - 1


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
    return p
