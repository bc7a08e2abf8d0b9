"""manifest.json in each run directory: how the run was made and what it found."""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import pathlib
import platform
import socket
import sys
import urllib.parse

import harness
from harness.run.flags import SECRET_FLAGS
from sut.build_info import source_revision
from sut import stage_trace

TRIGGER_ENV = "MLPERF_HARNESS_TRIGGER"    # manual (unset), scheduled or campaign: who started the run
SCHEDULE_ENV = "MLPERF_HARNESS_SCHEDULE"  # the schedule's name when the scheduler started it
REDACTED = "<redacted>"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "harness": harness.__version__}
    for dist in ("mlcommons-loadgen", "grpcio", "protobuf", "numpy", "torch", "transformers", "vllm"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


CAMPAIGN_ENV = "MLPERF_HARNESS_CAMPAIGN"  # set by `python -m harness campaign` for each step it runs


class CampaignInfoError(ValueError):
    pass


def campaign_info() -> dict | None:
    """The campaign a run belongs to (its config, step, versions), as the campaign passes it in
    $MLPERF_HARNESS_CAMPAIGN (a JSON object with at least `step`), or None outside a campaign."""
    text = os.environ.get(CAMPAIGN_ENV, "").strip()
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise CampaignInfoError(f"${CAMPAIGN_ENV}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("step"), str):
        raise CampaignInfoError(f"${CAMPAIGN_ENV}: must be a JSON object with a string 'step'")
    return info


def git_revision() -> str | None:
    """The harness's commit: git's in a checkout, else its wheel's build stamp (`sut.build_info`)."""
    return source_revision(pathlib.Path(harness.__file__).resolve().parent.parent)


def redact_url(url: str) -> str:
    """A URL without its password or query (where tokens hide); the scheme, host and path stay."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, REDACTED if parts.query else "", ""))


def redacted_argv(argv: list[str]) -> list[str]:
    """The command line as the manifest keeps it: values of SECRET_FLAGS (webhook URLs, store URLs
    with passwords) are never written into a run directory."""
    out, hide = [], None
    for arg in argv:
        if hide:
            out.append(hide(arg))
            hide = None
            continue
        name, eq, value = arg.partition("=")
        if name in SECRET_FLAGS:
            if eq:
                out.append(f"{name}={_HIDE[SECRET_FLAGS[name]](value)}")
                continue
            hide = _HIDE[SECRET_FLAGS[name]]
        out.append(arg)
    return out


_HIDE = {"password": redact_url, "whole": lambda _: REDACTED}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Manifest:
    def __init__(self, path: pathlib.Path, **fields):
        self.path = path
        self.data = {"command": redacted_argv(sys.argv), "versions": package_versions(),
                     "git_revision": git_revision(), "host": socket.gethostname(), "started_at": now_iso(),
                     "trigger": os.environ.get(TRIGGER_ENV) or "manual",
                     "schedule": os.environ.get(SCHEDULE_ENV) or None,
                     # tracing slows the coordinator (64 cores: Offline 15.7k -> 14.3k samples/s, p99 2.2 -> 4.5 ms)
                     "stage_trace": str(stage_trace.TRACE.directory) if stage_trace.TRACE.enabled else None, **fields}
        self.write()

    @classmethod
    def reopen(cls, path: pathlib.Path) -> "Manifest":
        """A finished run's manifest, to add to (raises OSError or ValueError when it cannot be read)."""
        manifest = cls.__new__(cls)
        manifest.path = path
        manifest.data = json.loads(path.read_text())
        if not isinstance(manifest.data, dict):
            raise ValueError(f"{path}: not a JSON object")
        return manifest

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        """Never raises: a manifest that cannot be written (disk full, folder gone) is reported on
        stderr, and the run goes on to write what it still can."""
        self.data["updated_at"] = now_iso()
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            tmp.replace(self.path)
        except OSError as exc:
            print(f"ERROR: could not write {self.path}: {exc.strerror or exc}; the run's record is incomplete",
                  file=sys.stderr, flush=True)
