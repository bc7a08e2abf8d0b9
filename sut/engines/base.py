"""The one interface every engine implements, so the worker and dispatcher never change for a new engine."""
from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence


@dataclass(frozen=True)
class SamplingParams:
    """MLPerf's rules for llama3.1-8b: greedy, 1..128 new tokens, seed 42."""

    temperature: float = 0.0
    top_k: int = 1
    top_p: float = 1.0
    max_new_tokens: int = 128
    min_new_tokens: int = 1
    seed: int = 42
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1


@dataclass
class EngineInfo:
    engine: str
    model: str
    max_concurrency: int
    max_model_len: int
    vocab_size: int
    simulated: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    engine_args: dict[str, str] = field(default_factory=dict)


class EngineError(RuntimeError):
    """A request the engine could not serve (bad prompt, engine failure)."""


class Engine(abc.ABC):
    """Async engine: submit token ids, receive an async stream of token-id deltas.

    `generate` must yield only lists of new token ids (possibly several per step) and end when the
    request finishes; `abort` stops a request early and makes its stream end. Engines start from
    parsed CLI arguments so the worker needs no engine-specific code.
    """

    name: str = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Engine-specific worker flags."""

    @classmethod
    @abc.abstractmethod
    def from_args(cls, args: argparse.Namespace) -> "Engine": ...

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    def info(self) -> EngineInfo: ...

    @abc.abstractmethod
    def generate(self, request_id: str, prompt: Sequence[int],
                 params: SamplingParams) -> AsyncIterator[list[int]]: ...

    @abc.abstractmethod
    async def abort(self, request_id: str) -> int | None:
        """Stop a request; return how many tokens it had generated if the engine knows more than it
        streamed (None otherwise: the worker counts what it streamed)."""

    def progress(self) -> int | None:
        """A counter that rises whenever the engine does work (tokens produced), for heartbeats.
        None: the worker counts the tokens it streams, which suffices for engines that stream
        every token."""
        return None

    async def close(self) -> None:
        """Release the engine's resources."""
