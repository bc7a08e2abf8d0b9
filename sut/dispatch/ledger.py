"""The dispatcher's books: queries, their attempts, and one ledger per worker.

A `WorkerLedger` holds what the coordinator knows about one worker's work (attempts in flight, those
not started yet, outstanding work, counters) and what it has measured of its speed (how long a
started request takes to finish, the shortest time to a first token). The link beside it holds only
the connection. Policies read ledgers; only the dispatcher writes them.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Protocol

RATE_WINDOW_S = 5.0
TAIL_POINTS = 16  # at least the last completions whose (first token, completion) times show the current pace
TAIL_KEPT = 256  # more when those started together (one prefill step starts up to a dozen requests)
STEP_WINDOW_S = 2.0  # the engine's current step rate: counts arrive with events, or once a second alone
STAT_KEYS = ("completed", "output_tokens", "failures", "reissued", "stolen_from", "stolen_to", "hedged_to",
             "duplicates_dropped", "wasted_output_tokens", "cancelled", "violations", "unanswered", "peak_in_flight")


@dataclass(eq=False)
class Query:
    sample_id: int
    index: int
    prompt: bytes
    prompt_len: int
    work: int
    attempts: int = 0
    failures: int = 0  # attempts that ended without an answer: errors, lost workers, timeouts, wrong answers
    live: set = field(default_factory=set)  # request ids of attempts in flight
    first_token_sent: bool = False
    moved: bool = False  # stolen or duplicated once already: a query moves at most once
    move: dict | None = None  # the manifest's record of its move: a duplicate's outcome is added there
    done: bool = False
    errors: list = field(default_factory=list)


@dataclass(eq=False)
class Attempt:
    request_id: int
    query: Query
    worker: "WorkerLedger"
    sent_at: float
    first_token_at: float | None = None
    duplicate: bool = False  # a second copy running beside the original
    first_step: float | None = None  # the worker's step clock at its first token
    timed_out: bool = False  # past its deadline once (it may still answer first)


class Connection(Protocol):
    """What the dispatcher needs of a link (sut.transport.WorkerLink implements it)."""
    address: str
    info: dict | None
    last_error: str | None
    last_progress: float
    last_message: float
    disconnects: int

    @property
    def name(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def ready(self) -> bool: ...
    @property
    def state_name(self) -> str: ...
    def start(self) -> None: ...
    async def close(self) -> None: ...
    def send(self, request) -> None: ...
    def cancel(self, request_id: int) -> None: ...
    def kill(self, reason: str) -> None: ...


class Ewma:
    """Exponentially weighted mean; None until the first sample."""

    def __init__(self, weight: float = 0.1):
        self.weight = weight
        self.value: float | None = None

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else self.value + self.weight * (sample - self.value)


class WorkerLedger:
    def __init__(self, link: Connection, max_new_tokens: int | None = None):
        self.link = link
        self.max_new_tokens = max_new_tokens  # a request's output at most: what a started one has left
        self.in_flight: dict[int, Attempt] = {}  # insertion order is send order
        self.unstarted: dict[int, Attempt] = {}  # no first token yet: queued in the engine, free to move
        self.outstanding_work = 0
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.identity: dict | None = None  # pinned at first contact
        self.busy_since = 0.0  # when it last went from no work to some: silence counts from then at most
        self.faulty: str | None = None  # why it gets no more work
        self.decode_s = Ewma()  # first token -> completion of one request, under this worker's load
        self.min_ttft_s: float | None = None  # fastest send -> first token seen: the engine with room
        self._completions: collections.deque[float] = collections.deque()  # times, within RATE_WINDOW_S
        self._first_completion: float | None = None
        self._last_rate: float | None = None
        self.last_completion_at: float | None = None  # when its last answer came: where its tail ended
        self._tail: collections.deque[tuple[float, float]] = collections.deque(maxlen=TAIL_KEPT)
        self._pace: tuple | None = None  # the line drain_finish extends, until the next completion
        self.steps = 0.0  # decode steps run: each request decoding gains one token a step
        self._engine_tokens: int | None = None
        self._step_marks: collections.deque[tuple[float, float]] = collections.deque()

    @property
    def address(self) -> str:
        return self.link.address

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def capacity(self) -> int:
        return self.link.capacity

    @property
    def ready(self) -> bool:
        return self.link.ready and not self.faulty

    @property
    def running(self) -> int:
        return len(self.in_flight) - len(self.unstarted)

    def add(self, attempt: Attempt) -> None:
        if not self.in_flight:
            self.busy_since = attempt.sent_at
        self.in_flight[attempt.request_id] = attempt
        self.unstarted[attempt.request_id] = attempt
        self.outstanding_work += attempt.query.work
        self.stats["peak_in_flight"] = max(self.stats["peak_in_flight"], len(self.in_flight))

    def remove(self, request_id: int) -> Attempt | None:
        self.unstarted.pop(request_id, None)
        attempt = self.in_flight.pop(request_id, None)
        if attempt is not None:
            self.outstanding_work -= attempt.query.work
        return attempt

    def progress(self, engine_tokens: int | None, now: float, starting: int = 0) -> None:
        """The stream's token counter, read before its events: the tokens since the last count, less
        the first tokens of `starting` requests, over the requests decoding meanwhile, are the engine
        steps run (a new stream's count starts again)."""
        if engine_tokens is None:
            return
        last = self._engine_tokens
        if last is not None and engine_tokens - starting > last and self.running:
            self.steps += (engine_tokens - starting - last) / self.running
            self._step_marks.append((now, self.steps))
            while len(self._step_marks) > 2 and now - self._step_marks[1][0] > STEP_WINDOW_S:
                self._step_marks.popleft()
        self._engine_tokens = engine_tokens

    def step_rate(self, now: float) -> float | None:
        """Engine steps per second over the last STEP_WINDOW_S: several times faster once no prompts
        are left to prefill, which the decode time measured under load does not show."""
        marks = [m for m in self._step_marks if now - m[0] <= STEP_WINDOW_S]
        if len(marks) < 2 or marks[-1][0] - marks[0][0] < 0.25:
            return None
        return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]) or None

    def started(self, attempt: Attempt, now: float) -> None:
        if self.unstarted.pop(attempt.request_id, None) is not None:
            attempt.first_token_at = now
            attempt.first_step = self.steps
            ttft = now - attempt.sent_at
            self.min_ttft_s = ttft if self.min_ttft_s is None else min(self.min_ttft_s, ttft)

    def finished(self, attempt: Attempt, now: float) -> None:
        if attempt.first_token_at is not None:
            self.decode_s.add(now - attempt.first_token_at)
            self._tail.append((attempt.first_token_at, now))
            self._pace = None
        if self._first_completion is None:
            self._first_completion = now
        self._completions.append(now)
        self.last_completion_at = now

    def completion_rate(self, now: float) -> float | None:
        """Requests completed per second over the last RATE_WINDOW_S; a worker that has just run dry
        keeps the last rate it showed (None before it has completed two requests)."""
        while self._completions and now - self._completions[0] > RATE_WINDOW_S:
            self._completions.popleft()
        span = min(RATE_WINDOW_S, now - self._first_completion) if self._first_completion is not None else 0.0
        if len(self._completions) >= 2 and span > 0:
            self._last_rate = len(self._completions) / span
        return self._last_rate

    def clear(self) -> list[Attempt]:
        lost = list(self.in_flight.values())
        self.in_flight.clear()
        self.unstarted.clear()
        self.outstanding_work = 0
        return lost

    def expected_remaining_s(self, attempt: Attempt, now: float) -> float | None:
        """How long a started attempt still needs here: its measured decode time less what it has run,
        or, when sooner, what the pace of the last completions gives (`drain_finish`), or the tokens
        it can still produce at the engine's current step rate (`steps_left_s`)."""
        if self.decode_s.value is None or attempt.first_token_at is None:
            return None
        remaining = self.decode_s.value - (now - attempt.first_token_at)
        paced = self.drain_finish(attempt.first_token_at)
        if paced is not None:
            remaining = min(remaining, paced - now)
        stepped = self.steps_left_s(attempt, now)
        if stepped is not None:
            remaining = min(remaining, stepped)
        return max(0.0, remaining)

    def steps_left_s(self, attempt: Attempt, now: float) -> float | None:
        """(max new tokens - 1 - steps since its first token) / the current step rate: at most what a
        started request has left (outputs that stop early end sooner); None until the rate is known."""
        rate = self.step_rate(now)
        if rate is None or attempt.first_step is None or not self.max_new_tokens:
            return None
        return max(0.0, self.max_new_tokens - 1 - (self.steps - attempt.first_step)) / rate

    def drain_finish(self, first_token_at: float) -> float | None:
        """When a request whose first token came at `first_token_at` is expected to complete, from the
        last completions: requests of one length finish in the order they started, and a worker that
        has no new prompts to prefill decodes its last ones several times faster than under full load,
        so the completion time as a function of the first-token time flattens (slope under 1). The
        line through the earliest- and latest-started of the last TAIL_POINTS completions (more, back
        to the first whose first token differs, when those all started in one step), extended. None
        with no spread in their first tokens, or when a later start finished first (unequal lengths)."""
        if self._pace is None:
            recent: list[tuple[float, float]] = []
            for point in reversed(self._tail):  # newest first
                recent.append(point)
                if len(recent) >= TAIL_POINTS and max(recent)[0] - min(recent)[0] > 1e-3:
                    break
            (s0, c0), (s1, c1) = min(recent, default=(0.0, 0.0)), max(recent, default=(0.0, 0.0))
            self._pace = (s1, c1, (c1 - c0) / (s1 - s0)) if s1 - s0 > 1e-3 and c1 >= c0 else ()
        if not self._pace:
            return None
        s1, c1, slope = self._pace
        return c1 + slope * (first_token_at - s1)

    def expected_fresh_s(self) -> float | None:
        """How long a request sent here now would take: its fastest first token plus its decode time."""
        if self.decode_s.value is None or self.min_ttft_s is None:
            return None
        return self.min_ttft_s + self.decode_s.value

    def snapshot(self) -> dict:
        link = self.link
        return {"address": link.address, "name": link.name, "state": link.state_name,
                "in_flight": len(self.in_flight), "last_error": link.last_error, **self.stats,
                "disconnects": link.disconnects, "faulty": self.faulty,
                "decode_s": None if self.decode_s.value is None else round(self.decode_s.value, 4)}
