"""Every request is checked at the worker boundary: each bad one gets its own InvalidRequest error
event, never reaches the engine, and the good requests of the same message complete. Includes the
5-byte prompt that used to be never answered (and spun the worker), max_new_tokens <= 0 (hung the
sim) and min_new_tokens 10**9 (exhausted memory)."""
from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from sut.engines.base import SamplingParams
from sut.engines.sim import SimEngine, SimTiming
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.wire import SERVER_OPTIONS, pack_tokens, params_to_proto, unpack_tokens
from sut.worker.service import BackendService
from sut.worker.validation import InvalidRequest, Limits, validate_params, validate_prompt, validate_request

VOCAB, MAX_LEN, CAP = 1000, 64, 32
LIMITS = Limits(vocab_size=VOCAB, max_model_len=MAX_LEN, max_new_tokens_cap=CAP)


class CountingSim(SimEngine):
    def __init__(self, **timing):
        super().__init__("sim", SimTiming(vocab_size=VOCAB, max_model_len=MAX_LEN, **timing))
        self.seen: list[str] = []

    async def generate(self, request_id, prompt, params):
        self.seen.append(request_id)
        async for delta in super().generate(request_id, prompt, params):
            yield delta


def req(request_id: int, prompt=(1, 2, 3), raw: bytes | None = None, **params) -> pb.GenerateRequest:
    sampling = SamplingParams(**{"max_new_tokens": 4, **params})
    return pb.GenerateRequest(request_id=request_id, prompt=raw if raw is not None else pack_tokens(list(prompt)),
                              params=params_to_proto(sampling))


BAD = {
    "five-byte prompt": (req(0, raw=b"\x01\x00\x00\x00\x02"), "multiple of 4"),
    "empty prompt": (req(0, prompt=()), "empty prompt"),
    "negative id": (req(0, prompt=(1, -1, 3)), "prompt token -1 at position 1"),
    "id == vocab": (req(0, prompt=(VOCAB,)), f"prompt token {VOCAB} at position 0"),
    "too long": (req(0, prompt=range(1, 62), max_new_tokens=4), "exceeds the engine's max_model_len 64"),
    "nan temperature": (req(0, temperature=math.nan, top_k=0), "temperature nan"),
    "inf temperature": (req(0, temperature=math.inf), "temperature inf"),
    "negative temperature": (req(0, temperature=-0.5), "temperature -0.5"),
    "top_p 0": (req(0, top_p=0.0), "top_p 0.0"),
    "top_p > 1": (req(0, top_p=1.5), "top_p 1.5"),
    "nan top_p": (req(0, top_p=math.nan), "top_p nan"),
    "top_k -2": (req(0, top_k=-2), "top_k -2"),
    "max_new_tokens 0": (req(0, max_new_tokens=0), "max_new_tokens 0"),
    "max_new_tokens < 0": (req(0, max_new_tokens=-3, min_new_tokens=-5), "max_new_tokens -3"),
    "max_new_tokens > cap": (req(0, max_new_tokens=CAP + 1), f"must be in [1, {CAP}]"),
    "min_new_tokens 0": (req(0, min_new_tokens=0), "min_new_tokens 0"),
    "min_new_tokens huge": (req(0, min_new_tokens=10 ** 9), "min_new_tokens 1000000000"),
    "min > max": (req(0, max_new_tokens=4, min_new_tokens=5), "min_new_tokens 5"),
    "no params": (pb.GenerateRequest(request_id=0, prompt=pack_tokens([1])), "no sampling params"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_validate_request_refuses(name):
    request, fragment = BAD[name]
    with pytest.raises(InvalidRequest) as exc:
        validate_request(request, LIMITS)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("params", [dict(), dict(top_k=0, temperature=0.7, top_p=0.9), dict(top_k=-1),
                                    dict(max_new_tokens=CAP, min_new_tokens=CAP), dict(top_p=1.0, temperature=0.0)])
def test_validate_request_accepts(params):
    prompt, sampling = validate_request(req(1, prompt=(0, VOCAB - 1), **params), LIMITS)
    assert prompt.tolist() == [0, VOCAB - 1] and sampling.max_new_tokens == params.get("max_new_tokens", 4)


def test_prompt_plus_max_new_tokens_may_reach_max_model_len_exactly():
    validate_params(SamplingParams(max_new_tokens=4), MAX_LEN - 4, LIMITS)
    with pytest.raises(InvalidRequest):
        validate_params(SamplingParams(max_new_tokens=4), MAX_LEN - 3, LIMITS)
    assert validate_prompt(pack_tokens([5] * 10), LIMITS).size == 10


async def run_stream(engine, requests, *, cap=CAP, timeout=10.0) -> dict[int, list]:
    """Send `requests` in one message over a real in-process server, half-close, collect events."""
    service = BackendService(engine, "w", max_new_tokens_cap=cap)
    await engine.start()
    service.ready = True
    server = grpc.aio.server(options=SERVER_OPTIONS)
    pb_grpc.add_BackendServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    events: dict[int, list] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            async def messages():
                yield pb.ClientMessage(requests=requests)

            async def collect():
                async for message in pb_grpc.BackendStub(channel).Generate(messages()):
                    for event in message.events:
                        kind = event.WhichOneof("kind")
                        value = (event.error.message if kind == "error"
                                 else unpack_tokens(getattr(event, kind).tokens).tolist())
                        events.setdefault(event.request_id, []).append((kind, value))
            await asyncio.wait_for(collect(), timeout)  # the stream must end: nothing is left unanswered
    finally:
        await server.stop(0)
        await engine.close()
    return events


@pytest.mark.parametrize("instant", [True, False], ids=["instant", "stepped"])
def test_each_bad_request_gets_its_own_error_and_good_ones_in_the_same_message_complete(instant):
    names = list(BAD)
    bad = []
    for i, name in enumerate(names):
        request = pb.GenerateRequest()
        request.CopyFrom(BAD[name][0])
        request.request_id = 100 + i
        bad.append(request)
    good = [req(1, prompt=(7, 8), max_new_tokens=3), req(2, prompt=(9,), max_new_tokens=CAP, top_k=-1)]
    engine = CountingSim(instant=instant, step_ms=1, step_ms_per_seq=0, prefill_tps=1e9)
    requests = [good[0], *bad[:10], good[1], *bad[10:]]
    events = asyncio.run(run_stream(engine, requests))
    for i, name in enumerate(names):
        ((kind, message),) = events[100 + i]
        assert kind == "error" and message.startswith("InvalidRequest: ") and BAD[name][1] in message, name
    assert [k for k, _ in events[1]] == ["first_token", "completion"] and len(events[1][-1][1]) == 3
    assert [k for k, _ in events[2]] == ["first_token", "completion"] and len(events[2][-1][1]) == CAP
    assert sorted(engine.seen) == ["s1-1", "s1-2"]  # no bad request reached the engine


def test_five_byte_prompt_alone_is_answered_and_the_stream_ends():
    engine = CountingSim(instant=True)
    events = asyncio.run(run_stream(engine, [req(5, raw=b"\x01\x02\x03\x04\x05")], timeout=5))
    assert events == {5: [("error", "InvalidRequest: prompt of 5 bytes: token ids are int32, so its length "
                                     "must be a multiple of 4")]}
    assert engine.seen == []


def test_duplicate_request_id_in_flight_is_refused_alone():
    async def main():
        engine = CountingSim(step_ms=20, step_ms_per_seq=0, prefill_tps=1e9)
        return await run_stream(engine, [req(1, max_new_tokens=3), req(1, prompt=(4,), max_new_tokens=2)])
    events = asyncio.run(main())
    kinds = [k for k, _ in events[1]]
    assert kinds.count("error") == 1 and kinds.count("completion") == 1
    assert "already in flight" in next(v for k, v in events[1] if k == "error")


def test_cap_follows_the_worker_flag():
    events = asyncio.run(run_stream(CountingSim(instant=True), [req(1, max_new_tokens=9)], cap=8))
    ((kind, message),) = events[1]
    assert kind == "error" and "--max-new-tokens-cap" in message
