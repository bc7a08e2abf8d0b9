"""Which workers the dispatcher trusts: a worker's identity is pinned at first contact and a
different one at that address is refused; wrong answers fail their attempt and, `faulty_after` of
them, mark the worker faulty (no more work, its work taken back); a worker that keeps being dropped
or timing out without ever answering is marked faulty too. Every refusal, wrong answer and faulty
mark is an incident in the manifest."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sut.dispatch.checks import identity_change, identity_of
from sut.dispatch.ledger import Attempt, WorkerLedger

if TYPE_CHECKING:
    from sut.dispatch.dispatcher import Dispatcher

log = logging.getLogger("sut.dispatch")
INCIDENTS_KEPT = 500


class Trust:
    def __init__(self, dispatcher: "Dispatcher"):
        self.dispatcher = dispatcher
        self.incidents: list[dict] = []  # identity changes, refusals, wrong answers, faulty workers

    def admit(self, worker: WorkerLedger) -> bool:
        """A link came up: pin its identity the first time, refuse a different one or a faulty worker."""
        link = worker.link
        shown = identity_of(link.info or {})
        if worker.identity is None:
            worker.identity = shown
        else:
            change = identity_change(worker.identity, shown)
            if change:
                self.dispatcher.counters["refused_connections"] += 1
                self.incident("refused", worker, f"a different worker answered at this address: {change}")
                link.kill(f"refused: not the worker first seen here ({change})")
                return False
        if worker.faulty:
            link.kill(f"refused: marked faulty ({worker.faulty})")
            return False
        return True

    def violation(self, worker: WorkerLedger, attempt: Attempt | None, problem: str) -> None:
        """A wrong answer (or an answer to a request sent elsewhere): the attempt, if it was this
        worker's, failed; `faulty_after` of them and the worker gets no more work."""
        d = self.dispatcher
        worker.stats["violations"] += 1
        d.counters["violations"] += 1
        self.incident("wrong answer", worker, problem)
        if attempt is not None and d.attempt_failed(attempt, f"wrong answer: {problem}"):
            d.requeue_front([attempt.query])
        if worker.stats["violations"] >= d.limits.faulty_after:
            self.mark_faulty(worker, f"{worker.stats['violations']} wrong answers, the last: {problem}")

    def mark_faulty(self, worker: WorkerLedger, why: str) -> None:
        if not worker.faulty:
            worker.faulty = why
            self.incident("faulty", worker, f"no more work: {why}")
            self._withdraw(worker)

    def unproductive(self, worker: WorkerLedger, why: str) -> None:
        """A worker that keeps failing (dropped, timing out) and has never answered gets no more work."""
        worker.stats["unanswered"] += 1
        if worker.stats["completed"] == 0 and worker.stats["unanswered"] >= self.dispatcher.limits.faulty_after:
            self.mark_faulty(worker, f"{worker.stats['unanswered']} times {why}, never an answer")

    def _withdraw(self, worker: WorkerLedger) -> None:
        """Take a worker's work back without blaming the queries (the worker is at fault)."""
        d = self.dispatcher
        requeue = []
        for attempt in list(worker.in_flight.values()):
            d.cancel_attempt(attempt.request_id)
            if not attempt.query.done and not attempt.query.live:
                requeue.append(attempt.query)
        d.requeue_front(requeue)

    def incident(self, kind: str, worker: WorkerLedger, detail: str) -> None:
        log.warning("worker %s: %s: %s", worker.address, kind, detail)
        if len(self.incidents) < INCIDENTS_KEPT:
            d = self.dispatcher
            self.incidents.append({"t_s": round(d.clock() - d.started_at, 3), "kind": kind,
                                   "worker": worker.address, "detail": detail})
