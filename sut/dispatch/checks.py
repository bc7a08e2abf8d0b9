"""What the coordinator checks of a worker before it believes it: the identity it showed at first
contact, and every completion against the request's limits and the model's vocabulary."""
from __future__ import annotations

from sut.engines.base import SamplingParams
from sut.wire import TOKEN_BYTES, unpack_tokens

IDENTITY_KEYS = ("worker_id", "engine", "model")
IDENTITY_VERSION_PREFIX = "identity."  # keys a worker adds to Info.versions: model fingerprint, args hash, revision


def identity_of(info: dict) -> dict:
    identity = {key: info.get(key) for key in IDENTITY_KEYS}
    identity.update({key: value for key, value in (info.get("versions") or {}).items()
                     if key.startswith(IDENTITY_VERSION_PREFIX)})
    return identity


def identity_change(pinned: dict, shown: dict) -> str | None:
    """None when the worker is the one pinned; otherwise what differs, one field per clause."""
    changed = [f"{key} {pinned.get(key)!r} -> {shown.get(key)!r}"
               for key in sorted(set(pinned) | set(shown)) if pinned.get(key) != shown.get(key)]
    return "; ".join(changed) or None


def output_problem(tokens: bytes, params: SamplingParams, vocab_size: int) -> str | None:
    """Why a completion cannot be an answer to the request, or None."""
    if len(tokens) % TOKEN_BYTES:
        return f"malformed completion: {len(tokens)} bytes is not a whole number of int32 token ids"
    ids = unpack_tokens(tokens)
    if len(ids) == 0:
        return "empty completion"
    if len(ids) > params.max_new_tokens:
        return f"{len(ids)} tokens, more than max_new_tokens {params.max_new_tokens}"
    if len(ids) < params.min_new_tokens:
        return f"{len(ids)} tokens, fewer than min_new_tokens {params.min_new_tokens}"
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or (vocab_size and high >= vocab_size):
        return f"token id {low if low < 0 else high} outside the vocabulary [0, {vocab_size})"
    return None
