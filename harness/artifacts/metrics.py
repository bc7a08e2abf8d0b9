"""The summary figures of a performance run, read from LoadGen's detail-log results (`Verdict.results`).

One place that knows LoadGen's key names: Offline reports `result_tokens_per_second` and
`result_samples_per_second`; Server-like scenarios `result_completed_tokens_per_second`,
`result_completed_samples_per_sec` and the first-token and per-output-token percentiles.
"""
from __future__ import annotations

PERCENTILES = (50, 90, 99)
_NS_PER_MS = 1e6


def _number(results: dict, *keys: str) -> float | None:
    for key in keys:
        value = results.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _ms(results: dict, key: str) -> float | None:
    value = _number(results, key)
    return None if value is None else round(value / _NS_PER_MS, 4)


def summary_metrics(results: dict) -> dict[str, float | None]:
    """tokens_per_s, samples_per_s and latency/ttft/tpot p50/p90/p99 in ms; None where the run has none."""
    metrics = {
        "tokens_per_s": _number(results, "result_tokens_per_second", "result_completed_tokens_per_second"),
        "samples_per_s": _number(results, "result_samples_per_second", "result_completed_samples_per_sec"),
    }
    for p in PERCENTILES:
        metrics[f"latency_p{p}_ms"] = _ms(results, f"result_{p}.00_percentile_latency_ns")
        metrics[f"ttft_p{p}_ms"] = _ms(results, f"result_first_token_{p}.00_percentile_latency_ns")
        metrics[f"tpot_p{p}_ms"] = _ms(results, f"result_time_per_output_token_{p}.00_percentile_ns")
    return metrics
