"""Real LoadGen, real gRPC worker processes, the hf engine on the tiny model."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from helpers import manifest_of, only_run_dir, run_harness
from sut.engines.base import SamplingParams
from sut.engines.hf import HFEngine


def test_offline_performance_two_workers_share_the_run(hf_workers, tiny_dataset, smoke_conf, tmp_path):
    result = run_harness("--scenario", "Offline", "--workers", ",".join(hf_workers), "--dataset", tiny_dataset,
                         "--user-conf", smoke_conf(32), "--output", tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Result is : VALID" in result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "user.conf"):
        assert (run_dir / name).is_file(), name
    manifest = manifest_of(run_dir)
    assert manifest["validity"] == "VALID" and manifest["num_errors"] == 0 and manifest["accepted"]
    assert manifest["versions"]["mlcommons-loadgen"] == "6.0.17"
    assert len(manifest["workers"]) == 2 and all(w["engine"] == "hf" for w in manifest["workers"])
    assert manifest["effective_settings"]["scenario"] == "Offline"
    per_worker = [w["completed"] for w in manifest["dispatch"]["workers"]]
    assert all(n > 0 for n in per_worker), per_worker
    assert sum(per_worker) == manifest["dispatch"]["completed"] == 64


def test_server_performance_reports_token_latencies(hf_workers, tiny_dataset, smoke_conf, tmp_path):
    result = run_harness("--scenario", "Server", "--workers", ",".join(hf_workers), "--dataset", tiny_dataset,
                         "--user-conf", smoke_conf(32), "--output", tmp_path / "runs", "--allow-invalid",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    summary = (run_dir / "mlperf_log_summary.txt").read_text()
    assert "Scenario : Server" in summary
    schedule = json.loads((run_dir / "issue_schedule.json").read_text())
    assert len(schedule) == manifest_of(run_dir)["dispatch"]["issued"] and schedule[0][0] == 0.0
    assert all(0 <= index < 32 for _, index in schedule)
    assert "First Token latency (ns)" in summary or "TTFT" in summary
    assert "Time per Output Token" in summary or "TPOT" in summary
    assert "No errors encountered during test." in summary
    assert "Result: " in result.stdout and "num_errors 0" in result.stdout


@pytest.mark.parametrize("scenario, model_name, ttft_limit_ns", [
    ("SingleStream", "llama3_1-8b-edge", 100000000),  # edge: no TTFT limit in mlperf.conf, LoadGen default
    ("Interactive", "llama3_1-8b-interactive", 500000000)])
def test_singlestream_and_interactive(scenario, model_name, ttft_limit_ns, hf_workers, tiny_dataset, smoke_conf,
                                      tmp_path):
    result = run_harness("--scenario", scenario, "--workers", ",".join(hf_workers), "--dataset", tiny_dataset,
                         "--user-conf", smoke_conf(16, model_name), "--total-sample-count", 16,
                         "--output", tmp_path / "runs", "--allow-invalid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    manifest = manifest_of(run_dir)
    assert manifest["model_name"] == model_name and manifest["num_errors"] == 0
    assert manifest["effective_settings"]["scenario"] == ("Server" if scenario == "Interactive" else scenario)
    assert manifest["effective_settings"]["ttft_latency"] == ttft_limit_ns
    assert "first token latency" in (run_dir / "mlperf_log_summary.txt").read_text()


def _engine_outputs(model_dir, prompts: dict[int, list[int]]) -> dict[int, list[int]]:
    async def generate_all():
        engine = HFEngine(str(model_dir), dtype="float64", max_batch_size=1, threads=1)
        await engine.start()
        outputs = {}
        for index, prompt in prompts.items():
            tokens = []
            async for delta in engine.generate(str(index), prompt, SamplingParams()):
                tokens.extend(delta)
            outputs[index] = tokens
        await engine.close()
        return outputs
    return asyncio.run(generate_all())


def test_accuracy_log_holds_exactly_what_the_engine_produced(hf_workers, tiny_model, tiny_dataset, smoke_conf,
                                                             tmp_path):
    result = run_harness("--scenario", "Offline", "--mode", "AccuracyOnly", "--workers", ",".join(hf_workers),
                         "--dataset", tiny_dataset, "--user-conf", smoke_conf(32), "--output", tmp_path / "runs",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Result: accuracy run, 32 of 32 samples logged, num_errors 0" in result.stdout
    log = json.loads((only_run_dir(tmp_path / "runs") / "mlperf_log_accuracy.json").read_text())
    records = json.loads(tiny_dataset.read_text())
    assert sorted(entry["qsl_idx"] for entry in log) == list(range(32))
    logged = {e["qsl_idx"]: np.frombuffer(bytes.fromhex(e["data"]), "<i4").tolist() for e in log}
    for entry in log:
        assert entry["token_count"] == len(logged[entry["qsl_idx"]])
    expected = _engine_outputs(tiny_model, {i: records[i]["tok_input"] for i in range(0, 32, 4)})
    for index, tokens in expected.items():
        assert logged[index] == tokens, f"qsl_idx {index}"


def test_server_accuracy_first_token_is_a_prefix(hf_workers, tiny_dataset, smoke_conf, tmp_path):
    conf = smoke_conf(12, extra="llama3_1-8b.Server.target_qps = 20\n")
    result = run_harness("--scenario", "Server", "--mode", "AccuracyOnly", "--workers", ",".join(hf_workers),
                         "--dataset", tiny_dataset, "--total-sample-count", 12, "--user-conf", conf,
                         "--output", tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    log = json.loads((only_run_dir(tmp_path / "runs") / "mlperf_log_accuracy.json").read_text())
    assert len(log) == 12
    for entry in log:
        data, first = bytes.fromhex(entry["data"]), bytes.fromhex(entry["token_data"])
        assert first and data.startswith(first)
        assert entry["token_count"] == len(data) // 4 >= 2


def test_embedded_default_runs_with_no_arguments(real_model, tmp_path):
    # real_model: the session's converted SmolLM2 in the shared cache, so this run finds it converted
    result = run_harness("--scenario", "Offline", "--output", tmp_path / "runs", cwd=tmp_path, timeout=150)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "smoke run, not a valid submission run" in result.stdout
    assert "SmolLM2-135M-Instruct" in result.stdout and "Tokens per second" in result.stdout
    assert "sample output (qsl_idx 0, " in result.stdout  # real text beside the numbers
    assert "Result is : VALID" in result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    assert f"logs: {run_dir.relative_to(tmp_path)}" in result.stdout or f"logs: {run_dir}" in result.stdout
    manifest = manifest_of(run_dir)
    assert manifest["smoke"] is True and manifest["accepted"] is True
    # the workers the harness started are gone
    for i in range(2):
        assert "READY" in (run_dir / f"worker-{i}.log").read_text()
