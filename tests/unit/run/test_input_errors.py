"""Bad flags and files, in-process through harness.cli.main: exit code 2 and one `error:` line
naming the file, record, field or flag. Nothing here starts a worker or a LoadGen test."""
from __future__ import annotations

import json

import pytest

from harness.cli import main

GOOD = {"input": "article", "tok_input": [1, 5, 7], "output": "summary"}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "cnn_eval.json"
    path.write_text(json.dumps([GOOD] * 32))
    return path


@pytest.fixture
def harness(tmp_path, monkeypatch, capsys):
    """Runs `python -m harness ARGS` in-process; returns (exit code, the stderr `error:` lines)."""
    monkeypatch.chdir(tmp_path)

    def run(*args) -> tuple[int, list[str]]:
        code = main([str(a) for a in ("--quiet", "--output", tmp_path / "runs", *args)])
        return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return run


def _assert_input_error(result, *fragments):
    code, lines = result
    assert code == 2 and len(lines) == 1, result
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_dataset_file(harness, tmp_path):
    result = harness("--workers", "127.0.0.1:1", "--dataset", tmp_path / "nope.json")
    _assert_input_error(result, "nope.json: dataset file not found")


def test_workers_without_dataset(harness):
    _assert_input_error(harness("--workers", "127.0.0.1:1"), "--dataset is required")


def test_interactive_needs_its_model_name(harness):
    result = harness("--scenario", "Interactive", "--model-name", "llama3_1-8b")
    _assert_input_error(result, "--scenario Interactive needs --model-name llama3_1-8b-interactive")


def test_interactive_model_name_needs_its_scenario(harness):
    result = harness("--scenario", "Server", "--model-name", "llama3_1-8b-interactive")
    _assert_input_error(result, "--model-name llama3_1-8b-interactive goes with --scenario Interactive, not Server")


def test_missing_user_conf(harness, dataset, tmp_path):
    result = harness("--workers", "127.0.0.1:1", "--dataset", dataset, "--user-conf", tmp_path / "missing.conf")
    _assert_input_error(result, "--user-conf", "missing.conf: file not found")


def test_unparsable_user_conf(harness, dataset, tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama3_1-8b.Offline.target_qps = fast\n")
    result = harness("--workers", "127.0.0.1:1", "--dataset", dataset, "--user-conf", conf)
    _assert_input_error(result, f"--user-conf {conf}:1:", "target_qps value 'fast' is not a number")


@pytest.mark.parametrize("line, fragment", [
    ("llama3_1-8b.Offline.target_qpps = 10", "unknown key 'target_qpps'"),
    ("llama3-8b.Offline.target_qps = 10", "unknown model 'llama3-8b'"),
    ("llama3_1-8b.Sever.target_qps = 10", "unknown scenario 'Sever'"),
    ("llama3_1-8b.Server.min_duration = -5", "min_duration must be >= 0 ms"),
    ("llama3_1-8b.Server.target_qps = 0", "target_qps must be > 0"),
    ("llama3_1-8b.Server.target_latency_percentile = 100.5", "must be in (0, 100]"),
    ("llama3_1-8b.Server target_qps = 1", "not of the form model.scenario.key = value"),
])
def test_user_conf_checked_before_loadgen(harness, dataset, tmp_path, line, fragment):
    conf = tmp_path / "user.conf"
    conf.write_text(f"# checked before LoadGen reads it\n{line}\n")
    result = harness("--workers", "127.0.0.1:1", "--dataset", dataset, "--user-conf", conf)
    _assert_input_error(result, f"--user-conf {conf}:2:", fragment)


def test_forced_output_tokens_refused_in_accuracy_mode(harness):
    result = harness("--mode", "AccuracyOnly", "--force-output-tokens")
    _assert_input_error(result, "--force-output-tokens is for benchmarks only")


def test_min_new_tokens_above_max(harness):
    result = harness("--min-new-tokens", "200", "--max-new-tokens", "128")
    _assert_input_error(result, "--min-new-tokens 200 exceeds --max-new-tokens 128")


def test_unknown_command(capsys):
    assert main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    assert main(["help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "package", "check", "accuracy", "synthetic"):
        assert f"  {command} " in out
