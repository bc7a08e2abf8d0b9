"""How long and how often: the bounds the dispatcher and its watchdog keep."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DispatchLimits:
    max_attempts: int = 3
    stall_timeout_s: float = 120.0
    request_timeout_s: float = 600.0
    no_worker_timeout_s: float = 30.0
    silence_timeout_s: float = 5.0  # no message at all (workers heartbeat each second while busy)
    faulty_after: int = 3  # wrong answers (or, never having answered, failures) before a worker gets no more work
    monitor_interval_s: float = 0.25
