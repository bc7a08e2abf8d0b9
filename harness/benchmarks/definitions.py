"""One frozen definition per MLPerf benchmark (one per LoadGen model name), and the registry.

Adding a benchmark is one `Benchmark(...)` in `BENCHMARKS` plus, if new, its accuracy metric in
`harness/submission/accuracy/report.py` (METRICS).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class AccuracyTarget:
    """The checker's rule for one metric: value >= low x reference, or within low..high x reference."""
    metric: str
    reference: float
    low: float
    high: float | None = None
    integer: bool = False  # printed as a plain integer in accuracy.txt (gen_len, gen_num)

    def judge(self, value) -> tuple[str, float | int, str, bool]:
        """(metric, value, requirement, passed)."""
        value = int(value) if self.integer else float(value)
        if self.high is None:
            bound = self.low * self.reference
            return (self.metric, value, f">= {bound:.4f} ({self.low:.0%} of {self.reference})", value >= bound)
        if self.low == self.high == 1:
            return self.metric, value, f"== {self.reference}", value == self.reference
        low, high = self.low * self.reference, self.high * self.reference
        return self.metric, value, f"{low:.1f} .. {high:.1f}", low <= value <= high


@dataclass(frozen=True)
class LatencyLimit:
    ttft_p99_ms: float
    tpot_p99_ms: float

    @property
    def ttft_p99_ns(self) -> float:
        return self.ttft_p99_ms * 1e6

    @property
    def tpot_p99_ns(self) -> float:
        return self.tpot_p99_ms * 1e6


@dataclass(frozen=True)
class Benchmark:
    model_name: str                         # LoadGen's name: user.conf keys, mlperf.conf rows
    folder: str                             # submission results folder
    dataset_size: int                       # samples a submission's accuracy and performance runs need
    run_scenarios: tuple[str, ...]          # scenarios a run with this model name may use
    required_scenarios: tuple[str, ...]     # a submission folder needs all of these ...
    one_of_scenarios: tuple[str, ...]       # ... and one of these (if any)
    latency_limits: dict[str, LatencyLimit]  # by scenario: p99 TTFT and TPOT limits
    accuracy_metric: str                    # a key of harness.submission.accuracy.report.METRICS
    accuracy_targets: tuple[AccuracyTarget, ...]
    eos_ids: tuple[int, ...]
    test06: bool                            # TEST06 (LLM output consistency) is required

    @property
    def allowed_scenarios(self) -> tuple[str, ...]:
        return self.required_scenarios + self.one_of_scenarios

    def judge(self, results: dict) -> list[tuple[str, float | int, str, bool]]:
        """(metric, value, requirement, passed) for every metric the checker looks at."""
        return [target.judge(results[target.metric]) for target in self.accuracy_targets]


def _rouge_targets(rouge1: float, rouge2: float, rouge_l: float, rouge_lsum: float, gen_len: int,
                   gen_num: int) -> tuple[AccuracyTarget, ...]:
    """99 % of the BF16 reference for ROUGE; gen_len within 90-110 %; every sample scored."""
    return (AccuracyTarget("rouge1", rouge1, 0.99), AccuracyTarget("rouge2", rouge2, 0.99),
            AccuracyTarget("rougeL", rouge_l, 0.99), AccuracyTarget("rougeLsum", rouge_lsum, 0.99),
            AccuracyTarget("gen_len", gen_len, 0.9, 1.1, integer=True),
            AccuracyTarget("gen_num", gen_num, 1, 1, integer=True))


LLAMA3_EOS_IDS = (128001, 128008, 128009)

LLAMA3_1_8B = Benchmark(
    model_name="llama3_1-8b", folder="llama3.1-8b", dataset_size=13368,
    run_scenarios=("Offline", "Server", "SingleStream"),
    required_scenarios=("Offline",), one_of_scenarios=("Server", "Interactive"),
    latency_limits={"Server": LatencyLimit(2000, 100), "Interactive": LatencyLimit(500, 30)},
    accuracy_metric="rouge",
    accuracy_targets=_rouge_targets(38.7792, 15.9075, 24.4957, 35.793, 8167644, 13368),
    eos_ids=LLAMA3_EOS_IDS, test06=True)

LLAMA3_1_8B_EDGE = Benchmark(
    model_name="llama3_1-8b-edge", folder="llama3.1-8b-edge", dataset_size=5000,
    run_scenarios=("Offline", "Server", "SingleStream"),
    required_scenarios=("SingleStream", "Offline"), one_of_scenarios=(),
    latency_limits={},
    accuracy_metric="rouge",
    accuracy_targets=_rouge_targets(39.06, 16.1147, 24.6375, 36.124, 3051113, 5000),
    eos_ids=LLAMA3_EOS_IDS, test06=False)

# LoadGen's Server with tighter limits; filed as scenario Interactive of the llama3.1-8b folder
LLAMA3_1_8B_INTERACTIVE = dataclasses.replace(
    LLAMA3_1_8B, model_name="llama3_1-8b-interactive", run_scenarios=("Interactive",))

BENCHMARKS: tuple[Benchmark, ...] = (LLAMA3_1_8B, LLAMA3_1_8B_EDGE, LLAMA3_1_8B_INTERACTIVE)
MODEL_NAMES = tuple(b.model_name for b in BENCHMARKS)
FOLDERS = tuple(dict.fromkeys(b.folder for b in BENCHMARKS))


class UnknownBenchmark(KeyError):
    pass


def by_model_name(model_name: str) -> Benchmark:
    for benchmark in BENCHMARKS:
        if benchmark.model_name == model_name:
            return benchmark
    raise UnknownBenchmark(model_name)


def by_folder(folder: str) -> Benchmark | None:
    """The benchmark whose rules govern a submission folder (the first one filed there)."""
    return next((b for b in BENCHMARKS if b.folder == folder), None)


def submission_folder(model_name: str) -> str:
    """LoadGen model name -> results folder and accuracy row (Interactive files under llama3.1-8b)."""
    return by_model_name(model_name).folder
