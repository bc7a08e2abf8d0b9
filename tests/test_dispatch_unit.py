"""Dispatcher logic with fake links (no network): exactly-once, re-issue, retries, policies, stealing."""
from __future__ import annotations

from sut.dispatch import Dispatcher, DispatchLimits
from sut.engines.base import SamplingParams
from sut.policies import LeastWorkPolicy, PullPolicy
from sut.proto import backend_pb2 as pb
from sut.transport import LinkState
from sut.wire import pack_tokens


class FakeLink:
    def __init__(self, address: str, capacity: int):
        self.address = self.name = address
        self.info = {"max_concurrency": capacity}
        self.capacity = capacity
        self.state = LinkState.READY
        self.in_flight, self.unstarted = {}, {}
        self.outstanding_work = 0
        self.last_error = None
        self.stats = {"completed": 0, "output_tokens": 0, "failures": 0, "reissued": 0, "stolen_from": 0,
                      "disconnects": 0, "peak_in_flight": 0}
        self.sent, self.cancelled = [], []

    def send(self, request):
        self.sent.append(request.request_id)

    def cancel(self, request_id):
        self.cancelled.append(request_id)


class Recorder:
    def __init__(self):
        self.first, self.done = [], []

    def first_token(self, query, tokens):
        self.first.append((query.sample_id, tokens))

    def complete(self, items):
        self.done.extend((query.sample_id, tokens) for query, tokens in items)


def make(links, policy=None, needs_first_token=False, samples=4, max_attempts=3):
    recorder, fatal = Recorder(), []
    prompts = [(pack_tokens([1, 2, 3]), 3)] * samples
    d = Dispatcher([], policy or PullPolicy(credit_factor=1.0), recorder, SamplingParams(), prompts,
                   needs_first_token, fatal.append, DispatchLimits(max_attempts=max_attempts))
    d.links = links
    return d, recorder, fatal


def completion(request_id, tokens=(7, 8)):
    return pb.Event(request_id=request_id, completion=pb.Completion(tokens=pack_tokens(tokens)))


def first_token(request_id, tokens=(7,)):
    return pb.Event(request_id=request_id, first_token=pb.FirstToken(tokens=pack_tokens(tokens)))


def test_first_completion_wins_and_a_late_duplicate_is_dropped():
    a, b = FakeLink("a", 4), FakeLink("b", 4)
    d, rec, _ = make([a, b], samples=1)
    d.submit([(100, 0)])
    (rid,) = a.sent or b.sent
    owner = a if a.sent else b
    d.on_events(owner, [completion(rid)])
    d.on_events(owner, [completion(rid)])
    assert rec.done == [(100, pack_tokens([7, 8]))]
    assert d.counters["duplicates_dropped"] == 1 and d.outstanding == 0


def test_worker_down_requeues_its_queries_to_the_others():
    a, b = FakeLink("a", 8), FakeLink("b", 8)
    d, rec, _ = make([a, b], samples=4)
    d.submit([(i, i) for i in range(4)])
    assert len(a.sent) == 2 and len(b.sent) == 2
    a.state = LinkState.DOWN
    d.on_down(a, "connection reset")
    assert len(b.sent) == 4 and not a.in_flight
    d.on_events(b, [completion(rid) for rid in b.sent])
    assert sorted(s for s, _ in rec.done) == [0, 1, 2, 3]
    assert d.counters["reissued"] == 2


def test_engine_error_retries_elsewhere_then_fails_loudly():
    a, b = FakeLink("a", 1), FakeLink("b", 1)
    d, rec, fatal = make([a, b], samples=1, max_attempts=2)
    d.submit([(5, 0)])
    first = a if a.sent else b
    d.on_events(first, [pb.Event(request_id=first.sent[-1], error=pb.Error(message="boom"))])
    assert not fatal
    second = b if first is a else a
    second_rid = (second.sent or first.sent)[-1]
    holder = second if second.sent else first
    d.on_events(holder, [pb.Event(request_id=second_rid, error=pb.Error(message="boom again"))])
    assert fatal and "sample 0 failed 2 times" in fatal[0] and "boom again" in fatal[0]
    assert rec.done == []


def test_pull_keeps_credits_so_a_fast_worker_takes_more():
    fast, slow = FakeLink("fast", 2), FakeLink("slow", 2)
    d, rec, _ = make([fast, slow], samples=20)
    d.submit([(i, i) for i in range(20)])
    assert len(fast.in_flight) == 2 and len(slow.in_flight) == 2 and len(d.pending) == 16
    while d.outstanding:  # fast finishes two requests per slow one
        for link, count in ((fast, 2), (slow, 1)):
            for _ in range(min(count, len(link.in_flight))):
                d.on_events(link, [completion(next(iter(link.in_flight)))])
    assert fast.stats["completed"] + slow.stats["completed"] == 20
    assert fast.stats["completed"] >= 2 * slow.stats["completed"] - 2, (fast.stats, slow.stats)


def test_idle_worker_steals_queued_requests_when_nothing_is_pending():
    a, b = FakeLink("a", 2), FakeLink("b", 2)
    d, rec, _ = make([a, b], policy=PullPolicy(credit_factor=2.0), samples=8)
    d.submit([(i, i) for i in range(8)])
    assert len(a.in_flight) == 4 and len(b.in_flight) == 4 and not d.pending
    d.on_events(b, [first_token(rid) for rid in list(b.in_flight)[:2]])  # b started two
    d.on_events(a, [completion(rid) for rid in list(a.in_flight)])  # a is idle now
    assert d.counters["stolen"] == 2 and len(b.cancelled) == 2 and len(a.in_flight) == 2
    stolen_ids = b.cancelled
    assert all(rid not in b.in_flight for rid in stolen_ids)
    assert d.counters["hedged"] == 0


def test_idle_worker_duplicates_a_running_request_and_the_first_completion_wins():
    a, b = FakeLink("a", 1), FakeLink("b", 1)
    d, rec, _ = make([a, b], policy=PullPolicy(credit_factor=1.0), samples=2)
    d.submit([(0, 0), (1, 1)])
    (ra,), (rb,) = a.sent, b.sent
    d.on_events(b, [first_token(rb)])
    d.on_events(a, [first_token(ra), completion(ra)])  # a is idle, b's request is running
    assert d.counters["hedged"] == 1 and len(a.sent) == 2
    hedge = a.sent[-1]
    d.on_events(a, [completion(hedge)])  # the duplicate finishes first
    assert b.cancelled == [rb] and d.outstanding == 0
    d.on_events(b, [completion(rb)])  # the original arrives late: dropped
    assert sorted(s for s, _ in rec.done) == [0, 1] and d.counters["duplicates_dropped"] == 1


def test_least_work_sends_each_query_at_once_to_the_least_loaded():
    big, small = FakeLink("big", 8), FakeLink("small", 2)
    d, _, _ = make([big, small], policy=LeastWorkPolicy(), samples=10)
    d.submit([(i, i) for i in range(10)])
    assert not d.pending and len(big.sent) == 8 and len(small.sent) == 2


def test_first_token_is_forwarded_once_and_before_the_completion():
    a = FakeLink("a", 4)
    d, rec, _ = make([a], needs_first_token=True, samples=2)
    d.submit([(1, 0), (2, 1)])
    r1, r2 = a.sent
    d.on_events(a, [first_token(r1), first_token(r1), completion(r1)])
    d.on_events(a, [completion(r2, (4, 5, 6))])  # no first-token event came: derived from the output
    assert [s for s, _ in rec.first] == [1, 2]
    assert rec.first[1] == (2, pack_tokens([4]))


def test_request_past_its_deadline_gets_a_second_attempt_elsewhere():
    a, b = FakeLink("a", 4), FakeLink("b", 4)
    d, rec, _ = make([a, b], policy=LeastWorkPolicy(), samples=1)
    d.limits.request_timeout_s = 10.0
    d.submit([(7, 0)])
    owner, other = (a, b) if a.sent else (b, a)
    first = owner.sent[0]
    d._expire_requests(d.sent_at[first] + 5)
    assert not other.sent
    d._expire_requests(d.sent_at[first] + 11)
    assert len(other.sent) == 1 and d.counters["timed_out"] == 1
    d._expire_requests(d.sent_at[other.sent[0]] + 11)  # never more than two attempts at once
    assert len(owner.sent) == 1
    d.on_events(other, [completion(other.sent[0])])
    assert owner.cancelled == [first] and [s for s, _ in rec.done] == [7]
