"""harness.perf.stages: joins coordinator and worker traces into a per-stage breakdown; a file cut
short or malformed is one line naming it and the record, exit 2, and what is whole is still analysed."""
from array import array

import pytest

from harness.perf import stages
from sut import stage_trace
from sut.stage_trace import StageTrace

MS = 1_000_000


def write_trace(directory, name, records):
    path = directory / f"{stage_trace.FILE_PREFIX}{name}{stage_trace.FILE_SUFFIX}"
    rows = array("q", [v for s, k, a, t in records for v in (stage_trace.STAGES.index(s), k, a, t)])
    path.write_bytes(stage_trace.MAGIC + rows.tobytes())
    return path


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
    assert reports["stages-3.bin"]["samples"] == 0
    report = reports["stages-1.bin"]
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


def test_a_trace_cut_short_is_one_line_naming_the_file_and_record_and_the_rest_is_analysed(tmp_path, capsys):
    traced_run(tmp_path)
    worker = tmp_path / "stages-2.bin"
    worker.write_bytes(worker.read_bytes()[:-5])  # killed while writing its last record
    assert stages.main([str(tmp_path)]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert str(worker) in line and "cut short in record 799" in line, line
    assert "stages-1.bin: 199 samples" in captured.out  # the last sample lost its w_sent only


@pytest.mark.parametrize("damage, expected", [
    (lambda data: data[:3], "cut short in its header"),
    (lambda data: b"stage,key,aux,t_ns\n" + data, "not a stage trace"),
    (lambda data: data[:8 + 32 * 5] + (99).to_bytes(8, "little") + data[8 + 32 * 5 + 8:], "record 5 "),
])
def test_a_malformed_trace_is_one_line_and_exit_2(tmp_path, capsys, damage, expected):
    traced_run(tmp_path)
    worker = tmp_path / "stages-2.bin"
    worker.write_bytes(damage(worker.read_bytes()))
    assert stages.main([str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {worker}: ") and expected in line, line
