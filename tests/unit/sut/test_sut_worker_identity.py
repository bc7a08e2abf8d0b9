"""The worker's identity in Info: a model fingerprint that follows content (config, tokenizer,
weight names, sizes and samples), not paths or mtimes; an engine-args hash that ignores the
hardware's name; the code revision."""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess

from sut.engines.base import EngineInfo
from sut.proto import backend_pb2 as pb
from sut.worker import identity
from sut.worker.identity import (KEY_ENGINE_ARGS, KEY_MODEL, KEY_REVISION, code_revision, engine_args_hash,
                                 model_fingerprint, worker_identity)
from sut.worker.service import BackendService

INFO = EngineInfo(engine="hf", model="m", max_concurrency=4, max_model_len=128, vocab_size=100,
                  engine_args={"dtype": "bfloat16", "device": "cuda", "device_name": "NVIDIA H100"})


def make_model(root: pathlib.Path, weights: bytes = b"\x01" * 3_000_000) -> pathlib.Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"vocab_size": 100}')
    (root / "tokenizer.json").write_text('{"model": "bpe"}')
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_same_content_in_two_places_has_one_fingerprint_whatever_the_mtimes(tmp_path):
    a = make_model(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", (1, 1))
    (b / "cnn_eval_tiny_32.json").write_text("[]")  # not part of the model
    (b / ".lock").write_text("")
    assert model_fingerprint(str(a), INFO) == model_fingerprint(str(b), INFO)


def test_fingerprint_follows_config_tokenizer_and_weights(tmp_path):
    base = model_fingerprint(str(make_model(tmp_path / "base")), INFO)
    config = make_model(tmp_path / "config")
    (config / "config.json").write_text('{"vocab_size": 101}')
    tokenizer = make_model(tmp_path / "tokenizer")
    (tokenizer / "tokenizer.json").write_text('{"model": "wordpiece"}')
    head = make_model(tmp_path / "head", b"\x02" + b"\x01" * 2_999_999)
    tail = make_model(tmp_path / "tail", b"\x01" * 2_999_999 + b"\x02")
    size = make_model(tmp_path / "size", b"\x01" * 3_000_001)
    extra = make_model(tmp_path / "extra")
    (extra / "model-00002-of-00002.safetensors").write_bytes(b"x")
    prints = {model_fingerprint(str(p), INFO) for p in (config, tokenizer, head, tail, size, extra)}
    assert len(prints) == 6 and base not in prints


def test_sim_and_named_models_hash_their_name_and_sim_its_flags():
    sim = EngineInfo(engine="sim", model="sim", max_concurrency=8, max_model_len=64, vocab_size=10, simulated=True,
                     engine_args={"step_ms": "10.0"})
    faster = EngineInfo(**{**sim.__dict__, "engine_args": {"step_ms": "5.0"}})
    assert model_fingerprint("sim", sim) != model_fingerprint("sim", faster)
    assert model_fingerprint("sim", sim) == model_fingerprint("sim", EngineInfo(**sim.__dict__))
    assert model_fingerprint("meta-llama/Llama-3.1-8B", INFO) != model_fingerprint("meta-llama/Llama-3.1-70B", INFO)


def test_engine_args_hash_ignores_the_device_name_only():
    h200 = EngineInfo(**{**INFO.__dict__, "engine_args": {**INFO.engine_args, "device_name": "NVIDIA H200"}})
    fp16 = EngineInfo(**{**INFO.__dict__, "engine_args": {**INFO.engine_args, "dtype": "float16"}})
    reordered = EngineInfo(**{**INFO.__dict__, "engine_args": dict(reversed(list(INFO.engine_args.items())))})
    assert engine_args_hash(INFO) == engine_args_hash(h200) == engine_args_hash(reordered)
    assert engine_args_hash(INFO) != engine_args_hash(fp16)
    assert engine_args_hash(INFO) != engine_args_hash(EngineInfo(**{**INFO.__dict__, "engine": "vllm"}))


def test_revision_is_this_checkout_or_the_package_version(tmp_path):
    repo = pathlib.Path(identity.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    revision = code_revision()
    if head.returncode == 0:
        assert revision.removesuffix("-dirty") == head.stdout.strip()
    nested = tmp_path / "pkg"
    nested.mkdir()
    assert code_revision(nested).startswith("package:") or code_revision(nested) == "unknown"


def test_info_carries_the_identity_next_to_the_engines_versions(tmp_path):
    class Engine:
        def info(self):
            return EngineInfo(**{**INFO.__dict__, "versions": {"torch": "2.13"}})

    ids = worker_identity(str(make_model(tmp_path / "m")), INFO)
    assert set(ids) == {KEY_MODEL, KEY_ENGINE_ARGS, KEY_REVISION}
    service = BackendService(Engine(), "w1", identity=ids)
    service.ready = True
    reply = asyncio.run(service.Info(pb.InfoRequest(), None))
    assert dict(reply.versions) == {"torch": "2.13", **ids}
