"""find-qps after a repeat over the limits, without processes: by default the knee model's margin
(the repeat measures how far the knee falls with run length); with --escalate a fail at twice the
probe length, and the search goes on at that length. The trajectory is the H200 run of
benchmarks/results/find-qps-check-h200-e8f9495.json (commit e8f9495, vLLM, Llama-3.1-8B dummy weights, Server):
Offline 29.892 qps; 15-s probes 20.924 (r 0.150), 28.544 (0.232), 29.218 (0.286) passed; the 30-s
repeat at 29.218 had r 1.371 (p99 TTFT 2742 ms), which the old margin rule turned into 30 % below
29.218: 20.453, while 22.498 was still VALID for 60 s."""
from __future__ import annotations

import json

import pytest

from harness.tune.find_qps import Search, best_pass, build_parser, counted_at, next_probe
from harness.tune.knee import knee_margin
from harness.tune.live import Live
from harness.tune.probe import Probe
from harness.tune.report import markdown
from harness.tune.state import State, StateError

H200 = {("probe", 20.924, 15000): 0.15025676, ("probe", 28.544, 15000): 0.2324554,
        ("probe", 29.218, 15000): 0.28588721, ("repeat", 29.218, 30000): 1.37107767}  # its find-qps.json
UPPER = 29.8919
SATURATION, KNEE = 30.236, 28.84


class Runner:
    """Answers recorded probes from `recorded`, others from `model(qps, ms)` -> r; counts its runs."""
    samples = 2000

    def __init__(self, recorded: dict, model):
        self.recorded, self.model, self.asked = recorded, model, []

    def run(self, p, scenario, conf):
        self.asked.append((p.kind, p.qps, p.duration_ms))
        p.wall_s = p.duration_ms / 1000 + 3
        p.ratio = self.recorded.get((p.kind, p.qps, p.duration_ms)) or self.model(p.qps, p.duration_ms)
        p.ttft_p99_ms, p.tpot_p99_ms = 2000 * p.ratio, 100 * p.ratio
        p.validity = "VALID" if p.kind == "confirm" and p.ratio <= 1 else "INVALID"
        return p


def relaxed(qps, ms):
    """What the GPU did not get to measure: from 30 s on, a queue's r ~ 1 / (1 - qps / saturation)
    through r 0.150 at 20.924 and the 30-s 1.371 at 29.218 (saturation 30.236 qps, the knee 28.84)."""
    return 0.15 * (1 - 20.924 / SATURATION) / (1 - qps / SATURATION) if qps < SATURATION else 10.0


def search(tmp_path, runner, *flags, state=None):
    args = build_parser().parse_args(["--workers", "w", "--dataset", "d", "--offline-qps", str(UPPER),
                                      "--probe-duration-ms", "15000", "--confirm-duration-ms", "60000",
                                      "--budget-s", "3000", "--quiet", *flags])
    state = state or State(tmp_path / "find-qps.json", {})
    return Search(args, state, runner, Live("t", args.max_probes, args.budget_s, quiet=True)).run()


def test_the_h200_trajectory_takes_the_knee_models_rate_not_a_30_percent_margin(tmp_path):
    """The repeat's r 1.371 at 29.218 for 30 s puts the knee at 30 s at 28.991 (the headroom slope
    1.193/qps through 28.544); it fell 2.321 qps from 15 s to 30 s, so by half that again at 60 s:
    27.831. The relaxed queue's knee at 60 s is 28.84 (3.5 % higher); its r there is 0.58."""
    runner = Runner(H200, relaxed)
    result = search(tmp_path, runner)
    assert runner.asked == [*H200, ("confirm", 27.831, 60000)] and result["escalations"] == []
    assert result["found_qps"] == 27.831 and result["confirm"]["validity"] == "VALID"
    assert KNEE * 0.95 < result["found_qps"] <= KNEE and result["best_pass_qps"] == 29.218
    assert result["repeat_over"].startswith("the 30 s repeat at 29.218 qps is over the limits (r 1.371): the knee model")
    assert "escalation_capped" not in result
    text = markdown(State(tmp_path / "find-qps.json", {}).probes(), result)
    assert "Repeats over the limits" in text and "--escalate would probe for 30 s instead" in text
    assert "so 27.831 at the confirm's 60 s" in result["margin_reason"]


def test_with_escalate_the_h200_trajectory_probes_at_30_s(tmp_path):
    runner = Runner(H200, relaxed)
    result = search(tmp_path, runner, "--escalate")
    assert runner.asked[:4] == list(H200)  # the GPU run's probes, in its order
    assert result["escalations"] == [{"at_qps": 29.218, "from_ms": 15000, "to_ms": 30000, "r": 1.3711}]
    after = runner.asked[4]
    assert after == ("probe", 20.924, 30000)  # the highest 15-s pass >= 3 % below the fail, at 30 s
    between = [q for kind, q, ms in runner.asked[5:] if kind == "probe"]
    assert between and all(20.9 < q < 29.2 for q in between)
    assert all(ms == 30000 for kind, _, ms in runner.asked[5:] if kind == "probe")
    assert result["best_pass_ms"] == 30000 and KNEE * 0.97 < result["best_pass_qps"] <= KNEE
    assert result["found_qps"] > 22.498 and result["confirm"]["validity"] == "VALID"  # not 20.453
    assert result["probe_ms"] == 30000 and result["stopped"] == "converged" and "escalation_capped" not in result
    text = markdown(State(tmp_path / "find-qps.json", {}).probes(), result)
    assert "- 29.218 qps passed for 15 s but not for 30 s (r 1.371): probes of 30 s from then on" in text
    assert "| probe | 20.924 | 300.0 | 15.00 | 0.150 | yes | INVALID | 30 |" in text  # the length is in the table


def test_a_replay_asks_for_the_same_probes_and_runs_none(tmp_path):
    first = search(tmp_path, Runner(H200, relaxed), "--escalate")
    again = Runner({}, lambda q, ms: pytest.fail(f"ran {q} for {ms} ms again"))
    state = State(tmp_path / "find-qps.json", {})
    assert search(tmp_path, again, "--escalate", state=state) == first and state.replayed == state.resumed and not again.asked


def test_a_passing_repeat_gives_the_knee_models_margin(tmp_path):
    runner = Runner({}, lambda q, ms: (q / 26) ** 8 * (0.95 if ms == 30000 else 1.0))
    result = search(tmp_path, runner, "--escalate")
    assert result["escalations"] == [] and {ms for _, _, ms in runner.asked[:-2]} == {15000}
    state = State(tmp_path / "find-qps.json", {}).probes()
    runs = [p for p in state if p.kind in ("probe", "repeat")]
    best = max((p for p in runs if p.kind == "probe" and p.within_limits), key=lambda p: p.qps)
    repeat = runs[-1]
    assert repeat.kind == "repeat" and repeat.duration_ms == 30000 and repeat.within_limits
    margin, why = knee_margin(best, repeat, [p for p in runs if p.duration_ms == 15000], 60000, 0.02)
    assert margin == 0.02  # r fell with the longer run: the floor
    assert (result["margin"], result["margin_reason"], result["best_pass_qps"]) == (margin, why, best.qps)
    assert result["found_qps"] == round(best.qps * (1 - margin), 3)


def test_escalation_stops_at_half_the_confirming_run(tmp_path):
    """Every repeat fails: 15 s -> 30 s -> 60 s (half of a 120-s confirm); the 120-s repeat fails too,
    and the margin then comes from it, as without escalation."""
    runner = Runner({}, lambda q, ms: (q / 26) ** 8 * ms / 15000)  # the knee 9 % lower at each doubling
    result = search(tmp_path, runner, "--confirm-duration-ms", "120000", "--max-probes", "30", "--no-confirm",
                    "--escalate")
    assert [(e["from_ms"], e["to_ms"]) for e in result["escalations"]] == [(15000, 30000), (30000, 60000)]
    assert max(ms for kind, _, ms in runner.asked if kind == "probe") == 60000
    assert runner.asked[-1][0] == "repeat" and runner.asked[-1][2] == 120000
    assert "half of --confirm-duration-ms" in result["escalation_capped"] and result["best_pass_ms"] == 60000
    assert 0.02 <= result["margin"] <= 0.3 and "120 s" in result["margin_reason"]
    assert markdown([], result).count("half of --confirm-duration-ms") == 1  # once, in the escalations


def test_escalation_respects_max_probes_and_the_budget(tmp_path):
    # 6 runs: the 3 recorded probes, the failing repeat, one probe at 30 s, and the kept repeat
    runner = Runner(H200, relaxed)
    (tmp_path / "a").mkdir()
    result = search(tmp_path / "a", runner, "--max-probes", "6", "--no-confirm", "--escalate")
    assert runner.asked[4:] == [("probe", 20.924, 30000), ("repeat", 20.924, 60000)]
    assert result["stopped"] == "--max-probes 6" and result["probes_used"] == 4
    # the best pass is one that no longer run failed at or below: 20.924 for 30 s, not 29.218 for 15 s
    assert result["best_pass_qps"] == 20.924 and result["best_pass_ms"] == 30000
    # a budget that holds the GPU run's four runs and the confirm (63 s) but no 30-s probe as well
    tight = Runner(H200, relaxed)
    (tmp_path / "b").mkdir()
    result = search(tmp_path / "b", tight, "--budget-s", "170", "--escalate")
    assert result["stopped"].startswith("--budget-s: probe 20.924 qps for 30 s") and tight.asked[:4] == list(H200)
    assert result["best_pass_qps"] == 28.544 and tight.asked[4:] == [("confirm", result["found_qps"], 60000)]


def test_what_counts_at_a_length():
    runs = [Probe("probe", 20, 15000, ratio=0.2), Probe("probe", 29, 15000, ratio=0.3),
            Probe("probe", 31, 15000, ratio=1.2), Probe("repeat", 29, 30000, ratio=1.4)]
    assert [p.qps for p in counted_at(runs, 15000)] == [20, 29, 31]
    assert [p.qps for p in counted_at(runs, 30000)] == [31, 29]  # fails of any shorter length stay fails
    assert next_probe(30, runs, 30000, 0.03) == 20  # 29 is not 3 % below the fail at 29
    assert next_probe(30, runs[2:], 30000, 0.03) == pytest.approx(14.5)  # no pass to re-probe: half the fail
    assert best_pass(runs).qps == 20  # 29 passed for 15 s but failed for 30 s



class SlowRunner(Runner):
    """Every run takes 30 s more than its length (start-up and drain on a GPU), not the default 10."""

    def run(self, p, scenario, conf):
        p = super().run(p, scenario, conf)
        p.wall_s = p.duration_ms / 1000 + 30
        return p


@pytest.mark.parametrize("budget", [270, 300, 330, 420, 480])  # the old fixed price lost 270, 330, 420, 480
def test_the_confirming_run_keeps_its_time_priced_with_the_measured_overhead(tmp_path, budget):
    """The confirm's reserve is priced at each check: fixed at the start (10-s default overhead) it was
    70 s, while here a 60-s confirm costs 90 s."""
    result = search(tmp_path, SlowRunner(H200, relaxed), "--budget-s", str(budget), "--escalate")
    assert result["confirm"] is not None and result["confirm"]["validity"] != "NOT RUN", result


def test_a_failed_repeat_in_the_last_slot_is_not_followed_by_another_run(tmp_path):
    """--max-probes 4: three probes and the failing 30-s repeat fill it; the search stops there (it
    takes the best pass no longer run failed at) without a fifth run."""
    runner = Runner(H200, relaxed)
    result = search(tmp_path, runner, "--max-probes", "4", "--no-confirm", "--escalate")
    assert runner.asked == list(H200) and result["stopped"] == "--max-probes 4"
    assert result["best_pass_qps"] == 28.544 and result["best_pass_ms"] == 15000


def fluid_queue(mu: float, c: float):
    """A queue whose knee falls with run length as mu (1 + c / T) (the wait of an overloaded queue grows
    linearly with time), headroom linear in the rate at each length, through r 0.150 at 20.924 qps."""
    def r(qps, ms):
        saturation = mu * (1 + c / (ms / 1000))
        return 0.15 * (1 - 20.924 / saturation) / (1 - qps / saturation) if qps < saturation else 10.0
    return r


def knee_of(model, ms: int) -> float:
    return max(q / 1000 for q in range(20000, 32000) if model(q / 1000, ms) <= 1)


@pytest.mark.parametrize("mu, c", [(26, 10), (27, 15), (25, 30), (28, 5), (26, 3)])
def test_the_knee_model_lands_within_the_issue_check_at_a_fraction_of_escalations_cost(tmp_path, mu, c):
    """60-s probes, a 600-s confirm (the defaults): the confirmed rate is VALID and at +10 % it would not be,
    for knees of 25-28 qps falling 3-30 qps-seconds with length; the model's runs cost at most 0.14 of the
    20-run grid (each run 3 s over its length), --escalate's 0.13-0.23 (longer probes)."""
    model, cost = fluid_queue(mu, c), {}
    knee = knee_of(model, 600000)
    for flags in ((), ("--escalate",)):
        runner = Runner({}, model)
        (tmp_path / str(len(flags))).mkdir()
        result = search(tmp_path / str(len(flags)), runner, "--probe-duration-ms", "60000",
                        "--confirm-duration-ms", "600000", "--budget-s", "7200", *flags)
        assert result["confirm"]["validity"] == "VALID" and result["found_qps"] <= knee < 1.1 * result["found_qps"]
        assert result["found_qps"] > 0.93 * knee
        cost[flags] = (35 + sum(ms / 1000 + 3 for _, _, ms in runner.asked)) / (20 * 603)
    assert cost[()] <= 0.14 and cost[()] <= cost[("--escalate",)]


def test_a_state_file_from_before_escalate_became_a_flag_resumes_without_it(tmp_path):
    from harness.tune.find_qps import state_settings
    parse = build_parser().parse_args
    plain, escalating = (state_settings(parse(["--workers", "w", "--dataset", "d", *flag])) for flag in ([], ["--escalate"]))
    (tmp_path / "find-qps.json").write_text(json.dumps({"settings": plain, "probes": [], "result": None}))
    assert State(tmp_path / "find-qps.json", plain).resumed == 0  # the old settings had no "escalate" key
    with pytest.raises(StateError, match=r"other settings \(escalate\)"):
        State(tmp_path / "find-qps.json", escalating)


def test_after_two_failed_confirms_the_slope_between_them_places_the_next(tmp_path):
    """The Interactive sim under a loaded machine (a full suite): 2-s probes gave a headroom slope of
    0.040/qps, but 4-s confirming runs failed at 142.565 (r 1.266) and then about 134.5 (1.157), and a
    third 5 % lower at 127.784 (1.047) too. The slope between the two failed confirms (0.0093/qps, at
    the confirm's own length) puts the knee near 120: the third attempt goes there (less 2 %)."""
    recorded = {142.565: 1.266, 134.566: 1.157}
    runner = Runner({}, lambda q, ms: recorded.get(q, 0.9))
    args = build_parser().parse_args(["--workers", "w", "--dataset", "d", "--offline-qps", "200", "--quiet"])
    search_ = Search(args, State(tmp_path / "find-qps.json", {}), runner, Live("t", 12, 7200, quiet=True))
    result = {"confirm": None}
    search_.confirm(142.565, 0.06, 0.040, result)
    slope = (1 / 1.157 - 1 / 1.266) / (142.565 - 134.566)
    third = round((134.566 + (1 / 1.157 - 1) / slope) * 0.98, 3)
    assert [q for kind, q, _ in runner.asked] == [142.565, 134.566, third] and 117 < third < 118
    assert result["confirm"]["validity"] == "VALID" and result["found_qps"] == third
    assert f"{slope:.3f}/qps puts the knee" in result["retries"][1]["why"]
