"""Where a request's time goes between LoadGen and the engine, across processes: off unless asked.

A process started with `SUT_STAGE_TRACE=DIR` in its environment (the coordinator, and each worker
it should see into) records `(stage, key, aux, time.monotonic_ns())` at each stage a request
passes and writes `DIR/stages-<pid>.csv` when it exits. CLOCK_MONOTONIC is one clock for all
processes of a host, so a worker's stages line up with the coordinator's; `harness.perf.stages`
joins them into a per-stage breakdown. Keys: LoadGen's sample id for the coordinator's sample
stages, the request id (with the sample id as `aux` at `send`) for the link and worker stages.

An environment variable because it must reach workers started by any launcher, unchanged.
Recording appends to four arrays (well under a microsecond); nothing is written
during the run: a tracer that flushed to disk in-run caused the 40-100 ms pauses it was looking for.
Off, each hook is one call to a function that returns at once.
"""
from __future__ import annotations

import atexit
import os
import pathlib
import sys
import time
from array import array

ENV = "SUT_STAGE_TRACE"
FILE_PREFIX = "stages-"
# coordinator: sample stages (key = LoadGen sample id) and link stages (key = request id)
ISSUE, SUBMIT, SEND, WRITTEN, READ_FIRST, FIRST_TOKEN = "issue", "submit", "send", "written", "read", "first_token"
# worker (key = request id on its stream)
W_RECEIVED, W_FIRST, W_SENT = "w_received", "w_first", "w_sent"
STAGES = (ISSUE, SUBMIT, SEND, WRITTEN, W_RECEIVED, W_FIRST, W_SENT, READ_FIRST, FIRST_TOKEN)
_CODE = {stage: code for code, stage in enumerate(STAGES)}
MAX_RECORDS = 20_000_000  # about 600 MB of arrays; beyond it records are dropped and counted


class StageTrace:
    def __init__(self, directory: str | os.PathLike | None):
        self.directory = pathlib.Path(directory) if directory else None
        self._reset()

    def _reset(self) -> None:
        self._codes = array("b")
        self._keys = array("q")
        self._aux = array("q")
        self._times = array("q")
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def mark(self, stage: str, key: int, aux: int = -1) -> None:
        if self.directory is None:
            return
        if len(self._times) >= MAX_RECORDS:
            self.dropped += 1
            return
        self._codes.append(_CODE[stage])
        self._keys.append(key)
        self._aux.append(aux)
        self._times.append(time.monotonic_ns())

    def __len__(self) -> int:
        return len(self._times)

    def dump(self) -> pathlib.Path | None:
        """Write what was recorded (appending: a worker serves several runs) and start afresh."""
        if self.directory is None or not self._times:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{FILE_PREFIX}{os.getpid()}.csv"
        with open(path, "a") as handle:
            if handle.tell() == 0:
                handle.write("stage,key,aux,t_ns\n")
            handle.writelines(f"{STAGES[c]},{k},{a},{t}\n"
                              for c, k, a, t in zip(self._codes, self._keys, self._aux, self._times))
            if self.dropped:
                handle.write(f"dropped,{self.dropped},-1,0\n")
        self._reset()
        return path


def mark_first_tokens(events, stage: str) -> None:
    """A request's first token travels in a first_token event, or in its completion when both come at once."""
    for event in events:
        if event.WhichOneof("kind") in ("first_token", "completion"):
            mark(stage, event.request_id)


TRACE = StageTrace(os.environ.get(ENV) or None)
mark = TRACE.mark


def _dump_at_exit() -> None:
    try:
        TRACE.dump()
    except OSError as exc:  # a trace is a diagnostic: one line, never a traceback at exit
        print(f"warning: {ENV}={TRACE.directory}: could not write the stage trace: {exc.strerror or exc}",
              file=sys.stderr, flush=True)


atexit.register(_dump_at_exit)
