"""Conversions between the engine's Python types and the protocol's messages (both sides use these)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sut.engines.base import EngineInfo, SamplingParams
from sut.proto import backend_pb2 as pb

TOKEN_DTYPE = "<i4"  # the layout LoadGen logs
TOKEN_BYTES = 4
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
INVALID_REQUEST_PREFIX = "InvalidRequest: "  # a worker's error for a request no worker would accept
REQUEST_OVERHEAD_BYTES = 256  # request id, sampling parameters and framing around a prompt


class RequestTooLarge(ValueError):
    """A prompt that cannot cross the wire in one message."""


def check_request_size(prompt_bytes: int, index: int) -> None:
    if prompt_bytes + REQUEST_OVERHEAD_BYTES > MAX_MESSAGE_BYTES:
        raise RequestTooLarge(f"sample {index}: its prompt is {prompt_bytes // TOKEN_BYTES} tokens "
                              f"({prompt_bytes} bytes), over the {MAX_MESSAGE_BYTES} byte gRPC message limit")
# Keepalive pings find a peer that vanished without closing its socket (a dead node, a cut link).
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]

# A worker owns its port: without SO_REUSEPORT a second worker on the same port fails to bind
# instead of silently sharing (and splitting) the coordinator's connections.
WORKER_SERVER_OPTIONS = SERVER_OPTIONS + [("grpc.so_reuseport", 0)]


def pack_tokens(ids: Sequence[int] | np.ndarray) -> bytes:
    return np.asarray(ids, dtype=TOKEN_DTYPE).tobytes()


def unpack_tokens(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=TOKEN_DTYPE)


def token_count(data: bytes) -> int:
    return len(data) // TOKEN_BYTES


def first_tokens(data: bytes, count: int = 1) -> bytes:
    return data[:count * TOKEN_BYTES]


def params_to_proto(params: SamplingParams) -> pb.SamplingParams:
    return pb.SamplingParams(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                             max_new_tokens=params.max_new_tokens, min_new_tokens=params.min_new_tokens,
                             seed=params.seed, ignore_eos=params.ignore_eos)


def params_from_proto(msg: pb.SamplingParams) -> SamplingParams:
    return SamplingParams(temperature=msg.temperature, top_k=msg.top_k, top_p=msg.top_p,
                          max_new_tokens=msg.max_new_tokens, min_new_tokens=msg.min_new_tokens,
                          seed=msg.seed, ignore_eos=msg.ignore_eos)


def info_to_proto(info: EngineInfo, worker_id: str) -> pb.InfoReply:
    return pb.InfoReply(worker_id=worker_id, engine=info.engine, model=info.model,
                        max_concurrency=info.max_concurrency, max_model_len=info.max_model_len,
                        vocab_size=info.vocab_size, simulated=info.simulated, versions=info.versions,
                        engine_args=info.engine_args)


def info_to_dict(reply: pb.InfoReply) -> dict:
    return {"worker_id": reply.worker_id, "engine": reply.engine, "model": reply.model,
            "max_concurrency": reply.max_concurrency, "max_model_len": reply.max_model_len,
            "vocab_size": reply.vocab_size, "simulated": reply.simulated,
            "versions": dict(reply.versions), "engine_args": dict(reply.engine_args)}
