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


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-1"], "argument --seed: -1 is out of range"),
    (["--max-new-tokens", "3e9"], "argument --max-new-tokens: '3e9' is not a whole number"),
    (["--max-new-tokens", "3000000000"], "argument --max-new-tokens: 3000000000 is out of range (1..2147483647)"),
    (["--min-new-tokens", "0"], "argument --min-new-tokens: 0 is out of range"),
    (["--top-k", "-5"], "argument --top-k: -5 is out of range"),
    (["--top-p", "7"], "argument --top-p: 7 is outside (0, 1]"),
    (["--top-p", "0"], "argument --top-p: 0 is outside (0, 1]"),
    (["--temperature", "-2"], "argument --temperature: -2 is outside [0, inf)"),
    (["--temperature", "nan"], "argument --temperature: nan is outside"),
    (["--stall-timeout", "-1"], "argument --stall-timeout: -1 is outside (0, inf)"),
])
def test_bad_sampling_and_dispatch_flags(harness, args, fragment):
    _assert_input_error(harness(*args), fragment)


@pytest.mark.parametrize("workers, fragment", [
    ("127.0.0.1:50051,127.0.0.1:50051", "--workers: 127.0.0.1:50051 is given twice"),
    ("gpu1:50051, GPU1:50051", "--workers: GPU1:50051 is given twice"),
    ("gpu1", "--workers: 'gpu1' is not HOST:PORT"),
    ("gpu1:", "--workers: 'gpu1:' is not HOST:PORT"),
    ("gpu1:http", "port 'http' is not a number in 1..65535"),
    ("gpu1:70000", "port '70000' is not a number in 1..65535"),
    ("gpu1:0", "port '0' is not a number in 1..65535"),
    ("::1:50051", "write an IPv6 host in brackets"),
])
def test_bad_worker_addresses(harness, dataset, workers, fragment):
    _assert_input_error(harness("--workers", workers, "--dataset", dataset), fragment)


def test_ipv6_worker_address_is_accepted():
    from harness.run.preflight import parse_workers
    assert parse_workers("[::1]:50051,gpu2:50052") == ["[::1]:50051", "gpu2:50052"]


def test_unwritable_output(harness, dataset, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = harness("--workers", "127.0.0.1:1", "--dataset", dataset, "--output", blocker / "runs")
    _assert_input_error(result, f"--output {blocker / 'runs'}: not writable")


@pytest.mark.parametrize("token, item", [(2 ** 31, 1), (-3, 1)])
def test_token_id_outside_int32(harness, tmp_path, smoke_conf, token, item):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([GOOD] * 5 + [dict(GOOD, tok_input=[1, token, 3])]))
    result = harness("--workers", "127.0.0.1:1", "--dataset", path, "--user-conf", smoke_conf(6))
    _assert_input_error(result, f"{path}: record 5: field 'tok_input' item {item} is {token}",
                        "outside the token id range 0..2147483647")


def test_not_enough_disk_space_is_refused_before_the_run(harness, dataset, smoke_conf, tmp_path, monkeypatch):
    import collections
    import shutil
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 2 ** 20, 2 ** 20))
    result = harness("--workers", "127.0.0.1:1", "--dataset", dataset, "--user-conf", smoke_conf(32),
                     "--mode", "AccuracyOnly")
    _assert_input_error(result, "1 MiB free, but LoadGen's logs for about 32 samples need about",
                        "a full disk truncates LoadGen's logs silently")
    assert not list((tmp_path / "runs").iterdir())  # no half-made run directory left behind


def test_log_size_estimate():
    from harness.run.preflight import FIXED_BYTES, SAFETY_FACTOR, estimate_log_bytes
    accuracy = estimate_log_bytes(13368, accuracy=True, max_new_tokens=128, trace=False)
    assert accuracy == int((FIXED_BYTES + 13368 * 64 + 13368 * (2 * 4 * 128 + 100)) * SAFETY_FACTOR)
    assert estimate_log_bytes(13368, accuracy=False, max_new_tokens=128, trace=True) < accuracy
    assert estimate_log_bytes(13368, accuracy=False, max_new_tokens=128, trace=False) < 60 * 2 ** 20


def test_record_that_cannot_be_written_is_reported(tmp_path, capsys):
    from harness.run.manifest import Manifest
    from harness.run.runner import write_failure
    gone = tmp_path / "gone"
    Manifest(gone / "manifest.json", status="starting")
    write_failure(gone, "run failed: x")
    err = capsys.readouterr().err
    assert f"could not write {gone / 'manifest.json'}" in err and f"could not write {gone / 'failure.txt'}" in err
