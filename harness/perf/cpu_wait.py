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


def cgroup_throttled_s(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> float | None:
    """Seconds this process's cgroup has been held back by its CPU quota (CFS bandwidth control), so
    far; None without a quota file. A quota burnt by many threads at once stops every process of the
    cgroup until the next period (100 ms by default): a tail of tens of ms that more cores do not remove."""
    for line in pathlib.Path(proc_cgroup).read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: cpu.stat's throttled_usec
            stat, key, scale = pathlib.Path(root, path.lstrip("/"), "cpu.stat"), "throttled_usec", 1e6
        elif "cpu" in controllers.split(","):  # cgroup v1: cpu.stat's throttled_time in ns
            stat, key, scale = pathlib.Path(root, "cpu", path.lstrip("/"), "cpu.stat"), "throttled_time", 1e9
        else:
            continue
        try:
            fields = dict(entry.split() for entry in stat.read_text().splitlines() if entry.strip())
        except OSError:
            continue
        if key in fields:
            return int(fields[key]) / scale
    return None
