"""manifest.json in each run directory: how the run was made and what it found."""
from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys

import harness


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
    root = pathlib.Path(harness.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class Manifest:
    def __init__(self, path: pathlib.Path, **fields):
        self.path = path
        self.data = {"command": sys.argv, "versions": package_versions(), "git_revision": git_revision(), **fields}
        self.write()

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        """Never raises: a manifest that cannot be written (disk full, folder gone) is reported on
        stderr, and the run goes on to write what it still can."""
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            tmp.replace(self.path)
        except OSError as exc:
            print(f"ERROR: could not write {self.path}: {exc.strerror or exc}; the run's record is incomplete",
                  file=sys.stderr, flush=True)
