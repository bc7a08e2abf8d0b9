"""Workers that lie or hang, built on the project's own proto stubs and served over real gRPC, beside
an honest sim worker process: the coordinator (ClusterSUT with its real links) answers every query
exactly once with a correct answer and records what each rogue did."""
from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sut.cluster import ClusterSUT
from sut.dispatch import DispatchLimits
from sut.dispatch.policies import create_policy
from sut.engines.base import SamplingParams
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.wire import SERVER_OPTIONS, pack_tokens, unpack_tokens
from sut.worker.launch import WorkerProcess, WorkerSpec

VOCAB = 1000
PARAMS = SamplingParams(max_new_tokens=8)


class Rogue(pb_grpc.BackendServicer):
    """answers: inflate (10x the tokens asked), out_of_vocab, empty, foreign (ids it was never sent),
    silent (takes requests, sends nothing, not even heartbeats), busy (heartbeats forever, never answers)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.received = 0

    async def Info(self, request, context):
        return pb.InfoReply(worker_id=f"rogue-{self.mode}", engine="rogue", model="m", max_concurrency=4,
                            max_model_len=4096, vocab_size=VOCAB)

    async def Generate(self, request_iterator, context):
        outbox: asyncio.Queue = asyncio.Queue()

        async def read():
            async for message in request_iterator:
                for req in message.requests:
                    self.received += 1
                    outbox.put_nowait(req)

        reader = asyncio.create_task(read())
        tokens = 0
        try:
            while True:
                try:
                    req = await asyncio.wait_for(outbox.get(), 0.5)
                except asyncio.TimeoutError:
                    if self.mode == "busy":
                        tokens += 10
                        yield pb.WorkerMessage(engine_tokens=tokens)
                    continue
                if self.mode in ("silent", "busy"):
                    continue
                n = req.params.max_new_tokens
                ids = {"inflate": [5] * (10 * n), "out_of_vocab": [VOCAB + 7] * n, "empty": [],
                       "foreign": [5] * n}[self.mode]
                request_id = req.request_id + 1 if self.mode == "foreign" else req.request_id  # the next id: another worker's
                yield pb.WorkerMessage(events=[pb.Event(request_id=request_id,
                                                        completion=pb.Completion(tokens=pack_tokens(ids)))])
        finally:
            reader.cancel()


class RogueServers:
    """In-process gRPC servers on their own event loop thread (the coordinator has its own)."""

    def __init__(self, modes: list[str]):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.rogues = [Rogue(mode) for mode in modes]
        self.servers, self.addresses = [], []
        for rogue in self.rogues:
            server, port = asyncio.run_coroutine_threadsafe(self._serve(rogue), self.loop).result(10)
            self.servers.append(server)
            self.addresses.append(f"127.0.0.1:{port}")

    async def _serve(self, rogue):
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_BackendServicer_to_server(rogue, server)
        checker = health.aio.HealthServicer()
        await checker.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    def stop(self):
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


class Recorder:
    def __init__(self):
        self.done: dict[int, list[int]] = {}
        self.twice = 0
        self.finished = threading.Event()
        self.expected = 0

    def first_token(self, query, tokens):
        pass

    def complete(self, items):
        for query, tokens in items:
            if query.sample_id in self.done:
                self.twice += 1
            self.done[query.sample_id] = unpack_tokens(tokens).tolist()
        if len(self.done) >= self.expected:
            self.finished.set()


class Sample:
    def __init__(self, id_, index):
        self.id, self.index = id_, index


@pytest.fixture
def honest_worker(tmp_path):
    worker = WorkerProcess(WorkerSpec("sim", "sim", engine_args=("--step-ms", "2", "--max-seqs", "8",
                                                                 "--vocab-size", str(VOCAB))), tmp_path / "sim.log")
    try:
        yield worker.wait_ready(time.monotonic() + 60)
    finally:
        worker.stop()


@pytest.mark.parametrize("modes", [["inflate", "out_of_vocab", "empty"], ["foreign"], ["silent", "busy"]],
                         ids=["wrong-answers", "foreign-ids", "hangs"])
def test_every_query_gets_one_correct_answer_despite_rogue_workers(modes, honest_worker):
    rogues = RogueServers(modes)
    recorder, fatal = Recorder(), []
    samples = 40
    recorder.expected = samples
    limits = DispatchLimits(max_attempts=5, request_timeout_s=3.0, silence_timeout_s=2.0, faulty_after=2)
    cluster = ClusterSUT(rogues.addresses + [honest_worker], [[1, 2, 3, i] for i in range(samples)], PARAMS,
                         create_policy("least-work"), needs_first_token=False, on_fatal=fatal.append,
                         limits=limits, responder=recorder)
    try:
        cluster.start(30)
        cluster.issue_queries([Sample(1000 + i, i) for i in range(samples)])
        assert recorder.finished.wait(60), (len(recorder.done), fatal, cluster.dispatch_record()["incidents"][-5:])
        record, snapshot = cluster.dispatch_record(), cluster.snapshot()
    finally:
        cluster.close()
        rogues.stop()
    assert not fatal and recorder.twice == 0 and sorted(recorder.done) == [1000 + i for i in range(samples)]
    assert all(1 <= len(ids) <= PARAMS.max_new_tokens and all(0 <= t < VOCAB for t in ids)
               for ids in recorder.done.values())
    assert all(rogue.received for rogue in rogues.rogues), "every rogue was given work"
    by_worker = {w["address"]: w for w in snapshot["workers"]}
    if modes == ["foreign"]:
        assert snapshot["foreign_events"] >= 1 and by_worker[rogues.addresses[0]]["faulty"]
    elif "silent" in modes:
        assert by_worker[rogues.addresses[0]]["disconnects"] >= 1  # silent: dropped within seconds
        assert snapshot["failed_attempts"] >= 1  # busy: its requests timed out
    else:
        kinds = {(i["worker"], i["kind"]) for i in record["incidents"]}
        for address in rogues.addresses:
            assert (address, "wrong answer") in kinds and (address, "faulty") in kinds, record["incidents"]
            assert by_worker[address]["faulty"]
