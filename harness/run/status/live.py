"""The live figures of one run, from one source: the cluster's snapshot (the same one the progress
line shows) and the recorder's per-sample times. A sampler thread takes them every interval,
appends one line to `timeline.jsonl` (throughput over time for the report), rewrites
`live_status.md` for people who `cat` it, and wakes the status page's subscribers.

Any status source (a campaign too) offers `figures()` and `wait_update(version, timeout)`; the
server and the metrics read nothing else.
"""
from __future__ import annotations

import collections
import json
import math
import os
import pathlib
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.run.status.recorder import RunRecorder
from harness.run.status.source import FigureSource

TIMELINE_FILE = "timeline.jsonl"
LIVE_STATUS_FILE = "live_status.md"
RATE_WINDOW_S = 10.0  # "recent" rates: over the last 10 s, so a stall shows at once
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class RunFacts:
    """What the runner knows before the first sample: the test and its limits."""
    run: str
    scenario: str
    mode: str
    model_name: str
    expected_samples: int | None = None
    ttft_limit_ms: float | None = None
    tpot_limit_ms: float | None = None
    min_duration_s: float = 0.0


def percentiles_ms(values: np.ndarray, limit_ms: float | None) -> dict:
    figures = {f"p{p}": None for p in PERCENTILES}
    if len(values):
        for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
            figures[f"p{p}"] = round(float(v) * 1e3, 3)
    figures["limit_p99"] = limit_ms
    figures["within_limit"] = None if limit_ms is None or figures["p99"] is None else figures["p99"] <= limit_ms
    figures["count"] = len(values)
    return figures


class LiveStatus(FigureSource):
    def __init__(self, facts: RunFacts, snapshot: Callable[[], dict], recorder: RunRecorder,
                 run_dir: pathlib.Path | None, interval_s: float = 1.0, markdown_every_s: float = 5.0):
        super().__init__()
        self.facts = facts
        self.snapshot = snapshot
        self.recorder = recorder
        self.run_dir = run_dir
        self.interval_s = interval_s
        self.markdown_every_s = markdown_every_s
        self.state = "starting"
        self._last_snapshot: dict = {}
        self._history: collections.deque = collections.deque()  # (t, completed, tokens, {worker: tokens})
        self._figures = self._compute({})
        self._history.clear()  # the empty figures before the test are no point of its rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-status")
        self._markdown_at = -math.inf
        self._warned = False

    # --- sampling -------------------------------------------------------------------------------

    def __enter__(self) -> "LiveStatus":
        self.state = "running"
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.finish("done" if exc[0] is None else "stopped")

    def finish(self, state: str) -> None:
        if self._stop.is_set():
            return
        self.state = state
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sample(final=True)
        self._close()  # after the final sample, so a subscriber gets the final figures first

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self, final: bool = False) -> dict:
        snap = self.snapshot() or self._last_snapshot  # a closed cluster answers {}: keep its last figures
        self._last_snapshot = snap
        figures = self._compute(snap)
        self._publish_figures(figures)
        if self.run_dir is not None:
            self._write(figures, final)
        return figures

    def _compute(self, snap: dict) -> dict:
        f = self.facts
        now = self.recorder.now()
        completed, tokens = snap.get("completed", 0), snap.get("output_tokens", 0)
        workers = snap.get("workers", [])
        self._history.append((now, completed, tokens, {w["name"]: w["output_tokens"] for w in workers}))
        while len(self._history) > 2 and now - self._history[0][0] > RATE_WINDOW_S:
            self._history.popleft()
        t0, completed0, tokens0, workers0 = self._history[0]
        span = now - t0
        recent_tps = (tokens - tokens0) / span if span > 0 else 0.0
        recent_sps = (completed - completed0) / span if span > 0 else 0.0
        elapsed = snap.get("elapsed_s", 0.0)
        expected = max(f.expected_samples or 0, snap.get("issued", 0)) or None
        eta = None
        if expected is not None and completed < expected and recent_sps > 0:
            eta = (expected - completed) / recent_sps
        if f.min_duration_s and elapsed < f.min_duration_s:
            eta = max(eta or 0.0, f.min_duration_s - elapsed)
        ttft, tpot = self.recorder.latencies()
        return {
            "run": f.run, "scenario": f.scenario, "mode": f.mode, "model_name": f.model_name, "state": self.state,
            "elapsed_s": round(elapsed, 2), "issued": snap.get("issued", 0), "completed": completed,
            "expected": expected, "progress": round(completed / expected, 4) if expected else None,
            "output_tokens": tokens, "tokens_per_s": round(tokens / elapsed, 2) if elapsed > 0 else 0.0,
            "recent_tokens_per_s": round(recent_tps, 2), "samples_per_s": round(recent_sps, 3),
            "ttft_ms": percentiles_ms(ttft, f.ttft_limit_ms), "tpot_ms": percentiles_ms(tpot, f.tpot_limit_ms),
            "failed_attempts": snap.get("failed_attempts", 0), "reissued": snap.get("reissued", 0),
            "errors": snap.get("errors", 0), "pending": snap.get("pending", 0),
            "outstanding": snap.get("outstanding", 0), "eta_s": None if eta is None else round(eta, 1),
            "workers": [{"name": w["name"], "address": w["address"], "state": w["state"],
                         "in_flight": w["in_flight"], "completed": w["completed"],
                         "output_tokens": w["output_tokens"], "failures": w["failures"], "reissued": w["reissued"],
                         "disconnects": w["disconnects"], "last_error": w["last_error"],
                         "tokens_per_s": round((w["output_tokens"] - workers0.get(w["name"], 0)) / span, 2)
                         if span > 0 else 0.0} for w in workers],
        }

    # --- files in the run directory ---------------------------------------------------------------

    def _write(self, figures: dict, final: bool) -> None:
        try:
            point = {"t_s": figures["elapsed_s"], "completed": figures["completed"], "issued": figures["issued"],
                     "output_tokens": figures["output_tokens"], "failed_attempts": figures["failed_attempts"],
                     "reissued": figures["reissued"],
                     "workers": {w["name"]: [w["completed"], w["output_tokens"], w["state"]]
                                 for w in figures["workers"]}}
            with open(self.run_dir / TIMELINE_FILE, "a") as handle:
                handle.write(json.dumps(point) + "\n")
            now = time.monotonic()
            if final or now - self._markdown_at >= self.markdown_every_s:
                self._markdown_at = now
                tmp = self.run_dir / (LIVE_STATUS_FILE + ".tmp")
                tmp.write_text(render_markdown(figures))
                os.replace(tmp, self.run_dir / LIVE_STATUS_FILE)
        except OSError as exc:  # the status is a convenience: a full disk must not end the run
            if not self._warned:
                self._warned = True
                print(f"warning: could not write the live status into {self.run_dir}: {exc.strerror or exc}",
                      file=sys.stderr, flush=True)


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _latency_row(name: str, figures: dict) -> str:
    limit = figures["limit_p99"]
    verdict = "" if figures["within_limit"] is None else (" within" if figures["within_limit"] else " OVER")
    return (f"| {name} | {_ms(figures['p50'])} | {_ms(figures['p90'])} | {_ms(figures['p99'])} | "
            f"{_ms(limit) if limit is not None else 'none'}{verdict} |")


def render_markdown(figures: dict) -> str:
    expected = figures["expected"]
    progress = f"{figures['completed']:,}/{expected:,}" if expected else f"{figures['completed']:,}"
    eta = "-" if figures["eta_s"] is None else f"{figures['eta_s']:,.0f} s"
    lines = [f"# Live status: {figures['run']}", "",
             f"{figures['scenario']} {figures['mode']} ({figures['model_name']}), **{figures['state']}**, "
             f"elapsed {figures['elapsed_s']:,.0f} s, estimated time left {eta}", "",
             f"- samples: {progress} completed, {figures['issued']:,} issued, {figures['outstanding']:,} outstanding",
             f"- output tokens/s: {figures['recent_tokens_per_s']:,.1f} (last {RATE_WINDOW_S:g} s), "
             f"{figures['tokens_per_s']:,.1f} (whole run)",
             f"- failed attempts {figures['failed_attempts']}, re-issued {figures['reissued']}, "
             f"engine errors {figures['errors']}", "",
             "| latency | p50 | p90 | p99 | p99 limit |", "| --- | --- | --- | --- | --- |",
             _latency_row("TTFT", figures["ttft_ms"]), _latency_row("TPOT", figures["tpot_ms"]), "",
             "| worker | address | state | in flight | done | tokens | tok/s | failures | re-issued |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {w['name']} | {w['address']} | {w['state']} | {w['in_flight']} | {w['completed']:,} | "
              f"{w['output_tokens']:,} | {w['tokens_per_s']:,.1f} | {w['failures']} | {w['reissued']} |"
              for w in figures["workers"]]
    return "\n".join(lines) + "\n"
