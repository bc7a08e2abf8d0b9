"""Package and check without runs: a tree meeting every rule passes; each rule has a failing case."""
from __future__ import annotations

import json
import pathlib

import pytest

from harness.submission.check import Checker
from harness.submission.package import PackageError, build_system, truncate_accuracy_log
from harness.submission.rules import ROUND_SEEDS
from helpers import RESULTS, system_json

GOOD_ACCURACY = {"rouge1": "38.9", "rouge2": "16.0", "rougeL": "24.6", "rougeLsum": "35.9", "gen_len": 8000000,
                 "gen_num": 13368}


def _detail(path: pathlib.Path, **values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": {"is_error": False, "is_warning": False}})
             for k, v in values.items()]
    path.write_text("\n".join(lines + [":::MLLOG " + json.dumps({"key": "power_end", "value": "x", "metadata": {}})]))
    (path.parent / "mlperf_log_summary.txt").write_text("Result is : VALID\n")


def good_tree(root: pathlib.Path) -> pathlib.Path:
    org = root / "closed" / "Acme"
    (org / "src").mkdir(parents=True)
    (org / "src" / "setup.py").write_text("#\n")
    (org / "systems").mkdir()
    (org / "systems" / "sys.json").write_text(json.dumps(system_json()))
    for scenario in ("Offline", "Server"):
        where = org / "results" / "sys" / "llama3.1-8b" / scenario
        perf = dict(result_validity="VALID", num_errors=0, effective_min_duration_ms=600000,
                    effective_performance_sample_count=13368, effective_samples_per_query=13368,
                    early_stopping_met=True, requested_use_token_latencies=True, **ROUND_SEEDS)
        if scenario == "Server":
            perf.update({"result_first_token_99.00_percentile_latency_ns": 1.5e9,
                         "result_time_per_output_token_99.00_percentile_ns": 5e7,
                         "requested_server_ttft_latency": 2000000000, "effective_samples_per_query": 1})
        _detail(where / "performance" / "run_1" / "mlperf_log_detail.txt", **perf)
        _detail(where / "accuracy" / "mlperf_log_detail.txt", num_errors=0, qsl_reported_total_count=13368)
        (where / "accuracy" / "mlperf_log_accuracy.json").write_text("[" + "x" * 9000 + "]")
        truncate_accuracy_log(where / "accuracy" / "mlperf_log_accuracy.json")
        (where / "accuracy" / "accuracy.txt").write_text(f"\nResults\n\n{GOOD_ACCURACY!r}\n\nhash=abc123\n")
        (where / "TEST06" / "accuracy").mkdir(parents=True)
        (where / "TEST06" / "accuracy" / "mlperf_log_accuracy.json").write_text("[]")
        first = "Skipped" if scenario == "Offline" else "True"
        (where / "TEST06" / "verify_accuracy.txt").write_text(
            f"First token check pass: {first}\nEOS check pass: True\nSample length check pass: True\n"
            "TEST06 verification complete\n")
        (where / "measurements.json").write_text(json.dumps({
            "input_data_types": "int32", "retraining": "No", "starting_weights_filename": "Llama-3.1-8B-Instruct",
            "weight_data_types": "fp8", "weight_transformations": "quantized"}))
        (where / "user.conf").write_text("llama3_1-8b.Offline.target_qps = 60\n")
        (where / "README.md").write_text("# run\n")
    return root


def test_a_tree_meeting_every_rule_passes(tmp_path):
    assert Checker(good_tree(tmp_path)).run() == []




def _edit_detail(path: pathlib.Path, **changes):
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line[len(":::MLLOG "):])
        if record["key"] in changes:
            record["value"] = changes.pop(record["key"])
        lines.append(":::MLLOG " + json.dumps(record))
    lines += [":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": {"is_error": k.startswith("error")}})
              for k, v in changes.items()]
    path.write_text("\n".join(lines))


def _set_json(path: pathlib.Path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


OFFLINE_PERF = f"{RESULTS}/Offline/performance/run_1/mlperf_log_detail.txt"
SERVER_PERF = f"{RESULTS}/Server/performance/run_1/mlperf_log_detail.txt"
CASES = {
    "invalid run": (lambda r: _edit_detail(r / OFFLINE_PERF, result_validity="INVALID"), "LoadGen result is INVALID"),
    "loadgen errors": (lambda r: _edit_detail(r / OFFLINE_PERF, num_errors=1, error_runtime="twice"), "LoadGen error"),
    "short duration": (lambda r: _edit_detail(r / OFFLINE_PERF, effective_min_duration_ms=120000), "min_duration is 120000"),
    "sample count": (lambda r: _edit_detail(r / OFFLINE_PERF, effective_performance_sample_count=5000),
                     "performance_sample_count is 5000"),
    "samples per query": (lambda r: _edit_detail(r / OFFLINE_PERF, effective_samples_per_query=100),
                          "samples_per_query is 100"),
    "seeds": (lambda r: _edit_detail(r / OFFLINE_PERF, effective_qsl_rng_seed=1), "not the v6.1 value"),
    "token latencies off": (lambda r: _edit_detail(r / OFFLINE_PERF, requested_use_token_latencies=False),
                            "use_token_latencies is off"),
    "early stopping": (lambda r: _edit_detail(r / SERVER_PERF, early_stopping_met=False), "early stopping not met"),
    "ttft": (lambda r: _edit_detail(r / SERVER_PERF, **{"result_first_token_99.00_percentile_latency_ns": 2.1e9}),
             "p99 TTFT"),
    "tpot": (lambda r: _edit_detail(r / SERVER_PERF, **{"result_time_per_output_token_99.00_percentile_ns": 1e8}),
             "p99 TPOT"),
    "server run filed as interactive": (lambda r: (r / RESULTS / "Server").rename(r / RESULTS / "Interactive"),
                                        "wrong --model-name"),
    "accuracy target": (lambda r: (r / RESULTS / "Offline/accuracy/accuracy.txt").write_text(
        repr(dict(GOOD_ACCURACY, rouge1="30.1")) + "\nhash=abc\n"), "rouge1 30.1 does not meet"),
    "gen_len": (lambda r: (r / RESULTS / "Offline/accuracy/accuracy.txt").write_text(
        repr(dict(GOOD_ACCURACY, gen_len=9000000)) + "\nhash=abc\n"), "gen_len 9000000 does not meet"),
    "numpy ints": (lambda r: (r / RESULTS / "Offline/accuracy/accuracy.txt").write_text(
        repr(GOOD_ACCURACY).replace("8000000", "np.int64(8000000)") + "\nhash=abc\n"), "no value for gen_len"),
    "hash": (lambda r: (r / RESULTS / "Offline/accuracy/accuracy.txt").write_text(repr(GOOD_ACCURACY)),
             "has no hash= line"),
    "untruncated": (lambda r: (r / RESULTS / "Offline/accuracy/mlperf_log_accuracy.json").write_text("x" * 20000),
                    "is not truncated"),
    "partial accuracy run": (lambda r: _edit_detail(r / RESULTS / "Offline/accuracy/mlperf_log_detail.txt",
                                                    qsl_reported_total_count=5000), "covered 5000 samples"),
    "test06 lines": (lambda r: (r / RESULTS / "Server/TEST06/verify_accuracy.txt").write_text(
        "First token check pass: False\nEOS check pass: True\nSample length check pass: True\n"),
        "lacks 'First token check pass: True'"),
    "test06 without log": (lambda r: (r / RESULTS / "Server/TEST06/accuracy/mlperf_log_accuracy.json").unlink(),
                           "nothing backs the pass lines"),
    "missing test06": (lambda r: (r / RESULTS / "Server/TEST06/verify_accuracy.txt").unlink(), "missing verify_accuracy"),
    "measurements": (lambda r: _set_json(r / RESULTS / "Offline/measurements.json", retraining=""),
                     "field retraining is missing or empty"),
    "readme": (lambda r: (r / RESULTS / "Offline/README.md").write_text(""), "README.md: missing or empty"),
    "src": (lambda r: (r / "closed/Acme/src/setup.py").unlink(), "src: missing or empty"),
    "system field": (lambda r: _set_json(r / "closed/Acme/systems/sys.json", cooling=None), "missing field cooling"),
    "system zero": (lambda r: _set_json(r / "closed/Acme/systems/sys.json", accelerators_per_node=0),
                    "accelerators_per_node needs a real answer"),
    "system status": (lambda r: _set_json(r / "closed/Acme/systems/sys.json", status="beta"), "status 'beta'"),
    "system division": (lambda r: _set_json(r / "closed/Acme/systems/sys.json", division="open"),
                        "differs from the folder 'closed'"),
    "missing scenario": (lambda r: __import__("shutil").rmtree(r / RESULTS / "Server"),
                         "one of Server or Interactive is required"),
    "unexpected scenario": (lambda r: (r / RESULTS / "SingleStream").mkdir(), "unexpected scenario folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_has_a_failing_case(case, tmp_path):
    root = good_tree(tmp_path)
    mutate, message = CASES[case]
    mutate(root)
    problems = Checker(root).run()
    assert problems and any(message in p for p in problems), problems


def test_package_lists_every_missing_system_field(tmp_path):
    user = tmp_path / "system.json"
    user.write_text(json.dumps({"status": "available", "system_type": "datacenter", "cooling": ""}))
    with pytest.raises(PackageError) as error:
        build_system(user, "Acme", "closed", [])
    text = str(error.value)
    assert text.startswith(f"--system {user}: missing fields:") and "host_storage_type" in text and "cooling" in text
