"""The real dispatcher over two scripted OpenAI-compatible endpoints: a failing or hanging endpoint's
attempts are re-issued to the other, each query is answered exactly once, and the counters say so."""
from __future__ import annotations

import asyncio

from sut.dispatch import Dispatcher, DispatchLimits
from sut.dispatch.policies import LeastWorkPolicy, PullPolicy
from sut.engines.base import SamplingParams
from sut.links import make_link
from sut.wire import pack_tokens, unpack_tokens
from tests.openai_stub import StubServer
from tests.unit.sut.test_openai_link import until

SAMPLES = 12


class Answers:
    def __init__(self):
        self.first, self.done = {}, {}

    def first_token(self, query, tokens):
        self.first[query.sample_id] = unpack_tokens(tokens).tolist()

    def complete(self, items):
        for query, tokens in items:
            assert query.sample_id not in self.done, "answered twice"
            self.done[query.sample_id] = unpack_tokens(tokens).tolist()


def run(bad_behavior: dict, limits: DispatchLimits, policy, needs_first_token=False, during=None):
    async def main():
        bad, good = await StubServer().start(), await StubServer().start()
        answers, fatal = Answers(), []
        prompts = [(pack_tokens([i + 1, 2, 3]), 3) for i in range(SAMPLES)]
        d = Dispatcher([bad.url, good.url], policy, answers, SamplingParams(max_new_tokens=3), prompts,
                       needs_first_token, fatal.append, limits, link_factory=make_link)
        d.start()
        try:
            await until(lambda: len(d.ready_workers()) == 2)
            bad.behavior.update(bad_behavior)  # after first contact: the probe must succeed
            d.submit([(100 + i, i) for i in range(SAMPLES)])
            if during:
                await during(bad)
            await until(lambda: len(answers.done) == SAMPLES or fatal, timeout=20)
        finally:
            await d.close()
            await bad.stop()
            await good.stop()
        assert not fatal, fatal
        for i in range(SAMPLES):
            assert answers.done[100 + i] == [(i + 6 + k) % 90 + 10 for k in range(3)]
        return d, answers
    return asyncio.run(main())


def test_server_errors_are_reissued_to_the_other_endpoint():
    d, _ = run({"status": 500, "failures_left": 2}, DispatchLimits(), PullPolicy(credit_factor=1.0))
    bad = d.workers[0]
    assert bad.stats["failures"] == d.counters["errors"] == d.counters["reissued"] == 2
    assert d.counters["completed"] == SAMPLES


def test_a_hanging_endpoint_times_out_and_the_query_runs_elsewhere():
    d, _ = run({"fault": "hang"}, DispatchLimits(request_timeout_s=0.5, monitor_interval_s=0.05,
                                                 stall_timeout_s=60, faulty_after=100), LeastWorkPolicy(),
               needs_first_token=True)
    assert d.counters["timed_out"] >= 1 and d.workers[1].stats["completed"] == SAMPLES


def test_an_endpoint_killed_mid_run_loses_nothing():
    async def kill(bad):
        await until(lambda: bad.open_streams > 0)
        await bad.stop()
    d, _ = run({"token_delay_s": 0.3}, DispatchLimits(faulty_after=100), PullPolicy(credit_factor=1.0), during=kill,
               needs_first_token=True)
    assert d.workers[0].link.disconnects == 1 and d.counters["completed"] == SAMPLES
