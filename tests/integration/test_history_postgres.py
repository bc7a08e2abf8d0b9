"""The history store against a real PostgreSQL server the test starts (skipped, saying why, when it cannot)."""
from __future__ import annotations

import datetime as dt

import pytest

from harness.ops.alerts import AlertPolicy, against_history
from harness.ops.run_record import read_run_record
from harness.ops.store import HistoryStore
from helpers import run_harness, write_run_dir
from postgres_server import CannotStart, PostgresServer


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    try:
        server.start()
    except (CannotStart, OSError) as exc:
        server.stop()
        pytest.skip(f"no PostgreSQL server for this test: {exc}")
    try:
        yield server
    finally:
        server.stop()


def test_records_round_trip_and_compare_on_postgres(postgres, tmp_path):
    with HistoryStore(postgres.url) as store:
        for i, tokens in enumerate([1000, 1010, 990, 700]):
            assert store.add(read_run_record(write_run_dir(tmp_path, f"pg{i}", tokens_per_s=tokens,
                                                           started_at=f"2026-11-1{i}T19:00:00+09:00")))
        runs = store.runs(scenario="Offline")
        assert [r.run_id for r in runs][-4:] == ["pg0", "pg1", "pg2", "pg3"]
        assert runs[-1].started_at == dt.datetime(2026, 11, 13, 10, tzinfo=dt.timezone.utc)  # the same instant
        alerts = against_history(runs[-1], runs[:-1], AlertPolicy())
        assert {a.metric for a in alerts} == {"tokens_per_s", "samples_per_s"}


def test_history_import_and_list_with_a_postgres_url(postgres, tmp_path):
    runs = [write_run_dir(tmp_path, f"imp{i}", scenario="Server", started_at=f"2026-10-0{i + 1}T00:00:00+00:00")
            for i in range(2)]
    (tmp_path / "broken").mkdir()
    imported = run_harness("history", "import", *runs, tmp_path / "broken", "--store", postgres.url, cwd=tmp_path)
    assert imported.returncode == 1, imported.stderr  # one broken directory: named, the others imported
    assert "broken: no manifest.json" in imported.stderr and "2 of 3 run(s) recorded" in imported.stdout
    listed = run_harness("history", "--store", postgres.url, "--scenario", "Server", "--since", "2026-10-02",
                         cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "imp1" in listed.stdout and "imp0" not in listed.stdout
    assert postgres.password not in listed.stdout + imported.stdout + imported.stderr
