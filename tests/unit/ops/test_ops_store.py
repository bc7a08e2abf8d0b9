"""The SQLite history store: records round-trip, filters, re-imports replace, bad stores are one line."""
from __future__ import annotations

import datetime as dt

import pytest

from harness.ops.run_record import read_run_record
from harness.ops.store import HistoryStore, StoreError
from helpers import write_run_dir


def test_records_round_trip_and_filter(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with HistoryStore(url) as store:
        for i, (scenario, validity) in enumerate([("Offline", "VALID"), ("Server", "INVALID"), ("Offline", "VALID")]):
            record = read_run_record(write_run_dir(tmp_path / "runs", f"r{i}", scenario=scenario, validity=validity,
                                                   started_at=f"2026-11-2{i}T19:00:00+00:00"))
            assert store.add(record)
        assert not store.add(record)  # the same run again replaces, not duplicates
        assert [r.run_id for r in store.runs()] == ["r0", "r1", "r2"]
        assert [r.run_id for r in store.runs(scenario="Offline", last=1)] == ["r2"]
        assert [r.run_id for r in store.runs(verdict="INVALID")] == ["r1"]
        assert [r.run_id for r in store.runs(since=dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc))] == ["r1", "r2"]
        assert store.runs()[2] == record
        store.add_event("skipped", "skipped: already running", "nightly")
        assert store.events()[0]["message"] == "skipped: already running"


def test_corrupt_sqlite_file_is_one_line(tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as info:
        HistoryStore(f"sqlite:///{path}")
    assert str(info.value) == f"store sqlite:///{path}: file is not a database"
    assert path.read_bytes().startswith(b"this is not")  # nothing overwritten


@pytest.mark.parametrize("url,message", [
    ("postgresql://bench:s3cret@127.0.0.1:1/history", "Connection refused"),
    ("not a url", "not a database URL"),
    ("sqlite:////nonexistent-dir/h.sqlite", "folder /nonexistent-dir does not exist"),
])
def test_unreachable_or_bad_store_urls_are_one_line_without_the_password(url, message):
    with pytest.raises(StoreError) as info:
        HistoryStore(url)
    text = str(info.value)
    assert message in text and "\n" not in text and "s3cret" not in text
