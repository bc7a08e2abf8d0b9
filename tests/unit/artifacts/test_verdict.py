import json

from harness.artifacts.verdict import read_detail_log, summary_reasons


def _line(key, value, error=False):
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": {"is_error": error,
                                                                               "is_warning": False}})


def test_valid_with_logged_errors_is_seen(tmp_path):
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("\n".join([_line("error_runtime", "Attempted to complete a sample twice.", error=True),
                               _line("result_validity", "VALID"), _line("num_errors", 1), _line("power_end", "x")]))
    assert read_detail_log(path).finished
    verdict = read_detail_log(path)
    assert verdict.valid and verdict.num_errors == 1
    assert verdict.errors == ["error_runtime: Attempted to complete a sample twice."]


def test_invalid_reasons_are_collected(tmp_path):
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("\n".join([_line("result_validity", "INVALID"), _line("result_min_duration_met", False),
                               _line("early_stopping_met", False), _line("num_errors", 0),
                               _line("power_end", "x")]))
    verdict = read_detail_log(path)
    assert not verdict.valid
    assert verdict.invalid_reasons == ["min duration not met", "early stopping not met"]


def test_missing_or_unfinished_log_is_not_valid(tmp_path):
    assert not read_detail_log(tmp_path / "absent.txt").valid
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text(_line("loadgen_version", "6.0.17"))
    verdict = read_detail_log(path)
    assert not verdict.valid and not verdict.finished and "did not finish" in verdict.invalid_reasons[0]


def test_accuracy_mode_log_is_finished_without_validity(tmp_path):
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("\n".join([_line("loadgen_version", "6.0.17"), _line("power_end", "11-26-2026 04:03:44")]))
    verdict = read_detail_log(path)
    assert verdict.finished and verdict.invalid_reasons == []


def test_summary_advice_blocks_become_one_reason_each(tmp_path):
    path = tmp_path / "mlperf_log_summary.txt"
    path.write_text("Result is : INVALID\nTTFT Early Stopping Result:\n\nTPOT Early Stopping Result:\n"
                    " * Run unsuccessful.\n * Processed 32 queries.\n * Would need to run at least 427 more queries,\n"
                    "\n=====\n")
    assert summary_reasons(path) == ["Run unsuccessful. Processed 32 queries. Would need to run at least 427 more "
                                     "queries,"]
