"""The dispatcher's clock: what happens when time passes without an answer.

Each tick: a busy worker silent for `silence_timeout_s` (not even a heartbeat) or without progress
for `stall_timeout_s` is dropped (its work is re-issued); attempts past `request_timeout_s` get a
second attempt elsewhere or, with nowhere else to go, fail; the end game gets a turn even when no
event arrives; and no ready worker for `no_worker_timeout_s` with queries outstanding is fatal.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sut.dispatch.dispatcher import Dispatcher


class Watchdog:
    def __init__(self, dispatcher: "Dispatcher"):
        self.dispatcher = dispatcher
        self.no_worker_since: float | None = None

    async def run(self) -> None:
        d = self.dispatcher
        limits = d.limits
        while True:
            await asyncio.sleep(limits.monitor_interval_s)
            now = d.clock()
            for worker in d.ready_workers():
                if not worker.in_flight:
                    continue
                if now - max(worker.link.last_message, worker.busy_since) > limits.silence_timeout_s:
                    worker.link.kill(f"silent for {limits.silence_timeout_s:g} s (no event, no heartbeat) with "
                                     f"{len(worker.in_flight)} requests in flight")
                elif now - worker.link.last_progress > limits.stall_timeout_s:
                    worker.link.kill(f"no progress for {limits.stall_timeout_s:g} s with {len(worker.in_flight)} "
                                     f"requests in flight")
            self.expire_requests(now)
            d.pump()
            if d.ready_workers() or d.outstanding == 0:
                self.no_worker_since = None
            elif self.no_worker_since is None:
                self.no_worker_since = now
            elif now - self.no_worker_since > limits.no_worker_timeout_s:
                d.fail(self.dead_cluster_message())

    def expire_requests(self, now: float) -> None:
        """Per-request deadline: an attempt older than request_timeout_s gets a second attempt on
        another ready worker (the first completion wins, the other is cancelled). When that one
        times out too, or there is no other worker, the timed-out attempts have failed: they are
        cancelled, counted toward max_attempts, and the query is sent again."""
        d = self.dispatcher
        limit = d.limits.request_timeout_s
        expired = []
        for attempt in d.attempts.values():  # send order
            if attempt.timed_out:
                continue
            if now - attempt.sent_at <= limit:
                break
            expired.append(attempt)
        for attempt in expired:
            attempt.timed_out = True
            query = attempt.query
            if query.done or attempt.request_id not in d.attempts:
                continue
            others = [worker for worker in d.ready_workers() if worker is not attempt.worker]
            if len(query.live) == 1 and others:
                target = min(others, key=lambda worker: len(worker.in_flight) / worker.capacity)
                d.counters["timed_out"] += 1
                d.trust.unproductive(attempt.worker, f"no answer within {limit:g} s")
                d.send(query, target, duplicate=True)
                continue
            retry = False
            for request_id in list(query.live):
                late = d.attempts[request_id]
                if late.timed_out:
                    d.cancel_attempt(request_id)
                    retry = d.attempt_failed(late, f"no answer within {limit:g} s")
                    d.trust.unproductive(late.worker, f"no answer within {limit:g} s")
            if retry:
                d.requeue_front([query])
        if expired:
            d.pump()

    def dead_cluster_message(self) -> str:
        d = self.dispatcher
        lines = [f"no worker has been available for {d.limits.no_worker_timeout_s:g} s with "
                 f"{d.outstanding} queries outstanding:"]
        for worker in d.workers:
            lines.append(f"  {worker.address}: {worker.link.state_name}, last error: {worker.link.last_error or 'none'}")
        return "\n".join(lines)

