"""One probe: a normal `python -m harness` run directory made with a short (or, to confirm, a full)
user.conf, and what a search needs from it (p99 TTFT/TPOT against the limits, LoadGen's verdict,
early-stopping advice, throughput, wall time)."""
from __future__ import annotations

import pathlib
import time
from dataclasses import asdict, dataclass, field

from harness.artifacts.metrics import summary_metrics
from harness.benchmarks.definitions import LatencyLimit, by_model_name
from harness.benchmarks.scenarios import SCENARIOS
from harness.perf.harness_run import run_harness
from harness.run.settings import one_pass_samples, short_run_user_conf, submission_server_user_conf


@dataclass
class Probe:
    kind: str                 # offline | probe | repeat | confirm | tune | noise (tune's warm repeat)
    qps: float                # target_qps asked for (Offline: the samples/s measured)
    duration_ms: int
    run_dir: str = ""
    wall_s: float = 0.0
    validity: str = ""        # LoadGen's result_validity
    ttft_p99_ms: float = 0.0
    tpot_p99_ms: float = 0.0
    ratio: float = 0.0        # max(p99 TTFT / limit, p99 TPOT / limit): <= 1 is within the limits
    completed_qps: float = 0.0
    scheduled_qps: float = 0.0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    queries: int = 0
    early_stopping: str = ""  # LoadGen's advice when early stopping was not met
    config: dict = field(default_factory=dict)  # tune: the settings probed
    restart_s: float = 0.0    # tune: part of wall_s spent (re)starting workers, warm-up included
    warmup_s: float = 0.0     # tune: part of restart_s spent on the untimed warm-up run

    @property
    def within_limits(self) -> bool:
        return 0 < self.ratio <= 1.0

    @property
    def valid(self) -> bool:
        return self.validity == "VALID"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Probe":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def latency_limit(scenario: str) -> LatencyLimit:
    model_name = SCENARIOS[scenario].default_model_name
    return by_model_name(model_name).latency_limits[scenario]


def model_name_of(scenario: str) -> str:
    return SCENARIOS[scenario].default_model_name


def server_conf(scenario: str, qps: float, duration_ms: int, samples: int, min_queries: int) -> str:
    """A probe: short min_duration, min_query_count `min_queries` (the 600 s of a submission are the
    confirming run's job), a performance set of one pass at that length drawn from the whole dataset."""
    return short_run_user_conf(model_name_of(scenario), one_pass_samples(samples, qps, duration_ms),
                               qps=round(qps, 4), server_min_duration_ms=duration_ms,
                               server_min_query_count=min_queries)


def confirm_conf(scenario: str, qps: float, duration_ms: int, samples: int) -> str:
    return submission_server_user_conf(model_name_of(scenario), qps, duration_ms, samples,
                                       "python -m harness find-qps: the confirming run at the chosen target_qps")


def offline_conf(samples: int) -> str:
    return short_run_user_conf(model_name_of("Offline"), samples, offline_qps=1, offline_queries=samples)


def read_probe(probe: Probe, results: dict, limit: LatencyLimit | None) -> Probe:
    metrics = summary_metrics(results)
    probe.validity = str(results.get("result_validity", "MISSING"))
    probe.ttft_p99_ms = metrics["ttft_p99_ms"] or 0.0
    probe.tpot_p99_ms = metrics["tpot_p99_ms"] or 0.0
    probe.completed_qps = float(results.get("result_completed_samples_per_sec", 0) or 0)
    probe.scheduled_qps = float(results.get("result_scheduled_samples_per_sec", 0) or 0)
    probe.samples_per_s = metrics["samples_per_s"] or 0.0
    probe.tokens_per_s = metrics["tokens_per_s"] or 0.0
    probe.queries = int(results.get("result_query_count", 0) or 0)
    advice = [str(results.get(k, "")).strip() for k in ("early_stopping_ttft_result", "early_stopping_tpot_result")]
    probe.early_stopping = " | ".join(a for a in advice if a)
    if limit is not None and probe.ttft_p99_ms and probe.tpot_p99_ms:
        probe.ratio = max(probe.ttft_p99_ms / limit.ttft_p99_ms, probe.tpot_p99_ms / limit.tpot_p99_ms)
    return probe


class Runner:
    """Makes probes on running workers; every run directory lands under `out/runs`."""

    def __init__(self, addresses: list[str], dataset: pathlib.Path, samples: int, out: pathlib.Path,
                 extra: list[str] | None = None, force_output_tokens: bool = False):
        self.addresses, self.dataset, self.samples = addresses, dataset, samples
        self.out, self.extra, self.force = out, list(extra or []), force_output_tokens
        (out / "confs").mkdir(parents=True, exist_ok=True)

    def run(self, probe: Probe, scenario: str, conf_text: str, extra=()) -> Probe:
        start = time.monotonic()
        run_dir, results = run_harness(self.addresses, self.dataset, self.samples, scenario, self.out / "confs",
                                       probe.qps, [*self.extra, *extra], conf_text=conf_text,
                                       output=self.out / "runs", force_output_tokens=self.force)
        probe.wall_s = round(time.monotonic() - start, 2)
        probe.run_dir = str(run_dir)
        limit = None if scenario == "Offline" else latency_limit(scenario)
        return read_probe(probe, results, limit)
