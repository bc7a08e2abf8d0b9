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


def test_an_idle_worker_copies_nothing_when_more_requests_outlast_a_copy_than_it_has_slots():
    """The unequal GPU pair (c0feb4f): the small worker (32 slots) ran dry while the big one drained
    hundreds of long requests; copies of 32 of them could not end its work sooner, and 3,451 output
    tokens were wasted."""
    small = ledger("small", 32)
    teach(small, 18.0, 1.7)
    big = load(ledger("big", 512), 350, started=350, now=9.0, first_id=1000)
    teach(big, 29.0, 12.0)
    assert PullPolicy().end_game([small, big], now=10.0) == []
    few = load(ledger("few", 512), 20, started=20, now=9.0, first_id=5000)  # 20 fit in 32 slots: all copied
    teach(few, 29.0, 12.0)
    moves = PullPolicy().end_game([small, few], now=10.0)
    assert len(moves) == 20 and all(m.kind is MoveKind.DUPLICATE and m.to is small for m in moves)
    assert all(m.estimate["outlasting"] == 20 and m.estimate["copy_s"] > 0 for m in moves)
    assert "all 20 requests" in moves[0].reason


def test_a_draining_worker_is_expected_to_finish_at_the_pace_of_its_last_completions():
    """Under full load a request decodes in 12 s; once no new prompts come, the last ones finish four
    times faster: the remaining time follows the recent completions, not the long-run decode time."""
    worker = ledger("big", 512)
    worker.min_ttft_s = 0.01
    for k in range(40):  # started 0.1 s apart, decoded in 12 s under load
        attempt = Attempt(k, Query(k, k, b"", 10, 138), worker, sent_at=k * 0.1)
        attempt.first_token_at = k * 0.1
        worker.finished(attempt, 12.0 + k * 0.1)
    running = Attempt(999, Query(999, 999, b"", 10, 138), worker, sent_at=5.0)
    running.first_token_at = 5.0
    assert worker.expected_remaining_s(running, now=14.0) == pytest.approx(3.0, abs=0.05)  # steady: 12 s decode
    for k in range(40, 56):  # draining: each 0.1 s of start spacing now ends 0.025 s apart
        attempt = Attempt(k, Query(k, k, b"", 10, 138), worker, sent_at=k * 0.1)
        attempt.first_token_at = k * 0.1
        worker.finished(attempt, 16.0 + (k - 40) * 0.025)
    late = Attempt(1000, Query(1000, 1000, b"", 10, 138), worker, sent_at=6.5)
    late.first_token_at = 6.5
    # the line through (4.0, 16.0) and (5.5, 16.375) puts its end at 16.625: 0.6 s from now, not 12 - 10 = 2 s
    assert worker.expected_remaining_s(late, now=16.0) == pytest.approx(0.625, abs=0.01)
    for k in range(20):  # twenty that started in one prefill step and finished in one step: the line
        attempt = Attempt(2000 + k, Query(k, k, b"", 10, 138), worker, sent_at=5.6)  # reaches back past them
        attempt.first_token_at = 5.6
        worker.finished(attempt, 16.4)
    assert worker.drain_finish(6.5) == pytest.approx(16.4 + (16.4 - 16.375) / 0.1 * 0.9, abs=0.01)
    for k in range(56, 72):  # outputs of unequal length: a later start finished first, no line to draw
        attempt = Attempt(k, Query(k, k, b"", 10, 138), worker, sent_at=k * 0.1)
        attempt.first_token_at = k * 0.1
        worker.finished(attempt, 30.0 - k * 0.1)
    assert worker.drain_finish(8.0) is None


def test_a_request_stolen_earlier_counts_as_uncopyable_not_as_covered():
    """The review's case: 40 running, 30 of them stolen earlier (a query moves once, so they can get no
    copy). Counted as covered, 10 copies were made while the reason said all 40 were covered; the 30
    still keep the victim busy, so copying the other 10 ends nothing sooner."""
    small = ledger("small", 32)
    teach(small, 18.0, 1.7)
    big = load(ledger("big", 512), 40, started=40, now=9.0, first_id=1000)
    teach(big, 29.0, 12.0)
    for attempt in list(big.in_flight.values())[:30]:
        attempt.query.moved = True
        attempt.query.live = {attempt.request_id}
    assert PullPolicy().end_game([small, big], now=10.0) == []
    # a request whose copy already runs elsewhere is covered: the other 10 are copied, the reason counts 40
    for attempt in list(big.in_flight.values())[:30]:
        attempt.query.live = {attempt.request_id, -attempt.request_id}
    moves = PullPolicy().end_game([small, big], now=10.0)
    assert len(moves) == 10 and all(not m.attempt.query.moved for m in moves)
    assert "all 40 requests" in moves[0].reason and moves[0].estimate["outlasting"] == 40


def test_a_worker_decoding_its_last_requests_is_expected_to_finish_at_its_current_step_rate():
    """The equal H200 pair at e8f9495: one worker ran dry while the other still had 488 requests
    decoding; their decode time under load (16 s here) said 5-12 s more, and 284 copies were made, but
    they ended 0.3 s later: with no prompts left to prefill, steps are several times faster. The
    engine's token counter over the requests decoding gives the steps run and their current rate."""
    thief = ledger("thief", 512)
    teach(thief, 29.0, 3.0, now=31.0)
    link = types.SimpleNamespace(address="victim", name="victim", capacity=512, ready=True, state_name="ready",
                                 last_error=None, disconnects=0)
    victim = WorkerLedger(link, max_new_tokens=128)
    teach(victim, 29.0, 16.0, now=27.0)
    victim.progress(0, 27.0)
    load(victim, 488, started=488, now=27.0, first_id=1000)
    running = next(iter(victim.in_flight.values()))
    assert victim.expected_remaining_s(running, now=31.0) == pytest.approx(12.0, abs=0.01)  # no count yet
    copies = PullPolicy().end_game([thief, victim], now=31.0)
    assert len(copies) == 488 and all(m.kind is MoveKind.DUPLICATE for m in copies)  # what the GPU run did
    for t, steps in ((30.0, 100), (30.5, 110), (31.0, 120)):  # 20 steps a second: 488 tokens each
        victim.progress(488 * steps, t)
    assert victim.steps == pytest.approx(120) and victim.step_rate(31.0) == pytest.approx(20.0)
    assert victim.expected_remaining_s(running, now=31.0) == pytest.approx((127 - 120) / 20)
    assert PullPolicy().end_game([thief, victim], now=31.0) == []
    victim.progress(5, 31.1)  # a new stream's counter starts again: no steps from it
    assert victim.steps == pytest.approx(120)


def test_first_tokens_counted_with_a_step_are_not_steps_of_the_requests_decoding():
    """One request decoding and twelve starting in the same engine step: 13 tokens, one step (review)."""
    worker = WorkerLedger(ledger("w", 64).link, max_new_tokens=128)
    worker.progress(0, 0.0)
    load(worker, 1, started=1)
    worker.progress(13, 0.1, starting=12)
    assert worker.steps == pytest.approx(1.0)
