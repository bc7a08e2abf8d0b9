"""Dispatch: every query from IssueQuery to its one completion; per-worker ledgers; policies."""
from sut.dispatch.dispatcher import Dispatcher, Responder
from sut.dispatch.limits import DispatchLimits
from sut.dispatch.ledger import Attempt, Query, WorkerLedger

__all__ = ["Attempt", "Dispatcher", "DispatchLimits", "Query", "Responder", "WorkerLedger"]
