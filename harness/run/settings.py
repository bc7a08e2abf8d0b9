"""LoadGen TestSettings from user.conf (LoadGen loads its embedded mlperf.conf itself), plus the
sampling parameters the MLPerf rules set for llama3.1-8b."""
from __future__ import annotations

import pathlib

SCENARIOS = ("Offline", "Server", "SingleStream", "Interactive")
MODES = ("PerformanceOnly", "AccuracyOnly")
MODEL_NAMES = ("llama3_1-8b", "llama3_1-8b-edge", "llama3_1-8b-interactive")


class SettingsError(ValueError):
    pass


def default_model_name(scenario: str) -> str:
    return {"Interactive": "llama3_1-8b-interactive", "SingleStream": "llama3_1-8b-edge"}.get(scenario, "llama3_1-8b")


def loadgen_scenario(scenario: str) -> str:
    """LoadGen has no Interactive scenario: it is Server with the -interactive model name."""
    return "Server" if scenario == "Interactive" else scenario


def check_model_name(scenario: str, model_name: str) -> None:
    if model_name not in MODEL_NAMES:
        raise SettingsError(f"--model-name {model_name!r}: choose one of {', '.join(MODEL_NAMES)}")
    if scenario == "Interactive" and model_name != "llama3_1-8b-interactive":
        raise SettingsError("--scenario Interactive needs --model-name llama3_1-8b-interactive "
                            "(LoadGen's Server scenario with the Interactive latency limits)")
    if model_name == "llama3_1-8b-interactive" and scenario != "Interactive":
        raise SettingsError(f"--model-name llama3_1-8b-interactive goes with --scenario Interactive, not {scenario}")


def build_test_settings(lg, scenario: str, mode: str, model_name: str, user_conf: pathlib.Path):
    """FromConfig exactly once per process: a second call silently drops mlperf.conf."""
    if not user_conf.is_file():
        raise SettingsError(f"--user-conf {user_conf}: file not found")
    settings = lg.TestSettings()
    rc = settings.FromConfig(str(user_conf), model_name, loadgen_scenario(scenario))
    if rc == -22:
        raise SettingsError(f"--user-conf {user_conf}: a value is not a number (LoadGen rejected the file)")
    if rc != 0:
        raise SettingsError(f"--user-conf {user_conf}: LoadGen could not read it (code {rc})")
    settings.scenario = getattr(lg.TestScenario, loadgen_scenario(scenario))
    settings.mode = getattr(lg.TestMode, mode)
    return settings


def effective_settings(settings) -> dict:
    values = {}
    for name in dir(settings):
        if name.startswith("_") or name == "FromConfig":
            continue
        value = getattr(settings, name)
        values[name] = value.name if hasattr(value, "name") else value
    return values


def smoke_user_conf(model_name: str, samples: int) -> str:
    """A short profile for the embedded default: valid by LoadGen's rules, never a submission run."""
    return "\n".join([
        "# smoke profile written by the harness: NOT valid for a submission",
        f"{model_name}.*.performance_sample_count_override = {samples}",
        f"{model_name}.Offline.target_qps = 10",
        f"{model_name}.Offline.min_duration = 0",
        f"{model_name}.Offline.min_query_count = {2 * samples}",
        f"{model_name}.Server.target_qps = 4",
        f"{model_name}.Server.min_duration = 3000",
        f"{model_name}.Server.min_query_count = {samples}",
        f"{model_name}.SingleStream.target_latency = 1000",
        f"{model_name}.SingleStream.min_duration = 1000",
        f"{model_name}.SingleStream.min_query_count = {samples}",
        "",
    ])
