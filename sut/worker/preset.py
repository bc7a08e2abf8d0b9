"""`python -m sut.worker --preset FILE`: a tuned preset's engine settings as the worker's defaults.

A preset (written by `python -m harness tune`, format in presets/README.md) is JSON with `format`,
`engine` and `engine_args` ({flag without "--": value}; `engine-arg` holds {KEY: VALUE} for vLLM's
--engine-arg). Its flags go in front of the command line, so an explicit flag overrides it
(argparse keeps the last value; --engine-arg KEY=... given explicitly wins over the preset's KEY).
Every error is one line naming the file and the key.
"""
from __future__ import annotations

import json
import pathlib

FORMAT = "mlperf-harness-preset/1"
# the closed division fixes sampling: a preset may not carry any of these
FORBIDDEN = ("temperature", "top-p", "top-k", "seed", "min-p", "generation-config", "logits-processors",
             "speculative-config", "override-generation-config")


class PresetError(ValueError):
    pass


def load_preset(path: str) -> dict:
    file = pathlib.Path(path)
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise PresetError(f"--preset {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise PresetError(f"--preset {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PresetError(f"--preset {path}: expected a JSON object")
    if data.get("format") != FORMAT:
        raise PresetError(f"--preset {path}: key 'format' must be {FORMAT!r}, not {data.get('format')!r}")
    if not isinstance(data.get("engine"), str):
        raise PresetError(f"--preset {path}: key 'engine' is missing or not a string")
    args = data.get("engine_args")
    if not isinstance(args, dict):
        raise PresetError(f"--preset {path}: key 'engine_args' is missing or not an object")
    for key, value in args.items():
        if key.replace("_", "-") in FORBIDDEN or (key == "engine-arg" and isinstance(value, dict) and any(
                k.replace("_", "-") in FORBIDDEN for k in value)):
            raise PresetError(f"--preset {path}: key 'engine_args.{key}' changes sampling (not allowed in the "
                              f"closed division)")
        if key == "engine-arg":
            if not isinstance(value, dict):
                raise PresetError(f"--preset {path}: key 'engine_args.engine-arg' must be an object of KEY: VALUE")
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            raise PresetError(f"--preset {path}: key 'engine_args.{key}' must be a string, number or boolean")
    return data


def preset_argv(data: dict, path: str, known_flags: set[str]) -> list[str]:
    """The preset's engine_args as worker flags; `known_flags` are the option strings of the
    worker's parser for the preset's engine (an unknown key is an error naming it)."""
    argv = []
    for key, value in data["engine_args"].items():
        flag = "--" + key.replace("_", "-")
        if flag not in known_flags:
            raise PresetError(f"--preset {path}: key 'engine_args.{key}' is not a flag of engine {data['engine']}")
        if key == "engine-arg":
            argv += [x for k, v in value.items() for x in ("--engine-arg", f"{k}={json.dumps(v)}")]
        elif value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv
