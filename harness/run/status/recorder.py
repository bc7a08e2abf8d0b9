"""Per-sample times seen at the coordinator: when LoadGen issued each sample, when its first token
and its completion went back to LoadGen, and how many tokens it had. The live figures' TTFT/TPOT
come from here, and `latencies.csv` (written into the run directory at the end) lets a report
draw the distributions and throughput over time after the run.

Times are measured where LoadGen measures them (its IssueQuery call, our FirstTokenComplete and
QuerySamplesComplete calls), so the figures follow LoadGen's closely; LoadGen's summary stays the
number of record.
"""
from __future__ import annotations

import csv
import math
import pathlib
import threading
import time
from array import array
from typing import Callable

import numpy as np

from sut.wire import token_count

LATENCIES_FILE = "latencies.csv"
LATENCY_COLUMNS = ("issued_s", "first_token_s", "done_s", "tokens")


class RunRecorder:
    """Thread-safe: LoadGen's thread issues, the SUT loop's thread answers, the sampler reads.
    Per-sample cost is a few dict and list operations (the coordinator's loop is the bottleneck
    at thousands of samples a second); latencies are array('d') so a read copies them in C."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._issued: dict[int, float] = {}   # sample id -> seconds since start
        self._first: dict[int, float] = {}
        self._rows: list[tuple[float, float, float, int]] = []  # issued, first token (nan), done, tokens
        self._ttft_s = array("d")
        self._tpot_s = array("d")

    def now(self) -> float:
        return self.clock() - self.started_at

    def wrap_issue(self, issue: Callable) -> Callable:
        """LoadGen's IssueQuery callback, timing each sample before handing it on."""
        def timed_issue(samples) -> None:
            now = self.clock() - self.started_at
            with self._lock:
                self._issued.update((sample.id, now) for sample in samples)
            issue(samples)
        return timed_issue

    def first_token(self, sample_id: int) -> None:
        now = self.clock() - self.started_at
        with self._lock:
            issued = self._issued.get(sample_id)
            if issued is not None and sample_id not in self._first:
                self._first[sample_id] = now
                self._ttft_s.append(now - issued)

    def completed(self, sample_id: int, tokens: int) -> None:
        now = self.clock() - self.started_at
        with self._lock:
            issued = self._issued.pop(sample_id, None)
            if issued is None:
                return
            first = self._first.pop(sample_id, math.nan)
            self._rows.append((issued, first, now, tokens))
            if tokens > 1 and first == first:  # LoadGen's TPOT: (done - first) / (tokens - 1); nan != nan
                self._tpot_s.append((now - first) / (tokens - 1))

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(TTFT, TPOT) in seconds so far."""
        with self._lock:
            return np.array(self._ttft_s), np.array(self._tpot_s)

    def write(self, run_dir: pathlib.Path) -> pathlib.Path:
        path = run_dir / LATENCIES_FILE
        with self._lock:
            rows = sorted(self._rows)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(LATENCY_COLUMNS)
            writer.writerows((f"{issued:.6f}", "" if first != first else f"{first:.6f}", f"{done:.6f}", tokens)
                             for issued, first, done, tokens in rows)
        return path


class RecordingResponder:
    """Wraps the responder LoadGen's answers go through, telling the recorder about each one."""

    def __init__(self, inner, recorder: RunRecorder):
        self.inner = inner
        self.recorder = recorder

    def first_token(self, query, tokens: bytes) -> None:
        self.recorder.first_token(query.sample_id)
        self.inner.first_token(query, tokens)

    def complete(self, items) -> None:
        for query, tokens in items:
            self.recorder.completed(query.sample_id, token_count(tokens))
        self.inner.complete(items)
