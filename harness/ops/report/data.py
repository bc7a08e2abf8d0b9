"""What a report shows of one run: its RunRecord (manifest + LoadGen's logs), the scenario's latency
limits, and the time series the run left (`latencies.csv`, `timeline.jsonl`; harness/run/status).
Runs made before the harness wrote them still report, without the charts that need them."""
from __future__ import annotations

import csv
import json
import math
import os
import pathlib
from dataclasses import dataclass, field

import numpy as np

from harness.benchmarks.definitions import UnknownBenchmark, by_model_name
from harness.benchmarks.scenarios import SCENARIOS
from harness.ops.run_record import RunRecord, RunRecordError, read_run_record
from harness.run.status.live import TIMELINE_FILE
from harness.run.status.recorder import LATENCIES_FILE, LATENCY_COLUMNS


class ReportError(ValueError):
    """One line naming the run directory or file and what is wrong."""


@dataclass
class Latencies:
    """Per-sample seconds since the recorder started (first_token is nan where not reported)."""
    issued: np.ndarray
    first_token: np.ndarray
    done: np.ndarray
    tokens: np.ndarray

    @property
    def ttft_ms(self) -> np.ndarray:
        ttft = (self.first_token - self.issued) * 1e3
        return ttft[~np.isnan(ttft)]

    @property
    def tpot_ms(self) -> np.ndarray:
        ok = ~np.isnan(self.first_token) & (self.tokens > 1)
        return (self.done[ok] - self.first_token[ok]) / (self.tokens[ok] - 1) * 1e3


@dataclass
class RunData:
    record: RunRecord
    ttft_limit_ms: float | None = None
    tpot_limit_ms: float | None = None
    latencies: Latencies | None = None
    timeline: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.record.run_id


def latency_limits(scenario: str | None, model_name: str | None) -> tuple[float | None, float | None]:
    if scenario not in SCENARIOS or not SCENARIOS[scenario].needs_first_token or not model_name:
        return None, None
    try:
        limit = by_model_name(model_name).latency_limits.get(scenario)
    except UnknownBenchmark:
        return None, None
    return (limit.ttft_p99_ms, limit.tpot_p99_ms) if limit else (None, None)


def read_latencies(path: pathlib.Path) -> Latencies | None:
    if not path.is_file():
        return None
    columns: list[list[float]] = [[] for _ in LATENCY_COLUMNS]
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if tuple(header or ()) != LATENCY_COLUMNS:
                raise ReportError(f"{path}: line 1: expected the header {','.join(LATENCY_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                if len(row) != len(LATENCY_COLUMNS):
                    raise ReportError(f"{path}: line {line}: expected {len(LATENCY_COLUMNS)} fields, got {len(row)}")
                try:
                    values = [float(v) if v else math.nan for v in row]
                except ValueError:
                    raise ReportError(f"{path}: line {line}: not a number in {row}") from None
                for column, value in zip(columns, values):
                    column.append(value)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    arrays = [np.asarray(c, dtype=float) for c in columns]
    return Latencies(*arrays[:3], tokens=arrays[3])


def read_timeline(path: pathlib.Path) -> list[dict]:
    if not path.is_file():
        return []
    points = []
    try:
        lines = path.read_text().splitlines()
        for line, text in enumerate(lines, start=1):
            try:
                point = json.loads(text)
                points.append({"t_s": float(point["t_s"]), "completed": int(point["completed"]),
                               "output_tokens": int(point["output_tokens"]),
                               "workers": dict(point.get("workers") or {})})
            except (ValueError, KeyError, TypeError):
                if line == len(lines) or not text.strip():
                    continue  # a last line cut short by a killed run
                raise ReportError(f"{path}: line {line}: not a timeline point (t_s, completed, output_tokens)") \
                    from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return points


def load_run(run_dir: str | os.PathLike) -> RunData:
    path = pathlib.Path(run_dir)
    try:
        record = read_run_record(path)
    except RunRecordError as exc:
        raise ReportError(str(exc)) from None
    ttft, tpot = latency_limits(record.scenario, record.model_name)
    return RunData(record, ttft, tpot, read_latencies(path / LATENCIES_FILE), read_timeline(path / TIMELINE_FILE))


def throughput_series(run: RunData, bin_s: float = 1.0) -> tuple[np.ndarray, np.ndarray] | None:
    """(seconds, output tokens/s) per bin: from completions in latencies.csv, else timeline deltas."""
    lat = run.latencies
    if lat is not None and len(lat.done):
        start = float(np.nanmin(lat.issued))
        edges = np.arange(0.0, float(np.nanmax(lat.done)) - start + bin_s, bin_s)
        if len(edges) < 2:
            edges = np.array([0.0, bin_s])
        tokens, _ = np.histogram(lat.done - start, bins=edges, weights=lat.tokens)
        return edges[1:], tokens / bin_s
    points = run.timeline
    if len(points) >= 2:
        t = np.array([p["t_s"] for p in points])
        tok = np.array([p["output_tokens"] for p in points], dtype=float)
        dt = np.diff(t)
        ok = dt > 0
        return t[1:][ok], (np.diff(tok)[ok] / dt[ok])
    return None
