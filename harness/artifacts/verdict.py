"""Read LoadGen's own verdict from mlperf_log_detail.txt.

LoadGen can print VALID while errors are logged, so the verdict carries both: a run is accepted
only when it is VALID and num_errors is 0.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

_MET_KEYS = {
    "result_min_duration_met": "min duration not met",
    "result_min_queries_met": "min query count not met",
    "early_stopping_met": "early stopping not met",
    "result_perf_constraints_met": "performance constraints (latency) not met",
}


@dataclass
class Verdict:
    validity: str = "MISSING"
    finished: bool = False
    num_errors: int = 0
    invalid_reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.validity == "VALID"


def read_detail_log(path: pathlib.Path) -> Verdict:
    verdict = Verdict()
    if not path.is_file():
        verdict.invalid_reasons.append(f"{path} is missing: LoadGen did not finish")
        return verdict
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            record = json.loads(line[len(":::MLLOG "):])
        except json.JSONDecodeError:
            continue
        key, value, meta = record.get("key"), record.get("value"), record.get("metadata") or {}
        if meta.get("is_error"):
            verdict.errors.append(f"{key}: {value}")
        if key == "result_validity":
            verdict.validity = str(value)
        elif key == "num_errors":
            verdict.num_errors = int(value)
        elif key == "power_end":  # logged when the test ends, in every mode (accuracy runs have no num_errors)
            verdict.finished = True
        elif key == "result_invalid_reason" and str(value).strip():
            verdict.invalid_reasons.append(str(value).strip())
        elif key in _MET_KEYS and value is False:
            verdict.invalid_reasons.append(_MET_KEYS[key])
        if isinstance(key, str) and (key.startswith(("result_", "effective_", "requested_", "qsl_reported_"))
                                     or key.startswith("early_stopping_") or key == "loadgen_version"):
            verdict.results[key] = value
    verdict.num_errors = max(verdict.num_errors, len(verdict.errors))
    if not verdict.finished:
        verdict.invalid_reasons.append("the detail log has no power_end record: the run did not finish")
    return verdict


def summary_reasons(summary_path: pathlib.Path) -> list[str]:
    """LoadGen's advice for an INVALID run: the '* ...' lines of the summary, one reason per block."""
    if not summary_path.is_file():
        return []
    reasons, block = [], []
    for line in summary_path.read_text(errors="replace").splitlines():
        text = line.strip()
        if text.startswith("* "):
            block.append(text[2:].strip())
        elif block:
            reasons.append(" ".join(block))
            block = []
    if block:
        reasons.append(" ".join(block))
    return reasons
