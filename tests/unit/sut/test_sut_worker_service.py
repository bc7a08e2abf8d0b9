"""BackendService in-process with a scripted fake engine: one first token and one completion (or
one error) per request, cancel, half-close, stream break, heartbeats, not-ready aborts."""
from __future__ import annotations

import asyncio

import grpc
import pytest

import sut.worker.service as service_module
from sut.engines.base import Engine, EngineError, EngineInfo, SamplingParams
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.wire import SERVER_OPTIONS, pack_tokens, params_to_proto, unpack_tokens
from sut.worker.service import BackendService

# What the fake engine does is chosen by the prompt's first token.
OK, FAIL_AFTER_FIRST, EMPTY, HANG, FAIL_AT_ONCE = 1, 2, 3, 4, 5
OK_OUTPUT = [10, 11, 12]


class FakeEngine(Engine):
    name = "fake"

    def __init__(self, progress_value: int | None = None):
        self.generated: list[str] = []
        self.aborted: list[str] = []
        self.gate = asyncio.Event()  # releases HANG requests
        self.progress_value = progress_value

    @classmethod
    def from_args(cls, args):
        return cls()

    async def start(self) -> None:
        pass

    def info(self) -> EngineInfo:
        return EngineInfo(engine="fake", model="fake-model", max_concurrency=3, max_model_len=64, vocab_size=100)

    async def generate(self, request_id, prompt, params):
        self.generated.append(request_id)
        mode = int(prompt[0])
        if mode == OK:
            yield [10]
            yield []  # empty deltas are skipped by the worker
            yield [11, 12]
        elif mode == FAIL_AFTER_FIRST:
            yield [10]
            raise EngineError("boom")
        elif mode == EMPTY:
            yield []
        elif mode == HANG:
            yield [10]
            await self.gate.wait()
            yield [11]
        elif mode == FAIL_AT_ONCE:
            raise EngineError("bad prompt")

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def progress(self):
        return self.progress_value


class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(code, details)
        self.code, self.details = code, details


class FakeContext:
    async def abort(self, code, details=""):
        raise Aborted(code, details)


class Client:
    """The request side of one Generate stream; None in the queue is the client's half-close."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()

    def send(self, *requests, cancel=()):
        self.queue.put_nowait(pb.ClientMessage(requests=list(requests), cancel=list(cancel)))

    def half_close(self):
        self.queue.put_nowait(None)

    async def messages(self):
        while (message := await self.queue.get()) is not None:
            yield message


def request(request_id: int, mode: int, prompt_len: int = 3) -> pb.GenerateRequest:
    prompt = [mode] + [7] * (prompt_len - 1)
    return pb.GenerateRequest(request_id=request_id, prompt=pack_tokens(prompt),
                              params=params_to_proto(SamplingParams(max_new_tokens=8)))


class Stream:
    """Runs service.Generate and collects what it yields."""

    def __init__(self, service: BackendService):
        self.client = Client()
        self.generator = service.Generate(self.client.messages(), FakeContext())
        self.messages: list[pb.WorkerMessage] = []
        self.task = asyncio.create_task(self._collect())

    async def _collect(self):
        async for message in self.generator:
            self.messages.append(message)

    def events(self, request_id=None):
        out = []
        for message in self.messages:
            for event in message.events:
                if request_id is None or event.request_id == request_id:
                    kind = event.WhichOneof("kind")
                    payload = getattr(event, kind)
                    if kind == "error":
                        value = payload.message
                    elif kind == "cancelled":
                        value = payload.generated_tokens
                    else:
                        value = unpack_tokens(payload.tokens).tolist()
                    out.append((event.request_id, kind, value))
        return out

    async def finished(self, timeout=2.0):
        await asyncio.wait_for(self.task, timeout)


async def wait_until(predicate, timeout=2.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def ready_service(engine=None) -> BackendService:
    service = BackendService(engine or FakeEngine(), "worker-1")
    service.ready = True
    return service


def test_each_request_gets_one_first_token_then_one_completion_and_half_close_ends_the_stream():
    async def main():
        service = ready_service()
        stream = Stream(service)
        stream.client.send(request(1, OK), request(2, OK, prompt_len=5))
        stream.client.send(request(3, OK))
        stream.client.half_close()
        await stream.finished()
        for rid, prompt_len in ((1, 3), (2, 5), (3, 3)):
            assert [kind for _, kind, _ in stream.events(rid)] == ["first_token", "completion"], rid
            (_, _, first), (_, _, whole) = stream.events(rid)
            assert first == [10] and whole == OK_OUTPUT
            assert whole[:len(first)] == first  # the first-token payload is a prefix of the output
            completion = next(e.completion for m in stream.messages for e in m.events
                              if e.request_id == rid and e.HasField("completion"))
            assert completion.prompt_tokens == prompt_len
        assert sorted(service.engine.generated) == ["s1-1", "s1-2", "s1-3"]
        assert service.engine.aborted == []
    asyncio.run(main())


def test_engine_ids_are_per_stream_so_two_clients_may_reuse_request_ids():
    async def main():
        service = ready_service()
        a, b = Stream(service), Stream(service)
        for s in (a, b):
            s.client.send(request(1, OK))
            s.client.half_close()
        await a.finished()
        await b.finished()
        assert sorted(service.engine.generated) == ["s1-1", "s2-1"]
        assert a.events(1)[-1] == (1, "completion", OK_OUTPUT) and b.events(1)[-1] == (1, "completion", OK_OUTPUT)
    asyncio.run(main())


def test_engine_exception_is_an_error_event_for_that_request_only():
    async def main():
        stream = Stream(ready_service())
        stream.client.send(request(1, FAIL_AFTER_FIRST), request(2, OK), request(3, FAIL_AT_ONCE))
        stream.client.half_close()
        await stream.finished()
        assert stream.events(1) == [(1, "first_token", [10]), (1, "error", "EngineError: boom")]
        assert stream.events(2) == [(2, "first_token", [10]), (2, "completion", OK_OUTPUT)]
        assert stream.events(3) == [(3, "error", "EngineError: bad prompt")]
    asyncio.run(main())


def test_engine_that_finishes_without_a_token_gives_an_error():
    async def main():
        stream = Stream(ready_service())
        stream.client.send(request(4, EMPTY))
        stream.client.half_close()
        await stream.finished()
        ((rid, kind, message),) = stream.events()
        assert (rid, kind) == (4, "error")
        assert "without producing a token" in message
    asyncio.run(main())


def test_cancel_aborts_the_request_in_the_engine_and_answers_with_the_tokens_it_generated():
    async def main():
        service = ready_service()
        stream = Stream(service)
        stream.client.send(request(5, HANG), request(6, OK))
        await wait_until(lambda: len(stream.events(5)) == 1)
        stream.client.send(cancel=[5, 999])  # an unknown id is ignored
        await wait_until(lambda: service.engine.aborted)
        assert service.engine.aborted == ["s1-5"]
        service.engine.gate.set()  # too late: the request is gone
        stream.client.half_close()
        await stream.finished()
        assert stream.events(5) == [(5, "first_token", [10]), (5, "cancelled", 1)]
        assert stream.events(6)[-1] == (6, "completion", OK_OUTPUT)
    asyncio.run(main())


def test_half_close_waits_for_outstanding_requests_then_ends_the_stream():
    async def main():
        service = ready_service()
        stream = Stream(service)
        stream.client.send(request(7, HANG))
        stream.client.half_close()
        await wait_until(lambda: stream.events(7))
        await asyncio.sleep(0.05)
        assert not stream.task.done()  # the request is still running
        service.engine.gate.set()
        await stream.finished()
        assert stream.events(7) == [(7, "first_token", [10]), (7, "completion", [10, 11])]
        assert service.engine.aborted == []
    asyncio.run(main())


def test_stream_that_breaks_aborts_its_unfinished_requests():
    async def main():
        service = ready_service()
        stream = Stream(service)
        stream.client.send(request(8, HANG), request(9, HANG))
        await wait_until(lambda: len(stream.events()) == 2)
        stream.task.cancel()
        await asyncio.gather(stream.task, return_exceptions=True)
        await stream.generator.aclose()  # what grpc does when the client goes away
        await wait_until(lambda: len(service.engine.aborted) == 2)
        assert sorted(service.engine.aborted) == ["s1-8", "s1-9"]
    asyncio.run(main())


def test_heartbeat_carries_streamed_tokens_while_requests_are_in_flight(monkeypatch):
    monkeypatch.setattr(service_module, "HEARTBEAT_S", 0.02)

    async def main():
        service = ready_service(FakeEngine(progress_value=None))
        stream = Stream(service)
        await asyncio.sleep(0.1)
        assert stream.messages == []  # idle: no heartbeat
        stream.client.send(request(1, HANG), request(2, HANG))
        await wait_until(lambda: any(not m.events for m in stream.messages))
        beats = [m for m in stream.messages if not m.events]
        assert beats[0].engine_tokens == 2  # one token streamed per request so far
        service.engine.gate.set()
        stream.client.half_close()
        await stream.finished()
        assert stream.messages[-1].engine_tokens == 4
    asyncio.run(main())


def test_heartbeat_uses_the_engines_progress_counter_when_it_has_one(monkeypatch):
    monkeypatch.setattr(service_module, "HEARTBEAT_S", 0.02)

    async def main():
        engine = FakeEngine(progress_value=1234)
        stream = Stream(ready_service(engine))
        stream.client.send(request(1, HANG))
        await wait_until(lambda: any(not m.events for m in stream.messages))
        assert [m.engine_tokens for m in stream.messages if not m.events][0] == 1234
        engine.progress_value = 1300
        count = len(stream.messages)
        await wait_until(lambda: len(stream.messages) > count + 1)
        assert stream.messages[-1].engine_tokens == 1300 and not stream.messages[-1].events
        engine.gate.set()
        stream.client.half_close()
        await stream.finished()
        assert all(m.engine_tokens for m in stream.messages)
    asyncio.run(main())


def test_info_and_generate_before_ready_abort_with_unavailable():
    async def main():
        service = BackendService(FakeEngine(), "worker-1")
        with pytest.raises(Aborted) as info_abort:
            await service.Info(pb.InfoRequest(), FakeContext())
        assert info_abort.value.code == grpc.StatusCode.UNAVAILABLE
        assert "starting" in info_abort.value.details
        with pytest.raises(Aborted) as generate_abort:
            await Stream(service).task
        assert generate_abort.value.code == grpc.StatusCode.UNAVAILABLE
        service.ready = True
        reply = await service.Info(pb.InfoRequest(), FakeContext())
        assert (reply.worker_id, reply.engine, reply.max_concurrency, reply.max_model_len) == ("worker-1", "fake", 3, 64)
    asyncio.run(main())


def test_info_before_ready_is_unavailable_over_a_real_server():
    async def main():
        service = BackendService(FakeEngine(), "worker-1")
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_BackendServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.BackendStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await stub.Info(pb.InfoRequest(), timeout=5)
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "still starting" in exc.value.details()
                service.ready = True
                reply = await stub.Info(pb.InfoRequest(), timeout=5)
                assert reply.worker_id == "worker-1" and reply.max_concurrency == 3
        finally:
            await server.stop(0)
    asyncio.run(main())
