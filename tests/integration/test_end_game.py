"""The Offline end game on sim workers that schedule like vLLM (waiting queue beyond max_seqs,
chunked prefill): equal workers waste (almost) nothing and finish together; unequal ones still
finish together. Real worker processes, real LoadGen, the harness CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from harness.local_workers import LocalWorkers
from harness.synthetic import synthetic_records

VLLM_LIKE = ["--max-seqs", "64", "--max-batched-tokens", "2048", "--prefill-tps", "100000", "--step-ms", "5",
             "--step-ms-per-seq", "0.1"]
SAMPLES = 600


def _offline(tmp_path, addresses, samples) -> dict:
    dataset = tmp_path / f"synthetic-{samples}.json"
    if not dataset.exists():
        dataset.write_text(json.dumps(synthetic_records(samples, 0)))
    conf = tmp_path / f"user-{samples}.conf"
    conf.write_text(f"llama3_1-8b.*.performance_sample_count_override = {samples}\n"
                    f"llama3_1-8b.Offline.min_duration = 0\nllama3_1-8b.Offline.min_query_count = {samples}\n"
                    "llama3_1-8b.Offline.target_qps = 1\n")
    out = tmp_path / f"runs-{len(addresses)}-{samples}-{os.urandom(3).hex()}"
    proc = subprocess.run([sys.executable, "-m", "harness", "--quiet", "--workers", ",".join(addresses),
                           "--dataset", str(dataset), "--user-conf", str(conf), "--output", str(out),
                           "--force-output-tokens"], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = out.iterdir()
    detail = (run_dir / "mlperf_log_summary.txt").read_text()
    rate = float(next(line.split(":")[1] for line in detail.splitlines() if line.startswith("Samples per second")))
    return {"samples_per_s": rate, "manifest": json.loads((run_dir / "manifest.json").read_text())}


@pytest.mark.parametrize("speeds,efficiency", [((1.0, 1.0), 0.97), ((1.0, 2.7), 0.95)], ids=["equal", "1-to-2.7"])
def test_end_game_finishes_workers_together_without_waste(speeds, efficiency, tmp_path):
    log_dirs = [tmp_path / f"worker{i}" for i in range(len(speeds))]
    for log_dir in log_dirs:
        log_dir.mkdir()
    workers = [LocalWorkers(1, "sim", "sim-model", log_dir, VLLM_LIKE + ["--speed", str(speed)])
               for log_dir, speed in zip(log_dirs, speeds)]
    try:
        addresses = [group.wait_ready(30)[0] for group in workers]
        solo = [_offline(tmp_path, [address], SAMPLES // 2)["samples_per_s"] for address in addresses]
        both = _offline(tmp_path, addresses, SAMPLES)
    finally:
        for group in workers:
            group.stop()
    ideal_makespan = SAMPLES / sum(solo)
    measured = ideal_makespan / (SAMPLES / both["samples_per_s"])
    dispatch = both["manifest"]["dispatch"]
    waste = dispatch["wasted_output_tokens"] / dispatch["output_tokens"]
    summary = (f"solo {solo}, both {both['samples_per_s']:.1f}/s, {measured:.3f} of ideal, "
               f"stolen {dispatch['stolen']}, duplicated {dispatch['hedged']}, waste {waste:.4f}")
    assert measured >= efficiency, summary
    if speeds[0] == speeds[1]:
        assert waste <= 0.01 and dispatch["hedged"] <= 0.01 * SAMPLES, summary
    moves = both["manifest"]["end_game"]["moves"]
    assert len(moves) == dispatch["stolen"] + dispatch["hedged"]
    assert all(move["why"] for move in moves)
