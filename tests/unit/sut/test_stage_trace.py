"""sut.stage_trace: off it records nothing; on it keeps everything in memory until dump (an in-run
flush to disk made the very pauses the trace is for)."""
import csv

from sut import stage_trace
from sut.proto import backend_pb2 as pb
from sut.stage_trace import StageTrace


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_off_records_nothing_and_writes_nothing(tmp_path):
    trace = StageTrace(None)
    trace.mark(stage_trace.ISSUE, 1)
    assert not trace.enabled and len(trace) == 0 and trace.dump() is None


def test_on_keeps_records_in_memory_until_dump(tmp_path):
    trace = StageTrace(tmp_path / "trace")
    for key in range(1000):
        trace.mark(stage_trace.SEND, key, key + 7)
    assert not (tmp_path / "trace").exists()  # nothing touches the disk while the run goes on
    path = trace.dump()
    written = rows(path)
    assert len(written) == 1000 and written[3]["stage"] == "send" and written[3]["aux"] == "10"
    assert [int(r["t_ns"]) for r in written] == sorted(int(r["t_ns"]) for r in written)
    trace.mark(stage_trace.W_RECEIVED, 5)
    assert trace.dump() == path and len(rows(path)) == 1001  # a worker serves several runs: appended


def test_records_beyond_the_cap_are_dropped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_trace, "MAX_RECORDS", 3)
    trace = StageTrace(tmp_path)
    for key in range(5):
        trace.mark(stage_trace.ISSUE, key)
    assert len(trace) == 3 and trace.dropped == 2
    assert rows(trace.dump())[-1] == {"stage": "dropped", "key": "2", "aux": "-1", "t_ns": "0"}


def test_first_tokens_are_marked_from_first_token_and_completion_events(monkeypatch, tmp_path):
    trace = StageTrace(tmp_path)
    monkeypatch.setattr(stage_trace, "mark", trace.mark)
    events = [pb.Event(request_id=1, first_token=pb.FirstToken(tokens=b"\0\0\0\0")),
              pb.Event(request_id=2, completion=pb.Completion(tokens=b"\0\0\0\0")),
              pb.Event(request_id=3, error=pb.Error(message="no"))]
    stage_trace.mark_first_tokens(events, stage_trace.W_SENT)
    assert [(r["stage"], r["key"]) for r in rows(trace.dump())] == [("w_sent", "1"), ("w_sent", "2")]


def test_an_unwritable_trace_directory_is_one_warning_line_at_exit(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    trace = StageTrace(blocker / "trace")  # a directory under a file cannot be made
    trace.mark(stage_trace.ISSUE, 1)
    monkeypatch.setattr(stage_trace, "TRACE", trace)
    stage_trace._dump_at_exit()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{stage_trace.ENV}=" in err and "could not write the stage trace" in err
