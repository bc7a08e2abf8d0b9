"""ClusterSUT: the object LoadGen calls. It hands queries to the dispatcher's event loop and
completes them into LoadGen from that loop's thread.

LoadGen calls IssueQuery/FlushQueries on its own threads; an exception escaping them kills the
process, so both callbacks catch everything and turn it into the fatal path instead.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sys
import threading
import time
from typing import Callable, Sequence

from sut.dispatch import Dispatcher, DispatchLimits, Query
from sut.dispatch.policies import DispatchPolicy
from sut.engines.base import SamplingParams
from sut.security import LinkSecurity
from sut.links import make_link
from sut import stage_trace
from sut.wire import check_request_size, pack_tokens, unpack_tokens


class ClusterUnavailable(RuntimeError):
    """No worker became ready in time."""


class LoadGenResponder:
    """Sends int32 token ids to LoadGen with n_tokens = len(ids)."""

    def __init__(self, lg):
        self.lg = lg

    def first_token(self, query: Query, tokens: bytes) -> None:
        if stage_trace.TRACE.enabled:
            stage_trace.mark(stage_trace.FIRST_TOKEN, query.sample_id)
        ids = unpack_tokens(tokens)
        self.lg.FirstTokenComplete([self.lg.QuerySampleResponse(query.sample_id, ids.ctypes.data, ids.nbytes, len(ids))])

    def complete(self, items: list[tuple[Query, bytes]]) -> None:
        arrays = [unpack_tokens(tokens) for _, tokens in items]  # alive until the call returns
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(query.sample_id, ids.ctypes.data, ids.nbytes, len(ids))
                                      for (query, _), ids in zip(items, arrays)])


class ClusterSUT:
    def __init__(self, addresses: Sequence[str], prompts: Sequence[Sequence[int]], params: SamplingParams,
                 policy: DispatchPolicy, needs_first_token: bool, on_fatal: Callable[[str], None],
                 limits: DispatchLimits | None = None, responder=None, security: LinkSecurity | None = None):
        self._on_fatal = on_fatal
        self._issued: list[tuple[float, int]] = []  # (seconds since the first issue, qsl index)
        self._first_issue: float | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="sut-loop", daemon=True)
        packed = [(pack_tokens(p), len(p)) for p in prompts]
        for index, (prompt, _) in enumerate(packed):
            check_request_size(len(prompt), index)
        self.dispatcher = Dispatcher(addresses, policy, responder, params, packed, needs_first_token,
                                     self._fatal, limits, link_factory=functools.partial(make_link, security=security))

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(lambda loop, ctx: self._fatal(
            f"unexpected error in the SUT loop: {ctx.get('exception') or ctx.get('message')}"))
        self._loop.run_forever()

    def _call(self, fn, *args):
        """Run fn on the loop and wait for its result."""
        async def wrapper():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result()

    def start(self, ready_timeout_s: float, want_all: bool = True, unreachable_timeout_s: float = 15.0) -> list[dict]:
        """Connect to every worker; wait until all (or, after the timeout, at least one) are ready.
        A worker that answers but is still loading its model is waited for; when no worker has
        answered at all within unreachable_timeout_s (nothing listening, a wrong name), give up."""
        self._thread.start()
        self._call(self.dispatcher.start)
        started = time.monotonic()
        deadline = started + ready_timeout_s
        while time.monotonic() < deadline:
            ready = self._call(self.dispatcher.ready_workers)
            if ready and (len(ready) == len(self.dispatcher.workers) or not want_all):
                break
            if not ready and time.monotonic() - started > unreachable_timeout_s and not self._call(
                    lambda: any(w.link.reached for w in self.dispatcher.workers)):
                raise ClusterUnavailable(f"no worker could be reached within {unreachable_timeout_s:g} s: "
                                         + self._worker_errors())
            time.sleep(0.1)
        ready = self._call(self.dispatcher.ready_workers)
        if not ready:
            raise ClusterUnavailable(f"no worker became ready within {ready_timeout_s:g} s: {self._worker_errors()}")
        return [dict(w.link.info, address=w.address) for w in ready]

    def _worker_errors(self) -> str:
        return "; ".join(f"{w.address}: {w.link.last_error or w.link.state_name}" for w in self.dispatcher.workers)

    def missing_workers(self) -> list[str]:
        ready = {w.address for w in self._call(self.dispatcher.ready_workers)}
        return [w.address for w in self.dispatcher.workers if w.address not in ready]

    def worker_infos(self) -> list[dict]:
        return self._call(lambda: [dict(w.link.info, address=w.address) for w in self.dispatcher.workers
                                   if w.link.info])

    # --- LoadGen callbacks: never raise ---------------------------------------------------------

    def issue_queries(self, samples) -> None:
        try:
            now = time.monotonic()
            if self._first_issue is None:
                self._first_issue = now
            items = [(sample.id, sample.index) for sample in samples]
            if stage_trace.TRACE.enabled:
                for sample_id, _ in items:
                    stage_trace.mark(stage_trace.ISSUE, sample_id)
            self._issued.extend((now - self._first_issue, index) for _, index in items)
            self._loop.call_soon_threadsafe(self.dispatcher.submit, items)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape into LoadGen
            self._fatal(f"IssueQuery failed: {type(exc).__name__}: {exc}")

    def abort(self, reason: str) -> None:
        """Thread-safe and non-blocking (a signal handler may call it): every outstanding and every
        later query is answered at once with an empty response, so LoadGen finishes."""
        try:
            self._loop.call_soon_threadsafe(self.dispatcher.abort, reason)
        except RuntimeError:  # the loop is closed: nothing is outstanding
            pass

    def flush_queries(self) -> None:
        """Nothing is held back at the coordinator, so there is nothing to flush."""

    # --- state ----------------------------------------------------------------------------------

    def issue_schedule(self) -> list[tuple[float, int]]:
        """When LoadGen issued each sample, and which: lets a benchmark replay the exact arrivals."""
        return list(self._issued)

    def snapshot(self) -> dict:
        try:
            return self._call(self.dispatcher.snapshot)
        except (RuntimeError, concurrent.futures.CancelledError):
            return {}

    def dispatch_record(self) -> dict:
        try:
            return self._call(self.dispatcher.record)
        except (RuntimeError, concurrent.futures.CancelledError):
            return {}

    def _fatal(self, message: str) -> None:
        """Report a condition the run cannot survive; the harness's handler decides what to do."""
        try:
            self._on_fatal(message)
        except BaseException as exc:  # noqa: BLE001 - a failing handler must not hide the message
            print(f"FATAL: {message} (and the fatal handler failed: {exc!r})", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.dispatcher.close(), self._loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
