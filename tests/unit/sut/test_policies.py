"""Each dispatch policy on its own, against worker ledgers over fake connections."""
from __future__ import annotations

import types

import pytest

from sut.dispatch.ledger import Attempt, Query, WorkerLedger
from sut.dispatch.policies import LeastWorkPolicy, MoveKind, PullPolicy, create_policy, policy_names


def ledger(name: str, capacity: int) -> WorkerLedger:
    link = types.SimpleNamespace(address=name, name=name, capacity=capacity, ready=True, state_name="ready",
                                 last_error=None, disconnects=0)
    return WorkerLedger(link)


def load(worker: WorkerLedger, count: int, started: int = 0, now: float = 0.0, first_id: int = 1):
    for i in range(count):
        attempt = Attempt(first_id + i, Query(i, i, b"", 10, 138), worker, sent_at=now)
        worker.add(attempt)
        if i < started:
            worker.started(attempt, now)
    return worker


def teach(worker: WorkerLedger, rate: float, decode_s: float, now: float = 10.0):
    """Completions at `rate` per second for the last seconds, each decoding for `decode_s`."""
    n = int(rate * 4)
    for k in range(n):
        t = now - 4 + k / rate
        attempt = Attempt(10_000 + k, Query(k, k, b"", 10, 138), worker, sent_at=t - decode_s - 0.01)
        attempt.first_token_at = t - decode_s
        worker.min_ttft_s = 0.01
        worker.finished(attempt, t)


def test_registry_knows_both_policies_and_refuses_others():
    assert set(policy_names()) == {"pull", "least-work"}
    assert isinstance(create_policy("pull", credit_factor=1.5, order="longest-first"), PullPolicy)
    with pytest.raises(ValueError, match="--policy 'nope'"):
        create_policy("nope")
    with pytest.raises(ValueError, match="--order"):
        PullPolicy(order="random")


def test_pull_chooses_the_worker_with_the_most_free_credit_and_none_when_all_are_full():
    policy = PullPolicy(credit_factor=2.0)
    a, b = load(ledger("a", 4), 6), load(ledger("b", 4), 2)
    assert policy.choose(None, [a, b]) is b
    load(b, 6, first_id=100), load(a, 2, first_id=300)
    assert policy.choose(None, [a, b]) is None


def test_longest_first_orders_by_prompt_length():
    queries = [Query(i, i, b"", n, n) for i, n in enumerate((5, 50, 20))]
    assert [q.prompt_len for q in PullPolicy(order="longest-first").order(queries)] == [50, 20, 5]


def test_end_game_on_equal_workers_moves_nothing():
    a, b = load(ledger("a", 8), 10, started=8), load(ledger("b", 8), 10, started=8, first_id=100)
    teach(a, 5.0, 1.0), teach(b, 5.0, 1.0)
    assert PullPolicy().end_game([a, b], now=10.0) == []


def test_end_game_moves_queued_requests_toward_the_worker_expected_to_finish_first_newest_first():
    fast, slow = load(ledger("fast", 8), 8, started=8), load(ledger("slow", 8), 16, started=8, first_id=100)
    teach(fast, 10.0, 0.5), teach(slow, 2.0, 2.0)
    moves = PullPolicy().end_game([fast, slow], now=10.0)
    assert moves and all(m.kind is MoveKind.STEAL and m.to is fast for m in moves)
    assert [m.attempt.request_id for m in moves] == list(range(115, 115 - len(moves), -1))
    assert all(m.attempt.request_id in slow.unstarted for m in moves)  # only queued work moves
    assert "expected to finish" in moves[0].reason


def test_an_idle_worker_duplicates_only_what_it_can_finish_well_before_the_original():
    fast, slow = ledger("fast", 8), load(ledger("slow", 8), 2, started=2, now=9.9, first_id=100)
    teach(fast, 10.0, 0.5), teach(slow, 2.0, 3.0)
    moves = PullPolicy().end_game([fast, slow], now=10.0)
    assert [m.kind for m in moves] == [MoveKind.DUPLICATE] * 2 and all(m.to is fast for m in moves)
    late = load(ledger("slow2", 8), 2, started=2, now=7.2, first_id=200)  # 0.2 s left: not worth a copy
    teach(late, 2.0, 3.0)
    assert PullPolicy().end_game([fast, late], now=10.0) == []


def test_least_work_balances_outstanding_work_per_capacity_and_has_no_end_game():
    big, small = load(ledger("big", 8), 4), load(ledger("small", 2), 1, first_id=100)
    policy = LeastWorkPolicy()
    assert policy.choose(None, [big, small]) is big  # 4/8 < 1/2 is false: equal, min takes the first
    load(big, 1, first_id=200)
    assert policy.choose(None, [big, small]) is small
    assert policy.end_game([big, small], now=0.0) == []
