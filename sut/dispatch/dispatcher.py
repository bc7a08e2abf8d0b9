"""Dispatcher: owns every query from IssueQuery until it is completed exactly once.

Runs on the coordinator's event loop. Queries wait in `pending` only while no worker has room;
each send is one attempt with its own request id, recorded in the worker's ledger. A worker that
goes down, stalls past its deadline or reports an error has its attempts re-issued to the others
(front of the queue). The first completion of a query wins; any later one is dropped, and what the
losing attempts generated is counted as waste. The policy chooses workers and, once nothing is
pending, the end-game moves; the dispatcher carries them out and records each one. When no worker
is left for `no_worker_timeout_s` while queries are outstanding, `on_fatal` reports it: the harness
decides what happens to the process.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from typing import Callable, Protocol, Sequence

from sut.dispatch.checks import output_problem
from sut.dispatch.limits import DispatchLimits
from sut.dispatch.ledger import Attempt, Connection, Query, WorkerLedger
from sut.dispatch.policies.base import DispatchPolicy, Move, MoveKind
from sut.dispatch.trust import Trust
from sut.dispatch.watchdog import Watchdog
from sut import stage_trace
from sut.engines.base import SamplingParams
from sut.proto import backend_pb2 as pb
from sut.transport import WorkerLink
from sut.wire import INVALID_REQUEST_PREFIX, first_tokens, params_to_proto, token_count

log = logging.getLogger("sut.dispatch")
END_GAME_INTERVAL_S = 0.05
MOVES_KEPT = 2000  # the manifest keeps the first moves in full; counters cover the rest

LinkFactory = Callable[[str, object], Connection]


class Responder(Protocol):
    def first_token(self, query: Query, tokens: bytes) -> None: ...
    def complete(self, items: list[tuple[Query, bytes]]) -> None: ...


class Dispatcher:
    def __init__(self, addresses: Sequence[str], policy: DispatchPolicy, responder: Responder,
                 params: SamplingParams, prompts: Sequence[tuple[bytes, int]], needs_first_token: bool,
                 on_fatal: Callable[[str], None], limits: DispatchLimits | None = None,
                 link_factory: LinkFactory = WorkerLink, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.policy = policy
        self.responder = responder
        self.params = params
        self.params_pb = params_to_proto(params)
        self.prompts = prompts
        self.needs_first_token = needs_first_token
        self.on_fatal = on_fatal
        self.limits = limits or DispatchLimits()
        self.workers = [WorkerLedger(link_factory(address, self), params.max_new_tokens) for address in addresses]
        self._ledger = {id(worker.link): worker for worker in self.workers}
        self.pending: collections.deque[Query] = collections.deque()
        self.attempts: dict[int, Attempt] = {}  # insertion order is send order: deadlines expire in order
        self._cancelled: dict[int, tuple[WorkerLedger, Query]] = {}  # cancelled, waste not reported yet
        self._ids = itertools.count(1)
        self.outstanding = 0
        self.counters = {"issued": 0, "completed": 0, "output_tokens": 0, "duplicates_dropped": 0,
                         "reissued": 0, "stolen": 0, "hedged": 0, "timed_out": 0, "errors": 0,
                         "wasted_output_tokens": 0, "foreign_events": 0, "failed_attempts": 0, "violations": 0,
                         "refused_connections": 0, "aborted": 0}
        self.moves: list[dict] = []
        self.trust = Trust(self)
        self._last_end_game = 0.0
        self.watchdog = Watchdog(self)
        self._monitor: asyncio.Task | None = None
        self._failed = False
        self.aborted: str | None = None  # why the run is being stopped: every query is answered empty
        self.started_at = self.clock()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers:
            worker.link.start()
        self._monitor = asyncio.create_task(self.watchdog.run())

    async def close(self) -> None:
        if self._monitor:
            self._monitor.cancel()
        await asyncio.gather(*(worker.link.close() for worker in self.workers), return_exceptions=True)

    def ready_workers(self) -> list[WorkerLedger]:
        return [worker for worker in self.workers if worker.ready]

    # --- from LoadGen (via the loop) ----------------------------------------------------------

    def submit(self, samples: Sequence[tuple[int, int]]) -> None:
        try:
            queries = []
            if stage_trace.TRACE.enabled:
                for sample_id, _ in samples:
                    stage_trace.mark(stage_trace.SUBMIT, sample_id)
            for sample_id, index in samples:
                prompt, length = self.prompts[index]
                queries.append(Query(sample_id, index, prompt, length, length + self.params.max_new_tokens))
            self.pending.extend(self.policy.order(queries))
            self.outstanding += len(queries)
            self.counters["issued"] += len(queries)
            if self.aborted:
                self._answer_all_empty()
            self.pump()
        except Exception as exc:
            self.fail(f"dispatcher could not accept queries: {type(exc).__name__}: {exc}")

    def abort(self, reason: str) -> None:
        """Stop the run: cancel every attempt and answer every query, now and from now on, with an
        empty (failed) response, so LoadGen can finish and write its logs."""
        if self.aborted:
            return
        self.aborted = reason
        log.warning("aborting: %s", reason)
        for request_id in list(self.attempts):
            attempt = self.attempts[request_id]
            self.cancel_attempt(request_id)
            if not attempt.query.done and attempt.query not in self.pending:
                self.pending.append(attempt.query)
        self._answer_all_empty()

    def _answer_all_empty(self) -> None:
        answered = []
        for query in self.pending:
            if not query.done:
                query.done = True
                self.outstanding -= 1
                answered.append((query, b""))
        self.pending.clear()
        self.counters["aborted"] += len(answered)
        if answered:
            self.responder.complete(answered)

    # --- from links ---------------------------------------------------------------------------

    def on_ready(self, link) -> None:
        if self.trust.admit(self._ledger[id(link)]):
            log.info("worker %s ready", link.name)
            self.pump()

    def on_down(self, link, reason: str) -> None:
        log.warning("worker %s down: %s", link.address, reason)
        worker = self._ledger[id(link)]
        if worker.in_flight:
            self.trust.unproductive(worker, f"lost with work in flight ({reason})")
        self._cancelled = {rid: item for rid, item in self._cancelled.items() if item[0] is not worker}
        requeue = []
        for attempt in worker.clear():
            self.attempts.pop(attempt.request_id, None)
            attempt.query.live.discard(attempt.request_id)
            if self.attempt_failed(attempt, reason):
                requeue.append(attempt.query)
        self.requeue_front(requeue)
        self.pump()

    def on_events(self, link, events) -> None:
        try:
            worker = self._ledger[id(link)]
            now = self.clock()
            starting = 0  # first tokens in this message: counted by the engine, not steps of those decoding
            for event in events:
                if event.WhichOneof("kind") == "first_token" and event.request_id in worker.unstarted:
                    starting += 1
            worker.progress(getattr(link, "engine_tokens", None), now, starting)
            completions: list[tuple[Query, bytes]] = []
            for event in events:
                self._on_event(worker, event, now, completions)
            if completions:
                self.responder.complete(completions)
            self.pump()
        except Exception as exc:
            self.fail(f"dispatcher failed on events from {link.address}: {type(exc).__name__}: {exc}")

    def _on_event(self, worker: WorkerLedger, event, now: float, completions: list) -> None:
        kind = event.WhichOneof("kind")
        attempt = self.attempts.get(event.request_id)
        if attempt is not None and attempt.worker is not worker:
            self.counters["foreign_events"] += 1  # an id this worker was never sent: not its answer
            self.trust.violation(worker, None, f"answered request {event.request_id}, which was sent to "
                                               f"{attempt.worker.address}")
            return
        if attempt is None:
            self._on_stale_event(worker, event, kind)
            return
        query = attempt.query
        if kind == "first_token":
            worker.started(attempt, now)
            if self.needs_first_token and not query.done and not query.first_token_sent:
                query.first_token_sent = True
                self.responder.first_token(query, event.first_token.tokens)
            return
        self._finish_attempt(attempt)
        if kind == "completion":
            tokens = event.completion.tokens
            problem = output_problem(tokens, self.params, int((worker.link.info or {}).get("vocab_size") or 0))
            if problem:
                self.trust.violation(worker, attempt, f"sample {query.index}: {problem}")
                return
            worker.finished(attempt, now)
            if query.done:
                self._count_waste(worker, token_count(tokens), dropped=True)
                return
            if self.needs_first_token and not query.first_token_sent:
                query.first_token_sent = True
                self.responder.first_token(query, first_tokens(tokens))
            query.done = True
            self.outstanding -= 1
            n_tokens = token_count(tokens)
            worker.stats["completed"] += 1
            worker.stats["output_tokens"] += n_tokens
            self.counters["completed"] += 1
            self.counters["output_tokens"] += n_tokens
            for other in list(query.live):
                self.cancel_attempt(other)
            if query.move and query.move["kind"] == MoveKind.DUPLICATE.value:  # how the estimate turned out
                query.move["won"] = "copy" if attempt.duplicate else "original"
                query.move["decided_s"] = round(now - self.started_at, 3)
            completions.append((query, tokens))
        else:
            self.counters["errors"] += 1
            message = event.error.message if kind == "error" else "the worker cancelled the request itself"
            if message.startswith(INVALID_REQUEST_PREFIX):  # no worker would accept it: retrying cannot help
                self.fail(f"sample {query.index}: {worker.address} refused the request as invalid: {message}")
                return
            if self.attempt_failed(attempt, message):
                self.requeue_front([query])

    def attempt_failed(self, attempt: Attempt, reason: str) -> bool:
        """Every attempt that ends without an answer counts toward max_attempts. True: send the
        query again; False: it is answered, still running elsewhere, or the run has failed."""
        query, worker = attempt.query, attempt.worker
        worker.stats["failures"] += 1
        self.counters["failed_attempts"] += 1
        query.failures += 1
        query.errors.append(f"{worker.address}: {reason}")
        if query.done or query.live:
            return False
        if query.failures >= self.limits.max_attempts:
            last = "; ".join(f"{w.address}: {w.link.last_error or 'no error'}" for w in self.workers)
            self.fail(f"sample {query.index} got no answer in {query.failures} attempts: "
                       + "; ".join(query.errors) + f" (workers' last errors: {last})")
            return False
        worker.stats["reissued"] += 1
        self.counters["reissued"] += 1
        return True

    def _on_stale_event(self, worker: WorkerLedger, event, kind: str) -> None:
        """An event for an attempt that is no longer live: a late duplicate or a cancelled one."""
        owner, query = self._cancelled.get(event.request_id, (None, None))
        if kind == "completion":
            tokens = token_count(event.completion.tokens)
            self._count_waste(worker, tokens, dropped=True)
        elif kind == "cancelled" and owner is worker:
            tokens = event.cancelled.generated_tokens
            self._count_waste(worker, tokens)
        else:
            return
        if owner is worker:
            del self._cancelled[event.request_id]
            if query.move and "won" in query.move:  # the losing copy of a duplicated request
                query.move["loser_tokens"] = tokens

    def _count_waste(self, worker: WorkerLedger, tokens: int, dropped: bool = False) -> None:
        if dropped:
            worker.stats["duplicates_dropped"] += 1
            self.counters["duplicates_dropped"] += 1
        worker.stats["wasted_output_tokens"] += tokens
        self.counters["wasted_output_tokens"] += tokens

    # --- sending --------------------------------------------------------------------------------

    def pump(self) -> None:
        if self.aborted:
            return
        workers = self.ready_workers()
        while self.pending and workers:
            worker = self.policy.choose(self.pending[0], workers)
            if worker is None:
                return
            query = self.pending.popleft()
            if not query.done:
                self.send(query, worker)
        if not self.pending and len(workers) > 1 and self.outstanding:
            now = self.clock()
            if now - self._last_end_game >= END_GAME_INTERVAL_S:
                self._last_end_game = now
                for worker in workers:  # counts that came alone (heartbeats), stamped when they came
                    worker.progress(getattr(worker.link, "engine_tokens", None), worker.link.last_progress)
                for move in self.policy.end_game(workers, now):
                    self._apply(move, now)

    def _apply(self, move: Move, now: float) -> None:
        attempt = move.attempt
        query = attempt.query
        if query.done or query.moved or attempt.request_id not in self.attempts or not move.to.ready:
            return
        query.moved = True
        source = attempt.worker
        if move.kind is MoveKind.STEAL:
            self.cancel_attempt(attempt.request_id)
            source.stats["stolen_from"] += 1
            move.to.stats["stolen_to"] += 1
            self.counters["stolen"] += 1
        else:
            move.to.stats["hedged_to"] += 1
            self.counters["hedged"] += 1
        self.send(query, move.to, duplicate=move.kind is MoveKind.DUPLICATE)
        query.move = {"t_s": round(now - self.started_at, 3), "kind": move.kind.value, "sample": query.index,
                      "from": source.name, "to": move.to.name, "why": move.reason, **move.estimate}
        if len(self.moves) < MOVES_KEPT:
            self.moves.append(query.move)

    def send(self, query: Query, worker: WorkerLedger, duplicate: bool = False) -> None:
        request_id = next(self._ids)
        query.attempts += 1
        query.live.add(request_id)
        attempt = Attempt(request_id, query, worker, self.clock(), duplicate=duplicate)
        self.attempts[request_id] = attempt
        worker.add(attempt)
        if stage_trace.TRACE.enabled:
            stage_trace.mark(stage_trace.SEND, request_id, query.sample_id)
        worker.link.send(pb.GenerateRequest(request_id=request_id, prompt=query.prompt, params=self.params_pb))

    def _finish_attempt(self, attempt: Attempt) -> None:
        self.attempts.pop(attempt.request_id, None)
        attempt.query.live.discard(attempt.request_id)
        attempt.worker.remove(attempt.request_id)

    def cancel_attempt(self, request_id: int) -> None:
        attempt = self.attempts.get(request_id)
        if attempt:
            self._finish_attempt(attempt)
            attempt.worker.stats["cancelled"] += 1
            self._cancelled[request_id] = (attempt.worker, attempt.query)
            attempt.worker.link.cancel(request_id)

    def requeue_front(self, queries: list[Query]) -> None:
        if queries:
            self.pending.extendleft(reversed(queries))

    def fail(self, message: str) -> None:
        if not self._failed:
            self._failed = True
            self.on_fatal(message)

    # --- accounting -----------------------------------------------------------------------------

    def snapshot(self) -> dict:
        counters = self.counters
        return {"elapsed_s": self.clock() - self.started_at, "pending": len(self.pending),
                "outstanding": self.outstanding, **counters,
                "requests_run_more_than_once": counters["hedged"] + counters["timed_out"],
                "wasted_fraction": counters["wasted_output_tokens"] / max(1, counters["output_tokens"]),
                "workers": [{**worker.snapshot(), "last_completion_s": self._since_start(worker.last_completion_at)}
                            for worker in self.workers]}

    def _since_start(self, at: float | None) -> float | None:
        return None if at is None else round(at - self.started_at, 3)

    def record(self) -> dict:
        """For the manifest: every end-game move and every incident (the first ones in full)."""
        return {"end_game": {"policy": self.policy.name, "moves_recorded": len(self.moves),
                             "moves_total": self.counters["stolen"] + self.counters["hedged"], "moves": self.moves},
                "incidents": self.trust.incidents,
                "identities": {worker.address: worker.identity for worker in self.workers}}
