"""What every benchmark result says about what it measured: the commit (`--commit`, checked, or this
copy's revision) and the commit's and the GPU model's short forms in result file names."""
from __future__ import annotations

import argparse
import re

from sut.build_info import code_revision

COMMIT = re.compile(r"[0-9a-f]{7,64}(?:-dirty)?")


def commit_arg(value: str) -> str:
    """argparse type of `--commit`: a hex object name (7 to 64 digits), optionally `-dirty`."""
    if not COMMIT.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a commit (7 to 64 hex digits, optionally -dirty)")
    return value


def git_commit() -> str:
    """This checkout's commit (`-dirty` with changed tracked files), else the install's stamp."""
    return code_revision()


def revision_tag(commit: str) -> str:
    """The commit as result file names carry it: 7 hex digits, `-dirty` kept; else a safe slug."""
    match = COMMIT.fullmatch(commit)
    if match:
        return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
    return re.sub(r"[^A-Za-z0-9.]+", "-", commit).strip("-") or "unknown"


def device_slug(name: str) -> str:
    """A GPU model as it goes into a result file's name: "NVIDIA H100 80GB HBM3" -> "h100-80gb-hbm3"."""
    return name.replace("NVIDIA ", "").replace(" ", "-").replace("/", "-").lower()
