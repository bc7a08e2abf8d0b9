"""Schedules: cron and zone checks, daylight saving through croniter, systemd calendar translation."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest

from harness.ops.schedule_backends import SystemdBackend, on_calendar
from harness.ops.schedules import Schedule, ScheduleBook, ScheduleError, check_cron, check_tz, fire


@pytest.mark.parametrize("cron,message", [("0 25 * * *", "not a valid cron expression"),
                                          ("0 19 * *", "4 fields"), ("every day", "2 fields")])
def test_wrong_cron_expressions(cron, message):
    with pytest.raises(ScheduleError, match=message):
        check_cron(cron)


def test_unknown_zone():
    with pytest.raises(ScheduleError, match="unknown time zone"):
        check_tz("Mars/Olympus")
    assert check_tz("Asia/Seoul") == "Asia/Seoul"


def test_firings_follow_the_zone_across_daylight_saving():
    schedule = Schedule(name="n", cron="30 2 * * *", tz="America/New_York", argv=["run"], cwd="/")
    firings = schedule.next_firings(3, after=dt.datetime(2026, 3, 7, 12, tzinfo=dt.timezone.utc))
    # 2026-03-08 02:30 does not exist in New York: the library fires at 03:00 EDT; then 02:30 EDT
    assert [f.astimezone(dt.timezone.utc).strftime("%m-%d %H:%M") for f in firings] == \
        ["03-08 07:00", "03-09 06:30", "03-10 06:30"]
    seoul = Schedule(name="s", cron="0 19 * * *", tz="Asia/Seoul", argv=["run"], cwd="/")
    assert seoul.next_firings(1, after=dt.datetime(2026, 11, 26, 9, tzinfo=dt.timezone.utc))[0] \
        .astimezone(dt.timezone.utc).hour == 10


def test_broken_schedules_file_is_one_line(tmp_path):
    (tmp_path / "schedules.json").write_text("{\n  bad")
    with pytest.raises(ScheduleError, match=r"schedules.json: line 2: not JSON"):
        ScheduleBook(tmp_path).load()


@pytest.mark.parametrize("cron,expected", [
    ("0 19 * * *", "*-*-* 19:00:00 Asia/Seoul"),
    ("*/15 9-11 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11:00,15,30,45:00 Asia/Seoul"),
    ("0 3 1 1,7 *", "*-01,07-01 03:00:00 Asia/Seoul"),
    ("* * * * * */20", "*-*-* *:*:00,20,40 Asia/Seoul"),
])
def test_systemd_calendar(cron, expected):
    text = on_calendar(cron, "Asia/Seoul")
    assert text == expected
    if shutil.which("systemd-analyze"):  # systemd itself agrees it is a calendar expression
        result = subprocess.run(["systemd-analyze", "calendar", text], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """systemd cannot run in CI (a container without init), so the units are not started anywhere in
    the suite; systemd's own checker verifies what `install` writes (.ci/run installs systemd for it)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run installs it)")
    backend = SystemdBackend(tmp_path / "units")
    schedule = Schedule(name="nightly", cron="*/15 9-11 * * 1-5", tz="Asia/Seoul", argv=["campaign", "n.toml"],
                        cwd=str(tmp_path))
    backend.unit_dir.mkdir()
    for name, text in backend.units(ScheduleBook(tmp_path / "runs"), schedule).items():
        (backend.unit_dir / name).write_text(text)
    paths = sorted(map(str, backend.unit_dir.iterdir()))
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and len(paths) == 2, result.stdout + result.stderr
    timer = backend.unit_dir / "mlperf-harness-nightly.timer"
    timer.write_text(timer.read_text().replace("OnCalendar=", "OnCalendar=Someday "))  # the checker does check
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "calendar" in result.stdout + result.stderr


def test_systemd_refuses_day_of_month_or_day_of_week():
    with pytest.raises(ScheduleError, match="systemd cannot say that"):
        on_calendar("0 0 1 * 1", "UTC")


def test_fire_if_due_does_nothing_outside_the_expression(tmp_path):
    book = ScheduleBook(tmp_path)
    never_now = Schedule(name="newyear", cron="0 0 1 1 *", tz="Pacific/Kiritimati", argv=["--scenario", "Offline"],
                         cwd=str(tmp_path))
    book.save({"newyear": never_now})
    now = dt.datetime.now(dt.timezone.utc)
    if never_now.matches(now.replace(second=0, microsecond=0)):
        pytest.skip("it is midnight of January 1st in Kiritimati: the schedule is due right now")
    assert fire(book, "newyear", only_if_due=True) == 0
    assert not (tmp_path / "history.sqlite").exists() and not book.lock_path("newyear").exists()  # nothing ran
