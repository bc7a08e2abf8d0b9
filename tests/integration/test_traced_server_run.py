"""The stage trace over real processes: a Server run of the harness CLI (real LoadGen) against a real
sim worker over gRPC, both with SUT_STAGE_TRACE set, joins into a breakdown where every sample has
every stage, in order, and its manifest says it was traced; an untraced run leaves no trace."""
from __future__ import annotations

import json

from helpers import manifest_of, only_run_dir, run_harness
from harness.perf import stages
from harness.perf.fanout import Bench
from harness.run.settings import short_run_user_conf
from harness.run.synthetic import synthetic_records
from sut.stage_trace import ENV, FILE_PREFIX

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
    [manifest] = tmp_path.rglob("manifest.json")
    assert json.loads(manifest.read_text())["stage_trace"] == str(trace)


def test_an_untraced_run_leaves_no_trace(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    dataset, conf = tmp_path / "data.json", tmp_path / "user.conf"
    dataset.write_text(json.dumps(synthetic_records(16)))
    conf.write_text(short_run_user_conf("llama3_1-8b", 16))
    done = run_harness("--scenario", "Offline", "--local-engine", "sim", "--model", "sim", "--local-worker-args=--instant",
                       "--max-new-tokens", "8", "--dataset", dataset, "--user-conf", conf,
                       "--output", tmp_path / "runs", "--allow-invalid", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert manifest_of(only_run_dir(tmp_path / "runs"))["stage_trace"] is None
    assert not list(tmp_path.rglob(f"{FILE_PREFIX}*"))
