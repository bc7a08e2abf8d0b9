"""harness.perf.stages: joins coordinator and worker traces into a per-stage breakdown."""
import pytest

from harness.perf import stages
from sut import stage_trace
from sut.stage_trace import StageTrace

MS = 1_000_000


def write_trace(directory, name, records):
    path = directory / f"{stage_trace.FILE_PREFIX}{name}.csv"
    path.write_text("stage,key,aux,t_ns\n" + "".join(f"{s},{k},{a},{t}\n" for s, k, a, t in records))


def traced_run(tmp_path, samples=200, slow_every=50):
    """Sample i issued at i ms; request 1000+i; every `slow_every`-th waits 30 ms before the worker reads it."""
    coordinator, worker, stale = [], [], []
    for i in range(samples):
        t0 = (10 + i) * MS
        wait = 30 * MS if i % slow_every == 0 else 0
        rid = 1000 + i
        coordinator += [("issue", i, -1, t0), ("submit", i, -1, t0 + 100_000), ("send", rid, i, t0 + 200_000),
                        ("written", rid, -1, t0 + 400_000), ("read", rid, -1, t0 + wait + 900_000),
                        ("first_token", i, -1, t0 + wait + 1_000_000)]
        worker += [("w_received", rid, -1, t0 + wait + 500_000), ("w_first", rid, -1, t0 + wait + 600_000),
                   ("w_sent", rid, -1, t0 + wait + 700_000)]
        stale.append(("w_received", rid, -1, 1))  # the same request id in an earlier run: outside this one
    write_trace(tmp_path, 1, coordinator)
    write_trace(tmp_path, 2, stale + worker)
    write_trace(tmp_path, 3, [("issue", 9, -1, 5), ("send", 9, 9, 6)])  # an Offline run: no first tokens


def test_breakdown_puts_the_wait_in_its_stage(tmp_path):
    traced_run(tmp_path)
    reports = {r["coordinator"]: r for r in stages.analyse(tmp_path)}
    assert reports["stages-3.csv"]["samples"] == 0
    report = reports["stages-1.csv"]
    assert report["samples"] == 200 and report["incomplete"] == 0
    steps = report["steps"]
    assert steps["written->w_received"]["p50"] == pytest.approx(0.1)
    assert steps["written->w_received"]["max"] == pytest.approx(30.1)
    assert steps["written->w_received"]["slowest_1pct_mean"] == pytest.approx(30.1)
    assert steps["w_sent->read"]["p99"] == pytest.approx(0.2)
    assert report["total_ms"]["max"] == pytest.approx(31.0)
    assert "written->w_received" in stages.render(report)


def test_pauses_are_stretches_without_any_record():
    records = [("issue", i, -1, i * MS) for i in range(10)] + [("issue", 10, -1, 60 * MS)]
    assert stages.pauses(records, 0, 60 * MS) == [{"ms": 51.0, "at_s": 0.009}]


def test_a_directory_without_a_coordinator_trace_is_a_usage_error(tmp_path, capsys):
    trace = StageTrace(tmp_path)
    trace.mark(stage_trace.W_RECEIVED, 1)
    trace.dump()
    with pytest.raises(SystemExit) as exit_info:
        stages.main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no coordinator trace" in capsys.readouterr().err
