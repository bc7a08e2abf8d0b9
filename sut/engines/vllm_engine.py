"""vLLM engine: one AsyncLLM on the worker's one persistent event loop.

(The MLCommons reference calls asyncio.run per query on an async engine, which kills the engine
in Server mode: mlcommons/inference#2341. Here the engine lives as long as the worker.)
Prompts go in as token ids; outputs stream as DELTA token ids, never detokenized.
"""
from __future__ import annotations

import argparse
import json
from typing import AsyncIterator, Sequence

from sut.engines.base import Engine, EngineError, EngineInfo, SamplingParams

# flags users tune, passed straight to vLLM's AsyncEngineArgs (flag -> (argument, type, default))
_TUNABLE = {
    "tensor-parallel-size": ("tensor_parallel_size", int, 1),
    "pipeline-parallel-size": ("pipeline_parallel_size", int, 1),
    "max-num-seqs": ("max_num_seqs", int, None),
    "max-num-batched-tokens": ("max_num_batched_tokens", int, None),
    "gpu-memory-utilization": ("gpu_memory_utilization", float, 0.9),
    "dtype": ("dtype", str, "auto"),
    "quantization": ("quantization", str, None),
    "kv-cache-dtype": ("kv_cache_dtype", str, "auto"),
    "max-model-len": ("max_model_len", int, None),
    "load-format": ("load_format", str, "auto"),
}


def _parse_extra(items: list[str]) -> dict:
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--engine-arg {item!r}: expected KEY=VALUE")
        try:
            extra[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            extra[key.replace("-", "_")] = value
    return extra


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model: str, engine_kwargs: dict):
        self.model = model
        self.engine_kwargs = engine_kwargs
        self.llm = None
        self._info: EngineInfo | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("vllm engine (vLLM's AsyncEngineArgs)")
        for flag, (_, kind, default) in _TUNABLE.items():
            g.add_argument(f"--{flag}", type=kind, default=default)
        g.add_argument("--enforce-eager", action="store_true")
        g.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="any other AsyncEngineArgs field (value parsed as JSON when it can be)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "VLLMEngine":
        kwargs = {name: getattr(args, flag.replace("-", "_")) for flag, (name, _, _) in _TUNABLE.items()}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs["enforce_eager"] = args.enforce_eager
        kwargs.update(_parse_extra(args.engine_arg))
        if kwargs.get("load_format") == "dummy":
            # a directory with only config.json: no tokenizer, vLLM's own generation defaults
            kwargs.setdefault("skip_tokenizer_init", True)
            kwargs.setdefault("generation_config", "vllm")
        return cls(args.model, kwargs)

    async def start(self) -> None:
        try:
            import vllm
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError(f"--engine vllm: vLLM is not installed ({exc})") from exc
        self._vllm = vllm
        self.llm = AsyncLLM.from_engine_args(AsyncEngineArgs(model=self.model, **self.engine_kwargs))
        model_config = self.llm.model_config
        scheduler = self.llm.vllm_config.scheduler_config
        import torch
        self._info = EngineInfo(
            engine="vllm", model=self.model, max_concurrency=int(scheduler.max_num_seqs),
            max_model_len=int(model_config.max_model_len), vocab_size=int(model_config.get_vocab_size()),
            versions={"vllm": vllm.__version__, "torch": torch.__version__},
            engine_args={**{k: str(v) for k, v in self.engine_kwargs.items()},
                         "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"})

    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("engine not started")
        return self._info

    def _sampling(self, params: SamplingParams):
        from vllm.sampling_params import RequestOutputKind
        return self._vllm.SamplingParams(
            temperature=params.temperature, top_k=params.top_k if params.top_k > 0 else -1, top_p=params.top_p,
            max_tokens=params.max_new_tokens, min_tokens=params.min_new_tokens, seed=params.seed,
            ignore_eos=params.ignore_eos, detokenize=False, output_kind=RequestOutputKind.DELTA)

    async def generate(self, request_id: str, prompt: Sequence[int],
                       params: SamplingParams) -> AsyncIterator[list[int]]:
        from vllm.inputs import TokensPrompt
        finished = False
        try:
            async for output in self.llm.generate(TokensPrompt(prompt_token_ids=[int(t) for t in prompt]),
                                                  self._sampling(params), request_id):
                delta = list(output.outputs[0].token_ids)
                if delta:
                    yield delta
                finished = output.finished
        finally:
            if not finished:
                await self.abort(request_id)

    async def abort(self, request_id: str) -> None:
        if self.llm is not None:
            await self.llm.abort(request_id)

    async def close(self) -> None:
        if self.llm is not None:
            self.llm.shutdown()
