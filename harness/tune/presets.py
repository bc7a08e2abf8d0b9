"""Presets written by `python -m harness tune` and read by `python -m sut.worker --preset FILE`
(the reader and its checks live in sut/worker/preset.py: sut never imports harness). Format:
presets/README.md."""
from __future__ import annotations

import datetime
import json
import pathlib

from sut.build_info import code_revision
from sut.worker.preset import FORMAT, load_preset

FP8_KEYS = ("quantization", "kv-cache-dtype")


def uses_fp8(engine_args: dict) -> bool:
    return any(str(engine_args.get(k, "")).startswith("fp8") for k in FP8_KEYS)


def accuracy_record(engine_args: dict, accuracy_run: str | None) -> dict:
    """An FP8 preset comes with an accuracy run showing the targets, or says it has none."""
    if not uses_fp8(engine_args):
        return {"verified": None, "note": "no quantization: the model's own precision"}
    if accuracy_run:
        manifest = json.loads((pathlib.Path(accuracy_run) / "manifest.json").read_text())
        if manifest.get("accuracy_pass"):
            return {"verified": True, "run": str(accuracy_run), "accuracy": manifest.get("accuracy")}
        return {"verified": False, "run": str(accuracy_run), "note": "the accuracy run does NOT meet the targets"}
    return {"verified": False, "note": "accuracy not verified on real weights"}


def write_preset(path: pathlib.Path, name: str, engine: str, engine_args: dict, harness: dict, hardware: dict,
                 measured: dict, accuracy: dict, search: dict, tuned_with: dict, commit: str | None = None) -> dict:
    preset = {"format": FORMAT, "name": name, "engine": engine,
              "engine_args": {k: v for k, v in engine_args.items() if v not in (None, "none")},
              "harness": harness, "hardware": hardware, "measured": measured, "accuracy": accuracy,
              "closed_division": "no sampling change; FP8 only with an accuracy run meeting the targets"
                                 if not uses_fp8(engine_args) or accuracy.get("verified") else
                                 "accuracy not verified on real weights",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": commit or code_revision(), "search": search, "tuned_with": tuned_with}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(preset, indent=2) + "\n")
    load_preset(str(path))  # what the worker will read must pass its checks
    return preset
