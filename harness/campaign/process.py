"""A step as a child process: its own session (a Ctrl-C at the terminal reaches the campaign only,
which then forwards exactly one SIGINT: a second one would make `harness run` exit without its
clean-up), its output in a log, and a parent-death signal so that a campaign killed with SIGKILL
still stops its step cleanly (SIGINT: `harness run` and `find-qps` both stop on it and keep what
finished). The pid and its start time go into the state, so a re-run can wait for a step the
killed campaign left behind."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

from sut.worker.launch import die_with_parent

STOP_GRACE_S = 60.0  # a Server run needs up to 8 s plus clean-up; find-qps stops its probe in up to 10 s


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), to tell it from a later process with the same pid."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None) -> bool:
    return started is not None and start_time(pid) == started


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(pid: int, started: str | None, wait_s: float = STOP_GRACE_S, first: int | None = signal.SIGINT) -> None:
    """One `first` signal (None: it has had one already), `wait_s` to finish, then SIGKILL to its
    whole session."""
    if not alive(pid, started):
        return
    if first is not None:
        try:
            os.kill(pid, first)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + wait_s
    while alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)


class StepProcess:
    def __init__(self, command: list[str], log_path: pathlib.Path, env: dict[str, str]):
        self.log = open(log_path, "w", buffering=1)
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=die_with_parent(signal.SIGINT))
        self.pid = self.proc.pid
        self.started = start_time(self.pid)

    def wait(self) -> int:
        """The exit code; on KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP turned into one) the step
        gets one SIGINT and STOP_GRACE_S to stop, a second interrupt kills it, and the interrupt
        propagates once it is gone."""
        try:
            return self.proc.wait()
        except KeyboardInterrupt:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(STOP_GRACE_S)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                pass
            finally:
                _signal_group(self.pid, signal.SIGKILL)
                self.proc.wait()
                self.log.close()
            raise
        finally:
            self.log.close()
