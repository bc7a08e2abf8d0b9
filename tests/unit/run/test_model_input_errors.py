"""Bad model input: a missing or corrupt model directory or GGUF, no EOS ids, a context shorter than
the dataset needs. One line naming the file and the number, exit 2, before any worker starts
(in-process: no worker is ever launched, since the check comes first)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from harness.cli import main
from harness.run.default_model import GGUF_ENV, ModelError, check_model_dir, default_model_dir


def _model_dir(tmp_path, context=2048, eos=(2,)) -> object:
    root = tmp_path / "model"
    root.mkdir()
    config = {"model_type": "llama", "vocab_size": 100, "max_position_embeddings": context}
    if eos:
        config["eos_token_id"] = list(eos)
    (root / "config.json").write_text(json.dumps(config))
    save_file({"w": torch.zeros(4, 4)}, str(root / "model.safetensors"))
    return root


def _dataset(tmp_path, lengths=(10, 300)) -> str:
    path = tmp_path / "cnn_eval.json"
    path.write_text(json.dumps([{"input": "a", "tok_input": [1] * n, "output": "b"} for n in lengths]))
    return str(path)


def _run(tmp_path, capsys, model) -> tuple[int, list[str]]:
    code = main(["--quiet", "--model", str(model), "--dataset", _dataset(tmp_path), "--output",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def test_a_good_directory_passes_and_gives_its_eos_ids(tmp_path):
    assert check_model_dir(_model_dir(tmp_path), [10, 300], 128) == (2,)


def test_missing_directory(tmp_path, capsys):
    code, lines = _run(tmp_path, capsys, tmp_path / "nowhere")
    assert code == 2 and lines == [f"error: --model {tmp_path / 'nowhere'}: model directory not found"]
    assert not list((tmp_path / "runs").glob("*"))  # no run directory: refused before the run  # nothing started, no run directory


def test_truncated_weights(tmp_path, capsys):
    model = _model_dir(tmp_path)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    code, lines = _run(tmp_path, capsys, model)
    assert code == 2 and len(lines) == 1, lines
    assert f"{weights}: corrupt safetensors file (tensors end at byte" in lines[0] and "the file has" in lines[0]


def test_weights_that_are_not_safetensors(tmp_path, capsys):
    model = _model_dir(tmp_path)
    (model / "model.safetensors").write_bytes(b"\xff" * 64)
    code, lines = _run(tmp_path, capsys, model)
    assert code == 2 and len(lines) == 1, lines
    assert "model.safetensors: corrupt safetensors file (header length" in lines[0]


def test_corrupt_config(tmp_path, capsys):
    model = _model_dir(tmp_path)
    (model / "config.json").write_text("{\"vocab_size\": ")
    code, lines = _run(tmp_path, capsys, model)
    assert code == 2 and len(lines) == 1, lines
    assert f"{model / 'config.json'}: not valid JSON" in lines[0]


def test_no_eos_ids(tmp_path, capsys):
    model = _model_dir(tmp_path, eos=())
    code, lines = _run(tmp_path, capsys, model)
    assert code == 2 and len(lines) == 1, lines
    assert f"{model / 'generation_config.json'}: no eos_token_id" in lines[0]


def test_eos_id_outside_the_vocabulary(tmp_path):
    with pytest.raises(ModelError, match="EOS token id 500 is outside the vocabulary \\(vocab_size 100"):
        check_model_dir(_model_dir(tmp_path, eos=(500,)), [10], 128)


def test_context_shorter_than_the_longest_prompt_plus_new_tokens(tmp_path, capsys):
    model = _model_dir(tmp_path, context=400)
    code, lines = _run(tmp_path, capsys, model)
    assert code == 2 and len(lines) == 1, lines
    assert (f"{model / 'config.json'}: max_position_embeddings 400 is shorter than {tmp_path / 'cnn_eval.json'}'s "
            f"longest prompt (record 1: 300 tokens) + 128 new tokens = 428") in lines[0]


def test_missing_gguf_for_the_embedded_default(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(GGUF_ENV, str(tmp_path / "absent.gguf"))
    code = main(["--quiet", "--output", str(tmp_path / "runs")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [f"error: {tmp_path / 'absent.gguf'}: GGUF model file not found"]


@pytest.mark.parametrize("content, message", [
    (b"NOPE" + b"\0" * 60, "not a GGUF file (first 4 bytes b'NOPE', expected b'GGUF')"),
    (b"GGUF" + b"\x03\0\0\0" + b"\xff" * 56, "cannot load the GGUF model ("),
])
def test_corrupt_gguf_for_the_embedded_default(tmp_path, capsys, monkeypatch, content, message):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(content)
    monkeypatch.setenv(GGUF_ENV, str(gguf))
    monkeypatch.setenv("MLPERF_HARNESS_CACHE", str(tmp_path / "cache"))
    code = main(["--quiet", "--output", str(tmp_path / "runs")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {gguf}: {message}")
    with pytest.raises(ModelError):  # nothing half-written is left to be taken as converted
        default_model_dir()
