"""Where the added latency goes: the per-stage breakdown of a traced run (`sut.stage_trace`).

python -m harness.perf.stages DIR [--json FILE]

DIR holds `stages-<pid>.bin` files (format: `sut.stage_trace`): one from each coordinator run (it
has `issue` records) and one from each worker. For each coordinator run with first tokens (Server-like scenarios), every
sample's path is joined: issue -> submit (on the SUT loop) -> send (to a link) -> written (the
gRPC write returned) -> w_received (the worker read it) -> w_first (the engine's first token) ->
w_sent (the worker handed it to gRPC) -> read (the coordinator read it) -> first_token (to
LoadGen). A worker serves several runs, so only its records inside the run's time span count.
Also shown: each process's longest pauses (no record at all while samples flowed), which tell a
process that stopped (descheduled, a pause of its own) from work that queued behind others.
A file cut short (a process killed while writing it) or with a bad record is one line on stderr
naming the file and the record; what came before it is analysed, and the exit status is 2.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys

import numpy as np

from sut.stage_trace import (DROPPED, FIELDS, FILE_PREFIX, FILE_SUFFIX, FIRST_TOKEN, ISSUE, MAGIC, READ_FIRST,
                             ROW_BYTES, SEND, STAGES, SUBMIT, W_FIRST, W_RECEIVED, W_SENT, WRITTEN)

PATH = (ISSUE, SUBMIT, SEND, WRITTEN, W_RECEIVED, W_FIRST, W_SENT, READ_FIRST, FIRST_TOKEN)
SAMPLE_STAGES = (ISSUE, SUBMIT, FIRST_TOKEN)  # keyed by LoadGen's sample id; the others by request id
PAUSE_MS = 20.0


class TraceFileError(ValueError):
    """A trace file that is not whole; `records` holds what came before the fault."""

    def __init__(self, message: str, records: list):
        super().__init__(message)
        self.records = records


def read_records(path: pathlib.Path) -> list[tuple[str, int, int, int]]:
    data = path.read_bytes()
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise TraceFileError(f"{path}: cut short in its header ({len(data)} of {len(MAGIC)} bytes); no records", [])
    if not data.startswith(MAGIC):
        raise TraceFileError(f"{path}: not a stage trace of this machine's byte order (no {MAGIC!r} header)", [])
    body = memoryview(data)[len(MAGIC):]
    whole = len(body) // ROW_BYTES
    rows = np.frombuffer(body[:whole * ROW_BYTES], dtype=np.int64).reshape(whole, FIELDS)
    bad = np.flatnonzero((rows[:, 0] != DROPPED) & ((rows[:, 0] < 0) | (rows[:, 0] >= len(STAGES))))
    good = rows[:bad[0]] if len(bad) else rows
    records = [(STAGES[c], k, a, t) for c, k, a, t in good.tolist() if c != DROPPED]
    if len(bad):
        raise TraceFileError(f"{path}: record {bad[0]} (byte {len(MAGIC) + bad[0] * ROW_BYTES}) has no stage "
                             f"{rows[bad[0], 0]}; the {bad[0]} records before it are used", records)
    if len(body) % ROW_BYTES:
        raise TraceFileError(f"{path}: cut short in record {whole} (byte {len(MAGIC) + whole * ROW_BYTES}, "
                             f"{len(body) % ROW_BYTES} of {ROW_BYTES} bytes); the {whole} records before it are used",
                             records)
    return records


def read_directory(directory: pathlib.Path) -> tuple[dict[pathlib.Path, list], list[str]]:
    """Every trace file's records (what is readable of a faulty one) and one line per faulty file."""
    files, problems = {}, []
    for path in sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")):
        try:
            files[path] = read_records(path)
        except TraceFileError as exc:
            files[path] = exc.records
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{path}: cannot be read: {exc.strerror or exc}")
    return files, problems


def sample_paths(coordinator: list, workers: list[list]) -> dict[int, dict[str, int]]:
    """Sample id -> {stage: first time (ns)} for the coordinator's samples, its requests' worker stages merged."""
    start = min(t for _, _, _, t in coordinator)
    end = max(t for _, _, _, t in coordinator)
    samples: dict[int, dict[str, int]] = collections.defaultdict(dict)
    requests: dict[int, dict[str, int]] = collections.defaultdict(dict)
    sample_of: dict[int, int] = {}
    for stage, key, aux, t in coordinator:
        if stage in SAMPLE_STAGES:
            samples[key].setdefault(stage, t)
        else:
            requests[key].setdefault(stage, t)
            if stage == SEND:
                sample_of[key] = aux
    for records in workers:
        for stage, key, _, t in records:
            if start <= t <= end and key in requests:
                requests[key].setdefault(stage, t)
    for request_id, stages in requests.items():  # the first attempt of a sample stands for it
        sample = samples.get(sample_of.get(request_id, -1))
        if sample is not None and SEND not in sample:
            sample.update(stages)
    return samples


def breakdown(samples: dict[int, dict[str, int]]) -> dict:
    rows = [s for s in samples.values() if all(stage in s for stage in PATH)]
    if not rows:
        return {"samples": 0}
    total = np.array([(s[FIRST_TOKEN] - s[ISSUE]) / 1e6 for s in rows])
    slowest = np.argsort(-total)[:max(1, len(rows) // 100)]
    steps = {}
    for a, b in zip(PATH, PATH[1:]):
        ms = np.array([(s[b] - s[a]) / 1e6 for s in rows])
        steps[f"{a}->{b}"] = {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                              "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
                              "slowest_1pct_mean": float(ms[slowest].mean())}
    return {"samples": len(rows), "incomplete": len(samples) - len(rows),
            "total_ms": {"p50": float(np.percentile(total, 50)), "p99": float(np.percentile(total, 99)),
                         "max": float(total.max())}, "steps": steps}


def pauses(records: list, start: int, end: int, limit_ms: float = PAUSE_MS, keep: int = 10) -> list[dict]:
    """The longest stretches inside [start, end] in which a process recorded nothing."""
    times = sorted(t for _, _, _, t in records if start <= t <= end)
    gaps = [((b - a) / 1e6, (a - start) / 1e9) for a, b in zip(times, times[1:]) if (b - a) / 1e6 > limit_ms]
    return [{"ms": round(ms, 1), "at_s": round(at, 3)} for ms, at in sorted(gaps, reverse=True)[:keep]]


def analyse(directory: pathlib.Path) -> list[dict]:
    return analyse_files(read_directory(directory)[0])


def analyse_files(files: dict[pathlib.Path, list]) -> list[dict]:
    coordinators = {p: r for p, r in files.items() if any(stage == ISSUE for stage, *_ in r)}
    workers = {p: r for p, r in files.items() if p not in coordinators}
    reports = []
    for path, records in coordinators.items():
        start, end = min(r[3] for r in records), max(r[3] for r in records)
        report = {"coordinator": path.name, **breakdown(sample_paths(records, list(workers.values())))}
        report["pauses"] = {p.name: pauses(r, start, end) for p, r in [(path, records), *workers.items()]}
        reports.append(report)
    return reports


def render(report: dict) -> str:
    if not report["samples"]:
        return f"{report['coordinator']}: no sample with a first token (an Offline run?)"
    total = report["total_ms"]
    lines = [f"{report['coordinator']}: {report['samples']} samples, issue -> first token p50 {total['p50']:.2f} "
             f"ms, p99 {total['p99']:.2f} ms, max {total['max']:.1f} ms",
             f"  {'step':<26} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  slowest 1 % mean (ms)"]
    for step, s in report["steps"].items():
        lines.append(f"  {step:<26} {s['p50']:8.3f} {s['p90']:8.3f} {s['p99']:8.3f} {s['max']:8.1f}  "
                     f"{s['slowest_1pct_mean']:8.2f}")
    for name, found in report["pauses"].items():
        shown = ", ".join(f"{p['ms']:.0f} ms at {p['at_s']:.2f} s" for p in found) or "none"
        lines.append(f"  pauses > {PAUSE_MS:g} ms in {name}: {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.perf.stages", description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="the SUT_STAGE_TRACE directory of a run")
    parser.add_argument("--json", default=None, help="also write the breakdown here")
    args = parser.parse_args(argv)
    directory = pathlib.Path(args.directory)
    if not directory.is_dir():
        parser.error(f"{directory}: no such directory")
    files, problems = read_directory(directory)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    reports = analyse_files(files)
    if not reports:
        parser.error(f"{directory}: no coordinator trace ({FILE_PREFIX}*{FILE_SUFFIX} with issue records)")
    for report in reports:
        print(render(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(reports, indent=2))
    return 2 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
