"""The campaign file: one line per problem with the key path, TOML and YAML alike; and the step graph."""
from __future__ import annotations

import pathlib

import pytest

from harness.campaign.config import ConfigError, load, validate
from harness.campaign.plan import EDGES, build_plan
from harness.campaign.report import plan_lines
from harness.campaign.plan import Decision

GOOD = {"scenarios": ["Offline", "Server"], "steps": ["performance", "accuracy", "TEST06", "package", "check"],
        "output": "out", "organisation": "Acme", "system": {"system_name": "s"},
        "workers": {"local": {"engine": "hf", "count": 2}}, "loadgen": {"target_qps": {"Server": 2.0}}}


def problems(data: dict, source: str = "nightly.toml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(data, source)
    return info.value.lines


def test_unknown_step_names_its_index():
    assert "nightly.toml: steps[2]: unknown step 'perf' (choose from find-qps, performance, accuracy, TEST06, " \
           "package, check)" in problems(dict(GOOD, steps=["performance", "accuracy", "perf"]))


def test_every_type_problem_is_one_line_with_its_key_path():
    data = dict(GOOD, repeat="twice", bogus=1, workers={"local": {"count": 0, "colour": "red"}})
    data.pop("output")
    lines = problems(data)
    assert "nightly.toml: repeat: Input should be a valid integer, unable to parse string as an integer" in lines
    assert "nightly.toml: bogus: unknown key" in lines
    assert "nightly.toml: output: required key is missing" in lines
    assert "nightly.toml: workers.local.count: Input should be greater than or equal to 1" in lines
    assert "nightly.toml: workers.local.colour: unknown key" in lines
    assert len(lines) == 5 and all("\n" not in line for line in lines)


def test_combinations_the_types_cannot_say():
    data = dict(GOOD, scenarios=["Offline", "Server", "SingleStream"], steps=["performance", "check"],
                loadgen={}, workers={"addresses": ["127.0.0.1:1", "127.0.0.1:1"]}, dataset="/nonexistent.json")
    lines = problems(data)
    assert "nightly.toml: scenarios[2]: SingleStream is not a scenario of llama3.1-8b (choose from Offline, " \
           "Server, Interactive)" in lines
    assert any(line.startswith("nightly.toml: loadgen.target_qps.Server: required key is missing") for line in lines)
    assert "nightly.toml: steps: 'check' needs the step 'package'" in lines
    assert any("workers.addresses: 127.0.0.1:1 is given twice" in line for line in lines)
    assert "nightly.toml: dataset: /nonexistent.json does not exist" in lines


def test_workers_are_addresses_or_local_not_both():
    lines = problems(dict(GOOD, workers={"addresses": ["127.0.0.1:5"], "local": {}}))
    assert lines == ["nightly.toml: workers: give exactly one of workers.addresses and [workers.local]"]


def test_yaml_and_toml_files_load_the_same(tmp_path: pathlib.Path):
    toml = tmp_path / "c.toml"
    toml.write_text('scenarios = ["Offline"]\nsteps = ["performance"]\noutput = "o"\norganisation = "A"\n'
                    '[workers.local]\ncount = 1\n')
    yaml = tmp_path / "c.yaml"
    yaml.write_text("scenarios: [Offline]\nsteps: [performance]\noutput: o\norganisation: A\n"
                    "workers:\n  local:\n    count: 1\n")
    assert load(toml)[0] == load(yaml)[0]
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "bad.yaml")
    assert info.value.lines[0].startswith(f"{tmp_path / 'bad.yaml'}: line 2: not valid YAML")


def test_plan_follows_the_edges():
    config = validate(dict(GOOD, steps=["find-qps", "performance", "accuracy", "TEST06", "package", "check"],
                           scenarios=["Offline", "Server", "Interactive"], repeat=2), "c.toml")
    steps = {s.id: s for s in build_plan(config)}
    assert "find-qps/Server" not in steps  # its target_qps is in the file
    assert steps["performance/Interactive"].needs == ("find-qps/Interactive",)
    assert steps["accuracy/Offline"].after == ("performance/Offline", "performance/Offline#2")
    assert not steps["accuracy/Offline"].needs  # order only: a failed performance run does not block it
    assert "performance/Offline#2" in steps and "performance/Offline#2" not in steps["package"].needs
    assert set(steps["package"].needs) == {s for s in steps if s.split("/")[0] in ("performance", "accuracy",
                                                                                   "TEST06") and "#" not in s}
    assert steps["check"].needs == ("package",)
    assert {e.relation for e in EDGES} == {"needs", "after"}
    order = list(steps)
    assert order.index("find-qps/Interactive") < order.index("performance/Interactive") < order.index("package")


def test_plan_lines_say_what_is_kept_and_why_a_step_runs():
    config = validate(dict(GOOD, steps=["performance", "package"], scenarios=["Offline"]), "c.toml")
    perf, package = build_plan(config)
    lines = plan_lines([Decision(perf, "keep", record={"status": "passed"}), Decision(package, "run", "was failed")])
    assert "keep" in lines[0] and "passed" in lines[0]
    assert "run" in lines[1] and "(was failed)" in lines[1] and "needs performance/Offline" in lines[1]
