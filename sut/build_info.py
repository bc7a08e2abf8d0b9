"""Which commit this code is: git in a checkout, else the stamp a wheel build wrote, else the version.

A copy installed from a wheel has no .git, so `setup.py`'s build step (and `cluster install`,
which builds from a copy of the sources) writes `sut/_build_info.json` into the built package:
the commit of the checkout it was built from, with `-dirty` when tracked files had changes. The
stamp exists only in builds (never in a checkout: git-ignored, written under build/ or a copy).

Stdlib only: `setup.py` loads this file by path, before anything is installed.
"""
from __future__ import annotations

import importlib.metadata
import json
import pathlib
import re
import subprocess
import zipfile

PACKAGE = "mlperf-llm-harness"
STAMP_NAME = "_build_info.json"
FORMAT = "mlperf-harness-build-info/1"
SOURCE_ROOT = pathlib.Path(__file__).resolve().parent.parent  # the folder holding sut/ and harness/
REVISION = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?(?:-dirty)?")  # sha-1 or sha-256 object names


class BuildInfoError(ValueError):
    pass


def stamp_path(root: pathlib.Path) -> pathlib.Path:
    return root / "sut" / STAMP_NAME


def checkout_revision(root: pathlib.Path) -> str | None:
    """`<sha>` or `<sha>-dirty` (tracked files changed) when `root` is the top of a git work tree;
    None otherwise, including when `root` merely sits inside some other repository (a venv in one)."""
    root = root.resolve()
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if top.returncode != 0:
            return None
        toplevel, sha = top.stdout.split()[:2]
        if pathlib.Path(toplevel).resolve() != root:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if dirty.returncode != 0:
        return None
    return sha + ("-dirty" if dirty.stdout.strip() else "")


def stamped_revision(path: pathlib.Path) -> str | None:
    """The revision in a build stamp; None when there is none. A stamp that is there but
    unreadable or malformed is an error naming the file and the key."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildInfoError(f"{path}: cannot read the build stamp ({exc})") from None
    return parse_stamp(text, str(path))


def parse_stamp(text: str, where: str) -> str:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BuildInfoError(f"{where}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BuildInfoError(f"{where}: key 'format' must be {FORMAT!r}")
    revision = data.get("revision")
    if not isinstance(revision, str) or not REVISION.fullmatch(revision):
        raise BuildInfoError(f"{where}: key 'revision' must be a git commit id, optionally with '-dirty' "
                             f"(got {revision!r})")
    return revision


def wheel_revision(wheel: pathlib.Path) -> str | None:
    """The stamp inside a built wheel; None when it has none (built without git)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read(f"sut/{STAMP_NAME}").decode()
    except KeyError:
        return None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise BuildInfoError(f"{wheel}: cannot read it as a wheel ({exc})") from None
    return parse_stamp(text, f"{wheel}!sut/{STAMP_NAME}")


def write_stamp(path: pathlib.Path, revision: str) -> None:
    if not REVISION.fullmatch(revision):
        raise BuildInfoError(f"{path}: refusing to stamp {revision!r}: not a git commit id")
    path.write_text(json.dumps({"format": FORMAT, "revision": revision}) + "\n")


def stamp_build(source: pathlib.Path, package_dir: pathlib.Path) -> str | None:
    """Stamps the `sut` package folder of a build from `source`: the checkout's revision, else the
    stamp `source` already carries (a copy of a checkout, an unpacked build); with neither, removes
    any stamp a previous build left in `package_dir`. Returns what it stamped."""
    revision = checkout_revision(source) or stamped_revision(stamp_path(source))
    target = package_dir / STAMP_NAME
    target.unlink(missing_ok=True)  # never written through: an sdist's release tree hard-links its files
    if revision:
        write_stamp(target, revision)
    return revision


def source_revision(root: pathlib.Path = SOURCE_ROOT) -> str | None:
    """The commit the code under `root` is: git when `root` is a checkout, else its build stamp."""
    return checkout_revision(root) or stamped_revision(stamp_path(root))


def code_revision(root: pathlib.Path = SOURCE_ROOT) -> str:
    """`source_revision`, else `package:<version>` (installed without a stamp), else `unknown`."""
    revision = source_revision(root)
    if revision:
        return revision
    try:
        return f"package:{importlib.metadata.version(PACKAGE)}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
