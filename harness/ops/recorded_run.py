"""`python -m harness run`: one LoadGen test (harness/run/runner.py), then its record in the history and
its alerts. Neither can fail the run: a store or webhook that fails prints one line and the run's exit
code stands, except that an accepted run with a regression alert exits 4.

Exit codes: those of the run (0, 1, 2, 3, 128 + signal), and 4: accepted by LoadGen's rules, but a
regression against the history (throughput, p99 latency, accuracy) or a worker diverging from its
peers raised an alert.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from harness.ops.run_record import RunRecord, RunRecordError, trigger_from_env
from harness.run import runner
from harness.run.manifest import Manifest
from harness.run.run_report import EXIT_OK

EXIT_ALERT = 4
EXIT_CHANGING_KINDS = ("regression", "worker-divergence")  # a verdict alert already has its own exit code


def history_of(store, record: RunRecord, window: int) -> list[RunRecord]:
    """The comparable runs started before this one (a few more than the window: some may not count)."""
    return store.runs(benchmark=record.benchmark, scenario=record.scenario, mode=record.mode,
                      system=record.system, before=record.started_at, last=window * 4)


def record_and_alert(args: argparse.Namespace, run_dir: pathlib.Path, code: int) -> int:
    if args.no_history:
        return code
    # imported here: a run refused at its flags should not wait for SQLAlchemy
    from harness.ops.alerts import AlertPolicy, DeliveryError, evaluate, payload, post_webhook
    from harness.ops.run_record import read_run_record
    from harness.ops.store import HistoryStore, StoreError, default_store_url
    try:
        record = read_run_record(run_dir)
    except RunRecordError as exc:
        print(f"history: not recorded: {exc}", file=sys.stderr, flush=True)
        return code
    url = args.store or default_store_url(args.output)
    store = None
    earlier: list[RunRecord] = []
    try:
        store = HistoryStore(url)
        earlier = history_of(store, record, args.alert_window)
    except StoreError as exc:
        print(f"history: not recorded, not compared: {exc}", file=sys.stderr, flush=True)
    policy = AlertPolicy.from_args(args)
    alerts = evaluate(record, earlier, policy)
    record.alerts = [alert.message for alert in alerts]
    if alerts:
        _note_in_manifest(run_dir, record)
    if store is not None:
        try:
            with store:
                store.add(record)
                for alert in alerts:
                    store.add_event("alert", f"{record.run_id}: {alert.message}", record.schedule)
            print(f"history: recorded {record.run_id} in {store.shown}", flush=True)
        except StoreError as exc:
            print(f"history: not recorded: {exc}", file=sys.stderr, flush=True)
    for alert in alerts:
        print(f"ALERT: {alert.message}", flush=True)
    if alerts and args.alert_webhook:
        try:
            post_webhook(args.alert_webhook, payload(record, alerts, args.alert_format), args.alert_timeout)
            print(f"alerts: {len(alerts)} posted to the webhook", flush=True)
        except DeliveryError as exc:
            print(f"alerts: not delivered: {exc}; the run's result stands", file=sys.stderr, flush=True)
    if code == EXIT_OK and any(alert.kind in EXIT_CHANGING_KINDS for alert in alerts):
        print(f"exit {EXIT_ALERT}: the run is accepted, but raised a regression alert", file=sys.stderr, flush=True)
        return EXIT_ALERT
    return code


def _note_in_manifest(run_dir: pathlib.Path, record: RunRecord) -> None:
    """The alerts also go into the manifest, so reports and a later `history import` see them."""
    try:
        Manifest.reopen(run_dir / "manifest.json").update(alerts=record.alerts)
    except (OSError, ValueError) as exc:
        print(f"alerts: not written to the manifest: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        trigger_from_env()  # a scheduler or campaign that sets a wrong trigger is told before the run
    except RunRecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return runner.EXIT_INPUT
    return runner.main(argv, after_run=record_and_alert)
