"""pull (Offline default): workers pull work in proportion to their speed, and finish together.

Each worker keeps credit_factor x its capacity in flight (2 by default: the engine always has its
next requests queued), so a faster worker finishes sooner and pulls more. Queries may be ordered
longest prompt first.

The end game, once nothing is pending, uses what the coordinator has measured of each worker: its
completion rate over the last seconds, and how long a started request takes there.
- Steal: a worker whose own queue holds less than `queue_ahead_s` of work (at its completion
  rate) takes queued (not started) requests, newest first, from the worker expected to finish last
  (requests in flight / its completion rate), while that brings the two closer by more than one
  request each. Moves are small and late, so each uses rates measured just before; credits follow
  capacity, not speed, so a big but slow worker hoards work that a faster one takes this way. A
  queued request has produced nothing, so moving it wastes nothing; on equal workers the gap
  rarely exceeds a request, so little moves.
- Duplicate: a worker with nothing at all in flight runs a second copy of a started request on
  another worker only when the copy is expected to finish well before the original (its fastest
  first token plus its decode time, times `duplicate_margin`, under the original's expected
  remaining time), and only when every request there expected to outlast a copy gets one (they fit
  in the idle worker's slots): copies of 32 of 350 long requests end nothing sooner, they only waste.
  The original's remaining time is the soonest of its decode time less what it has run, the pace
  of that worker's last completions, and its tokens left at the engine's current step rate (a worker
  that has no prompts left to prefill decodes its last requests several times faster than under load). On equal workers nothing qualifies, so nothing runs
  twice; a slow worker's long tail goes to the idle fast one. The first answer wins and the other
  copy is cancelled; the manifest's move records the estimates and which copy won.
A query moves at most once.
"""
from __future__ import annotations

import math
from typing import Sequence

from sut.dispatch.ledger import Query, WorkerLedger
from sut.dispatch.policies.base import Move, MoveKind

ORDERS = ("fifo", "longest-first")


class PullPolicy:
    name = "pull"

    def __init__(self, credit_factor: float = 2.0, order: str = "fifo", duplicate_margin: float = 1.25,
                 queue_ahead_s: float = 2.0):
        if order not in ORDERS:
            raise ValueError(f"--order {order!r}: choose {' or '.join(ORDERS)}")
        if not credit_factor > 0:
            raise ValueError(f"--credit-factor {credit_factor}: must be > 0")
        self.credit_factor = credit_factor
        self.order_name = order
        self.duplicate_margin = duplicate_margin
        self.queue_ahead_s = queue_ahead_s

    def order(self, queries: list[Query]) -> list[Query]:
        if self.order_name == "longest-first":
            return sorted(queries, key=lambda q: q.prompt_len, reverse=True)
        return queries

    def credits(self, worker: WorkerLedger) -> int:
        return max(1, math.ceil(worker.capacity * self.credit_factor))

    def choose(self, query: Query, workers: Sequence[WorkerLedger]) -> WorkerLedger | None:
        best, best_free = None, 0.0
        for worker in workers:
            free = 1.0 - len(worker.in_flight) / self.credits(worker)
            if free > best_free:
                best, best_free = worker, free
        return best

    # --- the end game -------------------------------------------------------------------------

    def end_game(self, workers: Sequence[WorkerLedger], now: float) -> list[Move]:
        if len(workers) < 2:
            return []
        rates = {worker: worker.completion_rate(now) for worker in workers}
        load = {worker: len(worker.in_flight) for worker in workers}
        moves = self._steal([w for w in workers if rates[w]], rates, load)
        for thief in workers:
            if load[thief] == 0:
                moves += self._duplicate(thief, workers, now)
        return moves

    def _steal(self, workers: list[WorkerLedger], rates: dict, load: dict) -> list[Move]:
        """A worker whose own queue would run dry within `queue_ahead_s` takes queued requests, newest
        first, from the worker expected to finish last, while that narrows the gap by more than a
        request on each side. Small, late moves: each decision uses the rates measured just before."""
        moves: list[Move] = []
        movable = {w: [a for a in reversed(w.unstarted.values()) if not a.query.moved] for w in workers}
        queued = {w: len(w.unstarted) for w in workers}
        for thief in sorted(workers, key=lambda w: load[w] / rates[w]):
            while queued[thief] < rates[thief] * self.queue_ahead_s:
                finish = {w: load[w] / rates[w] for w in workers}
                victims = [w for w in workers if w is not thief and movable[w]]
                if not victims:
                    break
                victim = max(victims, key=finish.get)
                # a request moved now finishes no sooner than a fresh one would on the thief
                thief_after = max(finish[thief] + 1 / rates[thief], thief.expected_fresh_s() or 0.0)
                if thief_after >= finish[victim] - 1 / rates[victim]:
                    break
                attempt = movable[victim].pop(0)
                load[victim] -= 1
                load[thief] += 1
                queued[victim] -= 1
                queued[thief] += 1
                moves.append(Move(MoveKind.STEAL, attempt, thief,
                                  f"{thief.name} has {queued[thief] - 1} queued (under {self.queue_ahead_s:g} s of "
                                  f"work) and is expected to finish its {load[thief] - 1} requests in "
                                  f"{finish[thief]:.2f} s, {victim.name} its {load[victim] + 1} in {finish[victim]:.2f} s"))
        return moves

    def _duplicate(self, thief: WorkerLedger, workers, now: float) -> list[Move]:
        """Copies for every request of one victim expected to outlast a copy, or none: copies of some
        of them cannot end the victim's work sooner (the others still run), they only waste. A request
        whose copy already runs elsewhere is covered; one that was stolen earlier can get no copy (a
        query moves once), so while it outlasts a copy nothing there is copied."""
        copy_s = thief.expected_fresh_s()
        if copy_s is None:
            return []
        moves: list[Move] = []
        room = thief.capacity
        for victim in workers:
            if victim is thief or not victim.in_flight:
                continue
            outlast, covered, blocked = [], 0, 0
            for attempt in victim.in_flight.values():
                remaining = victim.expected_remaining_s(attempt, now)
                if remaining is None:  # not started: its end cannot be told, so nor can a copy's gain
                    blocked += 1
                elif remaining > self.duplicate_margin * copy_s:
                    if len(attempt.query.live) > 1:  # its copy already runs elsewhere
                        covered += 1
                    elif attempt.query.moved:  # stolen earlier: it moves no more, so it can get no copy
                        blocked += 1
                    else:
                        outlast.append((remaining, attempt))
            if blocked or not outlast or len(outlast) > room:
                continue
            outlast.sort(key=lambda item: item[0], reverse=True)
            room -= len(outlast)
            for remaining, attempt in outlast:
                moves.append(Move(MoveKind.DUPLICATE, attempt, thief,
                                  f"{thief.name} is idle; the original is expected to need {remaining:.2f} s more on "
                                  f"{victim.name}, a copy {copy_s:.2f} s; all {len(outlast) + covered} requests there "
                                  f"expected to outlast a copy get one ({len(outlast)} of {thief.capacity} slots here)",
                                  {"original_remaining_s": round(remaining, 3), "copy_s": round(copy_s, 3),
                                   "outlasting": len(outlast) + covered, "victim_in_flight": len(victim.in_flight)}))
        return moves
