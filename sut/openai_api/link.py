"""OpenAILink: the coordinator's connection to one OpenAI-compatible endpoint (`vllm serve`, SGLang,
TensorRT-LLM, llama.cpp ...). It implements the dispatcher's `Connection` as `sut.transport.WorkerLink`
does, and hands the dispatcher the same protocol events, so fan-out, re-issue, deadlines, end-game
moves and accounting are the gRPC path's, unchanged.

First contact: `/models` (the served model, pinned as the endpoint's identity), then a one-token
probe that finds the endpoint's dialect (token-id or text prompts, vLLM's extra fields, output ids
or not). Each request is one streamed `/completions` call, or, when the dispatcher needs no first
tokens (Offline), one plain JSON call (no per-token parsing at the coordinator); at most `max_concurrency` are open at
once (the endpoint's credit: the rest wait here). While ready, `/models` is asked once a second: an
answer is the endpoint's heartbeat. A transport error (refused, reset, timed out) or a heartbeat
that fails drops the link: its attempts are re-issued and it reconnects with backoff. HTTP 5xx, 408
and 429, and malformed streams, fail one attempt (re-issued); 400/413/422 are invalid requests.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time

import httpx

from sut.engines.base import SamplingParams
from sut.openai_api.options import ARG_PROMPT, KEY_OUTPUT_IDS, EndpointError, EndpointOptions, parse_endpoint
from sut.openai_api.protocol import (DIALECTS, Dialect, Outcome, SSEReader, StreamError, StreamState,
                                     classify_status, completion_body, error_text)
from sut.proto import backend_pb2 as pb
from sut.security import LinkSecurity
from sut.transport import LinkState, WorkerLink
from sut.wire import INVALID_REQUEST_PREFIX, pack_tokens, params_from_proto, unpack_tokens

ENGINE = "openai-http"
HEARTBEAT_S = 1.0
KEY_DIALECT = "identity.dialect"
KEY_MODEL = "identity.model_fingerprint"
PROBE_PROMPT_IDS = [1, 2, 3]
PROBE_PROMPT_TEXT = "Hello"


class EndpointRefused(RuntimeError):
    """The endpoint answers, but not in a way we can use: waiting will not help."""


class OpenAILink(WorkerLink):
    """WorkerLink's life cycle (state, kill, reconnect with backoff) over HTTP instead of a gRPC stream."""

    def __init__(self, address: str, listener, max_backoff_s: float = 5.0, security: LinkSecurity | None = None):
        self.options: EndpointOptions = parse_endpoint(address)
        super().__init__(address, listener, max_backoff_s, security)
        self.dialect: Dialect | None = None
        self.model: str | None = None
        self.tokenizer = None
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(self.options.max_concurrency)
        self._tasks: dict[int, asyncio.Task] = {}
        self._cancel_requested: set[int] = set()

    @property
    def capacity(self) -> int:
        return self.options.max_concurrency

    async def close(self) -> None:
        self._drop_requests()
        await super().close()

    # --- the dispatcher's calls ------------------------------------------------------------------

    def send(self, request: pb.GenerateRequest) -> None:
        if not self.ready:  # as WorkerLink: a send to a link that is down is dropped; on_down re-issued it
            return
        task = asyncio.create_task(self._request(request, self._client))
        self._tasks[request.request_id] = task
        task.add_done_callback(lambda _, rid=request.request_id: self._tasks.pop(rid, None))

    def cancel(self, request_id: int) -> None:
        task = self._tasks.get(request_id)
        if task and not task.done():
            self._cancel_requested.add(request_id)
            task.cancel()

    # --- connection ------------------------------------------------------------------------------

    def _declare_down(self, reason: str) -> None:
        if self.ready:
            self._drop_requests()
        super()._declare_down(reason)

    def _drop_requests(self) -> None:
        """Stop every open request without events: the dispatcher re-issues them (on_down)."""
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()
        self._cancel_requested.clear()

    def _make_client(self) -> httpx.AsyncClient:
        opts = self.options
        headers = {}
        try:
            key = opts.api_key(self.security.token)
        except EndpointError as exc:
            raise EndpointRefused(str(exc)) from None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        verify: ssl.SSLContext | bool = True
        if self.security.tls:
            verify = ssl.create_default_context(cadata=self.security.ca_cert.decode())
        # one connection more than the credit: the heartbeat never waits behind the streams
        limits = httpx.Limits(max_connections=opts.max_concurrency + 2, max_keepalive_connections=opts.max_concurrency + 2)
        timeout = httpx.Timeout(connect=opts.connect_timeout_s, read=None, write=30.0, pool=None)
        return httpx.AsyncClient(base_url=opts.base_url, headers=headers, limits=limits, timeout=timeout,
                                 verify=verify, trust_env=False)

    async def _connect_and_serve(self) -> None:
        """Called by WorkerLink._run, which turns any exception into the reason the link is down."""
        try:
            client = self._make_client()
        except EndpointRefused:
            self.reached = False
            raise
        try:
            try:
                await self._first_contact(client)
            except EndpointRefused:
                self.reached = False  # it answers, but not usably for us: waiting longer will not help
                raise
            self._client = client
            self._served = True
            self.state = LinkState.READY
            self.last_progress = self.last_message = time.monotonic()
            self.last_error = None
            self.listener.on_ready(self)
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                if time.monotonic() - self.last_message >= HEARTBEAT_S:  # streams that flow are proof enough
                    await self._heartbeat(client)
        finally:
            self._client = None
            closing = asyncio.ensure_future(client.aclose())
            closing.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _heartbeat(self, client: httpx.AsyncClient) -> None:
        """Ask /models; while the answer is pending, the endpoint counts as alive for up to
        heartbeat_timeout: many servers (llama.cpp, transformers serve) answer it on the thread that
        generates, seconds late under load, which the gRPC workers' 5 s silence rule would call dead."""
        answer = asyncio.ensure_future(self._models(client, timeout=self.options.heartbeat_timeout_s))
        try:
            while not answer.done():
                await asyncio.wait([answer], timeout=HEARTBEAT_S)
                if not answer.done():
                    self.last_message = time.monotonic()
            answer.result()
            self.last_message = time.monotonic()
        finally:
            answer.cancel()

    async def _models(self, client: httpx.AsyncClient, timeout: float) -> list[dict]:
        response = await client.get("/models", timeout=timeout)
        self.reached = True
        if response.status_code in (401, 403):
            raise EndpointRefused(f"/models: {error_text(response.status_code, response.content)} (check the API key)")
        if response.status_code != 200:
            raise ConnectionError(f"/models: {error_text(response.status_code, response.content)}")
        try:
            data = response.json()["data"]
            assert isinstance(data, list) and all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise EndpointRefused("/models: not an OpenAI model list ({'data': [{'id': ...}]})") from None
        if self.model is not None and self.model not in [m["id"] for m in data]:
            raise ConnectionError(f"/models: {self.model!r}, served at first contact, is no longer served "
                                  f"(now: {', '.join(m['id'] for m in data) or 'none'})")
        return data

    async def _first_contact(self, client: httpx.AsyncClient) -> None:
        models = await self._models(client, timeout=self.options.connect_timeout_s + 5)
        names = [m["id"] for m in models]
        wanted = self.options.model or self.model
        if wanted is None and len(names) != 1:
            raise EndpointRefused(f"/models lists {len(names)} models ({', '.join(names) or 'none'}): "
                                  f"name one with model=NAME in the address")
        model = wanted or names[0]
        if model not in names:
            raise EndpointRefused(f"model {model!r} is not served here (served: {', '.join(names) or 'none'})")
        entry = next(m for m in models if m["id"] == model)
        if self.options.tokenizer and self.tokenizer is None:
            self.tokenizer = await asyncio.get_running_loop().run_in_executor(None, _load_tokenizer,
                                                                              self.options.tokenizer)
        dialect, server_ids = await self._probe(client, model)
        if not server_ids and self.tokenizer is None:
            raise EndpointRefused(f"the endpoint returns no output token ids (dialect {dialect.label}): give "
                                  f"tokenizer=DIR in the address to count them by re-tokenizing the text")
        self.dialect, self.model = dialect, model
        self.info = self._info(entry, dialect, server_ids)

    async def _probe(self, client: httpx.AsyncClient, model: str) -> tuple[Dialect, bool]:
        """The first dialect the endpoint accepts, and whether it returns output ids."""
        mode = self.options.prompt
        refusals = []
        params = SamplingParams(max_new_tokens=1, min_new_tokens=1)
        for dialect in DIALECTS:
            if (mode == "ids" and not dialect.prompt_ids) or (mode == "text" and dialect.prompt_ids):
                continue
            prompt = PROBE_PROMPT_IDS if dialect.prompt_ids else PROBE_PROMPT_TEXT
            body = completion_body(model, prompt, params, dialect, stream=False)
            response = await client.post("/completions", json=body, timeout=self.options.connect_timeout_s + 60)
            if response.status_code == 200:
                try:
                    choice = response.json()["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    raise EndpointRefused("/completions: the probe's answer has no choices") from None
                return dialect, isinstance(choice.get("token_ids"), list)
            if response.status_code in (401, 403, 404):
                raise EndpointRefused(f"/completions probe: {error_text(response.status_code, response.content)}")
            # the next form: servers refuse a form they do not know with 400 or 422, some (llama.cpp) with 500
            refusals.append((response.status_code, f"{dialect.label}: "
                                                   f"{error_text(response.status_code, response.content, 120)}"))
        message = "/completions refused every request form (" + "; ".join(text for _, text in refusals) + ")"
        if any(classify_status(status) == Outcome.RETRY for status, _ in refusals):
            raise ConnectionError(message)  # perhaps only not ready yet: try again
        raise EndpointRefused(message)

    def _info(self, entry: dict, dialect: Dialect, server_ids: bool) -> dict:
        opts = self.options
        fingerprint = hashlib.sha256(json.dumps({k: entry.get(k) for k in ("id", "root", "owned_by", "max_model_len")},
                                                sort_keys=True).encode()).hexdigest()
        return {"worker_id": opts.base_url, "engine": ENGINE, "model": entry["id"],
                "max_concurrency": opts.max_concurrency, "max_model_len": int(entry.get("max_model_len") or 0),
                "vocab_size": len(self.tokenizer) if self.tokenizer is not None else 0, "simulated": False,
                "versions": {KEY_MODEL: fingerprint, KEY_DIALECT: dialect.label,
                             KEY_OUTPUT_IDS: "server" if server_ids else "retokenized"},
                "engine_args": {"base_url": opts.base_url, ARG_PROMPT: "ids" if dialect.prompt_ids else "text",
                                "tokenizer": opts.tokenizer or "", "api_key": "yes" if self._has_key() else "no"}}

    def _has_key(self) -> bool:
        return bool(self.options.api_key_file or self.options.api_key_env or self.security.token)

    # --- one request ------------------------------------------------------------------------------

    def _emit(self, event: pb.Event) -> None:
        if self.ready:
            self.listener.on_events(self, [event])

    async def _request(self, request: pb.GenerateRequest, client: httpx.AsyncClient) -> None:
        rid = request.request_id
        state = StreamState()
        try:
            async with self._slots:
                await self._stream(request, client, state)
        except asyncio.CancelledError:
            if rid in self._cancel_requested:  # the dispatcher's cancel: report what it had cost
                self._cancel_requested.discard(rid)
                self._emit(pb.Event(request_id=rid, cancelled=pb.Cancelled(generated_tokens=self._count(state))))
                return
            raise
        except StreamError as exc:
            self._emit(pb.Event(request_id=rid, error=pb.Error(message=str(exc))))
        except httpx.HTTPError as exc:  # refused, reset, timed out: the endpoint itself is in doubt
            self.kill(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - one request's failure is that attempt's
            self._emit(pb.Event(request_id=rid, error=pb.Error(message=f"{type(exc).__name__}: {exc}")))

    async def _stream(self, request: pb.GenerateRequest, client: httpx.AsyncClient, state: StreamState) -> None:
        rid = request.request_id
        params = params_from_proto(request.params)
        prompt_ids = unpack_tokens(request.prompt).tolist()
        prompt = prompt_ids if self.dialect.prompt_ids else self.tokenizer.decode(prompt_ids)
        # without first tokens (Offline) one JSON answer per request: no per-token parsing at the coordinator
        streaming = bool(getattr(self.listener, "needs_first_token", True))
        body = completion_body(self.model, prompt, params, self.dialect, stream=streaming)
        async with client.stream("POST", "/completions", json=body) as response:
            if response.status_code != 200:
                error = error_text(response.status_code, await response.aread())
                outcome = classify_status(response.status_code)
                if outcome == Outcome.ENDPOINT:
                    self.kill(f"/completions: {error}")
                    return
                prefix = INVALID_REQUEST_PREFIX if outcome == Outcome.INVALID else ""
                self._emit(pb.Event(request_id=rid, error=pb.Error(message=prefix + error)))
                return
            if streaming:
                await self._read_events(response, state, params, rid)
            else:
                state.add((await response.aread()).decode("utf-8", "replace"))
                self.last_message = self.last_progress = time.monotonic()
                state.done = True
        if not state.done and state.finish_reason is None:  # [DONE] is OpenAI's end; some servers only finish
            raise StreamError("malformed stream: it ended without 'data: [DONE]' or a finish_reason")
        ids = self._output_ids(state, params)
        self._emit(pb.Event(request_id=rid, completion=pb.Completion(tokens=pack_tokens(ids),
                                                                     prompt_tokens=len(prompt_ids))))

    async def _read_events(self, response: httpx.Response, state: StreamState, params: SamplingParams,
                           rid: int) -> None:
        reader = SSEReader()
        first_sent = False
        async for line in response.aiter_lines():
            data = reader.feed(line)
            if data is None:
                continue
            self.last_message = time.monotonic()
            if state.add(data):
                self.last_progress = self.last_message
                if not first_sent:
                    first_sent = True
                    self._emit(pb.Event(request_id=rid, first_token=pb.FirstToken(
                        tokens=pack_tokens(self._output_ids(state, params)[:1]))))
            if state.done:
                break
        last = reader.end()
        if last is not None and not state.done:
            state.add(last)

    def _output_ids(self, state: StreamState, params: SamplingParams) -> list[int]:
        """The server's ids when it sends them; else the text re-tokenized with the benchmark's
        tokenizer, cut to max_new_tokens (re-tokenizing can merge or split differently), and the
        tokenizer's EOS for an answer that stopped at once."""
        if state.server_ids or self.tokenizer is None:
            return list(state.ids)
        ids = self.tokenizer.encode(state.text, add_special_tokens=False)[:params.max_new_tokens]
        if not ids and self.tokenizer.eos_token_id is not None:
            ids = [self.tokenizer.eos_token_id]
        return ids

    def _count(self, state: StreamState) -> int:
        if state.server_ids or self.tokenizer is None:
            return len(state.ids)
        return state.completion_tokens or len(self.tokenizer.encode(state.text, add_special_tokens=False))


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)
