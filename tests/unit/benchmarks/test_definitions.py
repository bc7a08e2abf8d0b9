"""The benchmark registry and the scenario table: the facts other modules look up."""
from __future__ import annotations

import pytest

from harness.benchmarks.definitions import (BENCHMARKS, FOLDERS, LLAMA3_1_8B, MODEL_NAMES, UnknownBenchmark,
                                            by_folder, by_model_name, submission_folder)
from harness.benchmarks.scenarios import SCENARIOS


@pytest.mark.parametrize("model_name, folder, size", [
    ("llama3_1-8b", "llama3.1-8b", 13368), ("llama3_1-8b-edge", "llama3.1-8b-edge", 5000),
    ("llama3_1-8b-interactive", "llama3.1-8b", 13368)])
def test_model_names_file_under_their_folder(model_name, folder, size):
    assert submission_folder(model_name) == folder
    assert by_model_name(model_name).dataset_size == size


def test_lookups_by_folder_and_unknown_names():
    assert FOLDERS == ("llama3.1-8b", "llama3.1-8b-edge")
    assert by_folder("llama3.1-8b") is LLAMA3_1_8B and by_folder("llama2-70b") is None
    with pytest.raises(UnknownBenchmark):
        by_model_name("llama3_1-8b-huge")
    assert MODEL_NAMES == tuple(b.model_name for b in BENCHMARKS)


def test_interactive_shares_the_datacenter_rules_and_targets():
    interactive = by_model_name("llama3_1-8b-interactive")
    assert interactive.run_scenarios == ("Interactive",)
    assert interactive.accuracy_targets == LLAMA3_1_8B.accuracy_targets
    limit = LLAMA3_1_8B.latency_limits["Interactive"]
    assert (limit.ttft_p99_ns, limit.tpot_p99_ns) == (500e6, 30e6)
    assert by_folder("llama3.1-8b-edge").test06 is False and LLAMA3_1_8B.test06


def test_every_scenario_default_model_name_is_a_benchmark():
    for scenario in SCENARIOS.values():
        assert scenario.name in by_model_name(scenario.default_model_name).run_scenarios
    assert SCENARIOS["Interactive"].loadgen_scenario == "Server"
    assert [s.name for s in SCENARIOS.values() if not s.needs_first_token] == ["Offline"]
    assert {s.default_policy for s in SCENARIOS.values()} == {"pull", "least-work"}


def test_judge_against_targets():
    good = {"rouge1": "38.9", "rouge2": "16.0", "rougeL": "24.6", "rougeLsum": "35.9", "gen_len": 8_000_000,
            "gen_num": 13368}
    assert all(passed for *_, passed in LLAMA3_1_8B.judge(good))
    long = dict(good, gen_len=9_000_000)
    assert [m for m, *_, passed in LLAMA3_1_8B.judge(long) if not passed] == ["gen_len"]
    low = dict(good, rouge2="15.7")
    assert [m for m, *_, passed in LLAMA3_1_8B.judge(low) if not passed] == ["rouge2"]
    rows = {metric: required for metric, _, required, _ in LLAMA3_1_8B.judge(good)}
    assert rows["rouge1"] == ">= 38.3914 (99% of 38.7792)" and rows["gen_num"] == "== 13368"
    assert rows["gen_len"] == "7350879.6 .. 8984408.4"
