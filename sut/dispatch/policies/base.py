"""The dispatch extension point: a policy orders new queries, picks a worker for each, and may move
work between workers once nothing is left to send (the end game). The dispatcher carries out
what a policy decides and records every move, so each decision can be read back from the manifest."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from sut.dispatch.ledger import Attempt, Query, WorkerLedger


class MoveKind(enum.Enum):
    STEAL = "steal"  # cancel a queued (not started) attempt and send the query to another worker
    DUPLICATE = "duplicate"  # run a second copy of a started attempt elsewhere; the first answer wins


@dataclass(frozen=True)
class Move:
    kind: MoveKind
    attempt: Attempt
    to: WorkerLedger
    reason: str
    estimate: dict = field(default_factory=dict)  # the numbers behind `reason`, for the manifest


class DispatchPolicy(Protocol):
    name: str

    def order(self, queries: list[Query]) -> list[Query]:
        """The order in which newly issued queries wait to be sent."""

    def choose(self, query: Query, workers: Sequence[WorkerLedger]) -> WorkerLedger | None:
        """The ready worker that gets `query` now, or None to keep it pending until a worker has room."""

    def end_game(self, workers: Sequence[WorkerLedger], now: float) -> list[Move]:
        """Moves to make while nothing is pending (called at most every few hundred ms)."""
