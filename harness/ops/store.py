"""The history store: every run's record, its workers, and scheduler events, in SQL through SQLAlchemy.

SQLite (a file in the output folder, no server) by default; PostgreSQL (`postgresql://...`, driven by
psycopg) for a team. The full `RunRecord` is kept as JSON beside the columns that queries filter on,
so a record read back is the record written. Every failure is one `StoreError` line that names the
store with its password hidden.
"""
from __future__ import annotations

import datetime as dt
import json
import pathlib

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from harness.ops.run_record import RunRecord
from harness.run.flags import HISTORY_FILE

CONNECT_TIMEOUT_S = 5
_meta = sa.MetaData()
RUNS = sa.Table(
    "runs", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False),
    sa.Column("host", sa.String(200), nullable=False, default=""),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("git_revision", sa.String(80)),
    sa.Column("benchmark", sa.String(80)),
    sa.Column("scenario", sa.String(40)),
    sa.Column("mode", sa.String(40)),
    sa.Column("system", sa.String(200)),
    sa.Column("verdict", sa.String(40)),
    sa.Column("accepted", sa.Boolean),
    sa.Column("trigger", sa.String(20)),
    sa.Column("schedule", sa.String(200)),
    sa.Column("tokens_per_s", sa.Float),
    sa.Column("samples_per_s", sa.Float),
    sa.Column("ttft_p99_ms", sa.Float),
    sa.Column("tpot_p99_ms", sa.Float),
    sa.Column("run_dir", sa.Text),
    sa.Column("record", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "host", "started_at", name="one_record_per_run"),
)
WORKERS = sa.Table(
    "run_workers", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("address", sa.String(300)),
    sa.Column("samples", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("tokens_per_s", sa.Float),
    sa.Column("failures", sa.Integer),
    sa.Column("reissued", sa.Integer),
    sa.Column("hardware", sa.String(300)),
    sa.Column("fingerprint", sa.Text),
)
EVENTS = sa.Table(
    "events", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # e.g. "skipped", "alert", "schedule-failed"
    sa.Column("schedule", sa.String(200)),
    sa.Column("message", sa.Text, nullable=False),
)


class StoreError(RuntimeError):
    pass


def default_store_url(output: str | pathlib.Path) -> str:
    return f"sqlite:///{pathlib.Path(output).resolve() / HISTORY_FILE}"


def shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable store URL>"


def _utc(stamp: dt.datetime | None) -> dt.datetime | None:
    if stamp is None:
        return None
    return stamp.replace(tzinfo=dt.timezone.utc) if stamp.tzinfo is None else stamp.astimezone(dt.timezone.utc)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


class HistoryStore:
    def __init__(self, url: str):
        self.url = url
        self.shown = shown_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f"--store {self.shown}: not a database URL (sqlite:///FILE or "
                             f"postgresql://USER@HOST/DB)") from None
        connect_args = {}
        if parsed.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername.startswith("postgresql"):
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            folder = pathlib.Path(parsed.database).parent
            if not folder.is_dir():
                raise StoreError(f"store {self.shown}: folder {folder} does not exist")
        try:
            self.engine = sa.create_engine(parsed, connect_args=connect_args)
            _meta.create_all(self.engine)
        except ModuleNotFoundError as exc:
            raise StoreError(f"store {self.shown}: its database driver is not installed ({exc.name}); for "
                             f"PostgreSQL: pip install -e '.[postgres]'") from None
        except (SQLAlchemyError, DBAPIError) as exc:
            raise StoreError(f"store {self.shown}: {_first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _do(self, what: str, action):
        try:
            with self.engine.begin() as conn:
                return action(conn)
        except (SQLAlchemyError, DBAPIError) as exc:
            raise StoreError(f"store {self.shown}: {what}: {_first_line(exc)}") from None

    def add(self, record: RunRecord) -> bool:
        """Record a run; a run already recorded (same id, host, start) is replaced. True if it was new."""
        metrics = record.metrics
        row = dict(run_id=record.run_id, host=record.host or "", started_at=_utc(record.started_at),
                   finished_at=_utc(record.finished_at), git_revision=record.git_revision,
                   benchmark=record.benchmark, scenario=record.scenario, mode=record.mode, system=record.system,
                   verdict=record.verdict, accepted=record.accepted, trigger=record.trigger,
                   schedule=record.schedule, tokens_per_s=metrics.tokens_per_s, samples_per_s=metrics.samples_per_s,
                   ttft_p99_ms=metrics.ttft_p99_ms, tpot_p99_ms=metrics.tpot_p99_ms, run_dir=record.run_dir,
                   record=record.model_dump_json())

        def write(conn) -> bool:
            same = sa.and_(RUNS.c.run_id == row["run_id"], RUNS.c.host == row["host"],
                           RUNS.c.started_at == row["started_at"])
            old = conn.execute(sa.select(RUNS.c.id).where(same)).scalar()
            if old is not None:
                conn.execute(WORKERS.delete().where(WORKERS.c.run == old))
                conn.execute(RUNS.delete().where(RUNS.c.id == old))
            run_pk = conn.execute(RUNS.insert().values(**row)).inserted_primary_key[0]
            if record.workers:
                conn.execute(WORKERS.insert(), [dict(
                    run=run_pk, address=w.address, samples=w.samples, output_tokens=w.output_tokens,
                    tokens_per_s=w.tokens_per_s, failures=w.failures, reissued=w.reissued,
                    hardware=w.fingerprint.get("node.gpu") or w.fingerprint.get("node.cpu"),
                    fingerprint=json.dumps(w.fingerprint, sort_keys=True)) for w in record.workers])
            return old is None
        return self._do(f"cannot record {record.run_id}", write)

    def runs(self, *, benchmark: str | None = None, scenario: str | None = None, mode: str | None = None,
             system: str | None = None, verdict: str | None = None, trigger: str | None = None,
             since: dt.datetime | None = None, before: dt.datetime | None = None,
             last: int | None = None) -> list[RunRecord]:
        """Matching runs, oldest first (the last N when `last` is given)."""
        query = sa.select(RUNS.c.record)
        for column, value in ((RUNS.c.benchmark, benchmark), (RUNS.c.scenario, scenario), (RUNS.c.mode, mode),
                              (RUNS.c.system, system), (RUNS.c.verdict, verdict), (RUNS.c.trigger, trigger)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(RUNS.c.started_at >= _utc(since))
        if before is not None:
            query = query.where(RUNS.c.started_at < _utc(before))
        query = query.order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
        if last is not None:
            query = query.limit(last)
        rows = self._do("cannot read the runs", lambda conn: conn.execute(query).scalars().all())
        return [RunRecord.model_validate_json(text) for text in reversed(rows)]

    def add_event(self, kind: str, message: str, schedule: str | None = None) -> None:
        self._do("cannot record an event", lambda conn: conn.execute(EVENTS.insert().values(
            at=dt.datetime.now(dt.timezone.utc), kind=kind, schedule=schedule, message=message)))

    def events(self, last: int = 50) -> list[dict]:
        query = sa.select(EVENTS).order_by(EVENTS.c.at.desc(), EVENTS.c.id.desc()).limit(last)
        rows = self._do("cannot read the events", lambda conn: conn.execute(query).mappings().all())
        return [dict(row, at=_utc(row["at"])) for row in reversed(rows)]
