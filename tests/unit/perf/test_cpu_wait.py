"""harness.perf.cpu_wait: a busy thread's running time rises; a missing process gives None."""
import os
import sys
import time

import pytest

from harness.perf.cpu_wait import CpuTimes, cgroup_throttled_s, cpu_times


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")
def test_running_time_rises_while_this_process_computes():
    before = cpu_times(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    spent = cpu_times(os.getpid()) - before
    assert spent.running_s >= 0.04 and spent.waiting_s >= 0


def test_a_process_that_is_gone_has_no_times():
    assert cpu_times(2 ** 22 + 12345) is None


def test_difference_of_two_readings():
    assert CpuTimes(3.0, 5.5) - CpuTimes(1.0, 0.5) == CpuTimes(2.0, 5.0)


def test_throttled_time_is_read_from_the_cgroup_of_the_process(tmp_path):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.stat").write_text("usage_usec 9000000\nnr_throttled 12\nthrottled_usec 2500000\n")
    (tmp_path / "cgroup2").write_text("0::/job\n")
    assert cgroup_throttled_s(str(tmp_path / "cgroup2"), str(v2)) == 2.5
    (v1 / "cpu" / "job").mkdir(parents=True)
    (v1 / "cpu" / "job" / "cpu.stat").write_text("nr_periods 3\nnr_throttled 1\nthrottled_time 40000000\n")
    (tmp_path / "cgroup1").write_text("4:memory:/other\n1:cpu,cpuacct:/job\n0::/\n")
    assert cgroup_throttled_s(str(tmp_path / "cgroup1"), str(v1)) == 0.04
    (tmp_path / "none").write_text("4:memory:/other\n")
    assert cgroup_throttled_s(str(tmp_path / "none"), str(v1)) is None
