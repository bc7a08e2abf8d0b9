"""EOS token ids of a model directory, from its generation/model/tokenizer config."""
from __future__ import annotations

import json
import pathlib


def _ids(value) -> tuple[int, ...] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(dict.fromkeys(value))
    return None


def _read(path: pathlib.Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def eos_ids_from_model(model_dir: str | pathlib.Path | None) -> tuple[int, ...] | None:
    """generation_config.json's eos_token_id (int or list), else config.json's, else the id of
    tokenizer_config.json's eos_token (from its added_tokens_decoder or tokenizer.json); None if unknown."""
    if not model_dir:
        return None
    root = pathlib.Path(model_dir)
    for name in ("generation_config.json", "config.json"):
        ids = _ids(_read(root / name).get("eos_token_id"))
        if ids:
            return ids
    config = _read(root / "tokenizer_config.json")
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    if not isinstance(eos, str):
        return None
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(token, dict) and token.get("content") == eos and str(token_id).isdigit():
            return (int(token_id),)
    for token in _read(root / "tokenizer.json").get("added_tokens") or []:
        if isinstance(token, dict) and token.get("content") == eos and isinstance(token.get("id"), int):
            return (token["id"],)
    return None
