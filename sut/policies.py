"""Dispatch policies: which worker gets the next query. The coordinator never batches or pads.

- pull (Offline default): each worker keeps credit_factor x its capacity in flight (2 by default:
  the engine always has the next requests queued); a faster worker finishes sooner, so it pulls
  more. When nothing is left to pull, idle workers steal queued requests from busy ones.
  Queries may be ordered longest prompt first.
- least-work (Server, Interactive, SingleStream default): each query goes at once to the worker
  with the least outstanding work (prompt + expected output tokens) per unit of capacity.
"""
from __future__ import annotations

import math
from typing import Sequence


class PullPolicy:
    name = "pull"
    steals = True  # see Dispatcher._steal

    def __init__(self, credit_factor: float = 2.0, order: str = "fifo"):
        if order not in ("fifo", "longest-first"):
            raise ValueError(f"--order {order!r}: choose fifo or longest-first")
        self.credit_factor = credit_factor
        self.order_name = order

    def order(self, queries: list) -> list:
        if self.order_name == "longest-first":
            return sorted(queries, key=lambda q: q.prompt_len, reverse=True)
        return queries

    def credits(self, link) -> int:
        return max(1, math.ceil(link.capacity * self.credit_factor))

    def choose(self, query, links: Sequence) -> object | None:
        best, best_free = None, 0.0
        for link in links:
            free = 1.0 - len(link.in_flight) / self.credits(link)
            if free > best_free:
                best, best_free = link, free
        return best


class LeastWorkPolicy:
    name = "least-work"

    def order(self, queries: list) -> list:
        return queries

    def choose(self, query, links: Sequence) -> object | None:
        return min(links, key=lambda link: link.outstanding_work / link.capacity, default=None)


def make_policy(name: str, scenario: str, credit_factor: float = 2.0, order: str = "fifo"):
    if name == "auto":
        name = "pull" if scenario == "Offline" else "least-work"
    if name == "pull":
        return PullPolicy(credit_factor, order)
    if name == "least-work":
        return LeastWorkPolicy()
    raise ValueError(f"--policy {name!r}: choose auto, pull or least-work")
