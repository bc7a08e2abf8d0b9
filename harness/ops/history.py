"""`python -m harness history`: list and filter recorded runs; `history import RUN_DIR...` backfills.

    python -m harness history [--output runs | --store URL] [--benchmark B] [--scenario S] [--mode M]
        [--verdict V] [--system X] [--trigger T] [--since 2026-11-01|7d|12h] [--last N] [--json] [--events]
    python -m harness history import RUN_DIR... [--output runs | --store URL]

Exit codes: 0 done; 1 some run directories could not be imported (each named, the rest imported);
2 bad flags or a store that cannot be opened.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
import sys

from harness.benchmarks.scenarios import SCENARIOS
from harness.ops.run_record import TRIGGERS, RunRecord, RunRecordError, read_run_record
from harness.ops.store import HistoryStore, StoreError, default_store_url
from harness.run.flags import OneLineParser, add_store_flag, int_in
from harness.run.settings import MODES

EXIT_OK, EXIT_PARTIAL, EXIT_INPUT = 0, 1, 2
_RELATIVE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str) -> dt.datetime:
    match = _RELATIVE.match(text.strip())
    if match:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a date (2026-11-01[T19:00]) nor an age "
                                         f"(7d, 12h, 30m)") from None
    return stamp if stamp.tzinfo else stamp.astimezone(dt.timezone.utc)


def store_for(args) -> HistoryStore:
    return HistoryStore(args.store or default_store_url(args.output))


def _parser(prog: str, description: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description=description)
    where = p.add_argument_group("store")
    add_store_flag(where)
    where.add_argument("--output", default="runs",
                       help="the runs' parent folder, whose history.sqlite is the default store (default ./runs)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = _parser("python -m harness history", "List recorded runs, oldest first. `history import RUN_DIR...` "
                                              "records existing run directories.")
    f = p.add_argument_group("filters")
    f.add_argument("--benchmark", default=None, help="e.g. llama3.1-8b")
    f.add_argument("--scenario", choices=tuple(SCENARIOS), default=None)
    f.add_argument("--mode", choices=MODES, default=None)
    f.add_argument("--verdict", default=None, help="VALID, INVALID, FAILED or INTERRUPTED")
    f.add_argument("--system", default=None, help="system key or --system-name of the runs")
    f.add_argument("--trigger", choices=TRIGGERS, default=None)
    f.add_argument("--since", type=parse_since, default=None, help="a date or an age: 2026-11-01, 7d, 12h")
    f.add_argument("--last", type=int_in(1), default=None, help="only the last N runs")
    p.add_argument("--json", action="store_true", help="one JSON record per line (the full RunRecord)")
    p.add_argument("--events", action="store_true", help="list scheduler events (skipped firings, alerts) instead")
    return p


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_row(record: RunRecord) -> str:
    m = record.metrics
    started = record.started_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    accuracy = " ".join(f"{k}={v:.2f}" for k, v in m.accuracy.items() if k.startswith("rouge"))
    alerts = f"  ALERTS: {len(record.alerts)}" if record.alerts else ""
    return (f"{started}Z  {record.run_id:42s} {record.benchmark or '-':12s} {record.scenario or '-':12s} "
            f"{(record.mode or '-')[:4]:4s} {record.verdict:11s} {record.trigger:9s} {_fmt(m.tokens_per_s):>10s} "
            f"{_fmt(m.samples_per_s, 2):>8s} {_fmt(m.ttft_p99_ms):>9s} {_fmt(m.tpot_p99_ms, 2):>8s}  "
            f"{record.system}{'  ' + accuracy if accuracy else ''}{alerts}")


HEADER = (f"{'started (UTC)':21s} {'run':42s} {'benchmark':12s} {'scenario':12s} {'mode':4s} {'verdict':11s} "
          f"{'trigger':9s} {'tokens/s':>10s} {'samples/s':>8s} {'ttft p99':>9s} {'tpot p99':>8s}  system")


def list_runs(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    try:
        with store_for(args) as store:
            if args.events:
                for event in store.events(args.last or 50):
                    print(f"{event['at']:%Y-%m-%d %H:%M:%S}Z  {event['kind']:16s} {event['schedule'] or '-':20s} "
                          f"{event['message']}")
                return EXIT_OK
            records = store.runs(benchmark=args.benchmark, scenario=args.scenario, mode=args.mode,
                                 system=args.system, verdict=args.verdict, trigger=args.trigger, since=args.since,
                                 last=args.last)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        for record in records:
            print(record.model_dump_json())
        return EXIT_OK
    print(HEADER)
    for record in records:
        print(format_row(record))
    print(f"{len(records)} run(s) in {store.shown}")
    return EXIT_OK


def import_runs(argv: list[str]) -> int:
    p = _parser("python -m harness history import", "Record existing run directories in the history store.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    try:
        store = store_for(args)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    failed = 0
    with store:
        for run_dir in args.run_dirs:
            try:
                record = read_run_record(run_dir)
                new = store.add(record)
            except (RunRecordError, StoreError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"{'imported' if new else 'updated '} {record.run_id} ({record.verdict})")
    print(f"{len(args.run_dirs) - failed} of {len(args.run_dirs)} run(s) recorded in {store.shown}")
    return EXIT_PARTIAL if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["import"]:
        return import_runs(argv[1:])
    return list_runs(argv)
