"""`package` refuses what is not an official result unless told, refuses mixed harness revisions
unless told, and skips (with a warning line) folders under --runs that are not finished runs."""
from __future__ import annotations

import json

import pytest

from harness.submission.package import main
from helpers import RESULTS, system_json

REV = "0123456789abcdef0123456789abcdef01234567"


def make_run(parent, name, mode="PerformanceOnly", revision=REV, **fields):
    run = parent / name
    run.mkdir(parents=True)
    manifest = {"status": "done", "scenario": "Offline", "mode": mode, "model_name": "llama3_1-8b", "smoke": False,
                "forced_output_tokens": False, "audit": None, "git_revision": revision,
                "command": ["-m", "harness", "--scenario", "Offline"],
                "workers": [{"address": "gpu1:50051", "engine": "hf", "simulated": False}], **fields}
    (run / "manifest.json").write_text(json.dumps(manifest))
    for log in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "user.conf"):
        (run / log).write_text("x\n")
    return run


@pytest.fixture
def package(tmp_path, capsys):
    (tmp_path / "system.json").write_text(json.dumps(system_json()))

    def run(*runs, flags=()) -> tuple[int, str]:
        code = main(["--runs", *map(str, runs), "--system", str(tmp_path / "system.json"), "--org", "Acme",
                     "--division", "closed", "--out", str(tmp_path / "sub"), *flags])
        return code, capsys.readouterr().err
    return run


def _readme(tmp_path) -> str:
    return (tmp_path / "sub" / RESULTS / "Offline" / "README.md").read_text()


@pytest.mark.parametrize("fields, reason", [
    ({"smoke": True}, "a smoke run"),
    ({"workers": [{"address": "127.0.0.1:4000", "engine": "sim", "simulated": True}]},
     "simulated workers (127.0.0.1:4000)"),
    ({"forced_output_tokens": True}, "--force-output-tokens"),
])
def test_unofficial_runs_refused_unless_allowed(package, tmp_path, fields, reason):
    run = make_run(tmp_path / "runs", "perf", **fields)
    code, err = package(run)
    assert code == 2 and f"--runs {run}: not an official result: {reason}" in err and "--allow-unofficial" in err
    code, err = package(run, flags=["--allow-unofficial"])
    assert code == 0, err
    readme = _readme(tmp_path)
    assert "UNOFFICIAL: not a valid MLPerf result" in readme and reason in readme


def test_mixed_revisions_refused_unless_allowed(package, tmp_path):
    other = "fedcba9876543210fedcba9876543210fedcba98-dirty"
    perf = make_run(tmp_path / "runs", "perf")
    accuracy = make_run(tmp_path / "runs", "acc", mode="AccuracyOnly", revision=other)
    (accuracy / "mlperf_log_accuracy.json").write_text("[]")
    (accuracy / "accuracy.txt").write_text("{}\n")
    code, err = package(perf, accuracy)
    assert code == 2 and "made by different harness revisions" in err and REV in err and other in err, err
    code, err = package(perf, accuracy, flags=["--allow-mixed-revisions"])
    assert code == 0, err
    readme = _readme(tmp_path)
    assert "Mixed harness revisions" in readme and REV in readme and other in readme


def test_stale_and_foreign_folders_are_named_and_skipped(package, tmp_path):
    runs = tmp_path / "runs"
    good = make_run(runs, "perf")
    (runs / "foreign").mkdir()
    (runs / "broken").mkdir()
    (runs / "broken" / "manifest.json").write_text("{not json")
    interrupted = make_run(runs, "interrupted", status="interrupted")
    code, err = package(good, runs / "foreign", runs / "broken", interrupted)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, err
    assert f"--runs {runs / 'foreign'}: no manifest.json" in warnings[0]
    assert f"--runs {runs / 'broken'}: manifest.json is not valid JSON" in warnings[1]
    assert "status is 'interrupted', not a finished run; skipped" in warnings[2]
    assert (tmp_path / "sub" / RESULTS / "Offline" / "performance" / "run_1").is_dir()


def test_nothing_left_to_package(package, tmp_path):
    (tmp_path / "runs" / "foreign").mkdir(parents=True)
    code, err = package(tmp_path / "runs" / "foreign")
    assert code == 2 and "no finished harness run" in err
