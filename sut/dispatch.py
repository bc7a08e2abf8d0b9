"""Dispatcher: owns every query from IssueQuery until it is completed exactly once.

Runs on the coordinator's event loop. Queries wait in `pending` only while no worker has room;
each send is one attempt with its own request id. A worker that goes down, stalls past its
deadline or reports an error has its attempts re-issued to the others (front of the queue).
The first completion of a query wins; any later one is dropped and counted. When no worker is
left for `no_worker_timeout_s` while queries are outstanding, `on_fatal` ends the run loudly.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from sut.engines.base import SamplingParams
from sut.proto import backend_pb2 as pb
from sut.transport import LinkState, WorkerLink
from sut.wire import params_to_proto

log = logging.getLogger("sut.dispatch")


@dataclass(eq=False)
class Query:
    sample_id: int
    index: int
    prompt: bytes
    prompt_len: int
    work: int
    attempts: int = 0
    live: set = field(default_factory=set)
    first_token_sent: bool = False
    moved: bool = False  # stolen or hedged once already
    done: bool = False
    errors: list = field(default_factory=list)


class Responder(Protocol):
    def first_token(self, query: Query, tokens: bytes) -> None: ...
    def complete(self, items: list[tuple[Query, bytes]]) -> None: ...


@dataclass
class DispatchLimits:
    max_attempts: int = 3
    stall_timeout_s: float = 120.0
    request_timeout_s: float = 600.0
    no_worker_timeout_s: float = 30.0
    monitor_interval_s: float = 0.25


class Dispatcher:
    def __init__(self, addresses: Sequence[str], policy, responder: Responder, params: SamplingParams,
                 prompts: Sequence[tuple[bytes, int]], needs_first_token: bool,
                 on_fatal: Callable[[str], None], limits: DispatchLimits | None = None):
        self.policy = policy
        self.responder = responder
        self.params = params
        self.params_pb = params_to_proto(params)
        self.prompts = prompts
        self.needs_first_token = needs_first_token
        self.on_fatal = on_fatal
        self.limits = limits or DispatchLimits()
        self.links = [WorkerLink(address, self) for address in addresses]
        self.pending: collections.deque[Query] = collections.deque()
        self.attempts: dict[int, tuple[Query, WorkerLink]] = {}
        self.sent_at: dict[int, float] = {}  # live attempts in send order, for per-request deadlines
        self._ids = itertools.count(1)
        self.outstanding = 0
        self.counters = {"issued": 0, "completed": 0, "output_tokens": 0, "duplicates_dropped": 0,
                         "reissued": 0, "stolen": 0, "hedged": 0, "timed_out": 0, "errors": 0}
        self._no_worker_since: float | None = None
        self._monitor: asyncio.Task | None = None
        self._failed = False
        self.started_at = time.monotonic()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for link in self.links:
            link.start()
        self._monitor = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._monitor:
            self._monitor.cancel()
        await asyncio.gather(*(link.close() for link in self.links), return_exceptions=True)

    def ready_links(self) -> list[WorkerLink]:
        return [link for link in self.links if link.state is LinkState.READY]

    # --- from LoadGen (via the loop) ----------------------------------------------------------

    def submit(self, samples: Sequence[tuple[int, int]]) -> None:
        try:
            queries = []
            for sample_id, index in samples:
                prompt, length = self.prompts[index]
                queries.append(Query(sample_id, index, prompt, length, length + self.params.max_new_tokens))
            self.pending.extend(self.policy.order(queries))
            self.outstanding += len(queries)
            self.counters["issued"] += len(queries)
            self.pump()
        except Exception as exc:
            self._fail(f"dispatcher could not accept queries: {type(exc).__name__}: {exc}")

    # --- from links ---------------------------------------------------------------------------

    def on_ready(self, link: WorkerLink) -> None:
        log.info("worker %s ready", link.name)
        self.pump()

    def on_down(self, link: WorkerLink, reason: str) -> None:
        log.warning("worker %s down: %s", link.address, reason)
        lost = list(link.in_flight.items())
        link.in_flight.clear()
        link.unstarted.clear()
        link.outstanding_work = 0
        requeue = []
        for request_id, query in lost:
            self.attempts.pop(request_id, None)
            self.sent_at.pop(request_id, None)
            query.live.discard(request_id)
            if not query.done and not query.live:
                query.errors.append(f"{link.address}: {reason}")
                requeue.append(query)
        if requeue:
            link.stats["reissued"] += len(requeue)
            self.counters["reissued"] += len(requeue)
            self._requeue_front(requeue)
        self.pump()

    def on_events(self, link: WorkerLink, events) -> None:
        try:
            completions: list[tuple[Query, bytes]] = []
            for event in events:
                self._on_event(link, event, completions)
            if completions:
                self.responder.complete(completions)
            self.pump()
        except Exception as exc:
            self._fail(f"dispatcher failed on events from {link.address}: {type(exc).__name__}: {exc}")

    def _on_event(self, link: WorkerLink, event, completions: list) -> None:
        entry = self.attempts.get(event.request_id)
        if entry is None:
            self.counters["duplicates_dropped"] += event.WhichOneof("kind") == "completion"
            return
        query, owner = entry
        kind = event.WhichOneof("kind")
        if kind == "first_token":
            owner.unstarted.pop(event.request_id, None)
            if self.needs_first_token and not query.done and not query.first_token_sent:
                query.first_token_sent = True
                self.responder.first_token(query, event.first_token.tokens)
            return
        self._finish_attempt(event.request_id, query, owner)
        if kind == "completion":
            tokens = event.completion.tokens
            if query.done:
                self.counters["duplicates_dropped"] += 1
                return
            if self.needs_first_token and not query.first_token_sent:
                query.first_token_sent = True
                self.responder.first_token(query, tokens[:4])
            query.done = True
            self.outstanding -= 1
            n_tokens = len(tokens) // 4
            owner.stats["completed"] += 1
            owner.stats["output_tokens"] += n_tokens
            self.counters["completed"] += 1
            self.counters["output_tokens"] += n_tokens
            for other in list(query.live):
                self._cancel_attempt(other)
            completions.append((query, tokens))
        else:
            owner.stats["failures"] += 1
            self.counters["errors"] += 1
            query.errors.append(f"{owner.address}: {event.error.message}")
            if query.done or query.live:
                return
            if query.attempts >= self.limits.max_attempts:
                self._fail(f"sample {query.index} failed {query.attempts} times: " + "; ".join(query.errors))
                return
            self.counters["reissued"] += 1
            self._requeue_front([query])

    # --- sending --------------------------------------------------------------------------------

    def pump(self) -> None:
        links = self.ready_links()
        while self.pending and links:
            link = self.policy.choose(self.pending[0], links)
            if link is None:
                return
            query = self.pending.popleft()
            if not query.done:
                self._send(query, link)
        if not self.pending and getattr(self.policy, "steals", False) and len(links) > 1:
            self._steal(links)

    def _steal(self, links: list[WorkerLink]) -> None:
        """End game (nothing pending): a worker with idle slots first takes queued requests
        (beyond the holder's capacity, no first token yet) from the worker holding the most; if
        none are queued, it runs a duplicate of the oldest running request elsewhere, and the first
        completion wins. So workers of unequal speed finish together. A query moves at most once."""
        for thief in links:
            while len(thief.in_flight) < thief.capacity:
                if not (self._take_queued(thief, links) or self._hedge_running(thief, links)):
                    break

    def _take_queued(self, thief: WorkerLink, links: list[WorkerLink]) -> bool:
        victims = [link for link in links
                   if link is not thief and len(link.in_flight) > link.capacity and link.unstarted]
        for victim in sorted(victims, key=lambda link: len(link.in_flight) - link.capacity, reverse=True):
            for request_id in reversed(victim.unstarted):
                query = self.attempts[request_id][0]
                if not query.moved:
                    self._cancel_attempt(request_id)
                    query.moved = True
                    victim.stats["stolen_from"] += 1
                    self.counters["stolen"] += 1
                    self._send(query, thief)
                    return True
        return False

    def _hedge_running(self, thief: WorkerLink, links: list[WorkerLink]) -> bool:
        for victim in links:
            if victim is thief:
                continue
            for request_id, query in victim.in_flight.items():
                if not query.moved and request_id not in victim.unstarted:
                    query.moved = True
                    self.counters["hedged"] += 1
                    self._send(query, thief)
                    return True
        return False

    def _send(self, query: Query, link: WorkerLink) -> None:
        request_id = next(self._ids)
        query.attempts += 1
        query.live.add(request_id)
        self.attempts[request_id] = (query, link)
        self.sent_at[request_id] = time.monotonic()
        link.in_flight[request_id] = query
        link.stats["peak_in_flight"] = max(link.stats["peak_in_flight"], len(link.in_flight))
        link.unstarted[request_id] = None
        link.outstanding_work += query.work
        link.send(pb.GenerateRequest(request_id=request_id, prompt=query.prompt, params=self.params_pb))

    def _finish_attempt(self, request_id: int, query: Query, link: WorkerLink) -> None:
        self.attempts.pop(request_id, None)
        self.sent_at.pop(request_id, None)
        query.live.discard(request_id)
        link.unstarted.pop(request_id, None)
        if link.in_flight.pop(request_id, None) is not None:
            link.outstanding_work -= query.work

    def _cancel_attempt(self, request_id: int) -> None:
        entry = self.attempts.get(request_id)
        if entry:
            query, link = entry
            self._finish_attempt(request_id, query, link)
            link.cancel(request_id)

    def _requeue_front(self, queries: list[Query]) -> None:
        self.pending.extendleft(reversed(queries))

    # --- watchdog -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        limits = self.limits
        while True:
            await asyncio.sleep(limits.monitor_interval_s)
            now = time.monotonic()
            for link in self.ready_links():
                if link.in_flight and now - link.last_progress > limits.stall_timeout_s:
                    link.kill(f"no progress for {limits.stall_timeout_s:g} s with {len(link.in_flight)} "
                              f"requests in flight")
            self._expire_requests(now)
            if self.ready_links() or self.outstanding == 0:
                self._no_worker_since = None
            elif self._no_worker_since is None:
                self._no_worker_since = now
            elif now - self._no_worker_since > limits.no_worker_timeout_s:
                self._fail(self.dead_cluster_message())

    def _expire_requests(self, now: float) -> None:
        """Per-request deadline: an attempt older than request_timeout_s gets a second attempt on
        another ready worker; the first completion wins and the other is cancelled."""
        limit = self.limits.request_timeout_s
        expired = []
        for request_id, sent in self.sent_at.items():  # insertion order is send order
            if now - sent <= limit:
                break
            expired.append(request_id)
        for request_id in expired:
            self.sent_at.pop(request_id)
            query, owner = self.attempts[request_id]
            others = [link for link in self.ready_links() if link is not owner]
            if query.done or len(query.live) > 1 or not others:
                continue
            target = min(others, key=lambda link: len(link.in_flight) / link.capacity)
            self.counters["timed_out"] += 1
            self._send(query, target)

    def dead_cluster_message(self) -> str:
        lines = [f"no worker has been available for {self.limits.no_worker_timeout_s:g} s with "
                 f"{self.outstanding} queries outstanding:"]
        for link in self.links:
            lines.append(f"  {link.address}: {link.state.value}, last error: {link.last_error or 'none'}")
        return "\n".join(lines)

    def _fail(self, message: str) -> None:
        if not self._failed:
            self._failed = True
            self.on_fatal(message)

    # --- accounting -----------------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {"elapsed_s": time.monotonic() - self.started_at, "pending": len(self.pending),
                "outstanding": self.outstanding, **self.counters,
                "workers": [{"address": link.address, "name": link.name, "state": link.state.value,
                             "in_flight": len(link.in_flight), "last_error": link.last_error, **link.stats}
                            for link in self.links]}
