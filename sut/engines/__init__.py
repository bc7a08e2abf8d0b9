"""Engine registry: name -> implementation, imported only when chosen (vLLM and torch are heavy)."""
from __future__ import annotations

import importlib

from sut.engines.base import Engine, EngineError, EngineInfo, SamplingParams

_REGISTRY = {
    "hf": "sut.engines.hf:HFEngine",
    "sim": "sut.engines.sim:SimEngine",
    "vllm": "sut.engines.vllm_engine:VLLMEngine",
}


def engine_names() -> list[str]:
    return sorted(_REGISTRY)


def load_engine_class(name: str) -> type[Engine]:
    try:
        module_name, class_name = _REGISTRY[name].split(":")
    except KeyError:
        raise ValueError(f"--engine {name!r}: unknown engine; choose one of {', '.join(engine_names())}") from None
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["Engine", "EngineError", "EngineInfo", "SamplingParams", "engine_names", "load_engine_class"]
