"""sut.stage_trace: off it records nothing and costs an attribute test; on it keeps everything in
memory until dump (an in-run flush to disk made the very pauses the trace is for), one whole row per
mark whatever the threads, and a DIR that cannot be written is one line at start."""
import os
import subprocess
import sys
import threading
import tracemalloc

from harness.perf.stages import read_records
from sut import stage_trace
from sut.proto import backend_pb2 as pb
from sut.stage_trace import StageTrace


def test_the_module_trace_is_off_without_the_variable():
    env = {k: v for k, v in os.environ.items() if k != stage_trace.ENV}
    probe = "from sut import stage_trace as s; print(s.TRACE.enabled, s.TRACE.directory)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "None"] and out.stderr == ""


def test_off_is_a_plain_attribute_and_marks_allocate_nothing():
    trace = StageTrace(None)
    assert "enabled" in vars(trace) and not isinstance(getattr(StageTrace, "enabled", None), property)
    trace.mark(stage_trace.ISSUE, 1)  # warm
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for key in range(1000):
            trace.mark(stage_trace.ISSUE, key, key)
        grown = tracemalloc.take_snapshot().compare_to(before, "filename")
    finally:
        tracemalloc.stop()
    assert not [d for d in grown if d.size_diff > 0 and d.traceback[0].filename == stage_trace.__file__]
    assert len(trace) == 0 and trace.dump() is None


def test_on_keeps_records_in_memory_until_dump(tmp_path):
    trace = StageTrace(tmp_path / "trace")
    for key in range(1000):
        trace.mark(stage_trace.SEND, key, key + 7)
    assert not (tmp_path / "trace").exists()  # nothing touches the disk while the run goes on
    path = trace.dump()
    assert path.name == f"{stage_trace.FILE_PREFIX}{os.getpid()}{stage_trace.FILE_SUFFIX}"
    written = read_records(path)
    assert len(written) == 1000 and written[3][:3] == ("send", 3, 10)
    assert [t for *_, t in written] == sorted(t for *_, t in written)
    trace.mark(stage_trace.W_RECEIVED, 5)
    assert trace.dump() == path and len(read_records(path)) == 1001  # a worker serves several runs: appended


def test_rows_stay_whole_when_two_threads_mark_at_once(tmp_path):
    """ISSUE is marked on LoadGen's thread, the others on the loop's: a thread switch inside a mark must
    not shift one field against another (it did with one array per field: hundreds of rows in 600,000)."""
    trace = StageTrace(tmp_path)
    rows = 100_000

    def marker(stage, sign):
        for key in range(1, rows + 1):
            trace.mark(stage, sign * key, sign * key)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=marker, args=(stage_trace.ISSUE, 1)),
                   threading.Thread(target=marker, args=(stage_trace.SUBMIT, -1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    written = read_records(trace.dump())
    assert len(written) == 2 * rows
    torn = [r for r in written if r[1] != r[2] or (r[0] == stage_trace.ISSUE) != (r[1] > 0) or r[3] < 1e9]
    assert not torn, f"{len(torn)} torn rows, e.g. {torn[:3]}"


def test_records_beyond_the_cap_are_dropped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_trace, "MAX_RECORDS", 3)
    trace = StageTrace(tmp_path)
    for key in range(5):
        trace.mark(stage_trace.ISSUE, key)
    assert len(trace) == 3 and trace.dropped == 2
    path = trace.dump()
    tail = path.read_bytes()[-stage_trace.ROW_BYTES:]
    assert [int.from_bytes(tail[i:i + 8], sys.byteorder, signed=True) for i in range(0, 32, 8)] == [-1, 2, -1, 0]
    assert len(read_records(path)) == 3


def test_first_tokens_are_marked_once_each(monkeypatch, tmp_path):
    trace = StageTrace(tmp_path)
    monkeypatch.setattr(stage_trace, "mark", trace.mark)
    events = [pb.Event(request_id=1, first_token=pb.FirstToken(tokens=b"\0\0\0\0")),
              pb.Event(request_id=1, completion=pb.Completion(tokens=b"\0\0\0\0")),  # its completion: no row
              pb.Event(request_id=2, first_token=pb.FirstToken(tokens=b"\0\0\0\0")),
              pb.Event(request_id=3, error=pb.Error(message="no"))]
    stage_trace.mark_first_tokens(events, stage_trace.W_SENT)
    assert [r[:2] for r in read_records(trace.dump())] == [("w_sent", 1), ("w_sent", 2)]


def test_a_relative_directory_is_made_absolute_at_start_and_nothing_is_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(stage_trace.ENV, "trace")
    trace = stage_trace._start()
    assert trace.enabled and trace.directory == tmp_path / "trace" and trace.directory.is_absolute()
    assert not (tmp_path / "trace").exists() and capsys.readouterr().err == ""


def test_an_unwritable_directory_is_one_warning_line_at_start_and_tracing_is_off(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(stage_trace.ENV, str(blocker / "trace"))  # a directory under a file cannot be made
    trace = stage_trace._start()
    err = capsys.readouterr().err
    assert not trace.enabled and err.count("\n") == 1 and f"{stage_trace.ENV}=" in err and str(blocker) in err
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    monkeypatch.setenv(stage_trace.ENV, str(read_only / "trace"))
    if not os.access(read_only, os.W_OK):  # root may write anywhere
        assert not stage_trace._start().enabled and "not writable" in capsys.readouterr().err


def test_a_dump_that_fails_later_is_one_warning_line(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "trace"
    trace = StageTrace(directory)
    trace.mark(stage_trace.ISSUE, 1)
    directory.write_text("")  # the directory's place was taken during the run
    monkeypatch.setattr(stage_trace, "TRACE", trace)
    stage_trace.dump_quietly()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{stage_trace.ENV}=" in err and "could not write the stage trace" in err
