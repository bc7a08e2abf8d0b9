"""WorkerLink: the coordinator's connection to one worker.

One channel and one long-lived Generate stream per worker carry every request. The link checks
health, fetches Info, then reads events until the stream breaks; it then reports the worker down
and reconnects with backoff, so a worker that restarts or starts late joins by itself.
"""
from __future__ import annotations

import asyncio
import enum
import time
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut import stage_trace
from sut.security import LinkSecurity
from sut.wire import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES, REQUEST_OVERHEAD_BYTES, info_to_dict


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"


class LinkListener(Protocol):
    def on_ready(self, link: "WorkerLink") -> None: ...
    def on_down(self, link: "WorkerLink", reason: str) -> None: ...
    def on_events(self, link: "WorkerLink", events) -> None: ...


class WorkerLink:
    """The connection to one worker; the dispatcher's ledger holds the work sent over it."""

    def __init__(self, address: str, listener: LinkListener, max_backoff_s: float = 5.0,
                 security: LinkSecurity | None = None):
        self.address = address
        self.security = security or LinkSecurity()
        self.listener = listener
        self.max_backoff_s = max_backoff_s
        self.state = LinkState.CONNECTING
        self.info: dict | None = None
        self.last_error: str | None = None
        self.last_progress = time.monotonic()
        self.last_message = time.monotonic()
        self.disconnects = 0
        self.engine_tokens = 0  # the current stream's token counter (WorkerMessage.engine_tokens)
        self.reached = False  # the worker answered a health check at least once: it exists
        self._requests: list[pb.GenerateRequest] = []
        self._cancels: list[int] = []
        self._wake_sender = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._serve_task: asyncio.Task | None = None
        self._kill_reason: str | None = None
        self._served = False
        self._closed = False

    @property
    def name(self) -> str:
        return (self.info or {}).get("worker_id") or self.address

    @property
    def capacity(self) -> int:
        return max(1, int((self.info or {}).get("max_concurrency") or 1))

    @property
    def ready(self) -> bool:
        return self.state is LinkState.READY

    @property
    def state_name(self) -> str:
        return self.state.value

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"link {self.address}")

    async def close(self) -> None:
        self._closed = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def send(self, request: pb.GenerateRequest) -> None:
        self._requests.append(request)
        self._wake_sender.set()

    def cancel(self, request_id: int) -> None:
        self._cancels.append(request_id)
        self._wake_sender.set()

    def kill(self, reason: str) -> None:
        """Drop the connection now (a stalled worker) and report it down at once: its work must not
        wait for a teardown that a stopped peer may never answer. The link reconnects with backoff."""
        self._declare_down(reason)
        if self._serve_task and not self._serve_task.done():
            self._kill_reason = reason
            self._serve_task.cancel()

    def _declare_down(self, reason: str) -> None:
        self.last_error = reason
        if self.state is LinkState.READY:
            self.state = LinkState.DOWN
            self.disconnects += 1
            self._requests.clear()
            self._cancels.clear()
            self.listener.on_down(self, reason)

    async def _run(self) -> None:
        backoff = 0.2
        while not self._closed:
            self._kill_reason = None
            self._served = False
            self._serve_task = asyncio.create_task(self._connect_and_serve())
            try:
                await self._serve_task
                reason = "worker closed the stream"
            except asyncio.CancelledError:
                if self._closed or self._kill_reason is None:
                    raise
                reason = self._kill_reason
            except grpc.aio.AioRpcError as exc:
                reason = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:  # any failure of one worker is that worker's, never the run's
                reason = f"{type(exc).__name__}: {exc}"
            if self._served:  # a connection that worked: reconnect quickly
                backoff = 0.2
            self._declare_down(reason)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _connect_and_serve(self) -> None:
        options = CHANNEL_OPTIONS + self.security.channel_options()
        credentials = self.security.channel_credentials()
        channel = (grpc.aio.secure_channel(self.address, credentials, options=options) if credentials
                   else grpc.aio.insecure_channel(self.address, options=options))
        try:
            await self._serve(channel)
        finally:
            # closing in the background: a stopped peer must not hold up the next connection attempt
            closing = asyncio.ensure_future(channel.close())
            closing.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _serve(self, channel) -> None:
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        self.reached = True
        if status.status != health_pb2.HealthCheckResponse.SERVING:
            raise ConnectionError("health check: not serving yet (engine starting?)")
        stub = pb_grpc.BackendStub(channel)
        metadata = self.security.call_metadata()
        try:
            self.info = info_to_dict(await stub.Info(pb.InfoRequest(), timeout=10, metadata=metadata))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                self.reached = False  # it answers, but not to us: waiting longer will not help
            raise
        call = stub.Generate(metadata=metadata)
        self._requests.clear()
        self._cancels.clear()
        sender = asyncio.create_task(self._send_loop(call))
        self.state = LinkState.READY
        self._served = True
        self.last_progress = self.last_message = time.monotonic()
        self.last_error = None
        self.listener.on_ready(self)
        engine_tokens = self.engine_tokens = 0
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    if sender.done() and sender.exception():
                        raise sender.exception()
                    return
                self.last_message = time.monotonic()
                if message.events or message.engine_tokens != engine_tokens:
                    engine_tokens = self.engine_tokens = message.engine_tokens
                    self.last_progress = self.last_message
                if message.events:
                    if stage_trace.TRACE.enabled:
                        stage_trace.mark_first_tokens(message.events, stage_trace.READ_FIRST)
                    self.listener.on_events(self, message.events)
        finally:
            sender.cancel()
            call.cancel()

    async def _send_loop(self, call) -> None:
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            while self._requests or self._cancels:
                requests, self._requests = self._requests, []
                cancels, self._cancels = self._cancels, []
                for batch in _within_message_limit(requests):
                    await call.write(pb.ClientMessage(requests=batch, cancel=cancels))
                    if stage_trace.TRACE.enabled:
                        for request in batch:
                            stage_trace.mark(stage_trace.WRITTEN, request.request_id)
                    cancels = []


def _within_message_limit(requests: list) -> list[list]:
    """Requests ready together go out in as few messages as fit well inside the message limit
    (a single request is checked against the limit before it is ever sent)."""
    budget = MAX_MESSAGE_BYTES // 4
    batches, batch, size = [], [], 0
    for request in requests:
        cost = len(request.prompt) + REQUEST_OVERHEAD_BYTES
        if batch and size + cost > budget:
            batches.append(batch)
            batch, size = [], 0
        batch.append(request)
        size += cost
    return batches + [batch] if batch or not batches else batches
