"""user.conf checked line by line before LoadGen sees it: one line naming file:line and the problem."""
from __future__ import annotations

import pathlib

import pytest

from harness.run.settings import short_run_user_conf
from harness.run.user_conf import KNOWN_KEYS, UserConfError, check_user_conf

REPO = pathlib.Path(__file__).resolve().parents[3]


def _check(tmp_path, text: str):
    path = tmp_path / "user.conf"
    path.write_text(text)
    return path, check_user_conf(path)


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "user.conf"
    path.write_text(text)
    with pytest.raises(UserConfError) as error:
        check_user_conf(path)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_repo_user_conf_and_smoke_profiles_pass(tmp_path):
    assert len(check_user_conf(REPO / "user.conf")) == 4
    for model in ("llama3_1-8b", "llama3_1-8b-edge", "llama3_1-8b-interactive"):
        _check(tmp_path, short_run_user_conf(model, 32))


def test_every_key_of_mlperf_conf_is_known():
    for line in (REPO / "mlperf.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert line.split("=")[0].strip().split(".")[-1] in KNOWN_KEYS, line


def test_comments_blanks_and_wildcards(tmp_path):
    _, entries = _check(tmp_path, "# a comment\n\n*.*.min_query_count = 10  # trailing\n"
                                  "llama3_1-8b.*.target_latency_percentile = 99.9\n")
    assert entries == [("*", "*", "min_query_count", "10"), ("llama3_1-8b", "*", "target_latency_percentile", "99.9")]


@pytest.mark.parametrize("text, fragments", [
    ("llama3_1-8b.Offline.target_qps 10\n", [":1:", "not of the form model.scenario.key = value"]),
    ("# ok\nllama3_1-8b.Offline = 10\n", [":2:", "not of the form"]),
    ("llama3_1-8b.Offline.target_qps = fast\n", [":1:", "target_qps value 'fast' is not a number"]),
    ("llama3_1-8b.Offline.target_qpps = 10\n", ["unknown key 'target_qpps'"]),
    ("llama3-8b.Offline.target_qps = 10\n", ["unknown model 'llama3-8b'"]),
    ("llama3_1-8b.Ofline.target_qps = 10\n", ["unknown scenario 'Ofline'"]),
    ("llama3_1-8b-interactive.Interactive.target_qps = 10\n", ["unknown scenario 'Interactive'",
                                                               "llama3_1-8b-interactive.Server"]),
    ("llama3_1-8b.Server.min_duration = -5\n", ["min_duration must be >= 0 ms, not -5"]),
    ("llama3_1-8b.Server.target_qps = 0\n", ["target_qps must be > 0, not 0"]),
    ("llama3_1-8b.Server.target_qps = -3\n", ["target_qps must be > 0"]),
    ("llama3_1-8b.Server.target_latency_percentile = 0\n", ["must be in (0, 100], not 0"]),
    ("llama3_1-8b.Server.target_latency_percentile = 101\n", ["must be in (0, 100], not 101"]),
    ("llama3_1-8b.Offline.min_query_count = 1.5\n", ["min_query_count must be a whole number"]),
    ("llama3_1-8b.*.sample_concatenate_permutation = 2\n", ["must be 0 or 1, not 2"]),
    ("llama3_1-8b.Offline.target_qps = nan\n", ["is not a finite number"]),
])
def test_bad_lines_are_named(tmp_path, text, fragments):
    message = _error(tmp_path, text)
    assert str(tmp_path / "user.conf") in message
    for fragment in fragments:
        assert fragment in message, message
