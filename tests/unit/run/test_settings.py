"""The short-run user.conf: the smoke profile by default, benchmarks' rates when given."""
from __future__ import annotations

from harness.run.settings import short_run_user_conf


def _values(text: str) -> dict[str, str]:
    return dict(line.split(" = ") for line in text.splitlines() if " = " in line and not line.startswith("#"))


def test_smoke_profile():
    values = _values(short_run_user_conf("llama3_1-8b", 32))
    assert values["llama3_1-8b.*.performance_sample_count_override"] == "32"
    assert values["llama3_1-8b.Offline.min_query_count"] == "64"
    assert values["llama3_1-8b.Server.target_qps"] == "4"
    assert values["llama3_1-8b.Server.min_duration"] == "3000"


def test_benchmark_profile():
    values = _values(short_run_user_conf("llama3_1-8b", 100, qps=12.5, offline_qps=1, offline_queries=100,
                                         server_min_duration_ms=0))
    assert values["llama3_1-8b.Offline.min_query_count"] == "100"
    assert values["llama3_1-8b.Offline.target_qps"] == "1"
    assert values["llama3_1-8b.Server.target_qps"] == "12.5"
    assert values["llama3_1-8b.Server.min_duration"] == "0"
