"""Git repositories and wheels made by tests: a commit of this project's packaged sources, a wheel
built from it with the project's own setup.py (`pip wheel --no-deps --no-build-isolation`)."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGED = ("setup.py", "README.md", ".gitignore", "harness", "sut")
needs_git = pytest.mark.skipif(not shutil.which("git"), reason="needs git (a checkout to build from)")
IDENTITY = ("-c", "user.name=harness-test", "-c", "user.email=harness-test@example.invalid",
            "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")


def git(root: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(root: pathlib.Path, message: str = "test") -> str:
    """Commits everything under `root` (a new repository if it is none yet); returns HEAD."""
    if not (root / ".git").exists():
        git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


def project_checkout(dest: pathlib.Path) -> str:
    """A git repository at `dest` holding this project's packaged sources, committed; returns HEAD."""
    dest.mkdir(parents=True)
    for name in PACKAGED:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "_build_info.json"))
        else:
            shutil.copy(REPO / name, dest / name)
    return commit_all(dest, "project copy")


def pip_wheel(source: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """The wheel pip builds from `source` in place (as `pip wheel .` in a checkout does)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True, timeout=120)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]
