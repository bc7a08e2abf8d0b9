"""SIMULATED engine: no model, timing from a continuous-batching model. Never a GPU result.

The scheduler works as vLLM's does where it matters for dispatch: requests wait in a queue beyond
--max-seqs running sequences; each step spends a token budget (--max-batched-tokens, 0 = no
limit) on one token per decoding sequence and then on prompt chunks of the sequences still in
prefill, oldest first (chunked prefill); a step costs --step-ms + --step-ms-per-seq × decoding
sequences + its prompt tokens / --prefill-tps. A sequence's first token comes out at the end of
the step that finishes its prompt, then one token per step (streamed as the first token and, at
the end, the rest: what a worker forwards anyway). With --kv-cache-tokens K, running sequences
holding more than K tokens (prompt + generated) overflow the KV cache: the overflow is recomputed
every step (vLLM's recompute preemption, simplified), so max-seqs has an interior optimum near
K / (mean prompt + half the output). --speed divides all times, so workers of unequal
speed are one flag apart. --quantization fp8 and --kv-cache-dtype fp8 model what FP8 does on a GPU
(FP8_* below: weights of half the bytes make the fixed part of a step cheaper and prefill faster; an
FP8 KV cache holds twice the tokens and is cheaper to read per sequence), so a search over them can be
tested without a GPU; the factors are assumptions, not measurements. Output tokens are a
deterministic function of the prompt, so the same prompt gives the same output on any worker. With
--instant the whole output is returned at once.
"""
from __future__ import annotations

import argparse
import asyncio
import zlib
from dataclasses import dataclass, replace
from typing import AsyncIterator, Sequence

from sut.engines.base import Engine, EngineError, EngineInfo, SamplingParams


@dataclass(eq=False)
class _Seq:
    request_id: str
    prompt_len: int
    tokens: list[int]
    out: asyncio.Queue
    aborted: bool = False
    prefill_left: int = 0
    first_step: int | None = None  # the step that produced its first token


# the modelled effect of FP8 (a simulation: chosen so FP8 is clearly faster, as on H100/H200)
FP8_WEIGHTS_STEP = 0.6      # step_ms multiplier
FP8_WEIGHTS_PREFILL = 1.6   # prefill_tps multiplier
FP8_KV_PER_SEQ = 0.6        # step_ms_per_seq multiplier
FP8_KV_TOKENS = 2           # kv_cache_tokens multiplier


@dataclass
class SimTiming:
    prefill_tps: float = 20000.0
    step_ms: float = 10.0
    step_ms_per_seq: float = 0.05
    max_seqs: int = 256
    max_batched_tokens: int = 0  # 0: every admitted prompt is prefilled in one step
    speed: float = 1.0
    output_tokens: int = 0  # 0: the request's max_new_tokens
    instant: bool = False
    vocab_size: int = 128256
    max_model_len: int = 131072
    kv_cache_tokens: int = 0  # 0: unlimited
    quantization: str = "none"
    kv_cache_dtype: str = "auto"

    def effective(self) -> "SimTiming":
        """The timing the step loop uses: FP8 applied."""
        t = replace(self)
        if self.quantization == "fp8":
            t.step_ms, t.prefill_tps = self.step_ms * FP8_WEIGHTS_STEP, self.prefill_tps * FP8_WEIGHTS_PREFILL
        if self.kv_cache_dtype == "fp8":
            t.step_ms_per_seq = self.step_ms_per_seq * FP8_KV_PER_SEQ
            t.kv_cache_tokens = self.kv_cache_tokens * FP8_KV_TOKENS
        return t


class SimEngine(Engine):
    name = "sim"

    def __init__(self, model: str, timing: SimTiming):
        self.model = model
        self.timing = timing
        self._waiting: list[_Seq] = []
        self._running: list[_Seq] = []
        self._prefilling: list[_Seq] = []
        self._step = 0
        self._by_id: dict[str, _Seq] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tokens_advanced = 0

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("sim engine (a SIMULATION: its numbers are never GPU results)")
        g.add_argument("--prefill-tps", type=float, default=20000.0, help="prompt tokens per second")
        g.add_argument("--step-ms", type=float, default=10.0, help="decode step time at batch size 0")
        g.add_argument("--step-ms-per-seq", type=float, default=0.05, help="added step time per running seq")
        g.add_argument("--max-seqs", type=int, default=256, help="sequences decoded at once")
        g.add_argument("--max-batched-tokens", type=int, default=0,
                       help="tokens per step, decode first, then prompt chunks (0: no limit)")
        g.add_argument("--speed", type=float, default=1.0, help="divides every time (2.0 = twice as fast)")
        g.add_argument("--output-tokens", type=int, default=0, help="fixed output length (0: max_new_tokens)")
        g.add_argument("--instant", action="store_true", help="answer at once (coordinator ceiling tests)")
        g.add_argument("--vocab-size", type=int, default=128256)
        g.add_argument("--max-model-len", type=int, default=131072)
        g.add_argument("--kv-cache-tokens", type=int, default=0,
                       help="KV cache size in tokens; overflow is recomputed every step (0: unlimited)")
        g.add_argument("--quantization", choices=("none", "fp8"), default="none", help="fp8: modelled FP8 weights")
        g.add_argument("--kv-cache-dtype", choices=("auto", "fp8"), default="auto", help="fp8: modelled FP8 KV cache")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SimEngine":
        if args.speed <= 0:
            raise ValueError(f"--speed {args.speed}: must be > 0")
        if args.max_batched_tokens < 0:
            raise ValueError(f"--max-batched-tokens {args.max_batched_tokens}: must be >= 0")
        return cls(args.model, SimTiming(args.prefill_tps, args.step_ms, args.step_ms_per_seq, args.max_seqs,
                                         args.max_batched_tokens, args.speed, args.output_tokens, args.instant,
                                         args.vocab_size, args.max_model_len, args.kv_cache_tokens,
                                         args.quantization, args.kv_cache_dtype))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._schedule())

    def info(self) -> EngineInfo:
        t = self.timing
        return EngineInfo(engine="sim", model=self.model, max_concurrency=t.max_seqs, max_model_len=t.max_model_len,
                          vocab_size=t.vocab_size, simulated=True, versions={"sim": "1"},
                          engine_args={"prefill_tps": str(t.prefill_tps), "step_ms": str(t.step_ms),
                                       "step_ms_per_seq": str(t.step_ms_per_seq), "max_seqs": str(t.max_seqs),
                                       "max_batched_tokens": str(t.max_batched_tokens),
                                       "speed": str(t.speed), "instant": str(t.instant),
                                       "output_tokens": str(t.output_tokens),
                                       "kv_cache_tokens": str(t.kv_cache_tokens),
                                       "quantization": t.quantization, "kv_cache_dtype": t.kv_cache_dtype})

    def output_for(self, prompt: Sequence[int], params: SamplingParams) -> list[int]:
        n = self.timing.output_tokens or params.max_new_tokens
        seed = zlib.crc32(bytes(memoryview(_as_int32(prompt))))
        return [(seed + 7919 * i) % self.timing.vocab_size for i in range(max(n, params.min_new_tokens))]

    async def generate(self, request_id: str, prompt: Sequence[int],
                       params: SamplingParams) -> AsyncIterator[list[int]]:
        if params.max_new_tokens <= 0:  # an empty output would never finish in the step loop
            raise EngineError(f"max_new_tokens {params.max_new_tokens}: must be >= 1")
        if len(prompt) == 0:
            raise EngineError("empty prompt")
        output_len = max(self.timing.output_tokens or params.max_new_tokens, params.min_new_tokens)
        if len(prompt) + max(params.max_new_tokens, output_len) > self.timing.max_model_len:
            raise EngineError(f"prompt of {len(prompt)} tokens + {output_len} new tokens exceeds max_model_len "
                              f"{self.timing.max_model_len}")
        tokens = self.output_for(prompt, params)
        if self.timing.instant:
            yield tokens
            return
        seq = _Seq(request_id, len(prompt), tokens, asyncio.Queue())
        self._by_id[request_id] = seq
        self._waiting.append(seq)
        self._wake.set()
        try:
            while True:
                delta = await seq.out.get()
                if delta is None:
                    self._by_id.pop(request_id, None)
                    return
                yield delta
        finally:
            seq.aborted = True  # a consumer that stopped early calls abort(), which reads and drops the entry

    def progress(self) -> int:
        return self._tokens_advanced

    async def abort(self, request_id: str) -> int | None:
        seq = self._by_id.pop(request_id, None)
        if seq is None:
            return None
        seq.aborted = True
        seq.out.put_nowait(None)
        if seq.first_step is None:
            return 0
        return min(len(seq.tokens), self._step - seq.first_step + 1)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()

    async def _schedule(self) -> None:
        """Step loop of the continuous-batching model. Per step it touches only the sequences that
        start, prefill or finish, so many simulated workers fit on a small machine."""
        t = self.timing.effective()
        finishing: dict[int, list[_Seq]] = {}
        while True:
            if self._step % 64 == 0:  # aborted sequences free their slots without waiting for their last step
                self._running = [s for s in self._running if not s.aborted]
                self._prefilling = [s for s in self._prefilling if not s.aborted]
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
            decoding = len(self._running) - len(self._prefilling)
            budget = (t.max_batched_tokens - decoding) if t.max_batched_tokens else float("inf")
            while self._waiting and len(self._running) < t.max_seqs:
                seq = self._waiting.pop(0)
                if not seq.aborted:
                    seq.prefill_left = seq.prompt_len
                    self._running.append(seq)
                    self._prefilling.append(seq)
            prompt_tokens, prefilled = 0, []
            for seq in self._prefilling:
                if budget <= 0:
                    break
                if seq.aborted:
                    continue
                chunk = min(budget, seq.prefill_left)
                seq.prefill_left -= chunk
                budget -= chunk
                prompt_tokens += chunk
                if seq.prefill_left == 0:
                    prefilled.append(seq)
            step_s = (t.step_ms + t.step_ms_per_seq * decoding) / 1000.0 + prompt_tokens / t.prefill_tps
            if t.kv_cache_tokens:
                held = sum(s.prompt_len + (self._step - s.first_step + 1 if s.first_step is not None else 0)
                           for s in self._running)
                step_s += max(0, held - t.kv_cache_tokens) / t.prefill_tps
            await asyncio.sleep(step_s / t.speed)
            self._step += 1
            self._tokens_advanced += decoding + len(prefilled)
            if prefilled:
                done_prefill = set(prefilled)
                self._prefilling = [s for s in self._prefilling if s not in done_prefill]
            for seq in prefilled:
                if not seq.aborted:
                    seq.first_step = self._step
                    seq.out.put_nowait(seq.tokens[:1])
                    finishing.setdefault(self._step + len(seq.tokens) - 1, []).append(seq)
            done = finishing.pop(self._step, [])
            for seq in done:
                if not seq.aborted:
                    seq.out.put_nowait(seq.tokens[1:])
                    seq.out.put_nowait(None)
            if done:
                gone = {id(seq) for seq in done}
                self._running = [s for s in self._running if id(s) not in gone and not s.aborted]


def _as_int32(prompt: Sequence[int]):
    """For the output seed only (not the wire's layout, which lives in sut.wire)."""
    import numpy as np
    return np.asarray(prompt, dtype="<i4")
