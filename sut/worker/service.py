"""The Backend gRPC service: one engine behind Generate streams, Info and the standard health service.

Per request the worker sends exactly one first-token event (all tokens so far) and one completion
(or one error, or, when the client cancels it, one cancelled event with the tokens it had generated); while requests are in flight, a heartbeat each second carries the count of
tokens produced, which is how the coordinator tells a long generation from a stalled engine. Events ready at the same moment go out in one message. When a client's
stream ends or breaks, that client's unfinished requests are aborted in the engine.

Every request is checked (sut.worker.validation) before it reaches the engine; a bad one gets its
own `InvalidRequest: ...` error event and never touches the engine or the other requests.
"""
from __future__ import annotations

import asyncio
import itertools
import logging

from sut import stage_trace
from sut.engines.base import Engine
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.wire import info_to_proto, pack_tokens
from sut.worker.validation import DEFAULT_MAX_NEW_TOKENS_CAP, InvalidRequest, Limits, validate_request

log = logging.getLogger("sut.worker")
_END = object()
HEARTBEAT_S = 1.0


class BackendService(pb_grpc.BackendServicer):
    def __init__(self, engine: Engine, worker_id: str, max_new_tokens_cap: int = DEFAULT_MAX_NEW_TOKENS_CAP,
                 identity: dict[str, str] | None = None):
        self.engine = engine
        self.worker_id = worker_id
        self.max_new_tokens_cap = max_new_tokens_cap
        self.identity = dict(identity or {})  # merged into Info's versions (identity.* and node.* keys)
        self.ready = False
        self._streams = itertools.count(1)
        self._limits: Limits | None = None

    @property
    def limits(self) -> Limits:
        """Request limits from the started engine's Info (read once)."""
        if self._limits is None:
            self._limits = Limits.from_info(self.engine.info(), self.max_new_tokens_cap)
        return self._limits

    def _progress(self, streamed: int) -> int:
        engine_count = self.engine.progress()
        return streamed if engine_count is None else engine_count

    async def Info(self, request: pb.InfoRequest, context) -> pb.InfoReply:
        if not self.ready:
            await context.abort(_unavailable(), "engine is still starting")
        reply = info_to_proto(self.engine.info(), self.worker_id)
        reply.versions.update(self.identity)
        return reply

    async def Generate(self, request_iterator, context):
        if not self.ready:
            await context.abort(_unavailable(), "engine is still starting")
        stream_no = next(self._streams)
        limits = self.limits
        events: asyncio.Queue = asyncio.Queue()
        tasks: dict[int, asyncio.Task] = {}
        produced = [0]

        def reject(request_id: int, message: str) -> None:
            events.put_nowait(pb.Event(request_id=request_id, error=pb.Error(message=message)))

        async def serve_one(req: pb.GenerateRequest, prompt, params) -> None:
            engine_id = f"s{stream_no}-{req.request_id}"
            tokens: list[int] = []
            try:
                async for delta in self.engine.generate(engine_id, prompt, params):
                    if not delta:
                        continue
                    first = not tokens
                    tokens.extend(delta)
                    produced[0] += len(delta)
                    if first:
                        if stage_trace.TRACE.enabled:
                            stage_trace.mark(stage_trace.W_FIRST, req.request_id)
                        events.put_nowait(pb.Event(request_id=req.request_id,
                                                   first_token=pb.FirstToken(tokens=pack_tokens(tokens))))
                if not tokens:
                    raise RuntimeError("engine finished without producing a token")
                events.put_nowait(pb.Event(request_id=req.request_id, completion=pb.Completion(
                    tokens=pack_tokens(tokens), prompt_tokens=len(prompt))))
            except asyncio.CancelledError:
                generated = await self.engine.abort(engine_id)
                events.put_nowait(pb.Event(request_id=req.request_id, cancelled=pb.Cancelled(
                    generated_tokens=max(len(tokens), generated or 0))))
                raise
            except Exception as exc:  # reported to the client, which may retry elsewhere
                log.warning("request %s failed: %s", engine_id, exc)
                events.put_nowait(pb.Event(request_id=req.request_id,
                                           error=pb.Error(message=f"{type(exc).__name__}: {exc}")))
            finally:
                tasks.pop(req.request_id, None)

        async def read_requests() -> None:
            async for message in request_iterator:
                for req in message.requests:
                    if stage_trace.TRACE.enabled:
                        stage_trace.mark(stage_trace.W_RECEIVED, req.request_id)
                    if req.request_id in tasks:
                        reject(req.request_id, f"InvalidRequest: request id {req.request_id} is already in "
                                               f"flight on this stream")
                        continue
                    try:
                        prompt, params = validate_request(req, limits)
                    except InvalidRequest as exc:
                        log.info("request %s on stream %s rejected: %s", req.request_id, stream_no, exc)
                        reject(req.request_id, f"InvalidRequest: {exc}")
                        continue
                    tasks[req.request_id] = asyncio.create_task(serve_one(req, prompt, params))
                for request_id in message.cancel:
                    task = tasks.pop(request_id, None)
                    if task is not None:
                        task.cancel()
            # client half-closed: finish what it asked for, then end the stream
            while tasks:
                await asyncio.gather(*list(tasks.values()), return_exceptions=True)
                for request_id, task in list(tasks.items()):  # never spin on a task that ended
                    if task.done():
                        tasks.pop(request_id, None)
            events.put_nowait(_END)

        reader = asyncio.create_task(read_requests())
        try:
            while True:
                try:
                    batch = [await asyncio.wait_for(events.get(), HEARTBEAT_S)]
                except asyncio.TimeoutError:
                    if tasks:
                        yield pb.WorkerMessage(engine_tokens=self._progress(produced[0]))
                    continue
                while not events.empty():
                    batch.append(events.get_nowait())
                done = batch[-1] is _END
                batch = [e for e in batch if e is not _END]
                if batch:
                    if stage_trace.TRACE.enabled:
                        stage_trace.mark_first_tokens(batch, stage_trace.W_SENT)
                    yield pb.WorkerMessage(events=batch, engine_tokens=self._progress(produced[0]))
                if done:
                    return
        finally:
            reader.cancel()
            for task in list(tasks.values()):
                task.cancel()


def _unavailable():
    import grpc
    return grpc.StatusCode.UNAVAILABLE
