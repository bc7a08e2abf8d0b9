"""The Offline end game on sim workers that schedule like vLLM (waiting queue beyond max_seqs,
chunked prefill): equal workers waste (almost) nothing and finish together; unequal ones still
finish together and beat static halves. Real worker processes, real LoadGen, the harness CLI."""
from __future__ import annotations

import pytest

from harness.perf.fanout import Bench, pair

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
