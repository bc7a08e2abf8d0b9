"""Where a schedule is installed: the user's crontab or a systemd timer, behind one interface.

Each backend's `entry` is exactly what `install` writes, so `schedule add` shows it before it writes it.
cron has no time zones: an expression for the host's own zone goes into the crontab as it is; one for
another zone wakes every minute and `schedule fire --if-due` runs the command only when the expression
matches the minute in its zone (zoneinfo handles daylight saving). systemd timers take the zone in
`OnCalendar=`, so the expression is translated (croniter expands each field to a list).
"""
from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
from typing import Protocol

from croniter import croniter

from harness.ops.schedules import LOG_FOLDER, Schedule, ScheduleBook, ScheduleError, local_tz_name

MARK = "# mlperf-harness schedule:"
UNIT_PREFIX = "mlperf-harness-"
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def fire_command(book: ScheduleBook, schedule: Schedule, if_due: bool) -> list[str]:
    return [sys.executable, "-m", "harness", "schedule", "fire", schedule.name, "--output", str(book.output),
            *(["--if-due"] if if_due else [])]


def _environment() -> dict[str, str]:
    """PYTHONPATH travels into the entry when set (a checkout that is not pip-installed)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


class Backend(Protocol):
    name: str

    def available(self) -> bool: ...
    def entry(self, book: ScheduleBook, schedule: Schedule) -> str: ...
    def install(self, book: ScheduleBook, schedule: Schedule) -> str: ...
    def remove(self, name: str) -> bool: ...
    def installed(self) -> dict[str, str]: ...


class CrontabBackend:
    name = "crontab"

    def available(self) -> bool:
        return shutil.which("crontab") is not None

    def _read(self) -> list[str]:
        result = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            if "no crontab" in (result.stderr or "").lower():
                return []
            raise ScheduleError(f"crontab -l failed: {(result.stderr or '').strip().splitlines()[:1]}")
        return result.stdout.splitlines()

    def _write(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n" if lines else ""
        result = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise ScheduleError(f"crontab - failed: {(result.stderr or '').strip()}")

    def entry(self, book: ScheduleBook, schedule: Schedule) -> str:
        if len(schedule.cron.split()) != 5:
            raise ScheduleError(f"--cron {schedule.cron!r}: cron has no seconds field; use 5 fields, or --foreground")
        own_zone = schedule.tz == local_tz_name()
        when = schedule.cron if own_zone else "* * * * *"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in _environment().items())
        log = book.output / LOG_FOLDER / f"{schedule.name}.log"
        command = shlex.join(fire_command(book, schedule, if_due=not own_zone)).replace("%", r"\%")  # cron: % = newline
        return (f"{when} mkdir -p {shlex.quote(str(log.parent))} && cd {shlex.quote(schedule.cwd)} && "
                f"{env + ' ' if env else ''}{command} >> {shlex.quote(str(log))} 2>&1 {MARK} {schedule.name}")

    def install(self, book: ScheduleBook, schedule: Schedule) -> str:
        line = self.entry(book, schedule)
        lines = [old for old in self._read() if not old.endswith(f"{MARK} {schedule.name}")]
        self._write(lines + [line])
        return line

    def remove(self, name: str) -> bool:
        lines = self._read()
        kept = [line for line in lines if not line.endswith(f"{MARK} {name}")]
        if len(kept) != len(lines):
            self._write(kept)
        return len(kept) != len(lines)

    def installed(self) -> dict[str, str]:
        return {line.rsplit(MARK, 1)[1].strip(): line for line in self._read() if MARK in line}


def on_calendar(cron: str, tz: str) -> str:
    """A cron expression as systemd's OnCalendar= (exact lists; cron's day-of-month OR day-of-week
    cannot be said in one OnCalendar line and is refused)."""
    fields = croniter(cron).expanded
    minute, hour, dom, month, dow = fields[:5]
    second = fields[5] if len(fields) > 5 else [0]
    if dom != ["*"] and dow != ["*"]:
        raise ScheduleError(f"--cron {cron!r}: day-of-month and day-of-week both set (cron: either); "
                            f"systemd cannot say that in one timer; use crontab or --foreground")

    def join(values, width=2):
        return "*" if values == ["*"] else ",".join(f"{int(v):0{width}d}" for v in values)
    days = "" if dow == ["*"] else ",".join(_DAYS[int(d) % 7] for d in dow) + " "
    return f"{days}*-{join(month)}-{join(dom)} {join(hour)}:{join(minute)}:{join(second)} {tz}"


class SystemdBackend:
    name = "systemd"

    def __init__(self, unit_dir: str | os.PathLike | None = None):
        default = "/etc/systemd/system" if os.geteuid() == 0 else os.path.expanduser("~/.config/systemd/user")
        self.unit_dir = pathlib.Path(unit_dir or os.environ.get("MLPERF_HARNESS_SYSTEMD_DIR") or default)
        self.user = os.geteuid() != 0

    def available(self) -> bool:
        return pathlib.Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None

    def units(self, book: ScheduleBook, schedule: Schedule) -> dict[str, str]:
        env = "".join(f"Environment={k}={v}\n" for k, v in _environment().items())
        service = (f"[Unit]\nDescription=mlperf-harness schedule {schedule.name}: {schedule.shown_command}\n\n"
                   f"[Service]\nType=oneshot\nWorkingDirectory={schedule.cwd}\n{env}"
                   f"ExecStart={shlex.join(fire_command(book, schedule, if_due=False))}\n")
        timer = (f"[Unit]\nDescription=mlperf-harness schedule {schedule.name} ({schedule.cron} {schedule.tz})\n\n"
                 f"[Timer]\nOnCalendar={on_calendar(schedule.cron, schedule.tz)}\nPersistent=false\n\n"
                 f"[Install]\nWantedBy=timers.target\n")
        base = UNIT_PREFIX + schedule.name
        return {f"{base}.service": service, f"{base}.timer": timer}

    def entry(self, book: ScheduleBook, schedule: Schedule) -> str:
        return "\n".join(f"# {self.unit_dir / name}\n{text}" for name, text in self.units(book, schedule).items())

    def _systemctl(self, *args: str) -> None:
        command = ["systemctl", *(["--user"] if self.user else []), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ScheduleError(f"{' '.join(command)} failed: {(result.stderr or '').strip()}")

    def install(self, book: ScheduleBook, schedule: Schedule) -> str:
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.units(book, schedule).items():
            (self.unit_dir / name).write_text(text)
        self._systemctl("daemon-reload")
        self._systemctl("enable", "--now", f"{UNIT_PREFIX}{schedule.name}.timer")
        return self.entry(book, schedule)

    def remove(self, name: str) -> bool:
        timer = self.unit_dir / f"{UNIT_PREFIX}{name}.timer"
        if not timer.exists():
            return False
        self._systemctl("disable", "--now", timer.name)
        for path in (timer, timer.with_suffix(".service")):
            path.unlink(missing_ok=True)
        self._systemctl("daemon-reload")
        return True

    def installed(self) -> dict[str, str]:
        found = sorted(self.unit_dir.glob(f"{UNIT_PREFIX}*.timer")) if self.unit_dir.is_dir() else []
        return {p.stem[len(UNIT_PREFIX):]: p.read_text() for p in found}


BACKENDS: dict[str, type] = {"crontab": CrontabBackend, "systemd": SystemdBackend}


def pick_backend(name: str, dry_run: bool = False) -> Backend:
    """`auto`: systemd where it runs (it knows time zones), else crontab; neither: one line (a dry run
    shows the crontab line it would install)."""
    if name != "auto":
        backend = BACKENDS[name]()
        if not backend.available() and not dry_run:
            raise ScheduleError(f"--backend {name}: not available on this host")
        return backend
    for backend_type in (SystemdBackend, CrontabBackend):
        backend = backend_type()
        if backend.available():
            return backend
    if dry_run:
        return CrontabBackend()
    raise ScheduleError("no scheduler on this host (no crontab command, systemd not running); "
                        "use --foreground to run the scheduler in this process")
