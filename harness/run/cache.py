"""The harness's cache of built models and datasets: where it is, and making an entry there once,
atomically, when several processes (parallel tests, local workers) may ask for it at the same time."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import tempfile
from typing import Callable


def cache_root() -> pathlib.Path:
    root = os.environ.get("MLPERF_HARNESS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mlperf-harness")
    return pathlib.Path(root)


@contextlib.contextmanager
def locked(path: pathlib.Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_dir_once(target: pathlib.Path, build: Callable[[pathlib.Path], None], note: str = "ok\n") -> pathlib.Path:
    """`target`, built by `build(directory)` in a temporary directory beside it and renamed into place;
    a `complete` file marks it finished, so an interrupted build is never taken for a good one."""
    if (target / "complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.parent / f".{target.name}.lock"):
        if not (target / "complete").exists():
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                out = pathlib.Path(tmp) / "build"
                build(out)
                (out / "complete").write_text(note)
                if target.exists():
                    os.replace(target, pathlib.Path(tmp) / "stale")
                os.replace(out, target)
    return target


def write_json_once(path: pathlib.Path, make: Callable[[], object]) -> pathlib.Path:
    """`path` holding `make()` as JSON, written once (temporary file, then renamed)."""
    if not path.exists():
        with locked(path.parent.parent / f".{path.parent.name}-{path.name}.lock"):
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(make(), indent=1))
                os.replace(tmp, path)
    return path
