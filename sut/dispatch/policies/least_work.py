"""least-work (Server, Interactive, SingleStream default): each query goes at once to the worker with
the least outstanding work (prompt + expected output tokens) per unit of capacity. Nothing waits at
the coordinator, so there is no end game."""
from __future__ import annotations

from typing import Sequence

from sut.dispatch.ledger import Query, WorkerLedger
from sut.dispatch.policies.base import Move


class LeastWorkPolicy:
    name = "least-work"

    def order(self, queries: list[Query]) -> list[Query]:
        return queries

    def choose(self, query: Query, workers: Sequence[WorkerLedger]) -> WorkerLedger | None:
        return min(workers, key=lambda worker: worker.outstanding_work / worker.capacity, default=None)

    def end_game(self, workers: Sequence[WorkerLedger], now: float) -> list[Move]:
        return []
