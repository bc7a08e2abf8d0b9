"""Where a request's time goes between LoadGen and the engine, across processes: off unless asked.

A process started with `SUT_STAGE_TRACE=DIR` in its environment (the coordinator, and each worker
it should see into) records `(stage, key, aux, time.monotonic_ns())` at each stage a request
passes and writes `DIR/stages-<pid>.bin` when it exits (`harness.perf.stages` reads it).
CLOCK_MONOTONIC is one clock for all processes of a host, so a worker's stages line up with the
coordinator's. Keys: LoadGen's sample id for the coordinator's sample stages, the request id (with
the sample id as `aux` at `send`) for the link and worker stages.

An environment variable because it must reach workers started by any launcher, unchanged; DIR is
made absolute and checked once at start (a launcher may start a worker in another directory; a bad DIR found only at
exit loses the run's trace). Nothing is written during the run: a tracer that flushed to disk
in-run caused the 40-100 ms pauses it was looking for. A row is one `array.extend` of a tuple, a
single C call that holds the GIL throughout, so ISSUE (LoadGen's thread) and the others (the loop
thread) never interleave within a row. The dump is one `tofile` of that array: a worker is killed
a few seconds after it is told to stop. Off, each hook costs an attribute test.

File: MAGIC, then rows of four native int64 (stage code, key, aux, t_ns); a later dump of the same
process appends rows; a row with code DROPPED counts (in `key`) the records beyond MAX_RECORDS.
"""
from __future__ import annotations

import atexit
import os
import pathlib
import sys
import time
from array import array

ENV = "SUT_STAGE_TRACE"
FILE_PREFIX, FILE_SUFFIX = "stages-", ".bin"
MAGIC = b"SUTSTG1" + (b"L" if sys.byteorder == "little" else b"B")
FIELDS = 4  # int64 per row
ROW_BYTES = FIELDS * 8
# coordinator: sample stages (key = LoadGen sample id) and link stages (key = request id)
ISSUE, SUBMIT, SEND, WRITTEN, READ_FIRST, FIRST_TOKEN = "issue", "submit", "send", "written", "read", "first_token"
# worker (key = request id on its stream)
W_RECEIVED, W_FIRST, W_SENT = "w_received", "w_first", "w_sent"
STAGES = (ISSUE, SUBMIT, SEND, WRITTEN, W_RECEIVED, W_FIRST, W_SENT, READ_FIRST, FIRST_TOKEN)
DROPPED = -1
_CODE = {stage: code for code, stage in enumerate(STAGES)}
# 256 MB of rows: written in about a second (measured 0.3 GB/s on a busy 2-core box); beyond it
# records are dropped and counted
MAX_RECORDS = 8_000_000


def check_directory(value: str) -> tuple[pathlib.Path | None, str | None]:
    """DIR made absolute, or None and why it cannot be written; looks at the disk, creates nothing."""
    directory = pathlib.Path(value).expanduser().absolute()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return None, f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return None, f"{existing} is not writable"
    return directory, None


class StageTrace:
    def __init__(self, directory: str | os.PathLike | None):
        self.directory = pathlib.Path(directory) if directory else None
        self.enabled = self.directory is not None  # a plain attribute: the hooks test it on every request
        self._rows = array("q")
        self.dropped = 0

    def mark(self, stage: str, key: int, aux: int = -1) -> None:
        if not self.enabled:
            return
        if len(self._rows) >= MAX_RECORDS * FIELDS:
            self.dropped += 1
            return
        self._rows.extend((_CODE[stage], key, aux, time.monotonic_ns()))  # one C call: a row is never split

    def __len__(self) -> int:
        return len(self._rows) // FIELDS

    def dump(self) -> pathlib.Path | None:
        """Write what was recorded (appending: a worker serves several runs) and start afresh."""
        if not self.enabled or not (self._rows or self.dropped):
            return None
        rows, self._rows = self._rows, array("q")
        if self.dropped:
            rows.extend((DROPPED, self.dropped, -1, 0))
            self.dropped = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{FILE_PREFIX}{os.getpid()}{FILE_SUFFIX}"
        with open(path, "ab") as handle:
            if handle.tell() == 0:
                handle.write(MAGIC)
            rows.tofile(handle)
        return path


def mark_first_tokens(events, stage: str) -> None:
    """The first token of every request among `events` (the worker sends it in its own event)."""
    for event in events:
        if event.WhichOneof("kind") == "first_token":
            mark(stage, event.request_id)


def _start() -> StageTrace:
    value = os.environ.get(ENV)
    if not value:
        return StageTrace(None)
    directory, problem = check_directory(value)
    if problem:
        print(f"warning: {ENV}={value}: {problem}; the stage trace is off", file=sys.stderr, flush=True)
    return StageTrace(directory)


TRACE = _start()
mark = TRACE.mark


def dump_quietly() -> None:
    """Write the trace now, if on; never raises (a trace is a diagnostic: one line, never a traceback
    at exit). For the ways out that skip atexit (`os._exit`) too."""
    try:
        TRACE.dump()
    except OSError as exc:
        print(f"warning: {ENV}={TRACE.directory}: could not write the stage trace: {exc.strerror or exc}",
              file=sys.stderr, flush=True)


atexit.register(dump_quietly)
