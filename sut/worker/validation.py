"""Checks every request at the worker boundary, before it reaches the engine.

A request that fails is answered alone with an error event whose message starts with
`InvalidRequest:` (the same request fails on every worker, so a coordinator need not retry it);
the stream and every other request go on. The limits come from the engine's Info once it has
started, so they are computed once per worker, not per request.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sut.engines.base import EngineInfo, SamplingParams
from sut.proto import backend_pb2 as pb
from sut.wire import INVALID_REQUEST_PREFIX, TOKEN_BYTES, params_from_proto, unpack_tokens

DEFAULT_MAX_NEW_TOKENS_CAP = 4096
INVALID_PREFIX = INVALID_REQUEST_PREFIX


class InvalidRequest(ValueError):
    """A request no engine should see; the message says which field and why."""


@dataclass(frozen=True)
class Limits:
    vocab_size: int
    max_model_len: int
    max_new_tokens_cap: int = DEFAULT_MAX_NEW_TOKENS_CAP

    @classmethod
    def from_info(cls, info: EngineInfo, max_new_tokens_cap: int = DEFAULT_MAX_NEW_TOKENS_CAP) -> "Limits":
        return cls(int(info.vocab_size), int(info.max_model_len), int(max_new_tokens_cap))


def validate_params(params: SamplingParams, prompt_len: int, limits: Limits) -> None:
    t, top_p = params.temperature, params.top_p
    if not math.isfinite(t) or t < 0:
        raise InvalidRequest(f"temperature {t}: must be a finite number >= 0")
    if not math.isfinite(top_p) or not 0.0 < top_p <= 1.0:
        raise InvalidRequest(f"top_p {top_p}: must be in (0, 1]")
    # both engines read top_k <= 0 as "no top-k"; vLLM's own spelling of that is -1
    if params.top_k < -1:
        raise InvalidRequest(f"top_k {params.top_k}: must be >= 0 (0 or -1: disabled)")
    cap = limits.max_new_tokens_cap
    if not 1 <= params.max_new_tokens <= cap:
        raise InvalidRequest(f"max_new_tokens {params.max_new_tokens}: must be in [1, {cap}] "
                             f"(this worker's --max-new-tokens-cap)")
    if not 1 <= params.min_new_tokens <= params.max_new_tokens:
        raise InvalidRequest(f"min_new_tokens {params.min_new_tokens}: must be in [1, max_new_tokens "
                             f"{params.max_new_tokens}]")
    if prompt_len + params.max_new_tokens > limits.max_model_len:
        raise InvalidRequest(f"prompt of {prompt_len} tokens + max_new_tokens {params.max_new_tokens} exceeds "
                             f"the engine's max_model_len {limits.max_model_len}")


def validate_prompt(data: bytes, limits: Limits) -> np.ndarray:
    if len(data) % TOKEN_BYTES:
        raise InvalidRequest(f"prompt of {len(data)} bytes: token ids are int32, so its length must be a "
                             f"multiple of {TOKEN_BYTES}")
    prompt = unpack_tokens(data)
    if prompt.size == 0:
        raise InvalidRequest("empty prompt: at least one token id is needed")
    low, high = int(prompt.min()), int(prompt.max())
    if low < 0 or high >= limits.vocab_size:
        bad = low if low < 0 else high
        position = int(np.argmax(prompt == bad))
        raise InvalidRequest(f"prompt token {bad} at position {position}: ids must be in "
                             f"[0, {limits.vocab_size}) (the engine's vocab_size)")
    return prompt


def validate_request(request: pb.GenerateRequest, limits: Limits) -> tuple[np.ndarray, SamplingParams]:
    """The request's prompt and sampling parameters, or InvalidRequest."""
    if not request.HasField("params"):
        raise InvalidRequest("no sampling params: the request must say at least max_new_tokens")
    prompt = validate_prompt(request.prompt, limits)
    params = params_from_proto(request.params)
    validate_params(params, len(prompt), limits)
    return prompt, params
