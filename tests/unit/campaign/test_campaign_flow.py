"""The campaign's orchestration with scripted step kinds (test doubles for the runs; the real ones are
exercised in tests/e2e/test_campaign.py): a failed step blocks its dependents only, a re-run keeps
what finished and re-runs the rest, and an interrupt is recorded."""
from __future__ import annotations

import json
import pathlib

import pytest
from rich.console import Console

from harness.campaign import command
from harness.campaign.config import validate
from harness.campaign.steps import Outcome


class ScriptedKind:
    subprocess = False

    def __init__(self, script: dict[str, str], calls: list[str]):
        self.script, self.calls = script, calls

    def identity(self, step, ctx):
        return {"step": step.id, "inputs": [ctx.state.step(n).get("run_dir") for n in step.needs]}

    def prepare(self, step, ctx):
        pass

    def outputs_ok(self, step, record, ctx):
        return True

    def partial_output(self, step, ctx):
        return ""

    def run(self, step, ctx):
        self.calls.append(step.id)
        status = self.script.get(step.id, "passed")
        if status == "interrupt":
            raise KeyboardInterrupt
        return Outcome(status, f"scripted {status}", str(ctx.out / step.slug / str(len(self.calls))))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps([{"input": "a", "tok_input": [1, 2, 3], "output": "b"}] * 3))
    config = validate({"scenarios": ["Offline", "Server"], "steps": ["performance", "accuracy", "package", "check"],
                       "output": str(tmp_path / "out"), "organisation": "Acme", "dataset": str(dataset),
                       "tokenizer": str(tmp_path), "system": {"system_name": "s"},
                       "workers": {"addresses": ["127.0.0.1:1"]}, "loadgen": {"target_qps": {"Server": 1.0}}},
                      "c.toml")
    monkeypatch.setattr(command.CampaignWorkers, "start", lambda self: ["127.0.0.1:1"])
    calls: list[str] = []

    def run(script: dict[str, str]) -> tuple[int, dict]:
        kind = ScriptedKind(script, calls)
        monkeypatch.setattr(command, "KINDS", {k: kind for k in ("find-qps", "performance", "accuracy", "TEST06",
                                                                 "package", "check")})
        calls.clear()
        code = command.Campaign(config, "c.toml", "text", Console(file=open(tmp_path / "console.txt", "a"))).run(False)
        return code, json.loads((tmp_path / "out" / "campaign-state.json").read_text())["steps"]
    return run, calls


def test_a_failed_step_blocks_its_dependents_not_the_independent_steps(setup):
    run, calls = setup
    code, steps = run({"performance/Server": "failed", "accuracy/Offline": "invalid"})
    assert code == 1
    assert calls == ["performance/Offline", "accuracy/Offline", "performance/Server", "accuracy/Server"]
    assert steps["performance/Server"]["status"] == "failed"
    assert steps["accuracy/Server"]["status"] == "passed"        # order only: not blocked
    assert steps["package"]["status"] == "blocked" and "performance/Server" in steps["package"]["detail"]
    assert steps["check"]["status"] == "blocked"

    code, steps = run({})  # the fault is gone: only the failed step and what it blocked run again
    assert code == 1  # accuracy/Offline stays INVALID
    assert calls == ["performance/Server", "package", "check"]
    assert steps["accuracy/Offline"]["status"] == "invalid"      # kept: an INVALID result is a result
    assert steps["performance/Server"]["attempts"] == 2


def test_an_interrupt_is_recorded_and_the_rerun_resumes(setup):
    run, calls = setup
    code, steps = run({"accuracy/Server": "interrupt"})
    assert code == 130
    assert steps["accuracy/Server"]["status"] == "interrupted" and "package" not in steps
    code, steps = run({})
    assert code == 0 and calls == ["accuracy/Server", "package", "check"]


def test_a_changed_input_reruns_its_dependents(setup, tmp_path):
    run, calls = setup
    run({})
    state_path = tmp_path / "out" / "campaign-state.json"
    state = json.loads(state_path.read_text())
    state["steps"]["performance/Offline"]["status"] = "failed"  # as if it had failed: it runs again
    state_path.write_text(json.dumps(state))
    code, _ = run({})
    assert code == 0 and calls == ["performance/Offline", "package", "check"]
    assert pathlib.Path(state_path).is_file()


def test_dead_local_workers_are_started_again_before_the_next_step(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from harness.campaign.workers import CampaignWorkers
    config = validate({"scenarios": ["Offline"], "steps": ["performance"], "output": str(tmp_path), "organisation": "A",
                       "workers": {"local": {"engine": "sim", "model": "sim", "count": 1}}}, "c.toml")
    workers = CampaignWorkers(config, tmp_path)
    started = []
    monkeypatch.setattr(CampaignWorkers, "start", lambda self: started.append(1) or ["127.0.0.1:2"])
    monkeypatch.setattr(CampaignWorkers, "stop", lambda self: setattr(self, "local", None))
    workers.local = SimpleNamespace(workers=[SimpleNamespace(running=True)])
    assert workers.ensure(["127.0.0.1:1"]) == ["127.0.0.1:1"] and not started
    workers.local = SimpleNamespace(workers=[SimpleNamespace(running=False)])
    assert workers.ensure(["127.0.0.1:1"]) == ["127.0.0.1:2"] and started == [1]
