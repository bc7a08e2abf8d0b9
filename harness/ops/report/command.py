"""`python -m harness report RUN [RUN...]`: one self-contained HTML report and a markdown summary.

One run: throughput over time, TTFT/TPOT distributions against the limits, per-worker split, the
verdict and why. Several: side by side with deltas against the first. `--trend`: the runs as a
history, each metric over time with the regression threshold drawn.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from harness.ops.report.data import ReportError, load_run
from harness.ops.run_record import RunRecord
from harness.run.flags import OneLineParser, add_store_flag, float_in, int_in

EXIT_OK, EXIT_INPUT = 0, 2


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m harness report",
                      description="Write one self-contained HTML report (renders offline) and a markdown summary "
                                  "of one or more run directories.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories (as `python -m harness run` leaves them)")
    p.add_argument("--out", default=None,
                   help="HTML file to write (default: RUN/report.html for one run, ./report.html for several); "
                        "the markdown summary goes beside it (.md)")
    p.add_argument("--format", choices=("html", "md"), default="html",
                   help="html: the page and the markdown beside it; md: only the markdown, also printed")
    p.add_argument("--trend", action="store_true",
                   help="treat the runs as a history (ordered by start time) and draw trends")
    p.add_argument("--threshold", type=float_in(0, 1, low_open=True), default=0.05,
                   help="trend: a regression is a drop in throughput or rise in latency beyond this fraction "
                        "of the median of the runs before (default 0.05)")
    p.add_argument("--window", type=int_in(1), default=10, help="trend: runs in the median (default 10)")
    history = p.add_argument_group("a trend from the history store")
    history.add_argument("--last", type=int_in(1), default=None, metavar="N",
                         help="draw the last N recorded runs like the one shown (same benchmark, scenario, mode and "
                              "system); without RUN the newest recorded run is shown")
    history.add_argument("--scenario", default=None, help="with --last and no RUN: the newest run of this scenario")
    add_store_flag(history)
    history.add_argument("--output", default="runs",
                         help="the runs' parent folder, whose history.sqlite is the default store (default ./runs)")
    return p


def history_trend(args) -> tuple[list[str], list[RunRecord]]:
    """The run to show and the last N recorded runs like it, from the history store."""
    from harness.ops.history import store_for
    from harness.ops.store import StoreError
    try:
        with store_for(args) as store:
            if args.runs:
                shown = load_run(sorted(args.runs)[-1]).record
            else:
                newest = store.runs(scenario=args.scenario, last=1)
                if not newest:
                    raise ReportError("--last: the history store holds no run" +
                                      (f" of scenario {args.scenario}" if args.scenario else ""))
                shown = newest[0]
                if not pathlib.Path(shown.run_dir).is_dir():
                    raise ReportError(f"--last: the newest recorded run's directory {shown.run_dir} is gone; "
                                      f"name a RUN to show")
            records = store.runs(benchmark=shown.benchmark, scenario=shown.scenario, mode=shown.mode,
                                 system=shown.system or None, last=args.last)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    return (args.runs or [shown.run_dir]), records


def write_report(run_dirs: list[str], out: pathlib.Path, fmt: str = "html", trend: bool = False,
                 threshold: float = 0.05, window: int = 10,
                 trend_records: list[RunRecord] | None = None) -> list[pathlib.Path]:
    """`trend`: the run directories are the history (the latest is shown in full). `trend_records`:
    a history from elsewhere (the store's last N runs) drawn below the runs shown."""
    from harness.ops.report.markdown import render_markdown
    runs = [load_run(d) for d in run_dirs]
    if trend:
        runs = sorted(runs, key=lambda run: run.record.started_at)
        latest = runs[-1].record
        alike = [run.record for run in runs if (run.record.key, run.record.mode) == (latest.key, latest.mode)]
        for run in runs:
            if (run.record.key, run.record.mode) != (latest.key, latest.mode):
                print(f"note: the trend leaves out {run.record.run_dir}: {run.record.scenario} {run.record.mode} on "
                      f"{run.record.system or '?'}, not like the latest ({latest.scenario} {latest.mode} on "
                      f"{latest.system or '?'})", file=sys.stderr)
        trend_records = alike + list(trend_records or [])
        runs = runs[-1:]
    if trend_records:  # a run both named and recorded is drawn once
        trend_records = list({record.run_id: record for record in trend_records}.values())
    md = render_markdown(runs, trend_records, threshold, window)
    written = []
    if fmt == "html":
        from harness.ops.report.page import render
        _write(out, render(runs, trend_records, threshold, window))
        written.append(out)
    _write(out.with_suffix(".md"), md)
    written.append(out.with_suffix(".md"))
    if fmt == "md":
        print(md)
    return written


def _write(path: pathlib.Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise ReportError(f"--out {path}: cannot write: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    if not args.runs and not args.last:
        print("error: name at least one RUN directory, or --last N for a trend from the history store",
              file=sys.stderr)
        return EXIT_INPUT
    try:
        runs, trend_records = history_trend(args) if args.last else (args.runs, None)
        out = pathlib.Path(args.out) if args.out else (
            pathlib.Path(runs[0]) / "report.html" if len(runs) == 1 else pathlib.Path("report.html"))
        for path in write_report(runs, out, args.format, args.trend, args.threshold, args.window,
                                 trend_records=trend_records):
            print(f"wrote {path}", file=sys.stderr)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK
