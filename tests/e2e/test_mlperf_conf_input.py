"""An input error that needs a fresh process: LoadGen loads its embedded mlperf.conf only at the
first FromConfig of a process, and this message names mlperf.conf's value."""
from __future__ import annotations

from helpers import run_harness


def test_performance_sample_count_larger_than_dataset(tiny_dataset, tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama3_1-8b.Offline.target_qps = 1\n")  # mlperf.conf's 13368 stays in force
    result = run_harness("--workers", "127.0.0.1:1", "--dataset", tiny_dataset, "--user-conf", conf, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "performance_sample_count_override is 13368" in lines[0] and "has 32 records" in lines[0], lines[0]
