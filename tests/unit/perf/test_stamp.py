import argparse

import pytest

from harness.perf.stamp import commit_arg, git_commit, revision_tag
from sut.build_info import code_revision


@pytest.mark.parametrize("value", ["c0feb4f", "c0feb4f" + "0" * 33, "abcdef1-dirty"])
def test_commit_arg_takes_object_names(value):
    assert commit_arg(value) == value


@pytest.mark.parametrize("value", ["", "HEAD", "c0feb4", "C0FEB4F", "c0feb4f-clean", "c0feb4f; rm -rf /"])
def test_commit_arg_refuses_anything_else(value):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a commit"):
        commit_arg(value)


def test_revision_tag_keeps_dirty_and_slugs_the_rest():
    assert revision_tag("c0feb4f" + "1" * 33) == "c0feb4f"
    assert revision_tag("c0feb4f" + "1" * 33 + "-dirty") == "c0feb4f-dirty"
    assert revision_tag("package:0.4.0") == "package-0.4.0"
    assert revision_tag("") == "unknown"


def test_default_commit_is_the_code_revision():
    assert git_commit() == code_revision()


def test_bad_commit_flag_is_one_line_exit_2(capsys):
    from harness.tune.engine_search import build_parser
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--engine", "sim", "--model", "m", "--dataset", "d.json", "--commit", "HEAD"])
    assert exit_.value.code == 2
    assert "argument --commit: 'HEAD' is not a commit" in capsys.readouterr().err
