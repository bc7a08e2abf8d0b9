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


def test_a_shortened_server_run_gets_one_pass_as_its_performance_set():
    """LoadGen's equal-issue mode issues whole passes over the performance set: 2000 samples at 12 qps
    would make a 15-s run last 167 s."""
    from harness.run.settings import one_pass_samples, submission_server_user_conf
    assert one_pass_samples(2000, 12.0, 15000) == 180 + 41 + 1  # 180 expected + 3 x sqrt(180), rounded up
    assert one_pass_samples(100, 12.0, 15000) == 100 and one_pass_samples(100, 0.01, 1000) == 2
    values = _values(submission_server_user_conf("llama3_1-8b", 25.0, 60000, 2000, "a test"))
    assert values["llama3_1-8b.*.performance_sample_count_override"] == "1618"  # 1500 + 3 x sqrt(1500) + 1
    assert values["llama3_1-8b.Server.min_duration"] == "60000" and values["llama3_1-8b.Server.target_qps"] == "25.0"
    # the benchmark's whole dataset is a submission's set: left to mlperf.conf, however long that makes the run
    full = _values(submission_server_user_conf("llama3_1-8b", 12.0, 600000, 13368, "a test"))
    assert "llama3_1-8b.*.performance_sample_count_override" not in full


def test_one_pass_outlasts_the_duration_under_poisson_arrivals():
    """The pass's last query is scheduled after min_duration in nearly every run, so LoadGen's equal
    issue adds no second pass (which doubled the run); exponential gaps, as LoadGen's Server schedule."""
    import random

    from harness.run.settings import one_pass_samples
    rng = random.Random(7)
    for qps, duration_ms in ((20.453, 60000), (29.218, 15000), (150.0, 8000)):
        n = one_pass_samples(10 ** 6, qps, duration_ms)
        short = sum(sum(rng.expovariate(qps) for _ in range(n - 1)) < duration_ms / 1000 for _ in range(300))
        assert short <= 3, (qps, duration_ms, n, short)
        assert n <= 1.2 * qps * duration_ms / 1000 + 2  # and not much longer than asked
