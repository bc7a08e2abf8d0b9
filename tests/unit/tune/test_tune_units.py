"""harness.tune without processes: the find-qps step rule and margin, the state file's replay and
its settings check, the representative subset, the search space flags, presets and --preset."""
from __future__ import annotations

import json

import pytest

from harness.tune.engine_search import representative_subset
from harness.tune.space import InputError, search_space, worker_flags
from harness.tune.knee import RETRY_STEP, knee_margin, next_target, retry_rate
from harness.tune.probe import Probe
from harness.tune.state import State, StateError
from sut.worker.preset import FORMAT, PresetError, load_preset
from sut.worker.server import parse_args


def probe(qps, ratio, kind="probe", ms=2000):
    return Probe(kind, qps, ms, ratio=ratio, ttft_p99_ms=1, tpot_p99_ms=1)


def test_first_probe_and_bracketing():
    assert next_target(100, [], 0.03) == pytest.approx(70)
    assert next_target(100, [probe(70, 1.5)], 0.03) == pytest.approx(35)  # nothing passes: halve
    assert next_target(100, [probe(0.9, 2)], 0.03) is None  # below 1 % of the upper bound: give up


def test_interpolates_headroom_and_stops_when_narrow():
    # headroom 1/r: 2 at 50 qps, 0.5 at 90 qps -> 1 at 50 + (2 - 1) / (2 - 0.5) * 40 = 76.7
    assert next_target(100, [probe(90, 2.0), probe(50, 0.5)], 0.03) == pytest.approx(76.67, abs=0.01)
    # same side twice in a row: bisect
    assert next_target(100, [probe(90, 2.0), probe(50, 0.5), probe(60, 0.6)], 0.03) == pytest.approx(75)
    assert next_target(100, [probe(80, 1.1), probe(78, 0.95)], 0.03) is None


def test_margin_from_the_knee_extended_to_the_confirm_length():
    best, near = probe(100, 0.5), probe(90, 0.25)  # headroom 2 at 100, 4 at 90: slope 0.2 per qps
    # a 4-s repeat at r 0.8 (headroom 1.25): the knee at 4 s is 100 + (1.25 - 1) / 0.2 = 101.25, and it fell
    # (2 - 1.25) / 0.2 = 3.75 qps from 2 s to 4 s; to a 40-s confirm it falls 3.75 x (1 - 4 / 40) more
    margin, why = knee_margin(best, probe(100, 0.8, "repeat", 4000), [near, best], 40000, 0.02)
    knee = 101.25 - 3.75 * 0.9
    assert margin == pytest.approx(1 - knee / 100) and f"so {knee:.3f} at the confirm's 40 s" in why
    # a repeat over the limits (r 2, headroom 0.5) puts the knee below the best pass at once
    margin, _ = knee_margin(best, probe(100, 2.0, "repeat", 4000), [near, best], 4000, 0.02)
    assert margin == pytest.approx(1 - (100 - 0.5 / 0.2) / 100)
    # no growth with length and room to spare: the floor; a repeat of no use, or no slope: 5 %
    assert knee_margin(best, probe(100, 0.4, "repeat", 4000), [near, best], 40000, 0.02)[0] == 0.02
    assert knee_margin(best, None, [best], 40000, 0.02)[0] == 0.05
    assert knee_margin(best, probe(100, 0.8, "repeat", 4000), [best], 40000, 0.02)[0] == 0.05
    noisy = probe(90, 0.6)  # headroom higher at the higher rate: no slope to trust
    assert knee_margin(best, probe(100, 0.8, "repeat", 4000), [noisy, best], 40000, 0.02)[0] == 0.05
    # never more than 30 %
    assert knee_margin(best, probe(100, 50.0, "repeat", 4000), [best, probe(50, 0.49)], 40000, 0.02)[0] == 0.3


def test_a_failed_confirm_steps_down_by_the_slope_or_the_retry_step():
    failed = probe(100, 1.1, "confirm", 40000)
    assert retry_rate(failed, 0.02, 0.2, 0.02)[0] == round(100 * (1 - RETRY_STEP), 3)  # the slope says 99.5
    far = probe(100, 4.0, "confirm", 40000)  # headroom 0.25: knee 100 - 0.75 / 0.2 = 96.25, less 2 %
    assert retry_rate(far, 0.02, 0.2, 0.02) == (round(96.25 * 0.98, 3), "r 4.000 at 100.000 qps; the headroom "
                                                "slope 0.200/qps puts the knee at 96.250, less 2 %")
    assert retry_rate(far, 0.12, None, 0.02)[0] == 88.0  # no slope: the margin again, at least RETRY_STEP
    # within the limits but INVALID (early stopping, errors): RETRY_STEP, not the margin again (30 % at most)
    assert retry_rate(probe(100, 0.9, "confirm", 40000), 0.3, 0.2, 0.02)[0] == round(100 * (1 - RETRY_STEP), 3)
    assert retry_rate(probe(100, 90.0, "confirm", 40000), 0.02, 0.01, 0.02)[0] == 50.0  # never below half


def test_state_replays_in_order_and_refuses_other_settings(tmp_path):
    state = State(tmp_path / "s.json", {"scenario": "Server"})
    for p in (probe(10, 0.5), probe(20, 0.7), probe(10, 0.6)):
        state.record(p)
    again = State(tmp_path / "s.json", {"scenario": "Server"})
    assert again.resumed == 3
    assert again.replay(probe(10, 0)).ratio == 0.5 and again.replay(probe(10, 0)).ratio == 0.6
    assert again.replay(probe(10, 0)) is None and again.replay(probe(20, 0)).ratio == 0.7
    with pytest.raises(StateError, match="scenario"):
        State(tmp_path / "s.json", {"scenario": "Interactive"})


def test_representative_subset_follows_the_lengths():
    records = [{"tok_input": [1] * n} for n in range(1, 1001)]
    subset = representative_subset(records, 10)
    assert [len(r["tok_input"]) for r in subset] == [51 + 100 * k for k in range(10)]


def test_search_space_flags():
    space = search_space("vllm", ["max-num-seqs=64,128", "engine-arg:block_size=16,32"])
    assert space["max-num-seqs"].values == ("64", "128")
    flags = worker_flags({"max-num-seqs": "64", "quantization": "none", "engine-arg:block_size": "16",
                          "credit-factor": "2.0"}, space)
    assert flags == ["--max-num-seqs", "64", "--engine-arg", "block_size=16"]
    for bad, text in (("nope=1", "not a setting"), ("max-num-seqs", "expected KEY"),
                      ("engine-arg:seed=1,2", "sampling")):
        with pytest.raises(InputError, match=text):
            search_space("vllm", [bad])


def write(tmp_path, **data):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict({"format": FORMAT, "engine": "sim", "engine_args": {"max-seqs": 32}}, **data)))
    return str(path)


def test_preset_values_are_defaults_that_flags_override(tmp_path):
    path = write(tmp_path, engine_args={"max-seqs": 32, "max-batched-tokens": 4096, "instant": True})
    args = parse_args(["--preset", path, "--model", "m"])
    assert (args.engine, args.max_seqs, args.max_batched_tokens, args.instant) == ("sim", 32, 4096, True)
    assert parse_args(["--preset", path, "--model", "m", "--max-seqs", "8"]).max_seqs == 8


def test_vllm_preset_engine_args_merge(tmp_path):
    path = write(tmp_path, engine="vllm", engine_args={"max-num-seqs": 512, "engine-arg": {"block_size": 16}})
    args = parse_args(["--preset", path, "--model", "m", "--engine-arg", "block_size=32"])
    assert args.max_num_seqs == 512 and args.engine_arg == ["block_size=16", "block_size=32"]  # the last wins


@pytest.mark.parametrize("data, text", [
    ({"format": "x"}, "key 'format'"),
    ({"engine_args": {"nope": 1}}, "key 'engine_args.nope' is not a flag"),
    ({"engine_args": {"max-seqs": [1]}}, "key 'engine_args.max-seqs' must be"),
    ({"engine_args": {"temperature": 1}}, "changes sampling"),
    ({"engine_args": 3}, "key 'engine_args'"),
])
def test_preset_errors_name_the_key(tmp_path, data, text):
    with pytest.raises(PresetError, match=text):
        parse_args(["--preset", write(tmp_path, **data), "--model", "m"])


def test_preset_engine_mismatch(tmp_path):
    with pytest.raises(PresetError, match="key 'engine' is 'sim' but --engine is 'hf'"):
        parse_args(["--preset", write(tmp_path), "--engine", "hf", "--model", "m"])
    assert load_preset(write(tmp_path))["engine"] == "sim"


def test_preset_records_the_given_commit_else_the_code_revision(tmp_path):
    from harness.tune.presets import write_preset
    from sut.build_info import code_revision
    common = dict(name="p", engine="sim", engine_args={"max-seqs": 8}, harness={"credit-factor": 2.0},
                  hardware={"device_name": "cpu", "workers": 1}, measured={"tokens_per_s": 1.0},
                  accuracy={"verified": None}, search={}, tuned_with={})
    given = write_preset(tmp_path / "a.json", commit="c0feb4f", **common)
    assert given["commit"] == "c0feb4f"
    assert json.loads((tmp_path / "a.json").read_text())["commit"] == "c0feb4f"
    assert write_preset(tmp_path / "b.json", **common)["commit"] == code_revision()


def test_a_failed_confirm_keeps_its_verdict_when_the_next_attempt_does_not_fit(tmp_path):
    """The confirming run near the knee drains long (a GPU check rehearsal: 124 s for a 60-s run), so
    the lower second attempt may not fit the budget: the INVALID that was measured must stay."""
    from harness.tune.find_qps import Search, build_parser
    from harness.tune.live import Live

    class Runner:
        samples = 100

        def run(self, p, scenario, conf):
            p.wall_s = p.duration_ms / 1000 + (15 if p.kind == "confirm" else 1)
            if p.kind == "offline":
                p.samples_per_s = 100.0
                return p
            p.ratio, p.ttft_p99_ms, p.tpot_p99_ms = p.qps / 80, 1, 1
            p.validity = "INVALID" if p.kind == "confirm" else "VALID"
            return p

    args = build_parser().parse_args(["--workers", "w", "--dataset", "d", "--budget-s", "55", "--max-probes", "4",
                                      "--probe-duration-ms", "1000", "--confirm-duration-ms", "20000",
                                      "--margin", "0.05", "--quiet"])
    result = Search(args, State(tmp_path / "s.json", {}), Runner(), Live("t", 4, 55, quiet=True)).run()
    confirm = result["confirm"]
    assert confirm["validity"] == "INVALID" and result["found_qps"] == pytest.approx(result["best_pass_qps"] * 0.95,
                                                                                     abs=1e-3)
    assert confirm["next"]["validity"] == "NOT RUN" and "budget" in confirm["next"]["reason"]
    assert confirm["next"]["qps"] == pytest.approx(result["found_qps"] * 0.95, abs=1e-3)
