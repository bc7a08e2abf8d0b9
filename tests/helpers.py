"""Helpers for tests that run `python -m harness` as a process and read its run directory, and a
submission system description with every field."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from harness.submission.rules import SYSTEM_REQUIRED_FIELDS

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = "closed/Acme/results/sys/llama3.1-8b"


def run_harness(*args: str, cwd: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    if not (args and args[0] in ("package", "check", "accuracy", "synthetic", "cluster")):
        args = ["--quiet", *args]
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def only_run_dir(output: pathlib.Path) -> pathlib.Path:
    runs = sorted(p for p in output.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def manifest_of(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def system_json(**overrides) -> dict:
    system = {f: "x" for f in SYSTEM_REQUIRED_FIELDS}
    system.update(division="closed", submitter="Acme", status="available", system_type="datacenter",
                  system_name="sys", number_of_nodes=1, accelerators_per_node=8)
    system.update(overrides)
    return system


def write_accuracy_log(path: pathlib.Path, outputs: dict[int, list[int]], duplicate_of: int | None = None) -> None:
    """An mlperf_log_accuracy.json as LoadGen writes it (int32 hex), optionally with a duplicate entry."""
    import numpy as np
    entries = [{"seq_id": i, "qsl_idx": idx, "data": np.asarray(ids, "<i4").tobytes().hex().upper(),
                "token_count": len(ids)} for i, (idx, ids) in enumerate(outputs.items())]
    if duplicate_of is not None:
        entries.append({"seq_id": 99, "qsl_idx": duplicate_of, "data": "00000000", "token_count": 1})
    path.write_text(json.dumps(entries))
