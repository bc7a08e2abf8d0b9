"""user.conf checked line by line before LoadGen reads it.

LoadGen silently ignores an unknown key, model or scenario, wraps a negative integer around
(`std::stoull`), truncates `1.5` to 1 for integer keys, and answers any unparsable value with one
code (-22) and no line. So every line is checked here first and a problem is one line naming
`file:line`, the text and what is wrong.

Format (LoadGen's): `model.scenario.key = value`; `#` starts a comment; blank lines are fine;
`*` is a wildcard for model or scenario.
"""
from __future__ import annotations

import math
import pathlib
import re

from harness.benchmarks.definitions import MODEL_NAMES
from harness.benchmarks.scenarios import SCENARIOS

# Scenario names LoadGen matches in conf files (Interactive is Server with its own model name).
LOADGEN_SCENARIOS = tuple(dict.fromkeys(s.loadgen_scenario for s in SCENARIOS.values()))

# Every key LoadGen's TestSettings::FromConfig reads (mlcommons-loadgen 6.0.x), by value kind.
_BOOL_KEYS = {"sample_concatenate_permutation", "use_token_latencies", "infer_token_latencies", "print_timestamps",
              "performance_issue_unique", "performance_issue_same", "coalesce_queries", "test05"}
_COUNT_KEYS = {"min_query_count", "max_query_count", "performance_sample_count_override",
               "accuracy_sample_count_override", "performance_issue_same_index", "samples_per_query",
               "max_async_queries", "server_num_issue_query_threads", "accuracy_log_sampling_target",
               "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed", "accuracy_log_rng_seed",
               "test05_qsl_rng_seed", "test05_sample_index_rng_seed", "test05_schedule_rng_seed", "mode"}
_DURATION_KEYS = {"min_duration", "max_duration", "target_duration", "target_latency", "ttft_latency", "tpot_latency"}
_POSITIVE_KEYS = {"target_qps"}
_PERCENT_KEYS = {"target_latency_percentile", "accuracy_log_probability"}
_FACTOR_KEYS = {"token_latency_scaling_factor"}
KNOWN_KEYS = frozenset(_BOOL_KEYS | _COUNT_KEYS | _DURATION_KEYS | _POSITIVE_KEYS | _PERCENT_KEYS | _FACTOR_KEYS)

_LINE = re.compile(r"^\s*([^.\s=]+)\.([^.\s=]+)\.([^.\s=]+)\s*=\s*(\S+)\s*$")


class UserConfError(ValueError):
    pass


def check_user_conf(path: str | pathlib.Path, flag: str = "--user-conf") -> list[tuple[str, str, str, str]]:
    """The (model, scenario, key, value) lines of a valid user.conf; UserConfError names the first
    bad line."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserConfError(f"{flag} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserConfError(f"{flag} {path}: cannot be read ({exc})") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{flag} {path}:{number}: {line!r}:"
        match = _LINE.match(line)
        if not match:
            raise UserConfError(f"{where} not of the form model.scenario.key = value")
        model, scenario, key, value = match.groups()
        if model != "*" and model not in MODEL_NAMES:
            raise UserConfError(f"{where} unknown model {model!r} (LoadGen would ignore the line); use one of "
                                f"{', '.join(MODEL_NAMES)} or *")
        if scenario != "*" and scenario not in LOADGEN_SCENARIOS:
            hint = " (Interactive is llama3_1-8b-interactive.Server)" if scenario == "Interactive" else ""
            raise UserConfError(f"{where} unknown scenario {scenario!r} (LoadGen would ignore the line); use one of "
                                f"{', '.join(LOADGEN_SCENARIOS)} or *{hint}")
        if key not in KNOWN_KEYS:
            raise UserConfError(f"{where} unknown key {key!r} (LoadGen would ignore the line)")
        problem = _value_problem(key, value)
        if problem:
            raise UserConfError(f"{where} {key} {problem}")
        entries.append((model, scenario, key, value))
    return entries


def _value_problem(key: str, value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"value {value!r} is not a number"
    if not math.isfinite(number):
        return f"value {value!r} is not a finite number"
    integral = number == int(number) and re.fullmatch(r"[+-]?\d+", value) is not None
    if key in _BOOL_KEYS:
        return None if integral and number in (0, 1) else f"must be 0 or 1, not {value}"
    if key in _COUNT_KEYS:
        if not integral:
            return f"must be a whole number (LoadGen would truncate {value})"
        return None if number >= 0 else f"must be >= 0, not {value} (LoadGen would wrap it to a huge number)"
    if key in _DURATION_KEYS:
        if not integral:
            return f"must be a whole number of ms, not {value}"
        return None if number >= 0 else f"must be >= 0 ms, not {value} (LoadGen would wrap it to a huge number)"
    if key in _POSITIVE_KEYS:
        return None if number > 0 else f"must be > 0, not {value}"
    if key in _PERCENT_KEYS:
        low_open = key == "target_latency_percentile"
        ok = (0 < number <= 100) if low_open else (0 <= number <= 100)
        return None if ok else f"is a percentage and must be in {'(0' if low_open else '[0'}, 100], not {value}"
    if key in _FACTOR_KEYS:
        return None if number >= 0 else f"must be >= 0, not {value}"
    return None
