"""Alert delivery to a real local HTTP server, and the crontab backend against a stand-in `crontab`."""
from __future__ import annotations

import time

import pytest

from harness.ops.alerts import AlertPolicy, DeliveryError, evaluate, payload, post_webhook
from harness.ops.run_record import read_run_record
from harness.ops.schedule_backends import CrontabBackend
from harness.ops.schedules import Schedule, ScheduleBook, local_tz_name
from fake_crontab import fake_crontab_env
from helpers import write_run_dir
from webhook_server import WebhookServer


def regressed(tmp_path):
    runs = [read_run_record(write_run_dir(tmp_path, f"r{i}", tokens_per_s=t, started_at=f"2026-11-1{i}T19:00:00+00:00"))
            for i, t in enumerate([1000, 1000, 1000, 600])]
    return runs[-1], evaluate(runs[-1], runs[:-1], AlertPolicy())


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_webhook_receives_the_alert(tmp_path, fmt):
    record, alerts = regressed(tmp_path)
    with WebhookServer() as hook:
        post_webhook(hook.url, payload(record, alerts, fmt), timeout_s=5)
    [got] = hook.received
    assert got["path"] == "/hooks/bench" and got["content_type"] == "application/json"
    if fmt == "slack":
        assert "tokens_per_s dropped 40.0%" in got["body"]["text"]
    else:
        assert got["body"]["alerts"][0]["metric"] == "tokens_per_s" and got["body"]["run_id"] == "r3"


def test_webhook_timeout_is_one_line(tmp_path):
    record, alerts = regressed(tmp_path)
    with WebhookServer(delay_s=3) as hook:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            post_webhook(hook.url, payload(record, alerts), timeout_s=0.5)
        assert time.monotonic() - started < 2.5
    assert str(info.value) == "the webhook did not answer within 0.5 s"




def test_crontab_backend_installs_lists_and_removes_its_line(tmp_path, monkeypatch):
    for key, value in fake_crontab_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    table = tmp_path / "table"
    table.write_text("MAILTO=ops\n5 4 * * * backup.sh\n")
    book = ScheduleBook(tmp_path / "runs")
    backend = CrontabBackend()
    assert backend.available()
    seoul = Schedule(name="nightly", cron="0 19 * * *", tz="Asia/Seoul", argv=["campaign", "nightly.toml"],
                     cwd=str(tmp_path))
    line = backend.install(book, seoul)
    assert table.read_text().splitlines() == ["MAILTO=ops", "5 4 * * * backup.sh", line]
    # cron has no zones: another zone than the host's wakes every minute and fires only when due there
    assert line.startswith("* * * * * ") and "schedule fire nightly" in line and line.endswith("--if-due >> "
        f"{tmp_path}/runs/schedule-logs/nightly.log 2>&1 # mlperf-harness schedule: nightly")
    again = backend.install(book, seoul)  # re-adding replaces the line
    assert table.read_text().count("schedule: nightly") == 1 and again == line
    assert set(backend.installed()) == {"nightly"}
    assert backend.remove("nightly") and table.read_text() == "MAILTO=ops\n5 4 * * * backup.sh\n"
    assert not backend.remove("nightly")
    local = seoul.model_copy(update={"tz": local_tz_name()})  # the host's own zone: cron's own expression
    assert backend.install(book, local).startswith("0 19 * * * ") and "--if-due" not in table.read_text()
