"""How long a process ran and how long it waited for a CPU (Linux schedstat), to tell a latency
tail caused by CPU contention from one caused by the code.

`/proc/PID/task/*/schedstat` holds, per thread, the time spent running and the time spent runnable
but waiting on a run queue. A benchmark reads both around a run: a worker that waited seconds for a
CPU during a ten-second test had a queue in front of it that no change to its code removes.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTimes:
    running_s: float
    waiting_s: float

    def __sub__(self, other: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.running_s - other.running_s, self.waiting_s - other.waiting_s)


def cpu_times(pid: int) -> CpuTimes | None:
    """All threads of `pid` summed; None where schedstat is not available (not Linux, process gone).
    Threads that ended between two readings drop out of the later one: read around a run of
    long-lived threads (a worker's) only."""
    running = waiting = 0
    found = False
    for stat in pathlib.Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            fields = stat.read_text().split()
        except OSError:  # the thread ended while we looked
            continue
        running, waiting, found = running + int(fields[0]), waiting + int(fields[1]), True
    return CpuTimes(running / 1e9, waiting / 1e9) if found else None
