"""What submitted files may say about weights and paths: names, not this machine's filesystem."""
from __future__ import annotations

import pathlib
import re

_FLOAT_NAMES = {"float32": "fp32", "fp32": "fp32", "float": "fp32", "float16": "fp16", "fp16": "fp16",
                "half": "fp16", "bfloat16": "bf16", "bf16": "bf16", "float64": "fp64", "fp64": "fp64",
                "double": "fp64"}
CHECKPOINT_DTYPE = "bf16"  # Llama-3.1-8B-Instruct's released weights
_PATH_IN_ARG = re.compile(r"^(--?[\w-]+=)?((?:/|~/|\./|\.\./)\S*)$")


def public_name(value: str) -> str:
    """A local path (absolute, ~/, ./, ../; also as --flag=PATH) becomes its last component; a hub id
    such as meta-llama/Llama-3.1-8B-Instruct and other text stay as they are."""
    text = str(value)
    match = _PATH_IN_ARG.match(text)
    if not match:
        return text
    name = pathlib.PurePosixPath(match.group(2).rstrip("/")).name or match.group(2)
    return (match.group(1) or "") + name


def describe_weights(dtype: str | None, quantization: str | None) -> tuple[str, str]:
    """(weight_data_types, weight_transformations) for measurements.json, truthfully."""
    if quantization:
        return quantization, f"quantized to {quantization} at load"
    if not dtype or str(dtype).lower() == "auto":  # the engine keeps the checkpoint's own dtype
        return CHECKPOINT_DTYPE, "none"
    name = _FLOAT_NAMES.get(str(dtype).lower(), str(dtype))
    if name == CHECKPOINT_DTYPE:
        return name, "none"
    return name, f"none (no quantization; loaded as {name})"
