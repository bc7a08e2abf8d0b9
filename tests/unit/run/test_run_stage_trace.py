"""The run and the stage trace: the manifest says whether tracing was on (it changes the results),
and a fatal exit, which skips atexit, still writes the trace."""
import os

import pytest

from harness.perf.stages import read_records
from harness.run import runner
from harness.run.manifest import Manifest
from sut import stage_trace
from sut.stage_trace import StageTrace


@pytest.mark.parametrize("traced", [True, False])
def test_the_manifest_says_whether_the_stage_trace_was_on(tmp_path, monkeypatch, traced):
    directory = tmp_path / "trace"
    monkeypatch.setattr(stage_trace, "TRACE", StageTrace(directory if traced else None))
    manifest = Manifest(tmp_path / "manifest.json", status="starting")
    assert manifest.data["stage_trace"] == (str(directory) if traced else None)


def test_a_fatal_exit_writes_the_stage_trace_before_it_exits(tmp_path, monkeypatch, capsys):
    trace = StageTrace(tmp_path / "trace")
    trace.mark(stage_trace.ISSUE, 7)
    monkeypatch.setattr(stage_trace, "TRACE", trace)
    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(runner.os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        runner.FatalHandler(tmp_path)("no worker left")
    assert exits == [runner.EXIT_CLUSTER]
    path = tmp_path / "trace" / f"{stage_trace.FILE_PREFIX}{os.getpid()}{stage_trace.FILE_SUFFIX}"
    assert [r[:2] for r in read_records(path)] == [("issue", 7)]
    assert "no worker left" in capsys.readouterr().err
