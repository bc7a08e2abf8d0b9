"""SIGINT, SIGTERM and SIGHUP during a run: stop within seconds and keep what LoadGen wrote.

Python runs signal handlers only in the main thread, between bytecodes; inside LoadGen's StartTest
(C++) the main thread never gets there, so Ctrl-C was ignored until the run ended. So StartTest
runs in a thread of its own and the main thread waits in short joins, where handlers run.

- First signal during StartTest: every outstanding and later query is answered empty
  (`ClusterSUT.abort`), so LoadGen finishes and writes its logs; the main thread waits up to
  `grace_s` for StartTest to return. Offline returns at once (every query was issued up front).
  A Server schedule runs on until min_duration (LoadGen cannot end it early; SingleStream runs out
  of pre-generated queries at once): after `grace_s`
  the run ends without LoadGen's summary (the detail log so far stays).
- First signal outside StartTest (workers starting, the report): `Interrupted` is raised in the
  main thread and the run's `finally` blocks clean up.
- A second signal: exit at once (local workers killed, failure.txt written).
Every way out writes failure.txt and the manifest ("interrupted", which signal), kills the local
workers' process groups and exits 128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised in the main thread by a signal outside StartTest (BaseException: no `except Exception`
    swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int) -> int:
    return 128 + signum


class SignalGuard:
    """Installs the handlers for the length of a run; `abort` is called on the first signal during
    StartTest, `force_exit` on a second signal at any time (it must not return)."""

    def __init__(self, force_exit: Callable[[int, str], None]):
        self.force_exit = force_exit
        self.signum: int | None = None
        self.received_at: float | None = None
        self.abort: Callable[[str], None] | None = None  # set while StartTest runs
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None

    def reason(self) -> str:
        return f"interrupted by {self.name}"

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            self.force_exit(signum, f"interrupted by {self.name}, then {name}: forced exit at once")
            return
        self.signum, self.received_at = signum, time.monotonic()
        print(f"\n{name}: stopping the run (outstanding queries are answered empty so LoadGen can finish); "
              f"send it again to exit at once", file=sys.stderr, flush=True)
        if self.abort is None:
            raise Interrupted(signum)
        self.abort(self.reason())


def run_interruptibly(target: Callable[[], None], guard: SignalGuard, abort: Callable[[str], None],
                      grace_s: float, on_stuck: Callable[[], None]) -> None:
    """Run `target` (StartTest) in a thread; the main thread waits in 0.2 s joins so signal handlers
    run. After a signal, `target` has `grace_s` to return, else `on_stuck()` (which must not return)."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="loadgen-start-test", daemon=True)
    guard.abort = abort
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if guard.received_at is not None and time.monotonic() - guard.received_at > grace_s:
                on_stuck()
    finally:
        guard.abort = None
    if failure:
        raise failure[0]


def hard_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - exiting regardless
            pass
    os._exit(code)
