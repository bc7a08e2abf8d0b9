"""harness.perf.cpu_wait: a busy thread's running time rises; a missing process gives None."""
import os
import sys
import time

import pytest

from harness.perf.cpu_wait import CpuTimes, cpu_times


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
