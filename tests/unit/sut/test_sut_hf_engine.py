"""HFEngine on the tiny model: one poisoned request in a batch fails alone. Requests are checked
before they join a batch; a sampling row that fails fails alone; a forward pass that fails (the
culprit unknown) is retried request by request, each continuing from the tokens it had streamed,
so outputs equal those of the requests run alone and no token is streamed twice."""
from __future__ import annotations

import asyncio
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sut.engines.base import EngineError, SamplingParams  # noqa: E402
from sut.engines.hf import HFEngine  # noqa: E402

GOOD_PROMPTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
PARAMS = SamplingParams(max_new_tokens=6, ignore_eos=True, min_new_tokens=6)


@pytest.fixture(scope="module")
def engine(tiny_model):
    engine = HFEngine(str(tiny_model), device="cpu", dtype="float64", max_batch_size=8, batch_wait_ms=300,
                      threads=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.start())
    engine.loop = loop
    yield engine
    loop.run_until_complete(engine.close())
    loop.close()


async def collect(engine, request_id, prompt, params=PARAMS):
    return [delta async for delta in engine.generate(request_id, prompt, params)]


async def batch(engine, requests):
    """Submit together (one batch: batch_wait_ms is long); results or exceptions, in order."""
    return await asyncio.gather(*(collect(engine, f"r{i}", p, params) for i, (p, params) in enumerate(requests)),
                                return_exceptions=True)


def run(engine, coro):
    return engine.loop.run_until_complete(asyncio.wait_for(coro, 120))


def flat(deltas):
    return [t for d in deltas for t in d]


@pytest.fixture(scope="module")
def alone(engine):
    return [flat(run(engine, collect(engine, f"alone{i}", p))) for i, p in enumerate(GOOD_PROMPTS)]


def good_ok(results, alone):
    outputs = [flat(r) for r in results if not isinstance(r, BaseException)]
    assert outputs == alone
    assert all(len(o) == PARAMS.max_new_tokens for o in outputs)


def test_bad_requests_are_refused_before_they_join_a_batch(engine, alone):
    vocab = engine.info().vocab_size
    bad = [([1, vocab], PARAMS), ([-1, 2], PARAMS), ([3], SamplingParams(temperature=math.nan, top_k=0)),
           ([3], SamplingParams(top_p=0.0, temperature=1.0, top_k=0)), ([], PARAMS),
           ([3], SamplingParams(max_new_tokens=0))]
    results = run(engine, batch(engine, [(GOOD_PROMPTS[0], PARAMS), *bad, (GOOD_PROMPTS[1], PARAMS),
                                         (GOOD_PROMPTS[2], PARAMS)]))
    errors = results[1:1 + len(bad)]
    assert all(isinstance(e, EngineError) for e in errors), errors
    assert "outside the vocabulary" in str(errors[0]) and "temperature nan" in str(errors[2])
    good_ok([results[0], *results[-2:]], alone)


def test_poisoned_requests_that_bypass_the_checks_fail_alone(engine, alone, monkeypatch, caplog):
    """NaN temperature fails its sampling row; an out-of-vocabulary id fails the whole forward pass,
    so the batch is retried request by request."""
    monkeypatch.setattr(engine, "check_request", lambda prompt, params: None)
    vocab = engine.info().vocab_size
    nan = SamplingParams(temperature=math.nan, top_k=0, max_new_tokens=6)
    results = run(engine, batch(engine, [(GOOD_PROMPTS[0], PARAMS), ([1, vocab + 5], PARAMS),
                                         (GOOD_PROMPTS[1], PARAMS), ([4, 5], nan), (GOOD_PROMPTS[2], PARAMS)]))
    assert isinstance(results[1], EngineError) and isinstance(results[3], EngineError), results
    good_ok([results[0], results[2], results[4]], alone)
    assert "retrying its 5 unfinished requests one by one" in caplog.text  # prefill failed: culprit unknown


def test_nan_temperature_alone_in_a_batch_of_good_ones_fails_only_its_row(engine, alone, monkeypatch):
    monkeypatch.setattr(engine, "check_request", lambda prompt, params: None)
    calls = []
    original = engine.model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)
    monkeypatch.setattr(engine.model, "forward", counting)
    nan = SamplingParams(temperature=math.nan, top_k=0, max_new_tokens=6)
    results = run(engine, batch(engine, [(GOOD_PROMPTS[0], PARAMS), ([4, 5], nan), (GOOD_PROMPTS[1], PARAMS),
                                         (GOOD_PROMPTS[2], PARAMS)]))
    assert isinstance(results[1], EngineError)
    good_ok([results[0], *results[2:]], alone)
    assert set(calls) == {4}  # never retried: the failing row was known


def test_forward_failure_mid_decode_retries_each_request_from_where_it_was(engine, alone, monkeypatch):
    """Batched decode steps fail after two tokens: each request continues alone from its two
    streamed tokens; the outputs equal the unbatched ones and nothing is streamed twice."""
    original = engine.model.forward
    steps = {"batched": 0}

    def flaky(*args, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[0] > 1 and ids.shape[1] == 1:
            steps["batched"] += 1
            if steps["batched"] >= 2:
                raise RuntimeError("simulated device failure")
        return original(*args, **kwargs)
    monkeypatch.setattr(engine.model, "forward", flaky)
    results = run(engine, batch(engine, [(p, PARAMS) for p in GOOD_PROMPTS]))
    good_ok(results, alone)
    assert all(r[:2] == [[a[0]], [a[1]]] for r, a in zip(results, alone))  # two tokens came from the batch


def test_a_request_that_fails_alone_too_gets_the_error_and_the_others_complete(engine, alone, monkeypatch):
    original = engine.model.forward
    poison = 77
    assert all(poison not in out for out in alone)

    def poisoned(*args, **kwargs):
        if (kwargs["input_ids"] == poison).any():
            raise RuntimeError("kernel failure")
        return original(*args, **kwargs)
    monkeypatch.setattr(engine.model, "forward", poisoned)
    results = run(engine, batch(engine, [(GOOD_PROMPTS[0], PARAMS), ([poison, 3], PARAMS),
                                         (GOOD_PROMPTS[1], PARAMS), (GOOD_PROMPTS[2], PARAMS)]))
    assert isinstance(results[1], EngineError) and "kernel failure" in str(results[1])
    good_ok([results[0], *results[2:]], alone)
