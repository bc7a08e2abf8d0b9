"""Accuracy targets the MLCommons submission checker enforces (99 % of the BF16 reference; gen_len
within 90-110 %)."""
from __future__ import annotations

REFERENCE = {
    "llama3.1-8b": {"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957, "rougeLsum": 35.793,
                    "gen_len": 8167644, "gen_num": 13368},
    "llama3.1-8b-edge": {"rouge1": 39.06, "rouge2": 16.1147, "rougeL": 24.6375, "rougeLsum": 36.124,
                         "gen_len": 3051113, "gen_num": 5000},
}
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def benchmark_for_model_name(model_name: str) -> str:
    """LoadGen model name -> results directory / target row (Interactive shares the datacenter row)."""
    return "llama3.1-8b-edge" if model_name.endswith("-edge") else "llama3.1-8b"


def judge(results: dict, benchmark: str) -> list[tuple[str, float, str, bool]]:
    """(metric, value, requirement, passed) for every metric the checker looks at."""
    ref = REFERENCE[benchmark]
    rows = []
    for key in ROUGE_KEYS:
        value = float(results[key])
        rows.append((key, value, f">= {0.99 * ref[key]:.4f} (99% of {ref[key]})", value >= 0.99 * ref[key]))
    low, high = 0.9 * ref["gen_len"], 1.1 * ref["gen_len"]
    gen_len = int(results["gen_len"])
    rows.append(("gen_len", gen_len, f"{low:.1f} .. {high:.1f}", low <= gen_len <= high))
    rows.append(("gen_num", int(results["gen_num"]), f"== {ref['gen_num']}", int(results["gen_num"]) == ref["gen_num"]))
    return rows
