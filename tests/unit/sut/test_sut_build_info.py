"""The code revision's sources, in order: git when the root is a checkout, else the build stamp a
wheel carries, else `package:<version>`, else `unknown`; stamps checked and written only into builds."""
from __future__ import annotations

import importlib.metadata
import json
import zipfile

import pytest

from sut import build_info
from sut.build_info import (FORMAT, BuildInfoError, code_revision, source_revision, stamp_build, stamp_path,
                            stamped_revision, wheel_revision, write_stamp)
from builds import commit_all, git, needs_git

pytestmark = needs_git
OTHER = "0123456789abcdef0123456789abcdef01234567"


def tree(root, stamp: str | None = None):
    (root / "sut").mkdir(parents=True)
    (root / "sut" / "__init__.py").write_text("")
    if stamp:
        write_stamp(stamp_path(root), stamp)
    return root


def test_a_checkout_answers_with_git_before_any_stamp(tmp_path):
    root = tree(tmp_path / "repo")
    head = commit_all(root)
    write_stamp(stamp_path(root), OTHER)  # a stray stamp in a checkout never wins
    assert code_revision(root) == source_revision(root) == head


def test_changed_tracked_files_make_it_dirty_untracked_ones_do_not(tmp_path):
    root = tree(tmp_path / "repo")
    head = commit_all(root)
    (root / "notes.txt").write_text("untracked")
    assert code_revision(root) == head
    (root / "sut" / "__init__.py").write_text("# changed")
    assert code_revision(root) == f"{head}-dirty"


def test_outside_a_checkout_the_stamp_answers(tmp_path):
    assert code_revision(tree(tmp_path / "site", stamp=f"{OTHER}-dirty")) == f"{OTHER}-dirty"


def test_a_copy_inside_another_repository_is_not_that_repository(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    commit_all(outer)
    assert code_revision(tree(outer / "venv" / "site", stamp=OTHER)) == OTHER


def test_without_git_the_stamp_still_answers(tmp_path, monkeypatch):
    root = tree(tmp_path / "repo", stamp=OTHER)
    commit_all(root)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")
    monkeypatch.setattr(build_info.subprocess, "run", no_git)
    assert code_revision(root) == OTHER


def test_no_checkout_no_stamp_is_the_package_version_or_unknown(tmp_path, monkeypatch):
    root = tree(tmp_path / "site")
    monkeypatch.setattr(build_info.importlib.metadata, "version", lambda name: "9.9.9")
    assert code_revision(root) == "package:9.9.9" and source_revision(root) is None

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(build_info.importlib.metadata, "version", missing)
    assert code_revision(root) == "unknown"


@pytest.mark.parametrize("text, message", [
    ('{"format": "mlperf-harness-build-info/1",\n "revision": }', r"_build_info.json: line 2: not valid JSON"),
    ('{"revision": "%s"}' % OTHER, r"_build_info.json: key 'format' must be 'mlperf-harness-build-info/1'$"),
    ('{"format": "%s", "revision": "main"}' % FORMAT, r"_build_info.json: key 'revision' must be a git commit id"),
    ('{"format": "%s", "revision": "%s-clean"}' % (FORMAT, OTHER), r"key 'revision' must be"),
    ('[]', r"key 'format'"),
])
def test_a_malformed_stamp_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    root = tree(tmp_path / "site")
    stamp_path(root).write_text(text)
    with pytest.raises(BuildInfoError, match=message) as caught:
        code_revision(root)
    assert str(stamp_path(root)) in str(caught.value) and "\n" not in str(caught.value)


def test_stamp_build_stamps_from_git_keeps_a_copied_stamp_and_removes_a_stale_one(tmp_path):
    checkout = tree(tmp_path / "checkout")
    head = commit_all(checkout)
    build = tmp_path / "build" / "sut"
    build.mkdir(parents=True)
    assert stamp_build(checkout, build) == head and stamped_revision(build / "_build_info.json") == head
    assert not stamp_path(checkout).exists()  # the checkout itself is never stamped

    copy = tree(tmp_path / "copy", stamp=OTHER)
    assert stamp_build(copy, build) == OTHER and stamped_revision(build / "_build_info.json") == OTHER

    bare = tree(tmp_path / "bare")
    assert stamp_build(bare, build) is None and not (build / "_build_info.json").exists()


def test_write_stamp_refuses_what_is_not_a_commit(tmp_path):
    with pytest.raises(BuildInfoError, match="refusing to stamp 'package:0.1.0'"):
        write_stamp(tmp_path / "_build_info.json", "package:0.1.0")
    write_stamp(tmp_path / "s.json", OTHER)
    assert json.loads((tmp_path / "s.json").read_text()) == {"format": FORMAT, "revision": OTHER}


def test_wheel_revision_reads_the_stamp_inside_a_wheel(tmp_path):
    stamped, bare, broken = tmp_path / "a.whl", tmp_path / "b.whl", tmp_path / "c.whl"
    with zipfile.ZipFile(stamped, "w") as archive:
        archive.writestr("sut/_build_info.json", json.dumps({"format": FORMAT, "revision": OTHER}))
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("sut/__init__.py", "")
    broken.write_text("not a zip")
    assert wheel_revision(stamped) == OTHER and wheel_revision(bare) is None
    with pytest.raises(BuildInfoError, match=r"c.whl: cannot read it as a wheel"):
        wheel_revision(broken)


def test_a_detached_head_and_a_second_commit_are_followed(tmp_path):
    root = tree(tmp_path / "repo")
    first = commit_all(root)
    (root / "sut" / "more.py").write_text("x = 1\n")
    second = commit_all(root)
    assert code_revision(root) == second
    git(root, "checkout", "-q", first)
    assert code_revision(root) == first
