"""LoadGen TestSettings from user.conf (LoadGen loads its embedded mlperf.conf itself), the checks
on --scenario and --model-name, the short-run user.conf of smoke runs and benchmarks, and the
user.conf of a Server run with a submission's settings at a chosen rate."""
from __future__ import annotations

import math
import pathlib

from harness.benchmarks.definitions import MODEL_NAMES, UnknownBenchmark, by_model_name
from harness.benchmarks.scenarios import SCENARIOS
from harness.run.user_conf import UserConfError, check_user_conf

MODES = ("PerformanceOnly", "AccuracyOnly")


class SettingsError(ValueError):
    pass


def check_model_name(scenario: str, model_name: str) -> None:
    try:
        benchmark = by_model_name(model_name)
    except UnknownBenchmark:
        raise SettingsError(f"--model-name {model_name!r}: choose one of {', '.join(MODEL_NAMES)}") from None
    if scenario in benchmark.run_scenarios:
        return
    dedicated = by_model_name(SCENARIOS[scenario].default_model_name)
    if dedicated.run_scenarios == (scenario,):
        raise SettingsError(f"--scenario {scenario} needs --model-name {dedicated.model_name} (LoadGen's "
                            f"{SCENARIOS[scenario].loadgen_scenario} scenario with the {scenario} latency limits)")
    raise SettingsError(f"--model-name {model_name} goes with --scenario {' or '.join(benchmark.run_scenarios)}, "
                        f"not {scenario}")


def build_test_settings(lg, scenario: str, mode: str, model_name: str, user_conf: pathlib.Path):
    """FromConfig exactly once per process: a second call silently drops mlperf.conf."""
    if not user_conf.is_file():
        raise SettingsError(f"--user-conf {user_conf}: file not found")
    try:
        check_user_conf(user_conf)  # LoadGen ignores unknown lines and has no line numbers
    except UserConfError as exc:
        raise SettingsError(str(exc)) from None
    loadgen_scenario = SCENARIOS[scenario].loadgen_scenario
    settings = lg.TestSettings()
    rc = settings.FromConfig(str(user_conf), model_name, loadgen_scenario)
    if rc == -22:
        raise SettingsError(f"--user-conf {user_conf}: a value is not a number (LoadGen rejected the file)")
    if rc != 0:
        raise SettingsError(f"--user-conf {user_conf}: LoadGen could not read it (code {rc})")
    settings.scenario = getattr(lg.TestScenario, loadgen_scenario)
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


def short_run_user_conf(model_name: str, samples: int, qps: float = 4, offline_qps: float = 10,
                        offline_queries: int | None = None, server_min_duration_ms: int = 3000,
                        server_min_query_count: int | None = None) -> str:
    """A short profile, valid by LoadGen's rules but never a submission run. The defaults are the
    embedded default's smoke profile; benchmarks pass their own rates and counts."""
    return "\n".join([
        "# smoke profile written by the harness: NOT valid for a submission",
        f"{model_name}.*.performance_sample_count_override = {samples}",
        f"{model_name}.Offline.target_qps = {offline_qps}",
        f"{model_name}.Offline.min_duration = 0",
        f"{model_name}.Offline.min_query_count = {2 * samples if offline_queries is None else offline_queries}",
        f"{model_name}.Server.target_qps = {qps}",
        f"{model_name}.Server.min_duration = {server_min_duration_ms}",
        f"{model_name}.Server.min_query_count = {samples if server_min_query_count is None else server_min_query_count}",
        f"{model_name}.SingleStream.target_latency = 1000",
        f"{model_name}.SingleStream.min_duration = 1000",
        f"{model_name}.SingleStream.min_query_count = {samples}",
        "",
    ])


def one_pass_samples(samples: int, qps: float, duration_ms: int) -> int:
    """The performance set of a Server run meant to last `duration_ms` at `qps`. LoadGen's equal-issue
    mode (sample_concatenate_permutation, on for every LLM in mlperf.conf) issues whole passes over
    the set, so a set larger than qps x duration stretches the run to samples / qps (2000 samples at
    12 qps: 164 s for a 15-s probe). A pass must also outlast the duration: LoadGen adds a whole
    further pass when the last query of one is scheduled before min_duration, and Poisson arrivals put
    the n-th query at n/qps +- sqrt(n)/qps, so a pass of exactly qps x duration gets a second one about
    every other run (on an H200 at e8f9495 the three 30-60 s runs lasted twice their length, as two
    passes would); three standard deviations more keeps it to one pass in ~999 runs of 1000, for a few
    % more length."""
    expected = qps * duration_ms / 1000
    return max(1, min(samples, math.ceil(expected + 3 * math.sqrt(expected)) + 1))


def submission_server_user_conf(model_name: str, qps: float, duration_ms: int, samples: int, written_by: str) -> str:
    """The settings a submission run uses (mlperf.conf's) at `qps`, min_duration as given. A dataset
    smaller than the benchmark's is no submission's performance set anyway: then the set is one pass
    at `duration_ms` (`one_pass_samples`), so the run lasts what was asked."""
    lines = [f"# written by {written_by}", f"{model_name}.Server.target_qps = {round(qps, 4)}",
             f"{model_name}.Server.min_duration = {duration_ms}"]
    if samples < by_model_name(model_name).dataset_size:
        one_pass = one_pass_samples(samples, qps, duration_ms)
        lines.append(f"{model_name}.*.performance_sample_count_override = {one_pass}")
    return "\n".join(lines) + "\n"
