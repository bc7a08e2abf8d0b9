"""A scripted OpenAI-compatible server for unit tests of the HTTP link: real sockets and HTTP/1.1
(chunked server-sent events), with the faults a real server shows switched on by the test."""
from __future__ import annotations

import asyncio
import json


class StubServer:
    """`behavior` is read on every request: models, accept_ids, give_ids, status (an HTTP status for
    /completions; with failures_left=N only the first N), fault ('malformed', 'no_done' (ends after a
    finish_reason, as transformers serve does), 'cut' (ends after the first token), 'error_event', 'hang', 'drop'), models_status."""

    def __init__(self, **behavior):
        self.behavior = dict(models=["stub-model"], accept_ids=True, give_ids=True, status=200, fault=None,
                             models_status=200, token_delay_s=0.0, failures_left=None)
        self.behavior.update(behavior)
        self.requests: list[dict] = []  # /completions bodies, in arrival order
        self.open_streams = self.peak_streams = 0
        self.headers: list[dict] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"openai+http://127.0.0.1:{self.port}/v1"

    async def start(self, port: int = 0) -> "StubServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            for writer in list(getattr(self, "_writers", ())):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers = getattr(self, "_writers", set())
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.headers.append(headers)
                if not await self._respond(method, path, json.loads(body) if body else None, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _send(self, writer, status: int, payload) -> bool:
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
                     .encode() + data)
        await writer.drain()
        return True

    async def _respond(self, method: str, path: str, body, writer) -> bool:
        b = self.behavior
        if path == "/v1/models":
            if b["models_status"] != 200:
                return await self._send(writer, b["models_status"], {"error": {"message": "no models for you"}})
            return await self._send(writer, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "stub", "max_model_len": 4096} for m in b["models"]]})
        if path != "/v1/completions":
            return await self._send(writer, 404, {"error": {"message": f"no route {path}"}})
        self.requests.append(body)
        prompt = body["prompt"]
        if isinstance(prompt, list) and not b["accept_ids"]:
            return await self._send(writer, 422, {"detail": [{"msg": "Input should be a valid string"}]})
        if b["failures_left"] is not None:  # fail only the next N requests
            if b["failures_left"] > 0:
                b["failures_left"] -= 1
                return await self._send(writer, b["status"], {"error": {"message": "engine exploded"}})
        elif b["status"] != 200:
            return await self._send(writer, b["status"], {"error": {"message": "engine exploded"}})
        seed = sum(prompt) if isinstance(prompt, list) else len(prompt)
        ids = [(seed + i) % 90 + 10 for i in range(body["max_tokens"])]
        if not body.get("stream"):
            choice = {"index": 0, "text": "".join(f" t{i}" for i in ids), "finish_reason": "length"}
            if b["give_ids"] and body.get("return_token_ids"):
                choice["token_ids"] = ids
            return await self._send(writer, 200, {"choices": [choice], "model": body["model"]})
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        self.open_streams += 1
        self.peak_streams = max(self.peak_streams, self.open_streams)
        try:
            return await self._stream(body, ids, writer)
        finally:
            self.open_streams -= 1

    async def _stream(self, body: dict, ids: list[int], writer) -> bool:
        b = self.behavior

        async def event(text: str) -> None:
            data = text.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        fault = b["fault"]
        for n, token in enumerate(ids):
            if fault == "hang":
                await asyncio.sleep(3600)
            if fault == "cut" and n == 1:
                break
            if fault == "drop" and n == 1:
                writer.transport.abort()
                return False
            if fault == "malformed" and n == 1:
                await event("data: {not json\n\n")
                continue
            if fault == "error_event" and n == 1:
                await event('data: {"error": {"message": "CUDA out of memory"}}\n\n')
                continue
            choice = {"index": 0, "text": f" t{token}", "finish_reason": "length" if n == len(ids) - 1 else None}
            if b["give_ids"] and body.get("return_token_ids"):
                choice["token_ids"] = [token]
            await event(f"data: {json.dumps({'choices': [choice]})}\n\n")
            if b["token_delay_s"]:
                await asyncio.sleep(b["token_delay_s"])
        if fault != "cut":
            await event('data: {"choices": [], "usage": {"completion_tokens": %d}}\n\n' % len(ids))
        if fault not in ("no_done", "cut"):
            await event("data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def main(argv: list[str]) -> None:
    """`python -m tests.openai_stub PORT MODEL`: a stub server as a process (tests of code that starts one)."""
    async def serve():
        server = await StubServer(models=[argv[1]]).start(int(argv[0]))
        await asyncio.Event().wait()
        await server.stop()
    asyncio.run(serve())


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
