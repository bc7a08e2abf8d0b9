"""Datasets the workers' model cannot take: checked against every worker's Info before the test
starts, in-process through harness.cli.main against real hf workers."""
from __future__ import annotations

import json

from harness.cli import main

GOOD = {"input": "article", "tok_input": [1, 5, 7], "output": "summary"}


def _run(tmp_path, capsys, hf_workers, smoke_conf, records) -> tuple[str, int, list[str]]:
    path = tmp_path / "cnn_eval.json"
    path.write_text(json.dumps(records))
    code = main(["--quiet", "--workers", ",".join(hf_workers), "--dataset", str(path), "--user-conf",
                 str(smoke_conf(2)), "--output", str(tmp_path / "runs")])
    return str(path), code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_out_of_vocabulary_token(hf_workers, smoke_conf, tmp_path, capsys):
    path, code, lines = _run(tmp_path, capsys, hf_workers, smoke_conf,
                             [GOOD, {"input": "a", "tok_input": [1, 2, 99999], "output": "b"}])
    assert code == 2 and len(lines) == 1, lines
    assert f"{path}: record 1: field 'tok_input' token id 99999 at position 2 is outside the model's vocabulary" \
        in lines[0]


def test_prompt_longer_than_the_model_allows(hf_workers, smoke_conf, tmp_path, capsys):
    path, code, lines = _run(tmp_path, capsys, hf_workers, smoke_conf,
                             [GOOD, {"input": "a", "tok_input": [5] * 1950, "output": "b"}])
    assert code == 2 and len(lines) == 1, lines
    assert f"{path}: record 1: field 'tok_input' has 1950 tokens" in lines[0]
    assert "exceeds the model's max length 2048" in lines[0]
