"""One run, as history, reports and alerts see it: read from a run directory alone.

A run directory holds `manifest.json` (harness/run/manifest.py) and LoadGen's `mlperf_log_detail.txt`
and `mlperf_log_summary.txt`; a run made elsewhere (another host, an older harness) reads the same
way, with the fields it lacks left empty. `read_run_record` raises `RunRecordError` with one line
naming the directory and what is wrong with it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib

from pydantic import BaseModel, Field

from harness.artifacts.metrics import summary_metrics
from harness.artifacts.verdict import read_detail_log, summary_reasons
from harness.benchmarks.definitions import UnknownBenchmark, by_model_name
from harness.run.manifest import SCHEDULE_ENV, TRIGGER_ENV

TRIGGERS = ("manual", "scheduled", "campaign")  # who started a run: recorded in its manifest from TRIGGER_ENV
NODE_PREFIX = "node."                     # a worker's hardware fingerprint in Info's versions (sut/worker/node.py)
VERDICT_FAILED, VERDICT_INTERRUPTED = "FAILED", "INTERRUPTED"


class RunRecordError(ValueError):
    pass


class Metrics(BaseModel):
    tokens_per_s: float | None = None
    samples_per_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p90_ms: float | None = None
    tpot_p99_ms: float | None = None
    accuracy: dict[str, float] = Field(default_factory=dict)  # e.g. rouge1..rougeLsum, gen_len, gen_num
    accuracy_pass: bool | None = None


class WorkerRecord(BaseModel):
    address: str
    name: str | None = None
    samples: int = 0
    output_tokens: int = 0
    tokens_per_s: float | None = None  # its output tokens over the run's dispatch time
    failures: int = 0
    reissued: int = 0
    state: str | None = None
    last_error: str | None = None
    engine: str | None = None
    model: str | None = None
    fingerprint: dict[str, str] = Field(default_factory=dict)  # node.* (GPU, driver, CUDA, clocks), versions


class RunRecord(BaseModel):
    run_id: str
    run_dir: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    host: str | None = None
    git_revision: str | None = None
    harness_version: str | None = None
    command: list[str] = Field(default_factory=list)
    config: dict = Field(default_factory=dict)
    benchmark: str | None = None
    model_name: str | None = None
    scenario: str | None = None
    mode: str | None = None
    smoke: bool = False
    status: str = "unknown"
    verdict: str = "MISSING"   # LoadGen's VALID/INVALID, or FAILED/INTERRUPTED when the harness stopped
    accepted: bool = False
    reasons: list[str] = Field(default_factory=list)
    num_errors: int = 0
    metrics: Metrics = Field(default_factory=Metrics)
    workers: list[WorkerRecord] = Field(default_factory=list)
    system: str = ""           # the hardware the run ran on, for comparing like with like (system_key)
    trigger: str = "manual"
    schedule: str | None = None
    alerts: list[str] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str | None, str | None, str]:
        """What a run is compared on: the same benchmark, scenario and system."""
        return self.benchmark, self.scenario, self.system


def trigger_from_env(environ=os.environ) -> tuple[str, str | None]:
    trigger = environ.get(TRIGGER_ENV) or "manual"
    if trigger not in TRIGGERS:
        raise RunRecordError(f"{TRIGGER_ENV}={trigger!r}: must be one of {', '.join(TRIGGERS)}")
    return trigger, environ.get(SCHEDULE_ENV) or None


def system_key(workers: list[WorkerRecord], label: str | None = None) -> str:
    """The hardware behind the run: worker count and each worker's GPU (or CPU) model. Engine args,
    model weights and code are left out on purpose: a change there is what a regression alert is for."""
    if label:
        return label
    kinds = sorted(w.fingerprint.get("node.gpu") or w.fingerprint.get("node.cpu") or w.engine or "?"
                   for w in workers)
    digest = hashlib.sha256(json.dumps(kinds).encode()).hexdigest()[:12]
    return f"{len(workers)}x-{digest}" if workers else ""


def _time(value) -> dt.datetime | None:
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def _manifest(run_dir: pathlib.Path) -> dict:
    path = run_dir / "manifest.json"
    if not run_dir.is_dir():
        raise RunRecordError(f"{run_dir}: not a directory")
    if not path.is_file():
        raise RunRecordError(f"{run_dir}: no manifest.json (not a harness run directory)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise RunRecordError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunRecordError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RunRecordError(f"{path}: not a JSON object")
    return data


def _workers(manifest: dict) -> list[WorkerRecord]:
    dispatch = manifest.get("dispatch") or {}
    elapsed = dispatch.get("elapsed_s") or 0
    infos = {info.get("address"): info for info in manifest.get("workers") or [] if isinstance(info, dict)}
    records = []
    for row in dispatch.get("workers") or []:
        info = infos.get(row.get("address"), {})
        versions = {str(k): str(v) for k, v in (info.get("versions") or {}).items()}
        fingerprint = {k: v for k, v in versions.items() if k.startswith(NODE_PREFIX)}
        fingerprint.update({f"version.{k}": v for k, v in versions.items()
                            if not k.startswith((NODE_PREFIX, "identity."))})
        fingerprint.update({k: v for k, v in versions.items() if k.startswith("identity.")})
        tokens = int(row.get("output_tokens") or 0)
        records.append(WorkerRecord(
            address=str(row.get("address")), name=row.get("name"), samples=int(row.get("completed") or 0),
            output_tokens=tokens, tokens_per_s=round(tokens / elapsed, 3) if elapsed else None,
            failures=int(row.get("failures") or 0), reissued=int(row.get("reissued") or 0),
            state=row.get("state"), last_error=row.get("last_error"), engine=info.get("engine"),
            model=info.get("model"), fingerprint=fingerprint))
    return records


def _accuracy(run_dir: pathlib.Path, manifest: dict) -> tuple[dict[str, float], bool | None]:
    results, passed = manifest.get("accuracy"), manifest.get("accuracy_pass")
    if not results and (run_dir / "accuracy.json").is_file():  # scored later with `harness accuracy`
        try:
            scored = json.loads((run_dir / "accuracy.json").read_text())
            results = scored.get("results")
            passed = all(check.get("pass") for check in scored.get("checks") or [{}])
        except (OSError, ValueError, AttributeError):
            results = None
    numbers = {str(k): float(v) for k, v in (results or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return numbers, passed


def _verdict(run_dir: pathlib.Path, manifest: dict) -> tuple[str, list[str], int, dict]:
    status = manifest.get("status")
    detail = read_detail_log(run_dir / "mlperf_log_detail.txt")
    reasons = list(manifest.get("invalid_reasons") or [])
    if status == "failed":
        return VERDICT_FAILED, [str(manifest.get("failure") or "the run failed")] + reasons, detail.num_errors, \
            detail.results
    if status == "interrupted":
        return VERDICT_INTERRUPTED, [str(manifest.get("failure") or "interrupted")], detail.num_errors, detail.results
    if status != "done":
        return VERDICT_FAILED, [f"the run ended in status {status!r} (the process died?)"], detail.num_errors, \
            detail.results
    if not reasons and not detail.valid:
        reasons = detail.invalid_reasons + summary_reasons(run_dir / "mlperf_log_summary.txt")
    validity = manifest.get("validity") or detail.validity
    if manifest.get("mode") == "AccuracyOnly" and validity == "MISSING":  # LoadGen judges performance only
        validity = "VALID" if manifest.get("accepted") else "INVALID"
    return str(validity), reasons, int(manifest.get("num_errors") or detail.num_errors), detail.results


def read_run_record(run_dir: str | os.PathLike) -> RunRecord:
    run_dir = pathlib.Path(run_dir).resolve()
    manifest = _manifest(run_dir)
    verdict, reasons, num_errors, results = _verdict(run_dir, manifest)
    metrics = Metrics(**summary_metrics(results))
    metrics.accuracy, metrics.accuracy_pass = _accuracy(run_dir, manifest)
    model_name = manifest.get("model_name")
    try:
        benchmark = by_model_name(model_name).folder if model_name else None
    except UnknownBenchmark:
        benchmark = model_name
    started = _time(manifest.get("started_at")) or dt.datetime.fromtimestamp(
        (run_dir / "manifest.json").stat().st_ctime, dt.timezone.utc)
    workers = _workers(manifest)
    versions = manifest.get("versions") or {}
    config = {key: manifest.get(key) for key in ("dataset", "samples", "sampling", "policy", "audit",
                                                 "forced_output_tokens", "effective_settings", "link_security")
              if key in manifest}
    return RunRecord(
        run_id=run_dir.name, run_dir=str(run_dir), started_at=started,
        finished_at=_time(manifest.get("updated_at")) if manifest.get("status") != "running" else None,
        host=manifest.get("host"), git_revision=manifest.get("git_revision"),
        harness_version=versions.get("harness"), command=[str(a) for a in manifest.get("command") or []],
        config=config, benchmark=benchmark, model_name=model_name, scenario=manifest.get("scenario"),
        mode=manifest.get("mode"), smoke=bool(manifest.get("smoke")), status=str(manifest.get("status")),
        verdict=verdict, accepted=bool(manifest.get("accepted")), reasons=reasons, num_errors=num_errors,
        metrics=metrics, workers=workers, system=system_key(workers, manifest.get("system_name")),
        trigger=manifest.get("trigger") or "manual", schedule=manifest.get("schedule"),
        alerts=list(manifest.get("alerts") or []))
