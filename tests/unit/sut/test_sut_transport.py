"""WorkerLink against a real in-process gRPC server (BackendService + health) on 127.0.0.1:
connect, Info, events, cancel, not-serving, server restart on the same port, kill, close.
Only the connection behaviour is tested, not the dispatcher's per-request bookkeeping."""
from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sut.engines.base import Engine, EngineInfo, SamplingParams
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.transport import LinkState, WorkerLink
from sut.wire import SERVER_OPTIONS, pack_tokens, params_to_proto, unpack_tokens
from sut.worker.service import BackendService

OK, HANG = 1, 4


class FakeEngine(Engine):
    name = "fake"

    def __init__(self):
        self.aborted: list[str] = []
        self.gate = asyncio.Event()

    @classmethod
    def from_args(cls, args):
        return cls()

    async def start(self) -> None:
        pass

    def info(self) -> EngineInfo:
        return EngineInfo(engine="fake", model="fake-model", max_concurrency=6, max_model_len=64, vocab_size=100)

    async def generate(self, request_id, prompt, params):
        yield [10]
        if int(prompt[0]) == HANG:
            await self.gate.wait()
        yield [11, 12]

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


class Worker:
    """What `python -m sut.worker` assembles, in this process."""

    def __init__(self, port: int = 0):
        self.port = port
        self.engine = FakeEngine()
        self.service = BackendService(self.engine, "fake-worker")
        self.health = health.aio.HealthServicer()
        self.server = None

    async def start(self, serving: bool = True) -> "Worker":
        self.server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_BackendServicer_to_server(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()
        await self.set_serving(serving)
        return self

    async def set_serving(self, serving: bool) -> None:
        self.service.ready = serving
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING if serving
                              else health_pb2.HealthCheckResponse.NOT_SERVING)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(0)


class Listener:
    def __init__(self):
        self.calls: list[tuple] = []
        self.events: list[tuple[int, str, list[int] | str]] = []

    def on_ready(self, link):
        assert link.state is LinkState.READY
        self.calls.append(("ready", link))

    def on_down(self, link, reason):
        self.calls.append(("down", link, reason))

    def on_events(self, link, events):
        for event in events:
            kind = event.WhichOneof("kind")
            payload = getattr(event, kind)
            if kind == "error":
                value = payload.message
            elif kind == "cancelled":
                value = payload.generated_tokens
            else:
                value = unpack_tokens(payload.tokens).tolist()
            self.events.append((event.request_id, kind, value))

    def count(self, what: str) -> int:
        return sum(1 for call in self.calls if call[0] == what)


async def wait_until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def request(request_id: int, mode: int = OK) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=request_id, prompt=pack_tokens([mode, 2, 3]),
                              params=params_to_proto(SamplingParams(max_new_tokens=3)))


async def connected(worker: Worker, **kwargs) -> tuple[WorkerLink, Listener]:
    listener = Listener()
    link = WorkerLink(worker.address, listener, max_backoff_s=kwargs.pop("max_backoff_s", 0.2))
    link.start()
    await wait_until(lambda: link.state is LinkState.READY)
    return link, listener


def test_link_connects_fetches_info_and_reports_ready():
    async def main():
        worker = await Worker().start()
        listener = Listener()
        link = WorkerLink(worker.address, listener)
        assert link.state is LinkState.CONNECTING and link.capacity == 1 and link.name == worker.address
        link.start()
        await wait_until(lambda: link.state is LinkState.READY)
        assert listener.calls == [("ready", link)]
        assert link.info["worker_id"] == "fake-worker" and link.info["engine"] == "fake"
        assert link.info["max_concurrency"] == 6 and link.capacity == 6
        assert link.name == "fake-worker" and link.address == worker.address
        assert link.last_error is None
        await link.close()
        await worker.stop()
    asyncio.run(main())


def test_sent_requests_come_back_as_first_token_and_completion_events():
    async def main():
        worker = await Worker().start()
        link, listener = await connected(worker)
        link.send(request(41))
        link.send(request(42))
        await wait_until(lambda: len(listener.events) == 4)
        await link.close()
        await worker.stop()
        return listener
    listener = asyncio.run(main())
    for rid in (41, 42):
        assert [e for e in listener.events if e[0] == rid] == [
            (rid, "first_token", [10]), (rid, "completion", [10, 11, 12])]
    assert listener.count("down") == 0


def test_cancel_reaches_the_worker_and_aborts_the_request():
    async def main():
        worker = await Worker().start()
        link, listener = await connected(worker)
        link.send(request(7, HANG))
        await wait_until(lambda: listener.events)
        link.cancel(7)
        await wait_until(lambda: worker.engine.aborted)
        assert worker.engine.aborted == ["s1-7"]
        worker.engine.gate.set()
        link.send(request(8))  # the stream still works after a cancel
        await wait_until(lambda: any(e[0] == 8 and e[1] == "completion" for e in listener.events))
        assert [e for e in listener.events if e[0] == 7] == [(7, "first_token", [10]), (7, "cancelled", 1)]
        await link.close()
        await worker.stop()
    asyncio.run(main())


def test_not_serving_worker_is_never_ready_and_says_why_then_joins_when_it_serves():
    async def main():
        worker = await Worker().start(serving=False)
        listener = Listener()
        link = WorkerLink(worker.address, listener, max_backoff_s=0.2)
        link.start()
        await wait_until(lambda: link.last_error is not None)
        assert "not serving" in link.last_error
        await asyncio.sleep(0.3)  # a retry or two
        assert link.state is not LinkState.READY and link.info is None
        assert listener.calls == []  # never up, so never reported down either
        await worker.set_serving(True)
        await wait_until(lambda: link.state is LinkState.READY)
        assert listener.calls == [("ready", link)] and link.last_error is None
        await link.close()
        await worker.stop()
    asyncio.run(main())


def test_not_serving_worker_stays_connecting():
    async def main():
        worker = await Worker().start(serving=False)
        link = WorkerLink(worker.address, Listener(), max_backoff_s=0.2)
        link.start()
        await wait_until(lambda: link.last_error is not None)
        state = link.state
        await link.close()
        await worker.stop()
        return state
    assert asyncio.run(main()) is LinkState.CONNECTING


def test_stopped_server_is_reported_down_and_a_restart_on_the_same_port_reconnects():
    async def main():
        worker = await Worker().start()
        link, listener = await connected(worker)
        port = worker.port
        await worker.stop()
        await wait_until(lambda: listener.count("down") == 1)
        (_, down_link, reason), = [c for c in listener.calls if c[0] == "down"]
        assert down_link is link and reason and link.last_error == reason
        assert link.state is LinkState.DOWN
        await asyncio.sleep(0.3)  # reconnect attempts fail while nothing listens
        assert link.state is LinkState.DOWN and listener.count("down") == 1  # reported once
        restarted = await Worker(port).start()
        assert restarted.port == port
        await wait_until(lambda: link.state is LinkState.READY)
        assert [c[0] for c in listener.calls] == ["ready", "down", "ready"]
        link.send(request(3))
        await wait_until(lambda: any(e[1] == "completion" for e in listener.events))
        assert listener.events[-1] == (3, "completion", [10, 11, 12])
        await link.close()
        await restarted.stop()
    asyncio.run(main())


def test_kill_reports_down_at_once_then_reconnects():
    async def main():
        worker = await Worker().start()
        link, listener = await connected(worker)
        link.send(request(5, HANG))
        await wait_until(lambda: listener.events)
        link.kill("stalled: no progress for 30 s")
        # synchronously: no await between kill and these checks
        assert listener.calls[-1] == ("down", link, "stalled: no progress for 30 s")
        assert link.state is LinkState.DOWN and link.last_error == "stalled: no progress for 30 s"
        await wait_until(lambda: worker.engine.aborted)  # the dropped stream's request is aborted
        assert worker.engine.aborted == ["s1-5"]
        await wait_until(lambda: link.state is LinkState.READY)
        assert [c[0] for c in listener.calls] == ["ready", "down", "ready"]
        await link.close()
        await worker.stop()
    asyncio.run(main())


def test_close_ends_the_stream_and_the_worker_aborts_its_requests():
    async def main():
        worker = await Worker().start()
        link, listener = await connected(worker)
        link.send(request(9, HANG))
        await wait_until(lambda: listener.events)
        await link.close()
        await wait_until(lambda: worker.engine.aborted)
        assert worker.engine.aborted == ["s1-9"]
        assert listener.count("down") == 0  # a deliberate close is not a failure
        await asyncio.sleep(0.3)
        assert listener.count("ready") == 1  # and it does not reconnect
        await worker.stop()
    asyncio.run(main())


class RecordedSleeps:
    """Stands in for the `asyncio` module inside sut.transport: records each backoff and sleeps 10 ms."""

    def __init__(self):
        self.sleeps: list[float] = []

    def __getattr__(self, name):
        return getattr(asyncio, name)

    async def sleep(self, delay, result=None):
        self.sleeps.append(delay)
        return await asyncio.sleep(min(delay, 0.01), result)


def backoff_after_a_slow_start(monkeypatch, drop):
    """A worker that is not serving for a few attempts (backoff grows), then serves; `drop` then cuts
    the connection. Returns (backoffs before READY, the backoff right after the drop)."""
    import sut.transport
    recorded = RecordedSleeps()
    monkeypatch.setattr(sut.transport, "asyncio", recorded)

    async def main():
        worker = await Worker().start(serving=False)
        listener = Listener()
        link = WorkerLink(worker.address, listener, max_backoff_s=1.0)
        link.start()
        await wait_until(lambda: len(recorded.sleeps) >= 5)
        await worker.set_serving(True)
        await wait_until(lambda: link.state is LinkState.READY)
        before = list(recorded.sleeps)
        await drop(link, worker)
        await wait_until(lambda: len(recorded.sleeps) > len(before))
        after = recorded.sleeps[len(before)]
        await link.close()
        await worker.stop()
        return before, after
    return asyncio.run(main())


async def stop_server(link, worker):
    await worker.stop()


async def kill_link(link, worker):
    link.kill("stalled")


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_connection_that_worked(monkeypatch):
    before, after = backoff_after_a_slow_start(monkeypatch, stop_server)
    assert before[:5] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert after == 0.2


def test_backoff_resets_after_a_kill_of_a_connection_that_worked(monkeypatch):
    before, after = backoff_after_a_slow_start(monkeypatch, kill_link)
    assert before[-1] == 1.0
    assert after == 0.2
