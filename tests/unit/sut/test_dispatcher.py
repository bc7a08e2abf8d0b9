"""Dispatcher logic with fake links and a fake clock (no network): exactly-once, re-issue, retries,
the end game's moves and the waste they cost."""
from __future__ import annotations

from sut.dispatch import Dispatcher, DispatchLimits
from sut.dispatch.policies import LeastWorkPolicy, PullPolicy
from sut.engines.base import SamplingParams
from sut.proto import backend_pb2 as pb
from sut.wire import pack_tokens


class FakeLink:
    def __init__(self, address: str, capacity: int):
        self.address = self.name = address
        self.info = {"max_concurrency": capacity}
        self.capacity = capacity
        self.ready = True
        self.last_error = None
        self.last_progress = self.last_message = 0.0
        self.disconnects = 0
        self.sent, self.cancelled = [], []

    @property
    def state_name(self):
        return "ready" if self.ready else "down"

    def start(self):
        pass

    async def close(self):
        pass

    def send(self, request):
        self.sent.append(request.request_id)

    def cancel(self, request_id):
        self.cancelled.append(request_id)

    def kill(self, reason):
        self.ready = False


class Recorder:
    def __init__(self):
        self.first, self.done = [], []

    def first_token(self, query, tokens):
        self.first.append((query.sample_id, tokens))

    def complete(self, items):
        self.done.extend((query.sample_id, tokens) for query, tokens in items)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make(capacities: dict, policy=None, needs_first_token=False, samples=4, max_attempts=3):
    recorder, fatal, clock = Recorder(), [], Clock()
    prompts = [(pack_tokens([1, 2, 3]), 3)] * samples
    d = Dispatcher(list(capacities), policy or PullPolicy(credit_factor=1.0), recorder, SamplingParams(), prompts,
                   needs_first_token, fatal.append, DispatchLimits(max_attempts=max_attempts),
                   link_factory=lambda address, listener: FakeLink(address, capacities[address]), clock=clock)
    links = [worker.link for worker in d.workers]
    return d, links, recorder, fatal, clock


def completion(request_id, tokens=(7, 8)):
    return pb.Event(request_id=request_id, completion=pb.Completion(tokens=pack_tokens(tokens)))


def first_token(request_id, tokens=(7,)):
    return pb.Event(request_id=request_id, first_token=pb.FirstToken(tokens=pack_tokens(tokens)))


def cancelled(request_id, generated):
    return pb.Event(request_id=request_id, cancelled=pb.Cancelled(generated_tokens=generated))


def in_flight(d, link):
    return d.workers[[w.link for w in d.workers].index(link)].in_flight


def test_first_completion_wins_and_a_late_duplicate_is_dropped_and_counted_as_waste():
    d, (a, b), rec, _, _ = make({"a": 4, "b": 4}, samples=1)
    d.submit([(100, 0)])
    owner = a if a.sent else b
    (rid,) = owner.sent
    d.on_events(owner, [completion(rid)])
    d.on_events(owner, [completion(rid, (1, 2, 3))])
    assert rec.done == [(100, pack_tokens([7, 8]))]
    assert d.counters["duplicates_dropped"] == 1 and d.outstanding == 0
    assert d.counters["wasted_output_tokens"] == 3


def test_worker_down_requeues_its_queries_to_the_others():
    d, (a, b), rec, _, _ = make({"a": 8, "b": 8}, samples=4)
    d.submit([(i, i) for i in range(4)])
    assert len(a.sent) == 2 and len(b.sent) == 2
    a.ready = False
    d.on_down(a, "connection reset")
    assert len(b.sent) == 4 and not in_flight(d, a)
    d.on_events(b, [completion(rid) for rid in b.sent])
    assert sorted(s for s, _ in rec.done) == [0, 1, 2, 3]
    assert d.counters["reissued"] == 2


def test_engine_error_retries_elsewhere_then_fails_loudly():
    d, (a, b), rec, fatal, _ = make({"a": 1, "b": 1}, samples=1, max_attempts=2)
    d.submit([(5, 0)])
    first = a if a.sent else b
    d.on_events(first, [pb.Event(request_id=first.sent[-1], error=pb.Error(message="boom"))])
    assert not fatal
    holder = max((a, b), key=lambda link: max(link.sent, default=0))
    d.on_events(holder, [pb.Event(request_id=holder.sent[-1], error=pb.Error(message="boom again"))])
    assert fatal and "sample 0 got no answer in 2 attempts" in fatal[0] and "boom again" in fatal[0]
    assert "workers' last errors" in fatal[0]
    assert rec.done == []


def test_an_event_from_a_worker_the_request_was_not_sent_to_is_ignored():
    d, (a, b), rec, _, _ = make({"a": 1, "b": 1}, samples=1)
    d.submit([(5, 0)])
    owner, other = (a, b) if a.sent else (b, a)
    d.on_events(other, [completion(owner.sent[0])])
    assert rec.done == [] and d.counters["foreign_events"] == 1 and d.outstanding == 1
    d.on_events(owner, [completion(owner.sent[0])])
    assert [s for s, _ in rec.done] == [5]


def test_a_cancel_the_worker_made_by_itself_is_a_failed_attempt_and_re_issued():
    d, (a, b), rec, _, _ = make({"a": 1, "b": 1}, samples=1)
    d.submit([(5, 0)])
    owner, other = (a, b) if a.sent else (b, a)
    d.on_events(owner, [cancelled(owner.sent[0], 4)])
    assert d.counters["reissued"] == 1 and len(a.sent) + len(b.sent) == 2


def test_pull_keeps_credits_so_a_fast_worker_takes_more():
    d, (fast, slow), rec, _, _ = make({"fast": 2, "slow": 2}, samples=20)
    d.submit([(i, i) for i in range(20)])
    assert len(in_flight(d, fast)) == 2 and len(in_flight(d, slow)) == 2 and len(d.pending) == 16
    while d.outstanding:  # fast finishes two requests per slow one
        for link, count in ((fast, 2), (slow, 1)):
            for _ in range(min(count, len(in_flight(d, link)))):
                d.on_events(link, [completion(next(iter(in_flight(d, link))))])
    stats = [w.stats["completed"] for w in d.workers]
    assert sum(stats) == 20 and stats[0] >= 2 * stats[1] - 2, stats


def _run_round(d, clock, link, count, step=0.1):
    """`link`'s engine starts and finishes `count` requests, one every `step` seconds."""
    for _ in range(count):
        clock.now += step
        rid = next(iter(in_flight(d, link)))
        d.on_events(link, [first_token(rid), completion(rid)])


def test_equal_workers_end_game_moves_nothing_and_wastes_nothing():
    d, (a, b), rec, _, clock = make({"a": 2, "b": 2}, policy=PullPolicy(credit_factor=2.0), samples=40)
    d.submit([(i, i) for i in range(40)])
    while d.outstanding:
        for link in (a, b):
            if in_flight(d, link):
                _run_round(d, clock, link, 1)
    assert d.counters["hedged"] == 0 and d.counters["wasted_output_tokens"] == 0
    assert d.counters["stolen"] <= 2 and len(rec.done) == 40


def test_a_worker_whose_queue_runs_dry_steals_queued_requests_from_the_one_finishing_last():
    d, (fast, slow), rec, _, clock = make({"fast": 2, "slow": 2}, policy=PullPolicy(credit_factor=4.0), samples=16)
    d.submit([(i, i) for i in range(16)])
    assert len(in_flight(d, fast)) == 8 and len(in_flight(d, slow)) == 8 and not d.pending
    slow_worker = d.workers[1]
    for _ in range(2):  # slow completes one request a second and starts the next
        clock.now += 1.0
        rid = next(iter(slow_worker.in_flight))
        d.on_events(slow, [first_token(rid), completion(rid)])
    for _ in range(8):  # fast completes ten a second and runs out of queued work
        clock.now += 0.1
        rid = next(iter(in_flight(d, fast)))
        d.on_events(fast, [first_token(rid), completion(rid)])
    assert d.counters["stolen"] >= 3 and d.counters["hedged"] == 0
    assert all(move["kind"] == "steal" and move["from"] == "slow" and "expected to finish" in move["why"]
               for move in d.record()["end_game"]["moves"])
    stolen = slow.cancelled
    assert stolen and all(rid not in slow_worker.in_flight for rid in stolen)
    d.on_events(slow, [cancelled(rid, 0) for rid in stolen])
    assert d.counters["wasted_output_tokens"] == 0


def _duplicated():
    """fast (0.1 s a request) goes idle while slow (3 s) has just started its last request: a copy."""
    d, (fast, slow), rec, _, clock = make({"fast": 1, "slow": 1}, policy=PullPolicy(credit_factor=1.0), samples=6)
    d.submit([(i, i) for i in range(6)])
    for _ in range(2):  # teach the dispatcher: fast decodes in 0.1 s, slow in 3 s
        clock.now += 0.1
        rid = fast.sent[-1]
        d.on_events(fast, [first_token(rid)])
        clock.now += 0.1
        d.on_events(fast, [completion(rid)])
        rid = slow.sent[-1]
        d.on_events(slow, [first_token(rid)])
        clock.now += 3.0
        d.on_events(slow, [completion(rid)])
    (rs,) = list(in_flight(d, slow))
    clock.now += 0.05
    d.on_events(slow, [first_token(rs)])  # slow starts its last request: 3 s to go
    rf = next(iter(in_flight(d, fast)))
    clock.now += 0.2
    d.on_events(fast, [first_token(rf), completion(rf)])  # fast is idle now
    assert d.counters["hedged"] == 1
    assert "idle" in d.record()["end_game"]["moves"][-1]["why"]
    return d, fast, slow, clock, rs, fast.sent[-1]


def test_an_idle_worker_duplicates_a_long_running_request_and_the_first_completion_wins():
    d, fast, slow, clock, rs, copy = _duplicated()
    clock.now += 0.3
    d.on_events(fast, [first_token(copy), completion(copy)])
    assert slow.cancelled == [rs] and d.outstanding == 0
    d.on_events(slow, [cancelled(rs, 5)])
    assert d.counters["wasted_output_tokens"] == 5
    assert d.workers[1].stats["wasted_output_tokens"] == 5
    move = d.record()["end_game"]["moves"][-1]  # the estimate beside what happened: copy won, the original lost 5
    assert move["won"] == "copy" and move["loser_tokens"] == 5 and move["decided_s"] > move["t_s"]
    assert move["original_remaining_s"] > move["copy_s"] > 0
    assert [w["last_completion_s"] for w in d.snapshot()["workers"]] == [move["decided_s"], 6.4]


def test_when_the_original_wins_the_copy_it_outran_is_recorded_as_the_loser():
    d, fast, slow, clock, rs, copy = _duplicated()
    clock.now += 0.1
    d.on_events(slow, [completion(rs)])
    assert fast.cancelled == [copy] and d.outstanding == 0
    d.on_events(fast, [completion(copy, (7, 8, 9))])  # it finished before the cancel reached it: dropped
    move = d.record()["end_game"]["moves"][-1]
    assert move["won"] == "original" and move["loser_tokens"] == 3
    assert d.counters["duplicates_dropped"] == 1 and d.counters["wasted_output_tokens"] == 3


def test_no_duplicate_when_the_original_will_finish_about_as_soon_as_a_copy():
    d, (a, b), rec, _, clock = make({"a": 1, "b": 1}, policy=PullPolicy(credit_factor=1.0), samples=6)
    d.submit([(i, i) for i in range(6)])
    for _ in range(2):  # both decode in 1 s
        for link in (a, b):
            rid = link.sent[-1]
            d.on_events(link, [first_token(rid)])
            clock.now += 1.0
            d.on_events(link, [completion(rid)])
    (rb,) = list(in_flight(d, b))
    d.on_events(b, [first_token(rb)])
    clock.now += 0.1
    ra = next(iter(in_flight(d, a)))
    d.on_events(a, [first_token(ra), completion(ra)])  # a is idle; b's request needs ~0.9 s more
    assert d.counters["hedged"] == 0 and d.counters["wasted_output_tokens"] == 0


def test_least_work_sends_each_query_at_once_to_the_least_loaded():
    d, (big, small), _, _, _ = make({"big": 8, "small": 2}, policy=LeastWorkPolicy(), samples=10)
    d.submit([(i, i) for i in range(10)])
    assert not d.pending and len(big.sent) == 8 and len(small.sent) == 2


def test_first_token_is_forwarded_once_and_before_the_completion():
    d, (a,), rec, _, _ = make({"a": 4}, needs_first_token=True, samples=2)
    d.submit([(1, 0), (2, 1)])
    r1, r2 = a.sent
    d.on_events(a, [first_token(r1), first_token(r1), completion(r1)])
    d.on_events(a, [completion(r2, (4, 5, 6))])  # no first-token event came: derived from the output
    assert [s for s, _ in rec.first] == [1, 2]
    assert rec.first[1] == (2, pack_tokens([4]))


def test_request_past_its_deadline_gets_a_second_attempt_elsewhere():
    d, (a, b), rec, _, clock = make({"a": 4, "b": 4}, policy=LeastWorkPolicy(), samples=1)
    d.limits.request_timeout_s = 10.0
    d.submit([(7, 0)])
    owner, other = (a, b) if a.sent else (b, a)
    first = owner.sent[0]
    clock.now += 5
    d.watchdog.expire_requests(clock.now)
    assert not other.sent
    clock.now += 6
    d.watchdog.expire_requests(clock.now)
    assert len(other.sent) == 1 and d.counters["timed_out"] == 1
    clock.now += 5
    d.watchdog.expire_requests(clock.now)  # never more than two attempts at once
    assert len(owner.sent) == 1
    d.on_events(other, [completion(other.sent[0])])
    assert owner.cancelled == [first] and [s for s, _ in rec.done] == [7]
    assert d.snapshot()["requests_run_more_than_once"] == 1


def test_with_one_worker_a_request_past_its_deadline_is_a_failed_attempt_and_the_run_ends():
    d, (a,), rec, fatal, clock = make({"a": 4}, policy=LeastWorkPolicy(), samples=1, max_attempts=2)
    d.limits.request_timeout_s = 10.0
    d.submit([(7, 0)])
    clock.now += 11
    d.watchdog.expire_requests(clock.now)
    assert a.cancelled == [a.sent[0]] and len(a.sent) == 2 and not fatal
    clock.now += 11
    d.watchdog.expire_requests(clock.now)
    assert fatal and "sample 0 got no answer in 2 attempts" in fatal[0] and "no answer within 10 s" in fatal[0]


def test_when_both_copies_outlive_their_deadline_both_fail_and_the_query_goes_again():
    d, (a, b), rec, fatal, clock = make({"a": 4, "b": 4}, policy=LeastWorkPolicy(), samples=1, max_attempts=3)
    d.limits.request_timeout_s = 10.0
    d.submit([(7, 0)])
    clock.now += 11
    d.watchdog.expire_requests(clock.now)
    clock.now += 11
    d.watchdog.expire_requests(clock.now)
    assert sorted(a.cancelled + b.cancelled) == sorted(a.sent + b.sent)[:2]
    assert len(a.sent) + len(b.sent) == 3 and d.counters["failed_attempts"] == 2 and not fatal


def test_a_wrong_answer_is_refused_re_issued_and_a_worker_giving_many_is_marked_faulty():
    d, (a, b), rec, _, clock = make({"a": 1, "b": 1}, policy=PullPolicy(credit_factor=1.0), samples=3,
                                    max_attempts=5)
    d.workers[0].link.info["vocab_size"] = 100
    d.submit([(i, i) for i in range(3)])
    bad = [(7,) * 200, (), (5, 500)]  # over max_new_tokens, empty, out of vocabulary
    for tokens in bad:
        d.on_events(a, [completion(a.sent[-1], tokens)])
    assert d.counters["violations"] == 3 and d.workers[0].faulty and not d.workers[0].ready
    kinds = [incident["kind"] for incident in d.record()["incidents"]]
    assert kinds == ["wrong answer"] * 3 + ["faulty"]
    while d.outstanding:
        d.on_events(b, [completion(b.sent[-1])])
    assert sorted(s for s, _ in rec.done) == [0, 1, 2]


def test_a_worker_that_comes_back_as_a_different_worker_is_refused():
    d, (a,), _, _, _ = make({"a": 1})
    a.info.update(worker_id="w1", engine="sim", model="m", versions={"identity.model_fingerprint": "x"})
    d.on_ready(a)
    assert d.workers[0].identity["identity.model_fingerprint"] == "x"
    a.info["versions"] = {"identity.model_fingerprint": "y"}
    d.on_ready(a)
    assert not a.ready and d.counters["refused_connections"] == 1
    assert "identity.model_fingerprint 'x' -> 'y'" in d.record()["incidents"][0]["detail"]


def test_abort_answers_every_outstanding_and_later_query_empty_and_cancels_the_attempts():
    d, (a,), rec, _, _ = make({"a": 2}, samples=5)
    d.submit([(i, i) for i in range(4)])
    sent = list(a.sent)
    d.abort("interrupted by SIGINT")
    assert sorted(a.cancelled) == sorted(sent)
    assert sorted(s for s, _ in rec.done) == [0, 1, 2, 3] and all(t == b"" for _, t in rec.done)
    d.submit([(4, 4)])
    assert [s for s, _ in rec.done][-1] == 4 and d.outstanding == 0 and len(a.sent) == len(sent)
    d.on_events(a, [completion(sent[0])])  # a late answer changes nothing
    assert len(rec.done) == 5


def test_silence_counts_from_when_an_idle_worker_was_given_work():
    d, (a,), rec, _, clock = make({"a": 4}, samples=1)
    d.limits.silence_timeout_s = 2.0
    a.last_message = clock.now  # its last message, then a long idle spell
    clock.now += 60
    d.submit([(1, 0)])
    worker = d.workers[0]
    assert clock.now - max(a.last_message, worker.busy_since) < d.limits.silence_timeout_s


def test_the_step_clock_also_reads_the_counts_that_come_alone_between_events():
    """A worker decoding its last long requests sends no event for seconds, only its token counter once
    a second; those counts must reach the step clock, or its rate is unknown 2 s after the last event,
    just when the end game weighs copies of that worker's tail."""
    d, (a, b), _, _, clock = make({"a": 4, "b": 4}, policy=PullPolicy(credit_factor=1.0), samples=2)
    d.submit([(0, 0), (1, 1)])
    (rb,) = list(in_flight(d, b))
    b.engine_tokens = 1
    clock.now += 0.1
    d.on_events(b, [first_token(rb)])
    for k in range(1, 5):  # heartbeats: 10 steps of the one request each half second
        clock.now += 0.5
        b.engine_tokens += 10
        b.last_progress = clock.now
        d.pump()
    worker = d.workers[1]
    assert worker.steps == 40 and worker.step_rate(clock.now) == 20.0
