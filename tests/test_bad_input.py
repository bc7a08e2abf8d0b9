"""Every bad input: exit code 2 and one line naming the file, record, field or flag."""
from __future__ import annotations

import json

import pytest

from conftest import run_harness
from harness.run.dataset import DatasetError, load_dataset


def _write(tmp_path, content) -> str:
    path = tmp_path / "cnn_eval.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


GOOD = {"input": "article", "tok_input": [1, 5, 7], "output": "summary"}


@pytest.mark.parametrize("content, message", [
    ("[{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3"),
    ([GOOD, {"input": "a", "output": "b"}], "record 1: missing field 'tok_input'"),
    ([GOOD, {"input": "a", "tok_input": [1, "x"], "output": "b"}], "record 1: field 'tok_input' item 1 is 'x'"),
    ([GOOD, {"input": "a", "tok_input": [1, 2.5], "output": "b"}], "record 1: field 'tok_input' item 1 is 2.5"),
    ([GOOD, {"input": "a", "tok_input": [], "output": "b"}], "record 1: field 'tok_input' must be a non-empty"),
    ([{"input": 3, "tok_input": [1], "output": "b"}], "record 0: field 'input' is a int, not a string"),
    ({"a": 1}, "expected a JSON list of records"),
    ([], "holds no records"),
])
def test_dataset_errors_name_file_record_and_field(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert str(error.value).startswith(path) and message in str(error.value)


def test_pandas_column_layout_is_read(tmp_path):
    path = _write(tmp_path, {"input": {"0": "a", "1": "b"}, "tok_input": {"0": [1], "1": [2, 3]},
                             "output": {"0": "x", "1": "y"}})
    assert load_dataset(path).tok_inputs == [[1], [2, 3]]


def _assert_input_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_dataset_file(tmp_path):
    result = run_harness("--workers", "127.0.0.1:1", "--dataset", tmp_path / "nope.json", cwd=tmp_path)
    _assert_input_error(result, "nope.json: dataset file not found")


def test_workers_without_dataset(tmp_path):
    _assert_input_error(run_harness("--workers", "127.0.0.1:1", cwd=tmp_path), "--dataset is required")


def test_interactive_needs_its_model_name(tmp_path):
    result = run_harness("--scenario", "Interactive", "--model-name", "llama3_1-8b", cwd=tmp_path)
    _assert_input_error(result, "--scenario Interactive needs --model-name llama3_1-8b-interactive")


def test_missing_user_conf(tiny_dataset, tmp_path):
    result = run_harness("--workers", "127.0.0.1:1", "--dataset", tiny_dataset, "--user-conf",
                         tmp_path / "missing.conf", cwd=tmp_path)
    _assert_input_error(result, "--user-conf", "missing.conf: file not found")


def test_unparsable_user_conf(tiny_dataset, tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama3_1-8b.Offline.target_qps = fast\n")
    result = run_harness("--workers", "127.0.0.1:1", "--dataset", tiny_dataset, "--user-conf", conf, cwd=tmp_path)
    _assert_input_error(result, f"--user-conf {conf}: a value is not a number")


def test_performance_sample_count_larger_than_dataset(tiny_dataset, tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama3_1-8b.Offline.target_qps = 1\n")  # mlperf.conf's 13368 stays in force
    result = run_harness("--workers", "127.0.0.1:1", "--dataset", tiny_dataset, "--user-conf", conf, cwd=tmp_path)
    _assert_input_error(result, "performance_sample_count_override is 13368", "has 32 records")


def test_forced_output_tokens_refused_in_accuracy_mode(tmp_path):
    result = run_harness("--mode", "AccuracyOnly", "--force-output-tokens", cwd=tmp_path)
    _assert_input_error(result, "--force-output-tokens is for benchmarks only")


def test_out_of_vocabulary_token(hf_workers, smoke_conf, tmp_path):
    path = _write(tmp_path, [GOOD, {"input": "a", "tok_input": [1, 2, 99999], "output": "b"}])
    result = run_harness("--workers", ",".join(hf_workers), "--dataset", path, "--user-conf", smoke_conf(2),
                         "--output", tmp_path / "runs", cwd=tmp_path)
    _assert_input_error(result, f"{path}: record 1: field 'tok_input' token id 99999 at position 2 is outside "
                                f"the model's vocabulary")


def test_prompt_longer_than_the_model_allows(hf_workers, smoke_conf, tmp_path):
    path = _write(tmp_path, [GOOD, {"input": "a", "tok_input": [5] * 1950, "output": "b"}])
    result = run_harness("--workers", ",".join(hf_workers), "--dataset", path, "--user-conf", smoke_conf(2),
                         "--output", tmp_path / "runs", cwd=tmp_path)
    _assert_input_error(result, f"{path}: record 1: field 'tok_input' has 1950 tokens",
                        "exceeds the model's max length 2048")
