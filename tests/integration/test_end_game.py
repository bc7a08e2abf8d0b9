"""The Offline end game on sim workers that schedule like vLLM (waiting queue beyond max_seqs,
chunked prefill): equal workers waste (almost) nothing and finish together; unequal ones still
finish together and beat static halves. Real worker processes, real LoadGen, the harness CLI."""
from __future__ import annotations

import pytest

from harness.perf.fanout import GPU_LIKE, Bench, pair

SAMPLES = 600


@pytest.mark.parametrize("speeds,efficiency", [((1.0, 1.0), 0.97), ((1.0, 2.7), 0.95)], ids=["equal", "1-to-2.7"])
def test_end_game_finishes_workers_together_without_waste(speeds, efficiency, tmp_path):
    bench = Bench(tmp_path)
    try:
        result = pair(bench, speeds, SAMPLES)
    finally:
        bench.stop()
    summary = {k: v for k, v in result.items() if k != "moves"}
    assert result["pull_efficiency"] >= efficiency, summary
    if speeds[0] == speeds[1]:
        assert result["waste_fraction"] <= 0.01 and result["hedged"] <= 0.01 * SAMPLES, summary
    else:
        assert result["pull_makespan_s"] < result["static_halves_makespan_s"] / 1.2, summary
    assert len(result["moves"]) == result["stolen"] + result["hedged"]
    assert all(move["why"] and move["kind"] in ("steal", "duplicate") for move in result["moves"])


UNEQUAL_SAMPLES = 1200


def test_a_small_worker_that_runs_dry_copies_nothing_from_a_big_one_draining_its_batch(tmp_path):
    """The GPU suite's unequal part (c0feb4f: 32 duplicates, 1.35 % of output tokens wasted), in the sim
    at twice the speed: 512 : 32 sequences, steps mostly prefill. The 32-slot worker runs dry while the
    512-slot one drains hundreds of requests, which its decode time under load says need seconds more;
    copies of 32 of them would end nothing sooner. Nothing runs twice and both finish together."""
    bench = Bench(tmp_path)
    try:
        addresses = bench.start([GPU_LIKE + ["--speed", "2"], GPU_LIKE + ["--speed", "2", "--max-seqs", "32"]])
        run = bench.run(addresses, UNEQUAL_SAMPLES)
    finally:
        bench.stop()
    dispatch = run["manifest"]
    summary = {k: dispatch.get(k) for k in ("stolen", "hedged", "wasted_output_tokens", "output_tokens", "workers")}
    assert dispatch["stolen"] > 0, summary  # the small worker took queued work from the big one's hoard
    assert dispatch["hedged"] <= 0.01 * UNEQUAL_SAMPLES, summary
    assert dispatch["wasted_output_tokens"] <= 0.01 * dispatch["output_tokens"], summary
    big, small = (worker["last_completion_s"] for worker in dispatch["workers"])
    assert abs(big - small) <= 0.1 * run["makespan_s"], summary
