"""`python -m harness schedule`: run a harness command on a cron schedule.

    python -m harness schedule add --cron "0 19 * * *" --tz Asia/Seoul [--name nightly] [--output runs]
        [--store URL] [--backend auto|crontab|systemd | --foreground [--max-runs N]] [--dry-run] -- campaign nightly.toml
    python -m harness schedule list | remove NAME | run-now NAME    [--output runs]
    python -m harness schedule fire NAME [--if-due]                  (what the crontab line or timer calls)

`add` keeps the schedule in OUTPUT/schedules.json and installs a crontab line or a systemd timer (it
prints exactly what it installs), or with --foreground runs the scheduler in this process until Ctrl-C
(or --max-runs firings). Every firing runs `python -m harness ARGS...` with MLPERF_HARNESS_TRIGGER=scheduled,
so its runs land in the history as scheduled; a firing while the previous one still runs is skipped and
recorded as "skipped: already running". Exit codes: 0 done (a fire: the command's own code), 2 bad input.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading

from harness.ops.schedule_backends import BACKENDS, pick_backend
from harness.ops.schedules import Schedule, ScheduleBook, ScheduleError, check_cron, check_name, check_tz, fire, \
    local_tz_name
from harness.ops.store import shown_url
from harness.run.flags import OneLineParser, add_store_flag, int_in
from harness.run.manifest import now_iso

EXIT_OK, EXIT_INPUT = 0, 2


def _parser(prog: str, description: str) -> OneLineParser:
    p = OneLineParser(prog=f"python -m harness schedule {prog}", description=description)
    p.add_argument("--output", default="runs",
                   help="folder of schedules.json, the default history store and schedule-logs/ (default ./runs)")
    return p


def _add_parser() -> OneLineParser:
    p = _parser("add", "Add a schedule and install it (crontab or systemd), or run it in the foreground.")
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 19 * * *" (a 6th field: seconds)')
    p.add_argument("--tz", default=None, help="IANA time zone of the expression (default: the host's)")
    p.add_argument("--name", default=None, help="schedule name (default: from the command)")
    add_store_flag(p)
    p.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                   help="auto: systemd where it runs, else crontab")
    p.add_argument("--foreground", action="store_true", help="run the scheduler in this process instead")
    p.add_argument("--max-runs", type=int_in(1), default=None, help="--foreground: stop after N firings")
    p.add_argument("--dry-run", action="store_true", help="show what would be installed; change nothing")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the harness command line")
    return p


def _default_name(argv: list[str]) -> str:
    words = [os.path.splitext(os.path.basename(w))[0] for w in argv if not w.startswith("-")][:2] or ["run"]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(words)).strip("-.")[:40] or "run"


def add(argv: list[str]) -> int:
    args = _add_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ScheduleError("no command: give the harness command line after --, e.g. -- campaign nightly.toml")
    if command[0] == "schedule":
        raise ScheduleError("a schedule cannot run `schedule` itself")
    schedule = Schedule(name=check_name(args.name or _default_name(command)), cron=check_cron(args.cron),
                        tz=check_tz(args.tz or local_tz_name()), argv=command, cwd=os.getcwd(), store=args.store,
                        backend="foreground" if args.foreground else args.backend, created_at=now_iso())
    book = ScheduleBook(args.output)
    schedules = book.load()
    if args.foreground:
        _describe(schedule, book)
        if args.dry_run:
            return EXIT_OK
        book.save({**schedules, schedule.name: schedule})
        return run_foreground(book, schedule, args.max_runs)
    backend = pick_backend(args.backend, args.dry_run)
    schedule.backend = backend.name
    entry = backend.entry(book, schedule)
    _describe(schedule, book)
    print(f"{'would install' if args.dry_run else 'installing'} ({backend.name}):\n{entry}")
    if args.dry_run:
        return EXIT_OK
    book.save({**schedules, schedule.name: schedule})
    backend.install(book, schedule)
    print(f"schedule {schedule.name} installed; `python -m harness schedule remove {schedule.name} "
          f"--output {book.output}` removes it")
    return EXIT_OK


def _describe(schedule: Schedule, book: ScheduleBook) -> None:
    firings = schedule.next_firings(3)
    print(f"schedule {schedule.name}: {schedule.cron!r} in {schedule.tz}: {schedule.shown_command}")
    print(f"  runs in {schedule.cwd}; history: {shown_url(book.store_url(schedule))}")
    print("  next: " + ", ".join(f"{t:%Y-%m-%d %H:%M:%S %Z} ({t.astimezone(dt.timezone.utc):%H:%M:%S} UTC)"
                                 for t in firings))


def run_foreground(book: ScheduleBook, schedule: Schedule, max_runs: int | None) -> int:
    """Each firing is `schedule fire` in a child process, so a firing that comes while the last still runs
    meets the lock and is recorded as skipped, as it would be under cron."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    children: list[subprocess.Popen] = []
    fired = 0
    print(f"scheduler: running {schedule.name} in the foreground (Ctrl-C stops)", flush=True)
    while not stop.is_set() and (max_runs is None or fired < max_runs):
        due = schedule.next_firings(1)[0]
        while not stop.is_set():
            left = (due - dt.datetime.now(dt.timezone.utc)).total_seconds()
            if left <= 0:
                break
            stop.wait(min(left, 1.0))
        if stop.is_set():
            break
        print(f"scheduler: firing {schedule.name} (due {due:%Y-%m-%d %H:%M:%S %Z})", flush=True)
        children.append(subprocess.Popen([sys.executable, "-m", "harness", "schedule", "fire", schedule.name,
                                          "--output", str(book.output)]))
        fired += 1
        children = [c for c in children if c.poll() is None]
    for child in children:
        if stop.is_set():
            child.send_signal(signal.SIGTERM)  # the run records itself as interrupted
        child.wait()
    print(f"scheduler: stopped after {fired} firing(s)", flush=True)
    return EXIT_OK


def list_schedules(argv: list[str]) -> int:
    args = _parser("list", "List schedules, their next firings and what is installed.").parse_args(argv)
    book = ScheduleBook(args.output)
    schedules = book.load()
    if not schedules:
        print(f"no schedules in {book.path}")
    for schedule in schedules.values():
        _describe(schedule, book)
        if schedule.backend in BACKENDS:
            backend = BACKENDS[schedule.backend]()
            state = ("installed" if schedule.name in backend.installed() else "NOT installed") \
                if backend.available() else "backend not available here"
            print(f"  {schedule.backend}: {state}")
        else:
            print("  foreground: runs only while `schedule add --foreground` runs")
    return EXIT_OK


def remove(argv: list[str]) -> int:
    p = _parser("remove", "Remove a schedule and what was installed for it.")
    p.add_argument("name")
    args = p.parse_args(argv)
    book = ScheduleBook(args.output)
    schedules = book.load()
    schedule = book.get(args.name)
    if schedule.backend in BACKENDS and BACKENDS[schedule.backend]().available():
        removed = BACKENDS[schedule.backend]().remove(schedule.name)
        print(f"{schedule.backend}: {'removed' if removed else 'nothing installed for'} {schedule.name}")
    del schedules[schedule.name]
    book.save(schedules)
    print(f"schedule {schedule.name} removed from {book.path}")
    return EXIT_OK


def run_now(argv: list[str], prog: str = "run-now") -> int:
    p = _parser(prog, "Fire a schedule now (recorded as scheduled; skipped if it is already running).")
    p.add_argument("name")
    if prog == "fire":
        p.add_argument("--if-due", action="store_true",
                       help="only if the expression matches this minute in the schedule's zone")
    args = p.parse_args(argv)
    return fire(ScheduleBook(args.output), args.name, only_if_due=getattr(args, "if_due", False))


ACTIONS = {"add": add, "list": list_schedules, "remove": remove, "run-now": run_now,
           "fire": lambda argv: run_now(argv, "fire")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ACTIONS:
        print(f"error: schedule needs an action: {', '.join(ACTIONS)} (python -m harness schedule ACTION --help)",
              file=sys.stderr)
        return EXIT_INPUT
    try:
        return ACTIONS[argv[0]](argv[1:])
    except SystemExit as exc:  # a bad flag (one `error:` line) or --help
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    except ScheduleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
