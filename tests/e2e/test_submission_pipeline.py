"""The smoke pipeline (performance, accuracy, TEST06, package, check) through the CLI: packaged,
and reported as not valid, with reasons."""
from __future__ import annotations

import json

from helpers import RESULTS, manifest_of, run_harness, system_json


def test_smoke_pipeline_is_packaged_and_reported_not_valid(hf_workers, tiny_model, tiny_dataset, smoke_conf, tmp_path):
    common = ["--workers", ",".join(hf_workers), "--dataset", tiny_dataset, "--user-conf", smoke_conf(32),
              "--output", tmp_path / "runs", "--tokenizer", tiny_model]
    for extra in (["--scenario", "Offline"], ["--scenario", "Offline", "--mode", "AccuracyOnly"],
                  ["--scenario", "Offline", "--audit", "TEST06"]):
        result = run_harness(*common, *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())  # history.sqlite lies beside them
    accuracy_run = [r for r in runs if manifest_of(r)["mode"] == "AccuracyOnly"][0]
    assert (accuracy_run / "accuracy.txt").is_file() and manifest_of(accuracy_run)["accuracy_pass"] is False
    test06 = [r for r in runs if manifest_of(r)["audit"] == "TEST06"][0]
    assert "TEST06 verification complete" in (test06 / "TEST06" / "verify_accuracy.txt").read_text()
    (tmp_path / "system.json").write_text(json.dumps(system_json(division="ignored", submitter="ignored")))
    result = run_harness("package", "--runs", *runs, "--system", tmp_path / "system.json", "--org", "Acme",
                         "--division", "closed", "--out", tmp_path / "sub", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    where = tmp_path / "sub" / RESULTS / "Offline"
    assert (where / "accuracy" / "mlperf_log_accuracy.json").stat().st_size <= 10 * 1024
    assert (where / "accuracy" / "accuracy.txt").read_text().rstrip().splitlines()[-1].startswith("hash=")
    assert (tmp_path / "sub" / "closed" / "Acme" / "src" / "harness" / "run" / "runner.py").is_file()
    check = run_harness("check", tmp_path / "sub", cwd=tmp_path)
    assert check.returncode == 1
    for reason in ("min_duration is 0 ms; a submission needs >= 600000 ms", "performance_sample_count is 32",
                   "one of Server or Interactive is required", "the accuracy run covered 32 samples"):
        assert reason in check.stdout, check.stdout
