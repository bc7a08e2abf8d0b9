"""MLPerf CNN-DailyMail `cnn_eval.json` (records with `input`, `tok_input`, `output`) as QSL data.

Every problem is one line naming the file, the record and the field.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

REQUIRED_FIELDS = ("input", "tok_input", "output")


class DatasetError(ValueError):
    pass


@dataclass
class Dataset:
    path: pathlib.Path
    inputs: list[str]
    tok_inputs: list[list[int]]
    outputs: list[str]

    def __len__(self) -> int:
        return len(self.tok_inputs)


def read_json(path: pathlib.Path, error: type[Exception]):
    """The JSON in `path`; a bad file raises `error` with one line naming the file and the place."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def load_dataset(path: str | pathlib.Path, total_sample_count: int | None = None) -> Dataset:
    path = pathlib.Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: dataset file not found")
    data = read_json(path, DatasetError)
    records = _as_records(path, data)
    if not records:
        raise DatasetError(f"{path}: holds no records")
    if total_sample_count is not None:
        if total_sample_count > len(records):
            raise DatasetError(f"{path}: --total-sample-count {total_sample_count} exceeds its "
                               f"{len(records)} records")
        records = records[:total_sample_count]
    inputs, tok_inputs, outputs = [], [], []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DatasetError(f"{path}: record {i}: is a {type(record).__name__}, not an object")
        for name in REQUIRED_FIELDS:
            if name not in record:
                raise DatasetError(f"{path}: record {i}: missing field '{name}'")
        for name in ("input", "output"):
            if not isinstance(record[name], str):
                raise DatasetError(f"{path}: record {i}: field '{name}' is a {type(record[name]).__name__}, "
                                   f"not a string")
        tokens = record["tok_input"]
        if not isinstance(tokens, list) or not tokens:
            raise DatasetError(f"{path}: record {i}: field 'tok_input' must be a non-empty list of token ids")
        for j, token in enumerate(tokens):
            if not isinstance(token, int) or isinstance(token, bool):
                raise DatasetError(f"{path}: record {i}: field 'tok_input' item {j} is {token!r}, "
                                   f"not an integer token id")
        inputs.append(record["input"])
        tok_inputs.append(tokens)
        outputs.append(record["output"])
    return Dataset(path, inputs, tok_inputs, outputs)


def check_against_model(dataset: Dataset, vocab_size: int, max_model_len: int, max_new_tokens: int) -> None:
    """Token ids inside the vocabulary, prompts short enough for the model's context."""
    for i, tokens in enumerate(dataset.tok_inputs):
        low, high = min(tokens), max(tokens)
        if vocab_size and (low < 0 or high >= vocab_size):
            bad = low if low < 0 else high
            raise DatasetError(f"{dataset.path}: record {i}: field 'tok_input' token id {bad} at position "
                               f"{tokens.index(bad)} is outside the model's vocabulary (0..{vocab_size - 1})")
        if max_model_len and len(tokens) + max_new_tokens > max_model_len:
            raise DatasetError(f"{dataset.path}: record {i}: field 'tok_input' has {len(tokens)} tokens; with "
                               f"{max_new_tokens} new tokens that exceeds the model's max length {max_model_len}")


def _as_records(path: pathlib.Path, data) -> list:
    if isinstance(data, list):
        return data
    # pandas' default to_json layout: {column: {row: value}}
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        rows = sorted(next(iter(data.values())).keys(), key=lambda k: int(k) if str(k).isdigit() else k)
        return [{column: values.get(row) for column, values in data.items() if row in values} for row in rows]
    raise DatasetError(f"{path}: expected a JSON list of records, got a {type(data).__name__}")
