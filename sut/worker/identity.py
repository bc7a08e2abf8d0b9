"""What a worker serves, in three hashes the coordinator can pin and the manifest can record.

Info's `versions` map carries them (no protocol change):
- `identity.model_fingerprint`: sha256 over the model directory's config, generation config and
  tokenizer files (whole), each weight file's name and size and its first and last MiB (its
  header: tensor names, shapes, dtypes, and a sample of values). Cheap on multi-GB weights, the
  same for identical copies on different hosts (no mtimes, no paths), different for another
  checkpoint of the same shape. A model that is not a directory (a hub id, the sim) hashes its
  name and, when simulated, the engine's flags.
- `identity.engine_args_hash`: sha256 over the engine name and its sorted engine args, less the
  ones that only describe the hardware (device_name), so identical configurations on H100 and
  H200 hosts match.
- `identity.revision`: the git revision of the worker's code (`<sha>` or `<sha>-dirty`, as the
  harness's manifest writes it): git's in a checkout, else the stamp of the wheel it was installed
  from (`sut.build_info`), else `package:<version>`.
"""
from __future__ import annotations

import hashlib
import json
import pathlib

from sut.build_info import SOURCE_ROOT, code_revision
from sut.engines.base import EngineInfo

KEY_MODEL = "identity.model_fingerprint"
KEY_ENGINE_ARGS = "identity.engine_args_hash"
KEY_REVISION = "identity.revision"

# hashed whole: what decides how ids map to text and how the model is built and decodes
WHOLE_FILES = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
    "chat_template.jinja", "params.json",
})
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".npz")
SAMPLE_BYTES = 1 << 20
HARDWARE_ARGS = frozenset({"device_name"})


def _sha256(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _weight_digest(path: pathlib.Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            handle.seek(size - SAMPLE_BYTES)
        digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def directory_fingerprint(model_dir: pathlib.Path) -> str:
    entries = []
    for path in sorted(model_dir.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.name
        if name in WHOLE_FILES or name.endswith(".index.json"):
            entries.append([name, "sha256", hashlib.sha256(path.read_bytes()).hexdigest()])
        elif name.endswith(WEIGHT_SUFFIXES):
            size = path.stat().st_size
            entries.append([name, size, _weight_digest(path, size)])
    return _sha256({"model_dir": entries})


def model_fingerprint(model: str, info: EngineInfo) -> str:
    path = pathlib.Path(model)
    if path.is_dir():
        return directory_fingerprint(path)
    if info.simulated:
        return _sha256({"simulated": info.engine, "model": model, "vocab_size": info.vocab_size,
                        "max_model_len": info.max_model_len, "engine_args": info.engine_args})
    return _sha256({"model_name": model})


def engine_args_hash(info: EngineInfo) -> str:
    args = {k: v for k, v in info.engine_args.items() if k not in HARDWARE_ARGS}
    return _sha256({"engine": info.engine, "engine_args": args})


def worker_identity(model: str, info: EngineInfo, root: pathlib.Path | None = None) -> dict[str, str]:
    """The identity.* entries for Info's versions map. Reads a few MiB of the model: run it off the
    event loop."""
    return {KEY_MODEL: model_fingerprint(model, info), KEY_ENGINE_ARGS: engine_args_hash(info),
            KEY_REVISION: code_revision(root or SOURCE_ROOT)}
