"""Schedules: a cron expression in a time zone that runs `python -m harness ARGS...`, kept in
OUTPUT/schedules.json, and one firing of one (`fire`): under a lock, so that a firing while the last one
still runs records "skipped: already running" instead of starting a second run.

Time zones and daylight saving are croniter's and zoneinfo's business: an expression is matched in its
zone's wall-clock time (a 02:30 firing on the night the clocks jump forward runs at 03:00).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pathlib
import re
import subprocess
import sys
import zoneinfo

from croniter import croniter
from pydantic import BaseModel, ValidationError

from harness.ops.store import HistoryStore, StoreError, default_store_url
from harness.run.flags import STORE_ENV
from harness.run.manifest import SCHEDULE_ENV, TRIGGER_ENV, now_iso, redacted_argv

SCHEDULES_FILE = "schedules.json"
LOG_FOLDER = "schedule-logs"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SKIPPED = "skipped: already running"


class ScheduleError(ValueError):
    pass


class Schedule(BaseModel):
    name: str
    cron: str
    tz: str
    argv: list[str]     # the harness command line after `python -m harness`
    cwd: str            # where the command runs (relative paths in argv are relative to it)
    store: str | None = None
    backend: str = "foreground"
    created_at: str = ""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)

    def next_firings(self, count: int = 1, after: dt.datetime | None = None) -> list[dt.datetime]:
        it = croniter(self.cron, (after or dt.datetime.now(dt.timezone.utc)).astimezone(self.zone))
        return [it.get_next(dt.datetime) for _ in range(count)]

    def matches(self, when: dt.datetime) -> bool:
        return croniter.match(self.cron, when.astimezone(self.zone))

    @property
    def shown_command(self) -> str:
        return "python -m harness " + " ".join(redacted_argv(self.argv))


def check_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    fields = len(expression.split())
    if fields not in (5, 6):
        raise ScheduleError(f"--cron {expression!r}: {fields} fields; a cron expression has 5 (minute hour "
                            f"day-of-month month day-of-week) or 6 (a 6th for seconds)")
    if not croniter.is_valid(expression):
        raise ScheduleError(f"--cron {expression!r}: not a valid cron expression (minute 0-59, hour 0-23, "
                            f"day 1-31, month 1-12, weekday 0-6; *, lists, ranges, /steps)")
    return expression


def check_tz(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"--tz {name!r}: unknown time zone (an IANA name such as Asia/Seoul, "
                            f"Europe/Berlin, UTC)") from None
    return name


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ScheduleError(f"--name {name!r}: use letters, digits, '.', '_', '-' (64 at most, not first)")
    return name


def local_tz_name() -> str:
    """The host's zone name, for cron lines that need none (cron runs in the host's time)."""
    link = pathlib.Path("/etc/localtime")
    try:
        target = str(link.resolve())
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return os.environ.get("TZ") or "UTC"


class ScheduleBook:
    """OUTPUT/schedules.json: every schedule by name. Written atomically; a broken file is one line."""

    def __init__(self, output: str | os.PathLike):
        self.output = pathlib.Path(output).resolve()
        self.path = self.output / SCHEDULES_FILE

    def load(self) -> dict[str, Schedule]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {name: Schedule.model_validate(entry) for name, entry in data.items()}
        except json.JSONDecodeError as exc:
            raise ScheduleError(f"{self.path}: line {exc.lineno}: not JSON ({exc.msg})") from None
        except (ValidationError, AttributeError) as exc:
            raise ScheduleError(f"{self.path}: not a schedules file ({str(exc).splitlines()[0]})") from None
        except OSError as exc:
            raise ScheduleError(f"{self.path}: cannot read: {exc.strerror or exc}") from None

    def save(self, schedules: dict[str, Schedule]) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: s.model_dump() for n, s in sorted(schedules.items())}, indent=2))
        tmp.replace(self.path)

    def get(self, name: str) -> Schedule:
        schedules = self.load()
        if name not in schedules:
            known = ", ".join(sorted(schedules)) or "none"
            raise ScheduleError(f"no schedule {name!r} in {self.path} (known: {known})")
        return schedules[name]

    def store_url(self, schedule: Schedule) -> str:
        return schedule.store or default_store_url(self.output)

    def lock_path(self, name: str) -> pathlib.Path:
        return self.output / f".schedule-{name}.lock"


def _record_event(url: str, kind: str, message: str, schedule: str) -> None:
    try:
        with HistoryStore(url) as store:
            store.add_event(kind, message, schedule)
    except StoreError as exc:
        print(f"history: event not recorded: {exc}", file=sys.stderr, flush=True)


def fire(book: ScheduleBook, name: str, only_if_due: bool = False) -> int:
    """Run the schedule's command once, now (`only_if_due`: only if its expression matches this minute in
    its zone, for cron lines that wake every minute). Returns the command's exit code, or 0 when skipped."""
    schedule = book.get(name)
    if only_if_due and not schedule.matches(dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)):
        return 0
    url = book.store_url(schedule)
    book.output.mkdir(parents=True, exist_ok=True)
    with open(book.lock_path(name), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another firing"
            print(f"schedule {name}: {SKIPPED} ({holder})", flush=True)
            _record_event(url, "skipped", f"{SKIPPED} ({holder})", name)
            return 0
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} since {now_iso()}\n")
        lock.flush()
        env = dict(os.environ, **{TRIGGER_ENV: "scheduled", SCHEDULE_ENV: name, STORE_ENV: url})
        print(f"schedule {name}: {schedule.shown_command} (in {schedule.cwd})", flush=True)
        try:
            code = subprocess.run([sys.executable, "-m", "harness", *schedule.argv], cwd=schedule.cwd,
                                  env=env).returncode
        except OSError as exc:
            _record_event(url, "failed", f"could not start: {exc}", name)
            print(f"schedule {name}: could not start: {exc}", file=sys.stderr, flush=True)
            return 1
        _record_event(url, "fired", f"exit {code}: {schedule.shown_command}", name)
        print(f"schedule {name}: exit {code}", flush=True)
        return code
