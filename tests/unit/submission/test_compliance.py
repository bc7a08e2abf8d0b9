"""TEST06 verification: each check with a passing and a failing case."""
from __future__ import annotations

import json

import numpy as np

from harness.submission.compliance import verify_test06, write_test06

EOS = 128009


def _entry(i, ids, first=None, count=None):
    data = np.asarray(ids, "<i4").tobytes().hex().upper()
    entry = {"seq_id": i, "qsl_idx": i, "data": data, "token_count": len(ids) if count is None else count}
    if first is not None:
        entry["token_data"] = np.asarray(first, "<i4").tobytes().hex().upper()
    return entry


def _write(tmp_path, entries):
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return path


def test_all_checks_pass(tmp_path):
    path = _write(tmp_path, [_entry(0, [5, 6, EOS], first=[5]), _entry(1, [7, 8], first=[7, 8])])
    result = write_test06(tmp_path, "Server")
    assert result.passed and result.first_token is True
    text = (tmp_path / "TEST06" / "verify_accuracy.txt").read_text()
    for line in ("First token check pass: True", "EOS check pass: True", "Sample length check pass: True",
                 "TEST06 verification complete"):
        assert line in text
    assert (tmp_path / "TEST06" / "accuracy" / "mlperf_log_accuracy.json").read_text() == path.read_text()


def test_first_token_not_a_prefix_fails(tmp_path):
    path = _write(tmp_path, [_entry(0, [5, 6, 7], first=[6])])
    result = verify_test06(path, "Server")
    assert result.first_token is False and not result.passed
    assert "TEST06 verification failed" in result.text()


def test_offline_skips_the_first_token_check(tmp_path):
    path = _write(tmp_path, [_entry(0, [5, 6, 7])])
    result = verify_test06(path, "Offline")
    assert result.passed and "First token check pass: Skipped" in result.text()


def test_two_trailing_eos_fail_as_integers(tmp_path):
    path = _write(tmp_path, [_entry(0, [5, 128001, EOS], first=[5])])
    result = verify_test06(path, "Server")
    assert not result.eos and "2 trailing EOS" in result.problems[0]
    assert verify_test06(path, "Server", eos_ids=[2]).eos  # the reference default would not notice


def test_token_count_mismatch_fails(tmp_path):
    path = _write(tmp_path, [_entry(0, [5, 6, 7], first=[5], count=2)])
    result = verify_test06(path, "Server")
    assert not result.length and "Sample length check pass: False" in result.text()
