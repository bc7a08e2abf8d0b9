"""transformers engine: a causal LM run in one background thread with static batching.

Requests that arrive while a batch runs wait for the next batch; within a batch, prompts are
left-padded and decoded step by step with a KV cache, so the first token leaves after prefill
(true TTFT) and every token is streamed as it is produced.

One request can never fail another: requests are checked before they join a batch (ids within the
vocabulary, finite sampling values); a sampling step that fails fails only its row; and when a
batch's forward pass fails, its unfinished requests are retried one by one (each continuing from
the tokens it has already streamed), so only the request that still fails alone gets the error.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from sut.engines.base import Engine, EngineError, EngineInfo, SamplingParams

_DTYPES = ("auto", "float32", "float64", "bfloat16", "float16")
_DONE = object()
log = logging.getLogger("sut.engines.hf")


@dataclass
class _Request:
    request_id: str
    prompt: list[int]
    params: SamplingParams
    deliver: callable
    aborted: bool = False
    finished: bool = False  # its end (_DONE or an exception) has been delivered
    generated: list[int] = field(default_factory=list)

    def finish(self, item) -> None:
        if not self.finished:
            self.finished = True
            self.deliver(item)


class HFEngine(Engine):
    name = "hf"

    def __init__(self, model_dir: str, device: str = "auto", dtype: str = "auto",
                 max_batch_size: int = 32, batch_wait_ms: float = 5.0, threads: int = 0):
        self.model_dir = model_dir
        self.device = device
        self.dtype_name = dtype
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.threads = threads
        self._pending: queue.Queue[_Request | None] = queue.Queue()
        self._requests: dict[str, _Request] = {}
        self._thread: threading.Thread | None = None
        self._info: EngineInfo | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("hf engine")
        group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
        group.add_argument("--dtype", default="auto", choices=_DTYPES, help="weights dtype (default auto)")
        group.add_argument("--max-batch-size", type=int, default=32, help="sequences per batch (default 32)")
        group.add_argument("--batch-wait-ms", type=float, default=5.0,
                           help="how long to gather requests before a batch starts (default 5)")
        group.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "HFEngine":
        return cls(args.model, device=args.device, dtype=args.dtype, max_batch_size=args.max_batch_size,
                   batch_wait_ms=args.batch_wait_ms, threads=args.threads)

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        self._thread = threading.Thread(target=self._serve, name="hf-engine", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        import torch
        import transformers

        if self.threads > 0:
            torch.set_num_threads(self.threads)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype_name == "auto":
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, self.dtype_name)
        self.torch = torch
        try:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"--model {self.model_dir}: cannot load a causal LM: {exc}") from exc
        self.model.to(self.device).eval()
        # transformers 5.2x renamed past_key_values to cache; the GPU image's 5.17 has the old name
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        config = self.model.config
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else ([] if eos is None else [eos]))
        self.pad_id = config.pad_token_id if config.pad_token_id is not None else 0
        self._info = EngineInfo(
            engine="hf", model=self.model_dir, max_concurrency=self.max_batch_size,
            max_model_len=int(getattr(config, "max_position_embeddings", 2048)),
            vocab_size=int(config.vocab_size),
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            engine_args={"device": self.device, "device_name": self._hardware_name(),
                         "dtype": str(dtype).removeprefix("torch."),
                         "max_batch_size": str(self.max_batch_size)})

    def _hardware_name(self) -> str:
        if self.device.startswith("cuda"):
            return self.torch.cuda.get_device_name(self.torch.device(self.device))
        return "cpu"

    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("engine not started")
        return self._info

    async def generate(self, request_id: str, prompt: Sequence[int],
                       params: SamplingParams) -> AsyncIterator[list[int]]:
        info = self.info()
        prompt = list(map(int, prompt))
        problem = self.check_request(prompt, params)
        if problem:
            raise EngineError(problem)
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue = asyncio.Queue()
        request = _Request(request_id, prompt, params,
                           lambda item: loop.call_soon_threadsafe(deltas.put_nowait, item))
        self._requests[request_id] = request
        self._pending.put(request)
        try:
            while True:
                item = await deltas.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise EngineError(f"{type(item).__name__}: {item}")
                yield item
        finally:
            request.aborted = True
            self._requests.pop(request_id, None)

    def check_request(self, prompt: list[int], params: SamplingParams) -> str | None:
        """Why this request must not join a batch (it would fail the batch), or None."""
        info = self.info()
        if not prompt:
            return "empty prompt"
        if min(prompt) < 0 or max(prompt) >= info.vocab_size:
            bad = min(prompt) if min(prompt) < 0 else max(prompt)
            return f"prompt token {bad} outside the vocabulary [0, {info.vocab_size})"
        if params.max_new_tokens < 1:
            return f"max_new_tokens {params.max_new_tokens}: must be >= 1"
        if len(prompt) + params.max_new_tokens > info.max_model_len:
            return (f"prompt of {len(prompt)} tokens + {params.max_new_tokens} new tokens exceeds "
                    f"max_model_len {info.max_model_len}")
        if not math.isfinite(params.temperature) or params.temperature < 0:
            return f"temperature {params.temperature}: must be finite and >= 0"
        if not math.isfinite(params.top_p) or not 0.0 < params.top_p <= 1.0:
            return f"top_p {params.top_p}: must be in (0, 1]"
        return None

    async def abort(self, request_id: str) -> None:
        request = self._requests.pop(request_id, None)
        if request is not None:
            request.aborted = True

    async def close(self) -> None:
        self._pending.put(None)

    # --- engine thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                try:
                    request = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if request is None:
                    self._pending.put(None)
                    break
                batch.append(request)
            batch = [r for r in batch if not r.aborted]
            if batch:
                self._run_isolated(batch)

    def _run_isolated(self, batch: list[_Request]) -> None:
        """Run a batch so that a failure reaches only the request(s) responsible; never raises."""
        try:
            self._run_batch(batch)
            return
        except Exception as exc:  # the failing row is unknown: retry each unfinished request alone
            error = exc
        live = [r for r in batch if not r.finished and not r.aborted]
        if len(batch) > 1 and live:
            log.warning("a batch of %d failed (%s: %s); retrying its %d unfinished requests one by one",
                        len(batch), type(error).__name__, error, len(live))
            for request in live:
                try:
                    self._run_batch([request])
                except Exception as exc:
                    request.finish(exc)
        else:
            for request in live:
                request.finish(error)

    def _run_batch(self, batch: list[_Request]) -> None:
        """Prefill then decode `batch` until each request ends. A request continues from the tokens
        it has generated already (a retry after a failed batch streams no token twice)."""
        torch = self.torch
        device = self.device
        sequences = [r.prompt + r.generated for r in batch]
        width = max(len(seq) for seq in sequences)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [self._generator(r.params) for r in batch]
        active = [not r.finished for r in batch]
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            while True:
                logits = out.logits[:, -1, :].float()
                chosen = [self.pad_id] * len(batch)
                for row, request in enumerate(batch):
                    if not active[row]:
                        continue
                    if request.aborted:
                        active[row] = False
                        continue
                    try:  # a row whose sampling fails (bad values) fails alone
                        token = self._choose(logits[row], request, generators[row])
                    except Exception as exc:
                        active[row] = False
                        request.finish(exc)
                        continue
                    chosen[row] = token
                    request.generated.append(token)
                    request.deliver([token])
                    stop = token in self.eos_ids and not request.params.ignore_eos
                    if stop or len(request.generated) >= request.params.max_new_tokens:
                        active[row] = False
                        request.finish(_DONE)
                if not any(active):
                    return
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=device)], dim=1)
                positions = positions[:, -1:] + 1
                step_ids = torch.tensor(chosen, dtype=torch.long, device=device).unsqueeze(1)
                cache = getattr(out, "cache", None) or getattr(out, "past_key_values")
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                 use_cache=True, **{self._cache_arg: cache})

    def _generator(self, params: SamplingParams):
        if params.greedy:
            return None
        gen = self.torch.Generator(device=self.device)
        gen.manual_seed(params.seed)
        return gen

    def _choose(self, logits, request: _Request, generator) -> int:
        params = request.params
        if len(request.generated) < params.min_new_tokens or params.ignore_eos:
            for eos in self.eos_ids:
                logits[eos] = float("-inf")
        if generator is None:
            return int(logits.argmax())
        torch = self.torch
        logits = logits / max(params.temperature, 1e-5)
        if params.top_k > 0:
            kth = torch.topk(logits, min(params.top_k, logits.numel())).values[-1]
            logits[logits < kth] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            drop = sorted_probs.cumsum(-1) - sorted_probs > params.top_p
            probs[order[drop]] = 0.0
            probs = probs / probs.sum()
        return int(torch.multinomial(probs, 1, generator=generator))
