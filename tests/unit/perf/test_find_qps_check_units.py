"""The find-qps check's grid arithmetic, its projection and its flags (no processes)."""
from __future__ import annotations

import argparse

import pytest

from harness.perf import find_qps_check as fc


@pytest.mark.parametrize("found, runs, step", [
    (100.0, 1, 100.0),   # at the upper bound: the grid's first run is VALID
    (120.0, 1, 100.0),   # above it (a Server run can't beat Offline, but the sum must not break)
    (99.9, 2, 95.0),     # just below the top: the next step down
    (95.0, 2, 95.0),     # exactly on a step counts that step
    (90.0, 3, 90.0),     # 1 - 2 x 0.05 in floating point is still the 90 % step
    (76.0, 6, 75.0),
    (5.0, 20, 5.0),      # the lowest step: every step of the grid
    (5.5, 20, 5.0),
    (4.0, 20, None),     # below the lowest step: the grid never reaches it
])
def test_grid_steps_walk_down_from_the_bound_to_the_found_value(found, runs, step):
    got_runs, got_step = fc.grid_steps(100.0, found)
    assert got_runs == runs
    assert got_step == pytest.approx(step) if step is not None else got_step is None


def test_grid_estimate_prices_each_run_at_its_length_plus_the_measured_overhead():
    g = fc.grid_estimate(100.0, 76.0, True, 60.0, 8.0)
    assert g["runs"] == 6 and g["estimate_s"] == pytest.approx(6 * 68.0)
    # found x 1.10 = 83.6 was INVALID: a grid could stop at 80 at the earliest (5 runs)
    assert g["fewest_runs"] == 5 and g["fewest_s"] == pytest.approx(5 * 68.0)
    assert "6 run(s) x (60 s + 8.0 s overhead)" in g["how"]
    assert g["full_runs"] == 20 and g["full_s"] == pytest.approx(20 * 68.0)  # every step, knee unknown
    assert g["up_runs"] == 16 and g["up_s"] == pytest.approx(16 * 68.0)  # 5 % .. 75 % VALID, then 80 % INVALID
    top = fc.grid_estimate(100.0, 100.0, True, 60.0, 8.0)
    assert top["runs"] == top["fewest_runs"] == 1 and top["estimate_s"] == pytest.approx(68.0)
    assert top["up_runs"] == 20  # every step VALID, none above the bound to fail
    lowest = fc.grid_estimate(100.0, 5.0, True, 60.0, 8.0)
    assert lowest["runs"] == 20 and lowest["up_runs"] == 2  # the lowest step VALID, 10 % INVALID
    below = fc.grid_estimate(100.0, 4.0, True, 60.0, 8.0)
    assert below["runs"] == 20 and below["step_qps"] is None and below["up_runs"] == 1
    unknown = fc.grid_estimate(100.0, 76.0, False, 60.0, 8.0)  # +10 % was VALID: no lower bound
    assert unknown["fewest_runs"] is None and unknown["fewest_s"] is None


def test_the_projection_keeps_each_runs_overhead_and_scales_its_length():
    probes = [{"kind": "offline", "duration_ms": 0, "wall_s": 20.0},
              {"kind": "probe", "duration_ms": 15000, "wall_s": 25.0},
              {"kind": "repeat", "duration_ms": 30000, "wall_s": 41.0},
              {"kind": "confirm", "duration_ms": 60000, "wall_s": 72.0}]
    assert fc.full_length(probes, 15000, 60000) == pytest.approx(20 + (60 + 10) + (120 + 11) + (600 + 12))
    # after an escalation: a 30-s probe is two base probes (120 s), its 60-s repeat four (240 s)
    escalated = probes + [{"kind": "probe", "duration_ms": 30000, "wall_s": 34.0},
                          {"kind": "repeat", "duration_ms": 60000, "wall_s": 65.0}]
    assert fc.full_length(escalated, 15000, 60000) == pytest.approx(fc.full_length(probes, 15000, 60000)
                                                                    + (120 + 4) + (240 + 5))


def test_the_goal_is_judged_against_the_grid_of_every_step_and_the_walk_down_is_reported_beside_it():
    def probe(kind, qps, duration_ms, wall_s, validity="VALID"):
        return {"kind": kind, "qps": qps, "duration_ms": duration_ms, "wall_s": wall_s, "ratio": 0.5,
                "validity": validity, "ttft_p99_ms": 1.0, "tpot_p99_ms": 1.0, "samples_per_s": qps}
    probes = [probe("offline", 0, 0, 20.0), *[probe("probe", q, 15000, 25.0) for q in (80, 90, 85, 86)],
              probe("repeat", 86, 30000, 41.0), probe("confirm", 85, 60000, 70.0)]
    state = {"result": {"found_qps": 85.0, "upper_qps": 100.0, "confirm": {"validity": "VALID"}}, "probes": probes}
    plus = {"qps": 93.5, "validity": "INVALID", "duration_ms": 60000, "wall_s": 70.0}
    args = argparse.Namespace(confirm_duration_ms=60000, probe_duration_ms=15000)
    report = {"find_qps_wall_s": 260.0}
    fc.summarize(report, state, plus, args)
    assert report["within_5pct"] is True
    # a grid of all 20 steps at 60 s + 10 s: 1400 s; the walk down to 85 %: 4 runs, 280 s
    assert report["ratio_full_grid"] == pytest.approx(260 / 1400) and report["ratio_met"] is True
    assert report["ratio"] == pytest.approx(260 / 280)
    projection = report["projection_600s"]
    assert projection["ratio"] == pytest.approx(projection["find_qps_s"] / (20 * 610))
    assert projection["ratio_walk_down"] == pytest.approx(projection["find_qps_s"] / (4 * 610))


@pytest.mark.parametrize("argv, words", [
    (["--model", "m", "--bogus"], "--bogus"),
    (["--model", "m", "--probe-duration-ms", "0"], "--probe-duration-ms"),
    (["--model", "m", "--engine", "nope"], "--engine"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        fc.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and words in err


@pytest.mark.parametrize("argv, words", [
    (["--model", "/no/such/model"], "--model /no/such/model: not a directory"),
    (["--engine", "sim", "--model", "sim", "--dataset", "/no/such.json"], "--dataset /no/such.json"),
    (["--engine", "sim", "--model", "sim", "--find-qps-arg=--budget-s=5"], "sets --budget-s itself"),
])
def test_bad_values_are_one_line_and_exit_2(argv, words, capsys):
    assert fc.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err


def test_the_device_comes_from_the_runs_manifest(tmp_path):
    import json
    cases = {"vllm": ({"engine_args": {"device_name": "NVIDIA H100 80GB HBM3"}, "versions": {"node.gpu": "x"}},
                      "NVIDIA H100 80GB HBM3"),
             "nvml": ({"engine_args": {}, "versions": {"node.gpu": "NVIDIA H200"}}, "NVIDIA H200"),
             "sim": ({"simulated": True, "versions": {"node.gpu": "NVIDIA H200"}}, "cpu/sim"),
             "none": ({}, "unknown")}
    for name, (worker, expected) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"workers": [worker]}))
        assert fc.device_of(str(tmp_path / name)) == expected


def test_the_search_budget_shrinks_so_that_the_check_ends_by_its_deadline():
    args = fc.build_parser().parse_args(["--model", "m"])  # 330 s asked, 560 s deadline, 60 s runs
    assert fc.search_budget(args, 40.0) == 330  # a worker up and warm in 40 s: all of it fits
    assert fc.search_budget(args, 150.0) == int(560 - 150 - 60 - fc.AFTER_SEARCH_S)
    with pytest.raises(RuntimeError, match="--deadline-s 560: 450 s gone"):
        fc.search_budget(args, 450.0)
