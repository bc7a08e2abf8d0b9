"""VLLMEngine against a stub `vllm` package: flag mapping, EngineInfo, DELTA streaming with abort on
early stop, sampling parameters, and the error when vLLM is missing. torch is the real (CPU) one."""
from __future__ import annotations

import argparse
import asyncio
import enum
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from sut.engines.base import EngineError, SamplingParams
from sut.engines.vllm_engine import VLLMEngine


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="/models/llama")
    VLLMEngine.add_arguments(parser)
    return parser.parse_args(list(flags))


class StubVLLM:
    """The parts of vLLM's API the engine uses; records every call."""

    def __init__(self):
        self.engine_args: list[dict] = []
        self.sampling: list[dict] = []
        self.prompts: list[dict] = []
        self.aborted: list[str] = []
        self.shutdowns = 0
        self.outputs: list[tuple[list[int], bool]] = []  # (delta token ids, finished) per step
        stub = self

        class AsyncEngineArgs:
            def __init__(self, **kwargs):
                stub.engine_args.append(kwargs)
                self.kwargs = kwargs

        class FakeLLM:
            model_config = SimpleNamespace(max_model_len=8192, get_vocab_size=lambda: 128256)
            vllm_config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=48))

            async def generate(self, prompt, sampling_params, request_id):
                stub.prompts.append(prompt)
                for tokens, finished in stub.outputs:
                    await asyncio.sleep(0)
                    yield SimpleNamespace(outputs=[SimpleNamespace(token_ids=tokens)], finished=finished)

            async def abort(self, request_id):
                stub.aborted.append(request_id)

            def shutdown(self):
                stub.shutdowns += 1

        class AsyncLLM:
            @classmethod
            def from_engine_args(cls, args):
                assert isinstance(args, AsyncEngineArgs)
                return FakeLLM()

        class RequestOutputKind(enum.Enum):
            CUMULATIVE = 0
            DELTA = 1
            FINAL_ONLY = 2

        def sampling_params(**kwargs):
            stub.sampling.append(kwargs)
            return SimpleNamespace(**kwargs)

        def tokens_prompt(**kwargs):
            return dict(kwargs)

        self.RequestOutputKind = RequestOutputKind
        self.modules = {name: types.ModuleType(name) for name in (
            "vllm", "vllm.engine", "vllm.engine.arg_utils", "vllm.v1", "vllm.v1.engine",
            "vllm.v1.engine.async_llm", "vllm.sampling_params", "vllm.inputs")}
        m = self.modules
        m["vllm"].__version__ = "0.0.stub"
        m["vllm"].SamplingParams = sampling_params
        m["vllm.engine.arg_utils"].AsyncEngineArgs = AsyncEngineArgs
        m["vllm.v1.engine.async_llm"].AsyncLLM = AsyncLLM
        m["vllm.sampling_params"].RequestOutputKind = RequestOutputKind
        m["vllm.inputs"].TokensPrompt = tokens_prompt
        m["vllm"].engine, m["vllm"].v1 = m["vllm.engine"], m["vllm.v1"]
        m["vllm.engine"].arg_utils = m["vllm.engine.arg_utils"]
        m["vllm.v1"].engine = m["vllm.v1.engine"]
        m["vllm.v1.engine"].async_llm = m["vllm.v1.engine.async_llm"]
        m["vllm"].sampling_params, m["vllm"].inputs = m["vllm.sampling_params"], m["vllm.inputs"]


@pytest.fixture
def stub_vllm(monkeypatch) -> StubVLLM:
    stub = StubVLLM()
    for name, module in stub.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return stub


def test_defaults_map_to_engine_args_and_unset_flags_are_left_to_vllm():
    engine = VLLMEngine.from_args(parse())
    assert engine.model == "/models/llama"
    assert engine.engine_kwargs == {"tensor_parallel_size": 1, "pipeline_parallel_size": 1,
                                    "gpu_memory_utilization": 0.9, "dtype": "auto", "kv_cache_dtype": "auto",
                                    "load_format": "auto", "enforce_eager": False}


def test_tuned_flags_and_engine_args_map_to_engine_kwargs():
    engine = VLLMEngine.from_args(parse(
        "--max-num-seqs", "64", "--quantization", "fp8", "--tensor-parallel-size", "2",
        "--gpu-memory-utilization", "0.85", "--enforce-eager",
        "--engine-arg", "enable-prefix-caching=false",
        "--engine-arg", "max_seq_len_to_capture=8192",
        "--engine-arg", 'compilation_config={"level": 3}',
        "--engine-arg", "served-model-name=llama=8b"))  # not JSON: kept as a string, split at the first '='
    kw = engine.engine_kwargs
    assert kw["max_num_seqs"] == 64 and kw["quantization"] == "fp8" and kw["tensor_parallel_size"] == 2
    assert kw["gpu_memory_utilization"] == 0.85 and kw["enforce_eager"] is True
    assert kw["enable_prefix_caching"] is False
    assert kw["max_seq_len_to_capture"] == 8192
    assert kw["compilation_config"] == {"level": 3}
    assert kw["served_model_name"] == "llama=8b"


@pytest.mark.parametrize("bad", ["no-equals-sign", "=value"])
def test_bad_engine_arg_raises_value_error_naming_the_flag(bad):
    with pytest.raises(ValueError) as exc:
        VLLMEngine.from_args(parse("--engine-arg", bad))
    assert "--engine-arg" in str(exc.value) and bad in str(exc.value)


def test_dummy_load_format_skips_the_tokenizer_unless_told_otherwise():
    dummy = VLLMEngine.from_args(parse("--load-format", "dummy")).engine_kwargs
    assert dummy["skip_tokenizer_init"] is True and dummy["generation_config"] == "vllm"
    kept = VLLMEngine.from_args(parse("--load-format", "dummy", "--engine-arg", "skip_tokenizer_init=false")).engine_kwargs
    assert kept["skip_tokenizer_init"] is False and kept["generation_config"] == "vllm"
    real = VLLMEngine.from_args(parse()).engine_kwargs
    assert "skip_tokenizer_init" not in real and "generation_config" not in real


def test_start_builds_engine_info_from_vllm_configs(stub_vllm):
    engine = VLLMEngine.from_args(parse("--max-num-seqs", "48", "--quantization", "fp8"))
    with pytest.raises(EngineError, match="not started"):
        engine.info()
    asyncio.run(engine.start())
    assert stub_vllm.engine_args == [{"model": "/models/llama", **engine.engine_kwargs}]
    info = engine.info()
    assert (info.engine, info.model, info.max_concurrency, info.max_model_len, info.vocab_size) == (
        "vllm", "/models/llama", 48, 8192, 128256)
    assert info.simulated is False
    assert info.versions == {"vllm": "0.0.stub", "torch": torch.__version__}
    assert info.engine_args["quantization"] == "fp8" and info.engine_args["max_num_seqs"] == "48"
    assert info.engine_args["device_name"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    asyncio.run(engine.close())
    assert stub_vllm.shutdowns == 1


def started(stub_vllm) -> VLLMEngine:
    engine = VLLMEngine.from_args(parse())
    asyncio.run(engine.start())
    return engine


def test_generate_yields_delta_token_lists_and_does_not_abort_a_finished_request(stub_vllm):
    import numpy as np
    engine = started(stub_vllm)
    stub_vllm.outputs = [([5], False), ([], False), ([6, 7], False), ([8], True)]

    async def main():
        return [d async for d in engine.generate("req-1", np.array([1, 2, 3], dtype="<i4"), SamplingParams())]
    assert asyncio.run(main()) == [[5], [6, 7], [8]]
    assert stub_vllm.prompts == [{"prompt_token_ids": [1, 2, 3]}]
    assert all(type(t) is int for t in stub_vllm.prompts[0]["prompt_token_ids"])
    assert stub_vllm.aborted == []


def test_generate_aborts_when_the_consumer_stops_early(stub_vllm):
    engine = started(stub_vllm)
    stub_vllm.outputs = [([5], False), ([6], False), ([7], True)]

    async def main():
        stream = engine.generate("req-2", [1, 2], SamplingParams())
        first = await stream.__anext__()
        await stream.aclose()
        return first
    assert asyncio.run(main()) == [5]
    assert stub_vllm.aborted == ["req-2"]


def test_generate_aborts_when_the_task_is_cancelled(stub_vllm):
    engine = started(stub_vllm)
    stub_vllm.outputs = [([5], False)] * 1000

    async def main():
        got = []

        async def consume():
            async for delta in engine.generate("req-3", [1], SamplingParams()):
                got.append(delta)
                if len(got) == 2:
                    await asyncio.sleep(10)
        task = asyncio.create_task(consume())
        while len(got) < 2:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())
    assert stub_vllm.aborted == ["req-3"]


def test_sampling_params_are_greedy_delta_and_undetokenized(stub_vllm):
    engine = started(stub_vllm)
    stub_vllm.outputs = [([5], True)]

    async def run(params):
        return [d async for d in engine.generate("r", [1], params)]
    asyncio.run(run(SamplingParams(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=128, min_new_tokens=2,
                                   seed=42, ignore_eos=True)))
    asyncio.run(run(SamplingParams(max_new_tokens=7)))
    zero_k, default = stub_vllm.sampling
    assert zero_k == {"temperature": 0.0, "top_k": -1, "top_p": 1.0, "max_tokens": 128, "min_tokens": 2,
                      "seed": 42, "ignore_eos": True, "detokenize": False,
                      "output_kind": stub_vllm.RequestOutputKind.DELTA}
    assert default["top_k"] == 1 and default["max_tokens"] == 7 and default["min_tokens"] == 1
    assert default["ignore_eos"] is False and default["output_kind"] is stub_vllm.RequestOutputKind.DELTA


def test_start_without_vllm_raises_engine_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    engine = VLLMEngine.from_args(parse())
    with pytest.raises(EngineError, match=r"--engine vllm: vLLM is not installed"):
        asyncio.run(engine.start())
    assert engine.llm is None
