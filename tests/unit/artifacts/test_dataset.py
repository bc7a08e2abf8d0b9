"""Every bad dataset: one line naming the file, the record and the field."""
from __future__ import annotations

import json

import pytest

from harness.artifacts.dataset import DatasetError, load_dataset

GOOD = {"input": "article", "tok_input": [1, 5, 7], "output": "summary"}


def _write(tmp_path, content) -> str:
    path = tmp_path / "cnn_eval.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


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
