"""The OpenAI completions wire, as this harness speaks it: request bodies (greedy, max/min tokens,
ignore_eos, token-id or text prompts), server-sent events read line by line, what each HTTP status
means for the dispatcher, and the output ids a stream adds up to.

Pure functions and small classes, no I/O: the link (`link.py`) does the I/O.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sut.engines.base import SamplingParams

# vLLM's extensions to the completions request (CompletionRequest in vllm/entrypoints/openai):
# min_tokens, ignore_eos, top_k and return_token_ids (the output ids, streamed as deltas).
VLLM_EXTENSIONS = ("min_tokens", "ignore_eos", "top_k", "return_token_ids")


class StreamError(ValueError):
    """A stream that does not follow the protocol (not JSON, no choices, an error object)."""


@dataclass(frozen=True)
class Dialect:
    """What one server accepts, found by probing at first contact."""
    prompt_ids: bool         # the prompt goes as a list of token ids (else as text)
    extensions: bool         # vLLM's fields are accepted
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{'ids' if self.prompt_ids else 'text'}{'+ext' if self.extensions else ''}"


# tried in this order: the first one the server answers with 200 is the endpoint's dialect
DIALECTS = (Dialect(True, True, "ids+vllm"), Dialect(True, False, "ids"), Dialect(False, True, "text+vllm"),
            Dialect(False, False, "text"))


def completion_body(model: str, prompt, params: SamplingParams, dialect: Dialect, stream: bool = True) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": params.max_new_tokens, "stream": stream,
            "temperature": 0.0 if params.greedy else params.temperature, "top_p": params.top_p,
            "seed": params.seed}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if dialect.extensions:
        body.update(min_tokens=params.min_new_tokens, ignore_eos=params.ignore_eos, return_token_ids=True)
        if not params.greedy:
            body["top_k"] = params.top_k
    return body


class Outcome:
    """What an HTTP status means for the attempt and the endpoint."""
    RETRY = "retry"            # the attempt failed; another attempt may succeed (5xx, 408, 429)
    INVALID = "invalid"        # the request is wrong: no endpoint would accept it (400, 413, 422)
    ENDPOINT = "endpoint"      # the endpoint is wrong for us (401, 403, 404, other 4xx): drop it


def classify_status(status: int) -> str:
    if status >= 500 or status in (408, 425, 429):
        return Outcome.RETRY
    if status in (400, 413, 422):
        return Outcome.INVALID
    return Outcome.ENDPOINT


def error_text(status: int, body: bytes, limit: int = 300) -> str:
    """One line from an error response: OpenAI's {"error": {"message"}} or vLLM's {"message"}, else the text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error", data)
            text = (err.get("message") if isinstance(err, dict) else None) or data.get("detail") or text
            if not isinstance(text, str):
                text = json.dumps(text)
    except ValueError:
        pass
    return f"HTTP {status}: " + " ".join(text.split())[:limit]


class SSEReader:
    """Server-sent events from text lines: `data:` payloads, events end at a blank line; comments
    (`:`) and other fields are skipped. Yields each event's data (lines joined by newlines)."""

    def __init__(self):
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def end(self) -> str | None:
        """The last event of a stream that ended without its blank line."""
        return self.feed("")


@dataclass
class StreamState:
    """One request's stream, added up: the text, the server's ids when it sends them, the usage."""
    text: str = ""
    ids: list[int] = field(default_factory=list)
    server_ids: bool | None = None     # None until a chunk with output shows whether ids come
    finish_reason: str | None = None
    completion_tokens: int | None = None
    done: bool = False
    chunks: int = 0

    def add(self, data: str) -> bool:
        """Add one event's data. True when it brought output (text or ids)."""
        if data.strip() == "[DONE]":
            self.done = True
            return False
        try:
            chunk = json.loads(data)
        except ValueError:
            raise StreamError(f"malformed stream: an event is not JSON: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"malformed stream: an event is not a JSON object: {data[:80]!r}")
        if "error" in chunk:  # vLLM and others report a failure mid-stream this way
            err = chunk["error"]
            raise StreamError("the server reported an error mid-stream: "
                              + str(err.get("message") if isinstance(err, dict) else err)[:300])
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.completion_tokens = usage["completion_tokens"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise StreamError("malformed stream: a chunk has no 'choices' list")
        if not choices:
            return False  # the usage chunk
        choice = choices[0]
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            raise StreamError("malformed stream: a choice is not an object with index 0")
        self.chunks += 1
        text = choice.get("text") or ""
        if not isinstance(text, str):
            raise StreamError("malformed stream: a choice's 'text' is not a string")
        ids = choice.get("token_ids")
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise StreamError("malformed stream: a choice's 'token_ids' is not a list of integers")
        brought = bool(text) or bool(ids)
        if brought:
            if self.server_ids is None:
                self.server_ids = ids is not None
            elif self.server_ids != (ids is not None):
                raise StreamError("malformed stream: 'token_ids' in some chunks but not in others")
        self.text += text
        self.ids.extend(ids or ())
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        return brought
