"""A wheel built from a checkout carries the checkout's commit: installed where there is no .git,
the worker's `identity.revision` and the harness's manifest revision are that commit (with `-dirty`
when tracked files had changes), and the checkout itself is never stamped."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

from harness.deploy import install
from sut.build_info import wheel_revision
from builds import needs_git, pip_wheel, project_checkout

pytestmark = needs_git
PROBE = ("import json; from sut.worker.identity import code_revision, SOURCE_ROOT; "
         "from harness.run.manifest import git_revision; "
         "print(json.dumps([str(SOURCE_ROOT), code_revision(SOURCE_ROOT), git_revision()]))")


def run_installed(target: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, *args], cwd=target.parent, env=env, capture_output=True, text=True,
                          timeout=60)


def installed_revisions(wheel: pathlib.Path, target: pathlib.Path) -> tuple[str, str]:
    """Installs `wheel` into `target` (no .git there) and asks the installed copy its revisions."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=120)
    probe = run_installed(target, "-c", PROBE)
    assert probe.returncode == 0, probe.stderr
    root, worker, harness = json.loads(probe.stdout)
    assert pathlib.Path(root) == target.resolve()  # the installed copy answered, not a checkout
    return worker, harness


def test_a_wheel_built_in_a_checkout_reports_its_commit_once_installed_a_bad_stamp_stops_the_worker(tmp_path):
    checkout = tmp_path / "checkout"
    head = project_checkout(checkout)
    wheel = pip_wheel(checkout, tmp_path / "clean")
    assert wheel_revision(wheel) == head
    runtime_files = {str(f.relative_to(checkout)) for package in ("harness", "sut") for f in (checkout / package).rglob("*")
                     if f.is_file() and f.suffix in (".py", ".html", ".json", ".proto") and "__pycache__" not in f.parts}
    assert runtime_files - set(zipfile.ZipFile(wheel).namelist()) == set()  # every module, page and data file
    site = tmp_path / "site"
    assert installed_revisions(wheel, site) == (head, head)
    assert not (checkout / "sut" / "_build_info.json").exists()

    stamp = site / "sut" / "_build_info.json"  # malformed: the worker exits 2 before loading its engine
    stamp.write_text(stamp.read_text().replace(head, f"v{head}"))
    worker = run_installed(site, "-m", "sut.worker", "--engine", "sim", "--model", "sim", "--port", "0")
    assert worker.returncode == 2 and worker.stdout == "", worker
    assert worker.stderr.splitlines() == [f"worker: {stamp}: key 'revision' must be a git commit id, optionally "
                                          f"with '-dirty' (got 'v{head}')"]

    init = checkout / "sut" / "__init__.py"
    init.write_text(init.read_text() + "# changed\n")  # a tracked change; the build/ folder of the first stays
    assert wheel_revision(pip_wheel(checkout, tmp_path / "dirty")) == f"{head}-dirty"


def test_cluster_install_builds_from_a_copy_stamped_with_the_checkouts_commit(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    head = project_checkout(checkout)
    monkeypatch.setattr(install, "CHECKOUT", checkout)
    (tmp_path / "out").mkdir()
    assert wheel_revision(install.build_wheel(tmp_path / "out")) == head
    assert not (checkout / "sut" / "_build_info.json").exists()


def test_an_sdist_carries_the_commit_to_the_wheel_built_from_it(tmp_path):
    checkout = tmp_path / "checkout"
    head = project_checkout(checkout)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "sdist")], cwd=checkout,
                   check=True, capture_output=True, timeout=120)
    with tarfile.open(next((tmp_path / "sdist").glob("*.tar.gz"))) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    unpacked = next((tmp_path / "unpacked").iterdir())
    assert wheel_revision(pip_wheel(unpacked, tmp_path / "wheel")) == head
    assert not (checkout / "sut" / "_build_info.json").exists()
