"""The stage trace over real processes: a Server run of the harness CLI (real LoadGen) against a real
sim worker over gRPC, both with SUT_STAGE_TRACE set, joins into a breakdown where every sample has
every stage, in order."""
from __future__ import annotations

from harness.perf import stages
from harness.perf.fanout import Bench
from sut.stage_trace import ENV

SAMPLES = 150


def test_a_traced_server_run_has_every_stage_of_every_sample(tmp_path, monkeypatch):
    trace = tmp_path / "trace"
    monkeypatch.setenv(ENV, str(trace))  # inherited by the worker and by the harness process
    bench = Bench(tmp_path)
    try:
        [address] = bench.start([["--instant"]])
        bench.run([address], SAMPLES, "Server", 150.0)
    finally:
        bench.stop()  # the worker writes its records when it exits
    [report] = stages.analyse(trace)
    assert report["samples"] == SAMPLES and report["incomplete"] == 0, report
    steps = report["steps"]
    assert list(steps) == [f"{a}->{b}" for a, b in zip(stages.PATH, stages.PATH[1:])]
    # one host, one monotonic clock: a sample's path only moves forward, except that the worker may read a
    # request before the coordinator hears that its write completed
    assert all(s["p50"] >= 0 for name, s in steps.items() if name != "written->w_received"), steps
    assert sum(s["p50"] for s in steps.values()) <= report["total_ms"]["max"]
